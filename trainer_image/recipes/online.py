"""Online recipe: online RL (policy loss + advantage estimator) and online preference methods —
every online registry entry trains through this one loop.

It branches only on registry metadata: ``family`` (online-rl: per-token policy objective;
online-pref: pairs / scored samples judged by the verifier), the resolved recipe's flags
(``needs_reference``, ``needs_critic``, KL placement, rollout correction) and ``trainer``
requirements (``dynamic_sampling``, ``overlong_buffer``, ``greedy_baseline``; for preference
entries ``sample``, ``judge``, ``select``, ``pairs``, ``iterate_reference``).

    1. data      the domain's train items → prompt ids (THE chat template, shared with evaluation)
    2. models    policy (LoRA optional); reference only if needed (LoRA: adapters disabled);
                 critic only if needed (a separate backbone + value head)
    3. engine    HF generate (live weights) or vLLM (synced every ``rollout.sync_every`` steps)
    4. loop      prompts → rollouts → verifier rewards (+ overlong shaping) → dynamic sampling →
                 reference / old log-probs when needed → advantages for every completion token →
                 micro-batches: forward → registry loss → share of the global batch → backward →
                 clip/step → guard → log → checkpoint. Generated tokens count toward the budget.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ptlab.algorithms.online.advantages import dynamic_sampling_keep, overlong_penalty
from ptlab.algorithms.online.critic import ValueHead
from ptlab.algorithms.online.recipes import (
    OnlineRecipe,
    compute_advantages,
    policy_objective,
    resolve_online_algorithm,
    rewards_for_advantage,
)
from ptlab.algorithms.types import PairedBatch, RewardBatch, RolloutBatch, SingleBatch
from ptlab.errors import UserError
from ptlab.trainer import modeling
from ptlab.trainer.batching import Padded, pad
from ptlab.trainer.budget import Budget
from ptlab.trainer.chat import Encoded, encode_prompt_completion, format_prompt
from ptlab.trainer.distributed import all_sum, build_engine
from ptlab.trainer.domains import Item, get_domain
from ptlab.trainer.recipes.common import (
    DataOrder,
    Loop,
    Outcome,
    RunContext,
    check_finite,
    metric_sums,
    reduce_metrics,
    shard,
)
from ptlab.trainer.rollout import Completion, SamplingSettings, eos_token_ids, pad_completions
from ptlab.trainer.rollout import build_engine as build_rollout
from ptlab.trainer.rollout.hf import HFEngine

OVERLONG_FRACTION = 0.2
"""DAPO's overlong buffer is 4096 of 20480 tokens; a buffer longer than the run's
``max_new_tokens`` is scaled to this fraction of it."""


# --------------------------------------------------------------------------- 2. models


class ActorCritic(nn.Module):
    """Policy plus a separate critic (a copy of the starting backbone + zero-initialised value
    head), trained by one optimizer; PPO/VAPO-style entries with ``needs_critic`` use it."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy
        self.critic = copy.deepcopy(getattr(policy, "get_base_model", lambda: policy)())
        self.value_head = ValueHead(self.critic.config.hidden_size)

    def values(self, batch: Padded) -> Tensor:
        """V(s_t) in the trainer layout (B, T): position t = state before token t."""
        out = self.critic(input_ids=batch.ids, attention_mask=batch.attn, output_hidden_states=True)
        v = self.value_head(out.hidden_states[-1])
        return torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], dim=1)


class Reference:
    """The frozen reference policy: an explicit model, the LoRA policy with adapters disabled,
    or a copy of the starting policy. ``refresh`` makes it the current policy (SPIN, SPPO)."""

    def __init__(self, spec: Any, policy: nn.Module, iterate: bool):
        ref = spec.reference
        explicit = ref is not None and (ref.name is not None or ref.path is not None)
        self.shared = hasattr(policy, "disable_adapter") and not explicit and not iterate
        if explicit:
            source = modeling.resolve_source(ref.name, ref.path)
            self.model = modeling.load_model(source, modeling.compute_dtype(spec.model.dtype))
        elif self.shared:
            self.model = policy
        else:
            self.model = copy.deepcopy(policy)
        if not self.shared:
            self.model.eval().requires_grad_(False)

    @contextlib.contextmanager
    def active(self) -> Iterator[nn.Module]:
        """The reference network (LoRA: the policy with adapters disabled, in eval mode)."""
        with modeling.as_reference(self.model) if self.shared else contextlib.nullcontext(self.model) as m:
            was = m.training
            m.eval()
            try:
                yield m
            finally:
                m.train(was)

    @torch.no_grad()
    def logps(self, batch: Padded) -> Tensor:
        with self.active() as m:
            return modeling.token_logps(m, batch.ids, batch.attn) * batch.mask

    @torch.no_grad()
    def refresh(self, policy: nn.Module) -> None:
        self.model.load_state_dict(policy.state_dict())


