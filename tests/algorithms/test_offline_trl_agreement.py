"""Our offline losses vs TRL 1.16's own loss code: identical float64 inputs (several seeds, padded
masks), loss and gradients to 1e-6. See ``ptlab.algorithms.offline.trl_reference`` for how TRL's
trainer methods are driven without a model."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch

import ptlab.algorithms  # noqa: F401  (registers entries)
from ptlab.algorithms.common import aggregate, random_batch
from ptlab.algorithms.offline.trl_reference import (
    CPOTrainer,
    GKDTrainer,
    ORPOTrainer,
    cpo_trainer,
    orpo_trainer,
    trl_dpo_loss,
    trl_kto_loss,
    trl_reward_loss,
    trl_sft_nll,
    trl_sft_trainer_loss,
)
from ptlab.algorithms.registry import get, resolve_params
from ptlab.algorithms.types import PairedBatch

SEEDS = (0, 1, 2)
TOL = dict(rtol=1e-6, atol=1e-6)
B, T = 6, 9


# ----------------------------------------------------------------------------- comparison


def _leaves(batch: Any, fields: tuple[str, ...]) -> tuple[Any, list[torch.Tensor]]:
    leaves = {f: getattr(batch, f).detach().clone().requires_grad_(True) for f in fields}
    return replace(batch, **leaves), list(leaves.values())


def _assert_same(
    ours: torch.Tensor,
    theirs: torch.Tensor,
    leaves: list[torch.Tensor],
    masks: list[torch.Tensor] | None = None,
) -> None:
    """Equal losses, and equal gradients on real tokens (padding log-probs are constants in TRL's
    fused head but plain summands in its stand-in here, so their gradients are not compared)."""
    assert torch.isfinite(ours) and torch.isfinite(theirs)
    torch.testing.assert_close(ours, theirs.to(ours.dtype), **TOL)
    g_ours = torch.autograd.grad(ours, leaves, retain_graph=True, allow_unused=True)
    g_theirs = torch.autograd.grad(theirs, leaves, allow_unused=True)
    for i, (a, b) in enumerate(zip(g_ours, g_theirs, strict=True)):
        a = torch.zeros_like(leaves[i]) if a is None else a
        b = torch.zeros_like(leaves[i]) if b is None else b
        keep = masks[i].to(a.dtype) if masks else 1.0
        torch.testing.assert_close(a * keep, b.to(a.dtype) * keep, **TOL)


def _ours(name: str, batch: Any, **overrides: Any) -> torch.Tensor:
    out = get(name).fn(batch, resolve_params(name, overrides))
    return out.loss.mean()


POLICY = ("policy_chosen_logps", "policy_rejected_logps")

# (our entry, our overrides, TRL loss types, TRL weights, TRL config)
DPO_CASES: list[tuple[str, dict, list[str], list[float] | None, dict]] = [
    ("dpo", {"beta": 0.3}, ["sigmoid"], None, {"beta": 0.3}),
    ("ln_dpo", {"beta": 0.3}, ["sigmoid_norm"], None, {"beta": 0.3}),
    ("hinge", {"beta": 0.2}, ["hinge"], None, {"beta": 0.2}),
    ("ipo", {"beta": 0.1}, ["ipo"], None, {"beta": 0.1}),
    (
        "exo",
        {"beta": 0.2, "label_smoothing": 0.01},
        ["exo_pair"],
        None,
        {"beta": 0.2, "label_smoothing": 0.01},
    ),
    ("nca", {"beta": 0.2}, ["nca_pair"], None, {"beta": 0.2}),
    (
        "robust_dpo",
        {"beta": 0.2, "label_smoothing": 0.2},
        ["robust"],
        None,
        {"beta": 0.2, "label_smoothing": 0.2},
    ),
    (
        "robust_dpo",
        {"beta": 0.2, "label_smoothing": 0.0},
        ["robust"],
        None,
        {"beta": 0.2, "label_smoothing": 0.0},
    ),
    ("bco_pair", {"beta": 0.2}, ["bco_pair"], None, {"beta": 0.2}),
    ("sppo_hard", {"beta": 0.5}, ["sppo_hard"], None, {"beta": 0.5}),
    (
        "aot",
        {"beta": 0.2, "label_smoothing": 0.1},
        ["aot"],
        None,
        {"beta": 0.2, "label_smoothing": 0.1},
    ),
    ("aot_unpaired", {"beta": 0.2}, ["aot_unpaired"], None, {"beta": 0.2}),
    ("apo_zero", {"beta": 0.2}, ["apo_zero"], None, {"beta": 0.2}),
    ("apo_down", {"beta": 0.2}, ["apo_down"], None, {"beta": 0.2}),
    (
        "discopop",
        {"beta": 0.3, "tau": 0.05},
        ["discopop"],
        None,
        {"beta": 0.3, "discopop_tau": 0.05},
    ),
    ("rpo", {"beta": 0.2, "alpha": 0.7}, ["sigmoid", "sft"], [1.0, 0.7], {"beta": 0.2}),
    ("mpo", {"beta": 0.2}, ["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0], {"beta": 0.2}),
    ("wpo", {"beta": 0.2}, ["sigmoid"], None, {"beta": 0.2, "use_weighting": True}),
    ("ld_dpo", {"beta": 0.2, "alpha": 0.4}, ["sigmoid"], None, {"beta": 0.2, "ld_alpha": 0.4}),
    (
        "fdpo_js",
        {"beta": 0.2},
        ["sigmoid"],
        None,
        {"beta": 0.2, "f_divergence_type": "js_divergence"},
    ),
    (
        "fdpo_fkl",
        {"beta": 0.2},
        ["sigmoid"],
        None,
        {"beta": 0.2, "f_divergence_type": "forward_kl"},
    ),
    (
        "fdpo_alpha",
        {"beta": 0.2, "alpha": 1.0},
        ["sigmoid"],
        None,
        {"beta": 0.2, "f_divergence_type": "alpha_divergence", "f_alpha": 1.0},
    ),
    ("tr_dpo", {"beta": 0.2}, ["sigmoid"], None, {"beta": 0.2}),
    ("bema", {"beta": 0.2}, ["sigmoid"], None, {"beta": 0.2}),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("name", "ours", "types", "weights", "cfg"),
    DPO_CASES,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_paired_matches_trl_dpo_trainer(seed, name, ours, types, weights, cfg):
    batch, leaves = _leaves(random_batch("paired", B, T, seed=seed), POLICY)
    masks = [batch.chosen_mask, batch.rejected_mask]
    _assert_same(
        _ours(name, batch, **ours), trl_dpo_loss(batch, types, weights, **cfg), leaves, masks
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_ipo_sum_convention_differs_from_trl_and_matches_paper_scale(seed):
    """IPO: TRL normalises by length (our default); ``sum`` equals TRL's form on length-scaled inputs."""
    batch, leaves = _leaves(random_batch("paired", B, T, seed=seed), POLICY)
    # With every length equal to L, mean = sum / L, so sum-IPO at β equals TRL-IPO on logps·L... no:
    # instead use one-token completions, where sum and mean coincide and both must match TRL.
    one = torch.zeros_like(batch.chosen_mask)
    one[:, 0] = 1
    b1 = replace(
        batch,
        chosen_mask=one,
        rejected_mask=one,
        policy_chosen_logps=batch.policy_chosen_logps * one,
        policy_rejected_logps=batch.policy_rejected_logps * one,
        ref_chosen_logps=batch.ref_chosen_logps * one,
        ref_rejected_logps=batch.ref_rejected_logps * one,
    )
    trl = trl_dpo_loss(b1, ["ipo"], beta=0.1)
    _assert_same(_ours("ipo", b1, logp_reduction="sum"), trl, leaves, [one, one])
    # On real lengths the two conventions differ.
    assert not torch.isclose(_ours("ipo", batch, logp_reduction="sum"), _ours("ipo", batch))


