"""Offline recipe: supervised, distillation, reward-model, paired/unpaired preference and
reference-free families — every offline registry entry trains through this one loop.

It branches only on registry metadata, never on an algorithm's name:
``input_kind`` (which batch the loss takes), ``needs_reference`` (cached reference log-probs),
``needs_teacher`` (teacher logits), and the entry's ``trainer`` requirements
(``token_kl`` / ``reference_update`` → a live reference model; ``running_stat`` → a running
mean fed back to the loss; ``log_sum_sq`` → WPO's per-token log Σ_v π²).

    1. data      domain items → records → tokens (THE chat template, shared with evaluation)
    2. policy    HF model (LoRA optional); a score head for reward models
    3. reference log-probs once, from the on-disk cache (the reference is loaded only on a miss)
    4. loop      global batch → this rank's micro-batches → forward → registry loss →
                 share of the global mean → backward → clip/step → guard → log → checkpoint
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ptlab.algorithms.types import PairedBatch, ScoreBatch, SingleBatch, UnpairedBatch
from ptlab.api.models import PostTrainingRunSpec
from ptlab.errors import UserError
from ptlab.trainer import modeling, refcache
from ptlab.trainer.batching import (
    Encoded,
    Padded,
    encode_record,
    pad,
    scatter_completion,
    token_ids_digest,
    with_kl_pairs,
)
from ptlab.trainer.budget import Budget
from ptlab.trainer.distributed import build_engine
from ptlab.trainer.recipes.common import (
    DataOrder,
    Loop,
    Outcome,
    RunContext,
    Totals,
    metric_sums,
    micro_share,
    optimizer_step,
    reduce_metrics,
    shard,
)
from ptlab.trainer.samples import self_sampled_records

LOSS_MASK: dict[str, tuple[str, ...]] = {
    "single": ("completion",),
    "paired": ("chosen",),
    "scores": ("chosen", "rejected"),
    "unpaired": ("completion",),
}
"""Sequences a token-level loss of each input kind is aggregated over (its global denominator)."""

RUNNING_MOMENTUM = 0.9
"""EMA momentum of running statistics (β-DPO's margin M0, BCO's reward shift δ)."""


# --------------------------------------------------------------------------- 1. data


def offline_records(spec: PostTrainingRunSpec, input_kind: str, split: str = "train") -> list[dict[str, Any]]:
    """Records of the run's data for ``input_kind`` (see :mod:`ptlab.trainer.batching`).

    single: (prompt, worked solution) — or a file's chosen completions; paired/scores: the
    domain's given pairs (chosen = solution, rejected = one step corrupted) or a ``pairs``
    file; unpaired: each pair split into a desirable and an undesirable completion (the
    standard paired → unpaired conversion). ``data.pairs: self-sampled`` data comes from
    :func:`ptlab.trainer.samples.self_sampled_records` instead (it needs the policy).
    """
    data = spec.data
    n = data.train_size if split == "train" else data.validation_size
    items, pairs = file_data(spec, input_kind, n) if data.source.format != "generated" else ([], [])
    if data.source.format == "generated":
        from ptlab.trainer.domains import get_domain

        domain = get_domain(data.domain)
        items = domain.items(split, n, seed=spec.training.seed)
        pairs = domain.given_pairs(items, seed=spec.training.seed) if input_kind != "single" else []
    if input_kind == "single":
        if items:
            return [{"prompt": it.prompt, "completion": it.solution} for it in items]
        return [{"prompt": p.prompt, "completion": p.chosen} for p in pairs]
    if input_kind in ("paired", "scores"):
        return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    if input_kind == "unpaired":
        out = []
        for p in pairs:
            out.append({"prompt": p.prompt, "completion": p.chosen, "label": True})
            out.append({"prompt": p.prompt, "completion": p.rejected, "label": False})
        return out
    raise UserError(f"input_kind {input_kind!r} is not an offline input", "use the online recipe")


def prompt_groups(records: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Row indices grouped by runs of the same prompt: an unpaired batch takes ``batch_size``
    prompts with all their rows (both halves of a given pair; every sample of a prompt), so
    KTO/BCO see the desirable and undesirable completions of a prompt together. Shuffled
    separately, the two near-identical halves push shared tokens up and down in different
    steps (measured on zoo s1 arith, 16 steps: held-out pair margin 3.51 -> 3.10 shuffled by row,
    -> 7.45 with the halves in one batch)."""
    groups: list[list[int]] = []
    for i, record in enumerate(records):
        if groups and records[groups[-1][0]]["prompt"] == record["prompt"]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def file_data(spec: PostTrainingRunSpec, input_kind: str, n: int) -> tuple[list[Any], list[Any]]:
    """``(items, pairs)`` from a jsonl file or hub dataset (``data.source``)."""
    from ptlab.trainer.data import load_items, load_pairs

    source = spec.data.source
    where = source.path or f"hf:{source.hub}"
    if source.format == "pairs":
        return [], load_pairs(where, source.split, n)
    if input_kind != "single":
        raise UserError(
            f"data.source.format={source.format!r} has no preference pairs for {input_kind} input",
            "use format: pairs (chosen/rejected) or a supervised algorithm",
        )
    fmt = "mc" if source.format == "multiple_choice" else source.format
    return load_items(where, fmt, source.split, n), []