# --------------------------------------------------------------------------- 4. step pieces


@dataclass
class Scored:
    """Rollouts of this rank's prompts with their verifier rewards (rows prompt-major)."""

    completions: list[Completion]
    items: list[Item]  # items[c.group] is the prompt of completion c
    rewards: Tensor  # (N,) reward used for advantages / judging (after shaping)
    correct: Tensor  # (N,) raw verifier reward
    micro: list[int]  # micro-batch index of each completion
    opponent: list[bool]  # sampled from the reference / opponent (judged, not trained on)

    def rows(self, micro: int, keep: Tensor | None = None) -> list[int]:
        """Indices of micro-batch ``micro`` (kept rows only when ``keep`` is given)."""
        return [i for i, m in enumerate(self.micro) if m == micro and (keep is None or keep[i])]


def prompt_ids(tokenizer: Any, item: Item, max_prompt: int) -> list[int]:
    """The chat-formatted prompt's token ids, keeping its end if longer than ``max_prompt``."""
    ids = tokenizer(format_prompt(tokenizer, item.prompt), add_special_tokens=False)["input_ids"]
    return list(ids[-max_prompt:])


def score(domain: Any, tokenizer: Any, items: Sequence[Item], completions: Sequence[Completion]) -> Tensor:
    """Verifier reward of each completion (``completions[i]`` answers ``items[c.group]``)."""
    texts = tokenizer.batch_decode([list(c.token_ids) for c in completions], skip_special_tokens=True)
    return torch.tensor(
        [domain.verify(items[c.group], t).reward for c, t in zip(completions, texts, strict=True)],
        dtype=torch.float32,
    )


def overlong_shaping(rewards: Tensor, completions: Sequence[Completion], max_new: int, trainer: dict) -> Tensor:
    """DAPO soft overlong punishment added to the rewards when the entry asks for it."""
    if not trainer.get("overlong_buffer"):
        return rewards
    buffer = int(trainer["overlong_buffer"])
    if buffer > max_new:
        buffer = max(1, int(max_new * OVERLONG_FRACTION))
    lengths = torch.tensor([len(c.token_ids) for c in completions])
    return rewards + overlong_penalty(lengths, max_new, buffer, trainer.get("overlong_penalty", 1.0)).float()


def win_rates(rewards: Tensor, groups: Tensor) -> Tensor:
    """P̂(y_i ≻ y_j) averaged over the other samples j of its group (ties count ½), (N,)."""
    same = (groups[:, None] == groups[None, :]).float() - torch.eye(len(groups))
    beats = (rewards[:, None] > rewards[None, :]).float() + 0.5 * (rewards[:, None] == rewards[None, :]).float()
    return (beats * same).sum(1) / same.sum(1).clamp(min=1.0)


def encoded(c: Completion) -> Encoded:
    return Encoded(list(c.prompt_ids + c.token_ids), len(c.prompt_ids))


def policy_forward(model: nn.Module, batch: Padded, entropy_grad: bool) -> tuple[Tensor, Tensor]:
    """(log-probs, entropy) per token (B, T), masked to completion tokens; log-probs with grad,
    entropy with grad only when the loss has an entropy bonus (else a detached metric)."""
    logits = modeling.shifted_logits(model, batch.ids, batch.attn)
    logps = modeling.gather_logps(logits, batch.ids) * batch.mask
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        logp_all = torch.log_softmax(logits.float(), -1)
        entropy = -(logp_all.exp() * logp_all).sum(-1) * batch.mask
    return logps, entropy


# --------------------------------------------------------------------------- online RL step