@pytest.mark.parametrize("seed", SEEDS)
def test_fdpo_alpha_matches_trl_in_float32(seed):
    """TRL's α-divergence only supports fp16/bf16/fp32 (its clamp table), so compare in fp32."""
    batch = random_batch("paired", B, T, seed=seed, dtype=torch.float32)
    batch, leaves = _leaves(batch, POLICY)
    ours = _ours("fdpo_alpha", batch, beta=0.2, alpha=0.5)
    theirs = trl_dpo_loss(
        batch, ["sigmoid"], beta=0.2, f_divergence_type="alpha_divergence", f_alpha=0.5
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    grads = zip(
        torch.autograd.grad(ours, leaves, retain_graph=True),
        torch.autograd.grad(theirs, leaves),
        strict=True,
    )
    for (a, b), m in zip(grads, (batch.chosen_mask, batch.rejected_mask), strict=True):
        torch.testing.assert_close(a * m, b * m, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("entry", ["sft", "rft"])
def test_sft_matches_trl(seed, entry):
    batch, leaves = _leaves(random_batch("single", B, T, seed=seed), ("logps",))
    ours = aggregate(get(entry).fn(batch, resolve_params(entry)).loss, batch.mask, "token-mean")
    _assert_same(ours, trl_sft_nll(batch.logps, batch.mask), leaves, [batch.mask])
    _assert_same(ours, trl_sft_trainer_loss(batch, "nll"), leaves, [batch.mask])


@pytest.mark.parametrize("seed", SEEDS)
def test_dft_matches_trl_sft_trainer(seed):
    batch, leaves = _leaves(random_batch("single", B, T, seed=seed), ("logps",))
    ours = aggregate(get("dft").fn(batch, resolve_params("dft")).loss, batch.mask, "token-mean")
    _assert_same(ours, trl_sft_trainer_loss(batch, "dft"), leaves, [batch.mask])


UNPAIRED = ("policy_logps",)
KTO_CASES = [
    ("kto", {"beta": 0.2}, "kto", True, {"beta": 0.2}),
    ("kto", {"beta": 0.2, "z0": "zero"}, "kto", False, {"beta": 0.2}),
    (
        "kto",
        {"beta": 0.3, "desirable_weight": 1.5, "undesirable_weight": 0.5},
        "kto",
        True,
        {"beta": 0.3, "desirable_weight": 1.5, "undesirable_weight": 0.5},
    ),
    ("apo_unpaired", {"beta": 0.2}, "apo_zero_unpaired", False, {"beta": 0.2}),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "ours", "loss_type", "kl", "cfg"), KTO_CASES)
def test_unpaired_matches_trl_kto_trainer(seed, name, ours, loss_type, kl, cfg):
    raw = random_batch("unpaired", B, T, seed=seed)
    # Shift the KL sequences so the mismatched-pair z0 is positive (not clamped) for some seeds.
    raw = replace(raw, kl_ref_logps=raw.kl_ref_logps - 0.3 * seed * raw.kl_mask)
    batch, leaves = _leaves(raw, UNPAIRED)
    _assert_same(
        _ours(name, batch, **ours), trl_kto_loss(batch, loss_type, kl, **cfg), leaves, [batch.mask]
    )


# ----------------------------------------------------------------------------- from logits


def _logit_batch(seed: int, vocab: int = 11) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenated [chosen; rejected] logits (2B, T+1, V) and labels with −100 on prompt/padding."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2 * B, T + 1, vocab, generator=gen, dtype=torch.float64).requires_grad_(
        True
    )
    labels = torch.randint(0, vocab, (2 * B, T + 1), generator=gen)
    lengths = torch.randint(1, T + 1, (2 * B,), generator=gen)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    labels[:, 0] = -100
    labels[:, 1:][~mask] = -100
    return logits, labels, mask.to(torch.float64)