# --------------------------------------------------------------------------- 2. models


class ScoredLM(nn.Module):
    """A causal LM with a linear head: per-token scores (B, T); a sequence's score is the one
    at its last token (the EOS after the completion)."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.head = nn.Linear(lm.config.hidden_size, 1)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return self.head(out.hidden_states[-1].to(self.head.weight.dtype)).squeeze(-1)


def last_token_scores(token_scores: Tensor, attn: Tensor) -> Tensor:
    """Score at each row's last non-padding position (B,)."""
    last = attn.sum(-1).long() - 1
    return token_scores.gather(1, last[:, None]).squeeze(1)


# --------------------------------------------------------------------------- 3. reference


def reference_source(spec: PostTrainingRunSpec) -> str | None:
    """Model source of an explicit reference; ``None`` = the starting policy itself."""
    ref = spec.reference
    if ref is None or (ref.name is None and ref.path is None):
        return None
    return modeling.resolve_source(ref.name, ref.path)


def cached_reference(
    spec: PostTrainingRunSpec, policy: nn.Module, examples: Sequence[Mapping[str, Encoded]], pad_id: int
) -> tuple[refcache.RefLogps, bool]:
    """Reference completion log-probs of every sequence, from the cache when possible.

    On a miss the default reference is the policy before any update (LoRA: adapters
    disabled), so no second copy is loaded; an explicit reference is loaded, used, freed.
    """
    explicit = reference_source(spec)
    source = explicit or modeling.source_of(spec.model)
    key = refcache.cache_key(
        modeling.model_hash(source),
        token_ids_digest(examples),
        {"dtype": spec.model.dtype, "max_len": spec.training.max_len},
    )

    @contextlib.contextmanager
    def factory() -> Iterator[nn.Module]:
        if explicit is None:
            with modeling.as_reference(policy) as model:
                yield model
        else:
            model = modeling.load_model(explicit, modeling.compute_dtype(spec.model.dtype))
            yield model
            del model

    return refcache.load_or_compute(key, factory, examples, pad_id)