def rl_micro_losses(
    recipe: OnlineRecipe, model: nn.Module, critic: ActorCritic | None, ref: Reference | None,
    s: Scored, keep: Tensor, micro: int, adv: Tensor, returns: Tensor | None,
    old_values: Tensor | None, pad_id: int,
) -> Iterator[tuple[Any, Tensor, int]]:
    """Yield ``(LossOutput, completion mask, tokens)`` of micro-batch ``micro`` (kept rows only)."""
    rows = s.rows(micro, keep)
    if not rows:
        return
    p = pad_completions([s.completions[i] for i in rows], pad_id)
    b = p.batch
    width = b.ids.shape[1]
    logps, entropy = policy_forward(model, b, recipe.options.entropy_coef > 0)
    batch = RolloutBatch(
        logps=logps, mask=b.mask, advantages=adv[rows, :width],
        ref_logps=ref.logps(b) if ref is not None else None,
        rollout_logps=p.rollout_logps, entropy=entropy, rewards=s.rewards[rows],
        group_ids=torch.tensor([s.completions[i].group for i in rows]),
        values=critic.values(b) * b.mask if critic is not None else None,
        returns=returns[rows, :width] if returns is not None else None,
        old_values=old_values[rows, :width] if old_values is not None else None,
    )
    yield policy_objective(batch, recipe), b.mask, int(b.attn.sum())


def rl_advantages(
    recipe: OnlineRecipe, model: nn.Module, critic: ActorCritic | None, ref: Reference | None,
    s: Scored, keep: Tensor, baseline: Tensor | None, pad_id: int,
) -> tuple[Tensor, Tensor | None, Tensor | None, dict[str, Tensor]]:
    """Advantages (N, L) for every completion token of the kept rows (+ returns, old values)."""
    p = pad_completions(s.completions, pad_id)
    b = p.batch
    needs_kl_reward = recipe.options.kl_placement == "reward" and recipe.options.kl_coef > 0
    old_logps = ref_logps = values = None
    with torch.no_grad():
        if needs_kl_reward:
            old_logps = modeling.token_logps(model, b.ids, b.attn) * b.mask
            ref_logps = ref.logps(b) if ref is not None else None
        if critic is not None:
            values = critic.values(b) * b.mask
    groups = torch.tensor([c.group for c in s.completions])
    rewards = RewardBatch(
        rewards=s.rewards.double(), mask=b.mask.double() * keep[:, None],
        group_ids=groups, values=values.double() if values is not None else None,
        baseline_rewards=baseline.double() if baseline is not None else None,
    )
    rewards = rewards_for_advantage(recipe, rewards, old_logps, ref_logps)
    out = compute_advantages(recipe, rewards)
    returns = out.returns.float() if (critic is not None and out.returns is not None) else None
    return out.advantages.float(), returns, values, dict(out.metrics)


# --------------------------------------------------------------------------- online preference

POLICY_SAMPLES = {"pair": 2, "one": 1, "policy_vs_reference": 1, "policy_vs_mixture": 1}
"""Policy samples per prompt for each ``sample`` kind of an online-preference entry ("n" = G)."""


def pair_rows(s: Scored, idx: list[int]) -> tuple[Encoded, Encoded] | None:
    """(chosen, rejected) of one prompt's two samples ranked by the verifier; None on a tie."""
    a, b = idx[0], idx[1]
    if s.rewards[a] == s.rewards[b]:
        return None  # a tie carries no preference
    win, lose = (a, b) if s.rewards[a] > s.rewards[b] else (b, a)
    return encoded(s.completions[win]), encoded(s.completions[lose])


