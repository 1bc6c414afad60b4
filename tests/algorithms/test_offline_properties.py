"""Hypothesis and property tests for every offline entry.

Documented edge-case behaviour: sequence-level entries raise ``ValueError`` naming the mask when a
row has no completion token; token-level entries give such a row zero loss.
"""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ptlab.algorithms  # noqa: F401
from ptlab.algorithms.common import random_batch
from ptlab.algorithms.registry import entries, get, resolve_params
from ptlab.algorithms.types import PairedBatch

OFFLINE = ("sft", "distill", "reward-model", "paired-offline", "unpaired-offline", "reference-free")
NAMES = [s.name for s in entries() if s.family in OFFLINE]
LOGP_FIELDS = {
    "policy_chosen_logps",
    "policy_rejected_logps",
    "ref_chosen_logps",
    "ref_rejected_logps",
    "policy_logps",
    "ref_logps",
    "kl_policy_logps",
    "kl_ref_logps",
    "logps",
    "chosen_log_sum_sq",
    "rejected_log_sum_sq",
}
MASK_FIELDS = {"chosen_mask", "rejected_mask", "mask", "kl_mask"}
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(name: str, batch, **params):  # type: ignore[no-untyped-def]
    return get(name).fn(batch, resolve_params(name, params))


def _extreme(batch, value: float, seed: int):  # type: ignore[no-untyped-def]
    """Set some log-prob / logit / score positions to ``value`` (masked positions stay zero)."""
    gen = torch.Generator().manual_seed(seed)
    changes = {}
    for f in fields(batch):
        x = getattr(batch, f.name)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or f.name in MASK_FIELDS:
            continue
        pick = torch.rand(x.shape, generator=gen) < 0.5
        if f.name in LOGP_FIELDS:  # log-probabilities are ≤ 0
            changes[f.name] = torch.where(pick, torch.full_like(x, -abs(value)), x) * (x != 0)
        elif f.name in {"logits", "teacher_logits", "step_logits", "chosen", "rejected", "scores"}:
            changes[f.name] = torch.where(pick, torch.full_like(x, value), x)
    return replace(batch, **changes)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(
    value=st.sampled_from([1e4, -1e4, 50.0, 1e-8]),
    seed=st.integers(0, 2**16),
    size=st.integers(1, 4),
)
def test_finite_for_extreme_inputs(name, value, seed, size):
    spec = get(name)
    batch = _extreme(random_batch(spec.input_kind, size, 5, seed=seed), value, seed)
    out = run(name, batch)
    assert torch.isfinite(out.loss).all(), f"{name} not finite for value {value}"
    assert out.loss.shape[0] == size


def _empty_row(batch):  # type: ignore[no-untyped-def]
    changes = {}
    for name in MASK_FIELDS | {"step_mask"}:
        m = getattr(batch, name, None)
        if isinstance(m, torch.Tensor):
            m = m.clone()
            m[0] = 0
            changes[name] = m
    for f in LOGP_FIELDS:
        x = getattr(batch, f, None)
        if isinstance(x, torch.Tensor) and x.dim() == 2:
            x = x.clone()
            x[0] = 0
            changes[f] = x
    return replace(batch, **changes)


MASKED = [
    n for n in NAMES if get(n).input_kind != "scores" or n == "prm_bce"
]  # scalar scores: no mask


@pytest.mark.parametrize("name", MASKED)
def test_all_masked_row_raises_or_contributes_zero(name):
    spec = get(name)
    batch = _empty_row(random_batch(spec.input_kind, 3, 5, seed=5))
    try:
        out = run(name, batch)
    except ValueError as err:
        assert "no completion tokens (row 0)" in str(err)
        assert not out_is_token_level(name)
        return
    assert out.token_level, f"{name}: a sequence-level loss accepted an empty row"
    assert torch.all(out.loss[0] == 0)


def out_is_token_level(name: str) -> bool:
    spec = get(name)
    return bool(run(name, random_batch(spec.input_kind, 2, 3, seed=1)).token_level)


@pytest.mark.parametrize("name", NAMES)
def test_masked_positions_are_ignored(name):
    """Changing log-probs / logits at padded positions never changes the loss."""
    spec = get(name)
    batch = random_batch(spec.input_kind, 3, 6, seed=9)
    changes = {}
    for f in fields(batch):
        x = getattr(batch, f.name)
        mask_name = {
            "policy_chosen_logps": "chosen_mask",
            "ref_chosen_logps": "chosen_mask",
            "policy_rejected_logps": "rejected_mask",
            "ref_rejected_logps": "rejected_mask",
            "policy_logps": "mask",
            "ref_logps": "mask",
            "logps": "mask",
            "kl_policy_logps": "kl_mask",
            "kl_ref_logps": "kl_mask",
            "chosen_token_kl": "chosen_mask",
            "rejected_token_kl": "rejected_mask",
            "step_logits": "step_mask",
        }.get(f.name)
        if mask_name and isinstance(x, torch.Tensor):
            pad = getattr(batch, mask_name) == 0
            changes[f.name] = torch.where(pad, torch.full_like(x, -7.0), x)
    base, noisy = run(name, batch).loss, run(name, replace(batch, **changes)).loss
    torch.testing.assert_close(base, noisy)


# ------------------------------------------------------------------------------- specific properties

PAIR_SETTINGS = settings(max_examples=25, deadline=None)
pair_values = st.lists(st.floats(-5, 0, allow_nan=False), min_size=4, max_size=4)


def _pair(v: list[float]) -> PairedBatch:
    one = torch.ones(1, 1, dtype=torch.float64)
    x = [torch.tensor([[a]], dtype=torch.float64) for a in v]
    return PairedBatch(x[0], x[1], one, one, x[2], x[3])