def _paired_from_logits(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
) -> PairedBatch:
    safe = labels[:, 1:].clamp(min=0)
    per_token = torch.log_softmax(logits[:, :-1], -1).gather(-1, safe[..., None])[..., 0] * mask
    return PairedBatch(per_token[:B], per_token[B:], mask[:B], mask[B:])


def _trl_seq_logps(
    cls: type, logits: torch.Tensor, labels: torch.Tensor, average: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    logps = cls.get_batch_logps(logits, labels, average_log_prob=average)
    return logps[:B], logps[B:]


CPO_CASES = [
    # (our entry, our overrides, TRL attributes, average log-probs, cpo_alpha)
    ("cpo", {"beta": 0.2, "alpha": 1.0}, {"loss_type": "sigmoid", "alpha": 0.0}, False, 1.0),
    (
        "cpo",
        {"beta": 0.2, "alpha": 0.0, "label_smoothing": 0.1},
        {"loss_type": "sigmoid", "alpha": 0.0, "label_smoothing": 0.1},
        False,
        0.0,
    ),
    (
        "simpo",
        {"beta": 2.0, "gamma": 0.5},
        {"loss_type": "simpo", "alpha": 0.0, "simpo_gamma": 0.5, "beta": 2.0},
        True,
        0.0,
    ),
    (
        "simpo",
        {"beta": 2.0, "gamma": 0.25, "gamma_mode": "ratio"},
        {"loss_type": "simpo", "alpha": 0.0, "simpo_gamma": 0.5, "beta": 2.0},
        True,
        0.0,
    ),
    (
        "cpo_simpo",
        {"beta": 2.0, "gamma": 0.5, "alpha": 0.5},
        {"loss_type": "simpo", "alpha": 0.0, "simpo_gamma": 0.5, "beta": 2.0},
        True,
        0.5,
    ),
    (
        "alphapo",
        {"beta": 2.0, "gamma": 0.5, "alpha_shape": 0.25},
        {"loss_type": "simpo", "alpha": 0.25, "simpo_gamma": 0.5, "beta": 2.0},
        True,
        0.0,
    ),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "ours", "trl_attrs", "average", "cpo_alpha"), CPO_CASES)