def preference_batch(
    algo: Any, model: nn.Module, ref: Reference | None, s: Scored, micro: int,
    tokenizer: Any, max_len: int, pad_id: int,
) -> tuple[Any, Tensor, int] | None:
    """``(batch, loss mask, tokens)`` of one micro-batch for an online-preference entry.

    paired entries: chosen/rejected ranked by the verifier (ties give no pair), or with
    ``pairs=sft_vs_self`` the worked solution vs the policy's sample (SPIN); a reference sample
    is also XPO's exploration sample. single entries: ``select=best_of_n`` keeps the best
    correct sample per prompt (RAFT); otherwise each policy sample with its win rate P̂(y ≻ ·)
    against the other samples of its prompt (SPPO, Nash-MD's opponent).
    """
    meta = algo.trainer
    rows = s.rows(micro)
    by_group: dict[int, list[int]] = {}
    for i in rows:
        by_group.setdefault(s.completions[i].group, []).append(i)
    if algo.input_kind == "paired":
        chosen, rejected, explore = [], [], []
        for g, idx in by_group.items():
            if meta.get("pairs") == "sft_vs_self":
                item = s.items[g]
                chosen.append(encode_prompt_completion(tokenizer, item.prompt, item.solution, max_len))
                rejected.append(encoded(s.completions[idx[0]]))
                continue
            pair = pair_rows(s, idx)
            if pair is not None:
                chosen.append(pair[0])
                rejected.append(pair[1])
                explore += [encoded(s.completions[i]) for i in idx if s.opponent[i]]
        if not chosen:
            return None
        n = len(chosen)
        both = pad(chosen + rejected + explore, pad_id)
        logps = modeling.token_logps(model, both.ids, both.attn) * both.mask
        refl = ref.logps(both) if ref is not None else both.mask * 0
        kw = {"explore_logps": logps[2 * n :], "explore_mask": both.mask[2 * n :]} if explore else {}
        batch = PairedBatch(
            policy_chosen_logps=logps[:n], policy_rejected_logps=logps[n : 2 * n],
            chosen_mask=both.mask[:n], rejected_mask=both.mask[n : 2 * n],
            ref_chosen_logps=refl[:n], ref_rejected_logps=refl[n : 2 * n],
            chosen_rewards=torch.ones(n), rejected_rewards=torch.zeros(n), **kw,
        )
        return batch, both.mask[:n], int(both.attn.sum())
    groups = torch.tensor([s.completions[i].group for i in rows])
    rates = win_rates(s.rewards[rows], groups)
    if meta.get("select") == "best_of_n":
        best = [max(idx, key=lambda i: float(s.rewards[i])) for idx in by_group.values()]
        picked = [(i, 0.0) for i in best if s.correct[i] > 0]
    else:
        picked = [(i, float(r)) for i, r in zip(rows, rates, strict=True) if not s.opponent[i]]
    if not picked:
        return None
    b = pad([encoded(s.completions[i]) for i, _ in picked], pad_id)
    logps = modeling.token_logps(model, b.ids, b.attn) * b.mask
    batch = SingleBatch(
        logps=logps, mask=b.mask, labels=b.ids, rewards=torch.tensor([r for _, r in picked]),
        ref_logps=ref.logps(b) if ref is not None else None,
    )
    return batch, b.mask, int(b.attn.sum())


def share_of(out: Any, mask: Tensor, rows: float, tokens: float, agg: str) -> Tensor:
    """This micro-batch's share of the global-batch loss: a per-row or per-token loss with the
    global denominators, or a micro-batch mean weighted by its fraction of rows / tokens."""
    from ptlab.trainer.recipes.common import Totals, micro_share

    if out.loss.dim() == 0:  # policy_objective already aggregated this micro-batch
        frac = float(mask.sum()) / tokens if agg == "token-mean" else mask.shape[0] / rows
        return out.loss * frac
    return micro_share(out, mask, Totals(rows=rows, tokens=tokens, width=float(mask.shape[1])), agg)


# --------------------------------------------------------------------------- the recipe