class LiveReference:
    """A frozen reference copy evaluated every step (needed for per-token KL over the
    vocabulary, and for references that move: TR-DPO soft/hard updates, BEMA)."""

    def __init__(self, policy: nn.Module):
        self.model = copy.deepcopy(policy).eval().requires_grad_(False)
        self.initial = [p.detach().clone() for p in policy.parameters()]
        self.ema = [p.detach().clone() for p in policy.parameters()]

    def state(self) -> dict[str, Any]:
        """What a checkpoint must hold to resume a moving reference exactly."""
        return {"model": self.model.state_dict(), "ema": self.ema, "initial": self.initial}

    def load(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema, self.initial = list(state["ema"]), list(state["initial"])

    @torch.no_grad()
    def raw_logits(self, batch: Padded) -> Tensor:
        return modeling.forward_logits(self.model, batch.ids, batch.attn)

    @torch.no_grad()
    def update(self, policy: nn.Module, step: int, kind: str, params: Any) -> None:
        """Move the reference toward ``policy`` after ``step`` (per the entry's metadata)."""
        pairs = list(zip(self.model.parameters(), policy.parameters(), strict=True))
        if kind == "trust-region" and step % params.sync_steps == 0:
            # TR-DPO (arXiv:2404.09656): soft πref ← τπθ + (1−τ)πref, hard πref ← πθ
            tau = params.tau if params.update == "soft" else 1.0
            for ref, cur in pairs:
                ref.mul_(1 - tau).add_(cur.detach(), alpha=tau)
        elif kind == "bema" and step % params.update_freq == 0:
            # BEMA (arXiv:2508.00180): ema ← (1−η)ema + ηθ, η=(1+t)^−κ; ref = ema + α(θ − θ0), α=(1+t)^−ρ
            eta = (1 + step) ** -params.ema_power
            alpha = (1 + step) ** -params.bias_power
            for (ref, cur), ema, init in zip(pairs, self.ema, self.initial, strict=True):
                ema.mul_(1 - eta).add_(cur.detach(), alpha=eta)
                ref.copy_(ema + alpha * (cur.detach() - init))


# --------------------------------------------------------------------------- 4. batches


def token_kl(ref_logits: Tensor, logits: Tensor) -> Tensor:
    """Per-token KL(πref‖πθ) over the vocabulary (B, T), differentiable in the policy."""
    ref = torch.log_softmax(ref_logits.float(), -1)
    cur = torch.log_softmax(logits.float(), -1)
    return (ref.exp() * (ref - cur)).sum(-1)


def log_sum_sq(logits: Tensor) -> Tensor:
    """log Σ_v πθ(v|·)² per token (B, T), detached (WPO's aligned weights)."""
    return torch.logsumexp(2 * torch.log_softmax(logits.detach().float(), -1), -1)


def build_batch(
    kind: str,
    model: nn.Module,
    rows: Sequence[Mapping[str, Encoded]],
    labels: Sequence[bool],
    ref: refcache.RefLogps | None,
    ref_rows: Sequence[int],
    pad_id: int,
    teacher: nn.Module | None = None,
    live: LiveReference | None = None,
    running: Tensor | None = None,
    log_sum_sq_needed: bool = False,
) -> tuple[Any, Tensor, int]:
    """Forward one micro-batch and package it for the entry: ``(batch, loss_mask, tokens)``.

    ``ref_rows`` are the dataset indices of ``rows`` (to pick cached reference values);
    ``loss_mask`` is what a token-level loss is aggregated over.
    """

    def cached(name: str, mask: Tensor) -> Tensor | None:
        return scatter_completion([ref[name][i] for i in ref_rows], mask) if ref else None

    if kind in ("paired", "scores"):
        b = len(rows)
        both = pad([r["chosen"] for r in rows] + [r["rejected"] for r in rows], pad_id)
        cm, rm = both.mask[:b], both.mask[b:]
        if kind == "scores":
            token_scores = model(both.ids, both.attn)
            scores = last_token_scores(token_scores, both.attn)
            targets = torch.cat([torch.ones(b), torch.zeros(b)])
            return (
                ScoreBatch(
                    chosen=scores[:b], rejected=scores[b:], margins=torch.ones(b),
                    scores=scores, targets=targets, step_logits=token_scores * both.mask,
                    step_labels=targets[:, None] * both.mask, step_mask=both.mask,
                ),
                both.mask,
                both.n_tokens,
            )
        raw = modeling.forward_logits(model, both.ids, both.attn)
        logps = modeling.next_token_logps(raw, both.ids) * both.mask
        extra: dict[str, Any] = {}
        if live is not None:
            ref_raw = live.raw_logits(both)
            ref_logps = modeling.next_token_logps(ref_raw, both.ids) * both.mask
            kl = modeling.align(token_kl(ref_raw[:, :-1], raw[:, :-1])) * both.mask
            extra = {"ref_chosen_logps": ref_logps[:b], "ref_rejected_logps": ref_logps[b:],
                     "chosen_token_kl": kl[:b], "rejected_token_kl": kl[b:]}
        elif ref is not None:
            extra = {"ref_chosen_logps": cached("chosen", cm), "ref_rejected_logps": cached("rejected", rm)}
        if log_sum_sq_needed:
            lss = modeling.align(log_sum_sq(raw[:, :-1])) * both.mask
            extra.update(chosen_log_sum_sq=lss[:b], rejected_log_sum_sq=lss[b:])
        batch = PairedBatch(
            policy_chosen_logps=logps[:b], policy_rejected_logps=logps[b:],
            chosen_mask=cm, rejected_mask=rm,
            chosen_rewards=torch.ones(b), rejected_rewards=torch.zeros(b), margins=torch.ones(b),
            running_margin=running, **extra,
        )
        return batch, cm, both.n_tokens
    if kind == "unpaired":
        b = len(rows)
        has_kl = ref is not None and "kl" in rows[0]
        seqs = [r["completion"] for r in rows] + ([r["kl"] for r in rows] if has_kl else [])
        both = pad(seqs, pad_id)
        logps = modeling.token_logps(model, both.ids, both.attn) * both.mask
        m = both.mask[:b]
        kl = {}
        if has_kl:
            km = both.mask[b:]
            kl = {"kl_policy_logps": logps[b:].detach(), "kl_ref_logps": cached("kl", km), "kl_mask": km}
        batch = UnpairedBatch(
            policy_logps=logps[:b], mask=m, labels=torch.tensor(list(labels), dtype=torch.bool),
            ref_logps=cached("completion", m), reward_shift=running, **kl,
        )
        return batch, m, both.n_tokens
    padded = pad([r["completion"] for r in rows], pad_id)
    raw = modeling.forward_logits(model, padded.ids, padded.attn)
    logps = modeling.next_token_logps(raw, padded.ids) * padded.mask
    logits = teacher_logits = None
    if teacher is not None:  # distillation compares full distributions
        logits = modeling.align(raw[:, :-1])
        with torch.no_grad():
            teacher_logits = modeling.shifted_logits(teacher, padded.ids, padded.attn)
    batch = SingleBatch(
        logps=logps, mask=padded.mask, logits=logits, teacher_logits=teacher_logits,
        labels=padded.ids, ref_logps=cached("completion", padded.mask),
    )
    return batch, padded.mask, padded.n_tokens


def running_value(kind: str, metrics: Mapping[str, float]) -> float | None:
    """The statistic an entry with ``running_stat`` tracks: mean margin (paired) or mean
    implicit reward (unpaired), from the loss's own metrics."""
    key = "rewards/margins" if kind == "paired" else "rewards"
    return metrics.get(key)


# --------------------------------------------------------------------------- the recipe


def train(ctx: RunContext) -> Outcome:
    """Train ``ctx.spec`` with an offline entry; returns the policy and the counters."""
    spec, algo, params, info = ctx.spec, ctx.algorithm, ctx.params, ctx.info
    kind, training = algo.input_kind, spec.training
    needs = dict(algo.trainer)
    live_kind = needs.get("reference_update") or ("token_kl" if "token_kl" in needs else None)
    agg = needs.get("aggregation", getattr(params, "aggregation", "token-mean"))

    # 1. data -------------------------------------------------------------------------------
    tokenizer = modeling.load_tokenizer(modeling.source_of(spec.model))
    dtype = modeling.compute_dtype(spec.model.dtype)
    policy = modeling.build_policy(spec.model)
    if spec.data.pairs == "self-sampled" and kind != "single":
        records = self_sampled_records(spec, kind, policy, tokenizer)  # before any update
    else:
        records = offline_records(spec, kind)
    if kind == "unpaired" and algo.needs_reference:
        records = with_kl_pairs(records)
    examples = [encode_record(tokenizer, r, kind, training.max_len) for r in records]
    labels = [bool(r.get("label", True)) for r in records]
    pad_id = tokenizer.pad_token_id

    # 2. models -----------------------------------------------------------------------------
    model: nn.Module = ScoredLM(policy) if kind == "scores" else policy
    teacher = None
    if algo.needs_teacher:
        if reference_source(spec) is None:
            raise UserError(f"{algo.name} distils from a teacher", "set reference.name (the teacher model)")
        teacher = modeling.load_model(reference_source(spec), dtype).eval()  # type: ignore[arg-type]

    # 3. reference log-probs: once per (reference, data, tokenisation), shared by the study ------
    ref, ref_hit, forwards_before = None, None, refcache.STATS["forward_passes"]
    live = LiveReference(policy) if (live_kind and algo.needs_reference) else None
    if algo.needs_reference and live is None:
        ref, ref_hit = cached_reference(spec, policy, examples, pad_id)

    # 4. loop -------------------------------------------------------------------------------
    budget = Budget(n_params=modeling.count_parameters(model))
    micro_steps = training.grad_accum
    mean_tokens = sum(sum(len(s.input_ids) for s in ex.values()) for ex in examples) / len(examples)
    total_steps = budget.total_steps(training.budget, mean_tokens * training.batch_size)
    engine = build_engine(model, training, spec.resources, total_steps, info, micro_steps, dtype)
    groups = prompt_groups(records) if kind == "unpaired" else [[i] for i in range(len(examples))]
    order = DataOrder(len(groups), training.seed)
    loop = Loop(ctx, engine, budget, order)
    running = loop.extra.get("running")
    if live is not None:
        if "reference" in loop.extra:
            live.load(loop.extra["reference"])
        loop.extra["reference"] = live.state()  # tensors are shared: checkpoints see updates
    model.train()

    while True:
        step = budget.steps + 1
        saved_order = order.state()
        indices = [i for g in order.take(training.batch_size) for i in groups[g]]
        tokens = sum(len(s.input_ids) for i in indices for s in examples[i].values()
                     if kind != "unpaired" or s is not examples[i].get("kl"))
        if not budget.fits(training.budget, tokens):
            order.epoch, order.offset = saved_order["epoch"], saved_order["offset"]
            break
        t0 = time.perf_counter()
        masks = [examples[i][name].completion_mask for i in indices for name in LOSS_MASK[kind]]
        totals = Totals(rows=float(len(indices)), tokens=float(sum(map(sum, masks))),
                        width=float(max(map(len, masks))))
        loss_sum, parts = torch.zeros((), dtype=torch.float64), []
        running_t = None if running is None else torch.tensor(running)
        for micro in shard(indices, info, micro_steps):
            rows = [examples[i] for i in micro]
            batch, mask, _ = build_batch(
                kind, engine.model, rows, [labels[i] for i in micro], ref, micro, pad_id,
                teacher, live, running_t, "log_sum_sq" in needs,
            )
            out = algo.fn(batch, params)
            share = micro_share(out, mask, totals, agg, rows=len(micro))
            engine.backward(share)
            loss_sum += share.detach().double()
            parts.append(metric_sums(out.metrics))
        loss, lr, grad_norm = optimizer_step(engine, loss_sum, step)
        budget.add(tokens)
        metrics = reduce_metrics(parts)
        if "running_stat" in needs and (value := running_value(kind, metrics)) is not None:
            running = value if running is None else RUNNING_MOMENTUM * running + (1 - RUNNING_MOMENTUM) * value
            loop.extra["running"] = running
        if live is not None and "reference_update" in needs:
            with engine.gathered() as whole:
                live.update(whole if kind != "scores" else whole.lm, step, needs["reference_update"], params)
        elapsed = time.perf_counter() - t0
        loop.end_step(
            {"loss": loss, "grad_norm": grad_norm, "lr": lr, "train_tokens": budget.train_tokens,
             "flops": budget.flops, "tokens_per_second": tokens / max(elapsed, 1e-9),
             "step_time_s": elapsed, **metrics},
            total_steps,
        )

    if budget.steps % training.checkpoint_every != 0 and budget.steps > loop.resumed_from:
        loop.save()
    extra = {
        "reference_cache_hit": ref_hit,
        "reference_forward_passes": refcache.STATS["forward_passes"] - forwards_before,
        "total_steps": total_steps,
    }
    def rebuild() -> nn.Module:
        fresh = modeling.build_policy(spec.model)
        return ScoredLM(fresh) if kind == "scores" else fresh

    final = engine.export(rebuild)
    return Outcome(model=final, tokenizer=tokenizer, budget=budget, wall_s=loop.wall_s, extra=extra)