def test_reference_free_matches_trl_cpo_trainer(seed, name, ours, trl_attrs, average, cpo_alpha):
    logits, labels, mask = _logit_batch(seed)
    batch = _paired_from_logits(logits, labels, mask)
    attrs = {"beta": ours.get("beta", 0.1), **trl_attrs}
    losses, _, _ = cpo_trainer(**attrs).cpo_loss(
        *_trl_seq_logps(CPOTrainer, logits, labels, average)
    )
    theirs = losses.mean()
    if cpo_alpha:
        theirs = theirs + cpo_alpha * trl_sft_nll(batch.policy_chosen_logps, batch.chosen_mask)
    _assert_same(_ours(name, batch, **ours), theirs, [logits])


@pytest.mark.parametrize("seed", SEEDS)
def test_orpo_matches_trl_orpo_trainer(seed):
    logits, labels, mask = _logit_batch(seed)
    batch = _paired_from_logits(logits, labels, mask)
    losses, *_ = orpo_trainer(0.25).odds_ratio_loss(
        *_trl_seq_logps(ORPOTrainer, logits, labels, True)
    )
    theirs = trl_sft_nll(batch.policy_chosen_logps, batch.chosen_mask) - losses.mean()
    _assert_same(_ours("orpo", batch, beta=0.25), theirs, [logits])


GKD_CASES = [
    ("gkd", {"beta": 0.5, "temperature": 1.0}, 0.5, 1.0),
    ("gkd", {"beta": 0.2, "temperature": 2.0}, 0.2, 2.0),
    ("kd_forward", {"temperature": 1.5}, 0.0, 1.5),
    ("kd_reverse", {"temperature": 1.0}, 1.0, 1.0),
    ("on_policy_distill", {"temperature": 0.7}, 1.0, 0.7),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "ours", "beta", "temperature"), GKD_CASES)
def test_distillation_matches_trl_generalized_jsd(seed, name, ours, beta, temperature):
    batch, leaves = _leaves(random_batch("single", B, T, vocab=13, seed=seed), ("logits",))
    out = get(name).fn(batch, resolve_params(name, ours))
    labels = torch.where(batch.mask.bool(), batch.labels, torch.full_like(batch.labels, -100))
    theirs = GKDTrainer.generalized_jsd_loss(
        batch.logits, batch.teacher_logits, labels, beta=beta, temperature=temperature
    )
    _assert_same(aggregate(out.loss, batch.mask, "token-mean"), theirs, leaves)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("name", "center"),
    [("rm_bt", None), ("rm_bt", 0.01), ("rm_bt_margin", None), ("rm_bt_margin", 0.05)],
)
def test_reward_models_match_trl_reward_trainer(seed, name, center):
    batch, leaves = _leaves(random_batch("scores", B, T, seed=seed), ("chosen", "rejected"))
    ours = _ours(name, batch, center_rewards_coefficient=center or 0.0)
    margins = batch.margins if name == "rm_bt_margin" else None
    _assert_same(ours, trl_reward_loss(batch.chosen, batch.rejected, margins, center), leaves)


TRL_VERIFIED = sorted(
    {c[0] for c in DPO_CASES}
    | {"sft", "rft", "dft", "kto", "apo_unpaired", "orpo"}
    | {c[0] for c in CPO_CASES}
    | {c[0] for c in GKD_CASES}
    | {"rm_bt", "rm_bt_margin"}
)


def test_trl_verified_list_is_registered():
    """The entries this file checks against TRL (reported in the issue note)."""
    for name in TRL_VERIFIED:
        assert get(name).name == name
    assert len(TRL_VERIFIED) >= 35