def train(ctx: RunContext) -> Outcome:
    """Train ``ctx.spec`` with an online entry; returns the policy and the counters."""
    spec, algo, info = ctx.spec, ctx.algorithm, ctx.info
    training, rollout = spec.training, spec.rollout
    preference = algo.family == "online-pref"
    if not preference and algo.role not in ("policy_loss", "algorithm", "advantage"):
        raise UserError(
            f"{algo.name} is an {algo.family} entry with role {algo.role!r}, not a trainable online algorithm",
            "use a policy loss or a named online recipe (see `ptlab algorithms list`)",
        )
    recipe = None if preference else resolve_online_algorithm(algo.name, spec.algorithm.params)
    params = ctx.params
    needs = dict(algo.trainer) if preference else {**recipe.trainer}  # type: ignore[union-attr]
    agg = needs.get("aggregation", "token-mean") if preference else recipe.aggregation  # type: ignore[union-attr]
    if recipe is not None and recipe.options.norm_length is None and agg == "seq-mean-token-sum-norm":
        # Dr. GRPO's constant L = the maximum completion length, identical on every micro-batch.
        recipe = dataclasses.replace(
            recipe, options=dataclasses.replace(recipe.options, norm_length=rollout.max_new_tokens)
        )

    # 1. data -------------------------------------------------------------------------------
    source = modeling.source_of(spec.model)
    tokenizer = modeling.load_tokenizer(source)
    domain = get_domain(spec.data.domain)
    items = domain.items("train", spec.data.train_size, seed=training.seed)
    max_prompt = training.max_len - rollout.max_new_tokens
    if max_prompt < 8:
        raise UserError(
            f"training.max_len={training.max_len} leaves no room for prompts after "
            f"rollout.max_new_tokens={rollout.max_new_tokens}",
            "raise training.max_len or lower rollout.max_new_tokens",
        )
    prompts = [prompt_ids(tokenizer, it, max_prompt) for it in items]
    pad_id = tokenizer.pad_token_id

    # 2. models -----------------------------------------------------------------------------
    dtype = modeling.compute_dtype(spec.model.dtype)
    policy = modeling.build_policy(spec.model)
    critic = ActorCritic(policy) if recipe is not None and recipe.needs_critic else None
    model: nn.Module = critic if critic is not None else policy
    needs_ref = algo.needs_reference if preference else recipe.needs_reference  # type: ignore[union-attr]
    opponent = needs.get("sample") in ("policy_vs_reference", "policy_vs_mixture")
    ref = Reference(spec, policy, bool(needs.get("iterate_reference"))) if (needs_ref or opponent) else None

    eos = eos_token_ids(policy, [tokenizer.eos_token_id])
    per_prompt = rollout.num_generations
    if preference:
        per_prompt = POLICY_SAMPLES.get(needs.get("sample", "n"), rollout.num_generations)
    budget = Budget(n_params=modeling.count_parameters(policy))
    micro_steps = training.grad_accum
    mean_prompt = sum(map(len, prompts)) / len(prompts)
    tokens_per_step = training.batch_size * per_prompt * (mean_prompt + 2 * rollout.max_new_tokens)
    total_steps = budget.total_steps(training.budget, tokens_per_step)
    engine = build_engine(model, training, spec.resources, total_steps, info, micro_steps, dtype)

    # 3. rollout engine (ZeRO-3: HF generate keeps the ranks' forward passes in step) -----------
    engine_r = build_rollout(
        rollout.engine, policy, pad_id=pad_id, eos_ids=eos, model_dir=source,
        max_model_len=training.max_len, dtype=spec.model.dtype, seed=training.seed,
        synced=engine.sharded,
    )

    # 4. loop -------------------------------------------------------------------------------
    order = DataOrder(len(items), training.seed)
    loop = Loop(ctx, engine, budget, order)
    synced_at: int | None = None
    model.train()
    try:
        while budget.fits(training.budget, 0, 0):
            step = budget.steps + 1
            saved_order = order.state()
            indices = order.take(training.batch_size)
            t0 = time.perf_counter()
            # rollouts: this rank's prompts, every rollout.sync_every steps fresh weights in vLLM
            if synced_at is None or step - synced_at >= rollout.sync_every:
                with engine.gathered() if engine_r.copies_weights else contextlib.nullcontext():
                    engine_r.sync_weights(policy)
                synced_at = step
            micro_idx = shard(indices, info, micro_steps)
            mine = [i for m in micro_idx for i in m]
            settings = SamplingSettings(
                rollout.max_new_tokens, rollout.temperature, rollout.top_p,
                seed=training.seed * 1_000_003 + step * 1009 + info.rank,
            )
            tagged = [(c, False) for c in engine_r.generate([prompts[i] for i in mine], per_prompt, settings)]
            if opponent:  # XPO / Nash-MD: one sample of the reference per prompt, judged, not trained
                assert ref is not None
                with ref.active() as ref_model:
                    theirs = HFEngine(ref_model, pad_id, eos, synced=engine.sharded).generate(
                        [prompts[i] for i in mine], 1, dataclasses.replace(settings, seed=settings.seed + 1)
                    )
                tagged = sorted(tagged + [(c, True) for c in theirs], key=lambda t: t[0].group)
            comps, is_opp = [c for c, _ in tagged], [o for _, o in tagged]
            micro_of_group = [k for k, m in enumerate(micro_idx) for _ in m]
            micro = [micro_of_group[c.group] for c in comps]
            correct = score(domain, tokenizer, [items[i] for i in mine], comps)
            rewards = overlong_shaping(correct, comps, rollout.max_new_tokens, needs)
            s = Scored(comps, [items[i] for i in mine], rewards, correct, micro, is_opp)
            generated = int(all_sum(torch.tensor(float(sum(len(c.token_ids) for c in comps)))))
            # dynamic sampling (DAPO): groups whose rewards are all equal have zero advantage
            groups = torch.tensor([c.group for c in comps])
            keep = torch.ones(len(comps), dtype=torch.bool)
            if needs.get("dynamic_sampling"):
                keep = dynamic_sampling_keep(rewards, groups)
            adv_parts: tuple[Any, ...] = ()
            adv_metrics: dict[str, Tensor] = {}
            if not preference:
                baseline = None
                if needs.get("greedy_baseline"):  # ReMax: reward of the greedy completion
                    greedy = engine_r.generate([prompts[i] for i in mine], 1, dataclasses.replace(settings, temperature=0.0))
                    generated += sum(len(c.token_ids) for c in greedy)
                    baseline = score(domain, tokenizer, s.items, greedy)[groups]
                *adv_parts, adv_metrics = rl_advantages(recipe, policy, critic, ref, s, keep, baseline, pad_id)  # type: ignore[arg-type]
            kept_rows = [i for i in range(len(comps)) if keep[i] and not is_opp[i]]
            train_tokens_local = sum(len(comps[i].prompt_ids) + len(comps[i].token_ids) for i in kept_rows)
            train_tokens = int(all_sum(torch.tensor(float(train_tokens_local))))
            if not budget.fits(training.budget, train_tokens, generated):
                order.epoch, order.offset = saved_order["epoch"], saved_order["offset"]
                break
            totals = all_sum(torch.tensor([
                float(len(kept_rows)) if not preference else float(len(mine)),
                float(sum(len(comps[i].token_ids) for i in kept_rows)),
            ], dtype=torch.float64))
            rows_total, tokens_total = max(float(totals[0]), 1.0), max(float(totals[1]), 1.0)
            loss_sum, parts = torch.zeros((), dtype=torch.float64), [metric_sums(adv_metrics)]
            for k in range(len(micro_idx)):
                if preference:
                    got = preference_batch(algo, engine.model, ref, s, k, tokenizer, training.max_len, pad_id)
                    outs = [] if got is None else [(algo.fn(got[0], params), got[1])]
                else:
                    outs = [(o, m) for o, m, _ in rl_micro_losses(recipe, policy if critic else engine.model, critic, ref, s, keep, k, *adv_parts, pad_id)]  # type: ignore[arg-type]
                for out, mask in outs:
                    share = share_of(out, mask, rows_total, tokens_total, agg)
                    engine.backward(share)
                    loss_sum += share.detach().double()
                    parts.append(metric_sums(out.metrics))
            loss = float(all_sum(loss_sum))
            check_finite(loss, step)
            lr = engine.lr
            grad_norm = engine.step()
            check_finite(grad_norm, step)
            budget.add(train_tokens, generated)
            if ref is not None and needs.get("iterate_reference") and order.epoch != saved_order["epoch"]:
                with engine.gathered():
                    ref.refresh(policy)  # SPIN / SPPO: the finished iteration becomes the reference
            elapsed = time.perf_counter() - t0
            loop.end_step(
                {
                    "loss": loss, "grad_norm": grad_norm, "lr": lr,
                    "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()) if len(rewards) > 1 else 0.0,
                    "accuracy": float(correct[[not o for o in is_opp]].mean()),
                    "kept_fraction": float(keep.float().mean()),
                    "completion_length": generated / max(len(comps), 1),
                    "train_tokens": budget.train_tokens, "generated_tokens": budget.generated_tokens,
                    "flops": budget.flops, "tokens_per_second": train_tokens / max(elapsed, 1e-9),
                    "generated_tokens_per_second": generated / max(elapsed, 1e-9),
                    "step_time_s": elapsed, **reduce_metrics(parts),
                },
                total_steps,
            )
    finally:
        engine_r.close()
    if budget.steps % training.checkpoint_every != 0 and budget.steps > loop.resumed_from:
        loop.save()
    extra_result = {"total_steps": total_steps, "rollout_engine": rollout.engine}
    def rebuild() -> nn.Module:
        fresh = modeling.build_policy(spec.model)
        return ActorCritic(fresh) if critic is not None else fresh

    final = engine.export(rebuild)
    final = final.policy if isinstance(final, ActorCritic) else final
    return Outcome(model=final, tokenizer=tokenizer, budget=budget, wall_s=loop.wall_s, extra=extra_result)