@PAIR_SETTINGS
@given(v=pair_values, beta=st.floats(0.01, 2))
def test_cdpo_with_zero_smoothing_is_dpo(v, beta):
    b = _pair(v)
    torch.testing.assert_close(
        run("cdpo", b, beta=beta, label_smoothing=0.0).loss, run("dpo", b, beta=beta).loss
    )


@PAIR_SETTINGS
@given(v=pair_values, beta=st.floats(0.01, 2), lam=st.floats(0, 100))
def test_dpop_equals_dpo_when_policy_chosen_at_least_reference(v, beta, lam):
    v[2] = min(v[2], v[0])  # log πref(y_w) ≤ log πθ(y_w)
    b = _pair(v)
    torch.testing.assert_close(
        run("dpop", b, beta=beta, lambda_=lam).loss, run("dpo", b, beta=beta).loss
    )


@PAIR_SETTINGS
@given(beta=st.floats(0.05, 2))
def test_ipo_minimum_at_half_inverse_beta(beta):
    target = 1 / (2 * beta)
    for delta, expect_zero in ((target, True), (target + 0.3, False)):
        pw = torch.tensor([[-1.0 + delta]], dtype=torch.float64, requires_grad=True)
        b = replace(_pair([0, -1, -1, -1]), policy_chosen_logps=pw)
        out = run("ipo", b, beta=beta).loss.sum()
        (g,) = torch.autograd.grad(out, pw)
        assert (abs(g.item()) < 1e-9) == expect_zero


MONOTONE = [
    "dpo",
    "cdpo",
    "robust_dpo",
    "odpo",
    "dpop",
    "r_dpo",
    "ln_dpo",
    "beta_dpo",
    "tdpo",
    "fdpo_js",
    "fdpo_fkl",
    "fdpo_alpha",
    "nca",
    "apo_zero",
    "exo",
    "discopop",
    "simpo",
    "cpo",
    "orpo",
    "alphapo",
    "simper",
    "rpo",
    "ld_dpo",
    "aot_unpaired",
    "bco_pair",
    "sppo_hard",
    "cal_dpo",
    "mpo",
]


@pytest.mark.parametrize("name", MONOTONE)
def test_loss_decreases_when_chosen_logprob_increases(name):
    """Raising log πθ(y_w) (from a state where the pair is mis-ordered) lowers the loss."""
    batch = random_batch("paired", 1, 4, seed=2)
    batch = replace(batch, policy_chosen_logps=batch.policy_chosen_logps - 2 * batch.chosen_mask)
    up = replace(batch, policy_chosen_logps=batch.policy_chosen_logps + 0.2 * batch.chosen_mask)
    assert run(name, up).loss.item() < run(name, batch).loss.item()


@PAIR_SETTINGS
@given(v=pair_values, beta=st.floats(0.5, 3), gamma=st.floats(0, 2))
def test_simpo_ratio_mode_is_absolute_gamma_times_beta(v, beta, gamma):
    b = _pair(v)
    ratio = run("simpo", b, beta=beta, gamma=gamma, gamma_mode="ratio").loss
    torch.testing.assert_close(ratio, run("simpo", b, beta=beta, gamma=gamma * beta).loss)


@PAIR_SETTINGS
@given(v=pair_values)
def test_reward_aware_po_zero_when_implicit_matches_explicit(v):
    b = _pair(v)
    gap = 0.1 * ((v[0] - v[2]) - (v[1] - v[3]))
    b = replace(
        b,
        chosen_rewards=torch.tensor([gap], dtype=torch.float64),
        rejected_rewards=torch.zeros(1, dtype=torch.float64),
    )
    for distance in ("squared", "bwd_kl", "fwd_kl"):
        assert run("reward_aware_po", b, beta=0.1, distance=distance).loss.abs().item() < 1e-12


def test_beta_dpo_beta_grows_with_batch_margin():
    batch = random_batch("paired", 4, 5, seed=4)
    wider = replace(batch, policy_chosen_logps=batch.policy_chosen_logps + 0.5 * batch.chosen_mask)
    assert run("beta_dpo", wider).metrics["beta"] > run("beta_dpo", batch).metrics["beta"]


def test_kto_reference_point_is_clamped_at_zero():
    batch = random_batch("unpaired", 4, 5, seed=6)
    batch = replace(
        batch, kl_ref_logps=batch.kl_policy_logps + 1.0 * batch.kl_mask
    )  # KL estimate < 0
    assert run("kto", batch).metrics["kl"].item() == 0.0
    torch.testing.assert_close(run("kto", batch).loss, run("kto", batch, z0="zero").loss)


def test_uld_wasserstein_zero_for_permuted_teacher():
    batch = random_batch("single", 2, 3, vocab=5, seed=7)
    permuted = replace(batch, teacher_logits=batch.logits[..., torch.tensor([4, 2, 0, 1, 3])])
    assert run("uld", permuted).metrics["wasserstein"].abs().max().item() < 1e-12


def test_kd_directions_and_gkd_endpoints():
    batch = random_batch("single", 2, 3, vocab=5, seed=8)
    torch.testing.assert_close(run("gkd", batch, beta=0.0).loss, run("kd_forward", batch).loss)
    torch.testing.assert_close(run("gkd", batch, beta=1.0).loss, run("kd_reverse", batch).loss)
    assert run("kd_forward", replace(batch, teacher_logits=batch.logits)).loss.abs().max() < 1e-12


def test_missing_field_error_names_the_field():
    batch = replace(random_batch("paired", 2, 3), ref_chosen_logps=None)
    with pytest.raises(ValueError, match="'ref_chosen_logps' is required"):
        run("dpo", batch)
