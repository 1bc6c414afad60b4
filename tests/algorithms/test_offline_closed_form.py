"""Entries without a TRL implementation: hand-derived values, gradcheck in float64, properties.

softplus(x) = log(1 + eˣ) = −log σ(−x); the numbers below are softplus values written out.
Most cases use one-token completions so that a sequence log-prob is the token log-prob.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

import ptlab.algorithms  # noqa: F401
from ptlab.algorithms.common import random_batch
from ptlab.algorithms.registry import get, resolve_params
from ptlab.algorithms.types import PairedBatch, ScoreBatch, SingleBatch, UnpairedBatch

F64 = torch.float64
SOFTPLUS_M1 = 0.31326168751822286  # log(1 + e^-1)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def pair1(pw: float, pl: float, rw: float, rl: float, **extra: torch.Tensor) -> PairedBatch:
    """One pair of one-token completions: h_w = pw − rw, h_l = pl − rl."""
    one = torch.ones(1, 1, dtype=F64)
    return PairedBatch(t(pw)[None], t(pl)[None], one, one, t(rw)[None], t(rl)[None], **extra)


def loss(name: str, batch, **params) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return get(name).fn(batch, resolve_params(name, params)).loss


# ------------------------------------------------------------------------------- closed forms


def test_cdpo_closed_form():
    # h_w = 1, h_l = −1, Δ = 2, z = βΔ = 1.
    # (1−ε)·softplus(−z) + ε·softplus(z) = softplus(−1) + ε·z  (since softplus(z) = z + softplus(−z)).
    out = loss("cdpo", pair1(-1, -2, -2, -1), beta=0.5, label_smoothing=0.1)
    assert out.item() == pytest.approx(SOFTPLUS_M1 + 0.1, abs=1e-12)


def test_odpo_closed_form_identity_and_log():
    # z = βΔ − α·f(m) = 1 − 0.5 = 0.5 → softplus(−0.5) = 0.4740769841801067.
    b = pair1(-1, -2, -2, -1, margins=t(0.5))
    assert loss("odpo", b, beta=0.5).item() == pytest.approx(0.4740769841801067, abs=1e-12)
    # log offset: m = e → f(m) = 1 → z = 0 → log 2.
    b = replace(b, margins=t(math.e))
    assert loss("odpo", b, beta=0.5, offset_transform="log").item() == pytest.approx(
        math.log(2), abs=1e-12
    )
    with pytest.raises(ValueError, match="margins > 0"):
        loss("odpo", replace(b, margins=t(-1.0)), offset_transform="log")


def test_dpop_closed_form():
    # h_w = −2 − (−1) = −1 → penalty max(0, −h_w) = 1; h_l = −2; Δ = 1.
    # z = β(Δ − λ·1) = 0.5·(1 − 2) = −0.5 → softplus(0.5) = 0.9740769841801067.
    assert loss("dpop", pair1(-2, -3, -1, -1), beta=0.5, lambda_=2.0).item() == pytest.approx(
        0.9740769841801067, abs=1e-12
    )


def test_r_dpo_closed_form():
    # chosen: 3 tokens, policy −0.5 vs ref −1 each → h_w = 1.5; rejected: 1 token, h_l = 0.
    # z = βΔ − α(|y_w| − |y_l|) = 0.2·1.5 − 0.1·2 = 0.1 → softplus(−0.1) = 0.6443966600735709.
    cm, rm = t(1, 1, 1)[None], t(1, 0, 0)[None]
    b = PairedBatch(
        t(-0.5, -0.5, -0.5)[None], t(-1, 0, 0)[None], cm, rm, t(-1, -1, -1)[None], t(-1, 0, 0)[None]
    )
    assert loss("r_dpo", b, beta=0.2, alpha=0.1).item() == pytest.approx(
        0.6443966600735709, abs=1e-12
    )


def test_reward_aware_po_closed_form():
    # implicit βΔ = 0.5·2 = 1; explicit η(r_w − r_l) = 0.5.
    b = pair1(-1, -2, -2, -1, chosen_rewards=t(1.0), rejected_rewards=t(0.5))
    assert loss("reward_aware_po", b, beta=0.5).item() == pytest.approx(0.5 * 0.5**2, abs=1e-12)
    # KL(Bern(σ(1)) ‖ Bern(σ(0.5))) = p·log(p/q) + (1−p)·log((1−p)/(1−q)) = 0.02634458597688623.
    assert loss("reward_aware_po", b, beta=0.5, distance="bwd_kl").item() == pytest.approx(
        0.02634458597688623, abs=1e-12
    )


def test_cal_dpo_closed_form():
    # h_w = 1, h_l = −1, β = 0.5 → targets ±1/(2β) = ±1 are met: loss = softplus(−2).
    assert loss("cal_dpo", pair1(-1, -2, -2, -1), beta=0.5).item() == pytest.approx(
        0.1269280110429725, abs=1e-12
    )


def test_beta_dpo_closed_form():
    # Δ = [2, 0], β0 = 0.5 → margins β0Δ = [1, 0], mean 0.5; β_b = 0.5·(1 + 0.5·(0.5 − 0)) = 0.625.
    # losses softplus(−1.25), softplus(0) = log 2 → mean 0.47253813095265906.
    one = torch.ones(2, 1, dtype=F64)
    b = PairedBatch(
        t(-1, -1)[:, None], t(-2, -1)[:, None], one, one, t(-2, -1)[:, None], t(-1, -1)[:, None]
    )
    out = get("beta_dpo").fn(b, resolve_params("beta_dpo", {"beta": 0.5, "alpha": 0.5}))
    assert out.metrics["beta"].item() == pytest.approx(0.625)
    assert out.loss.mean().item() == pytest.approx(0.47253813095265906, abs=1e-12)


def test_alpha_dpo_single_pair_is_simpo():
    # One pair: the batch-standardised margin is 0, so −log σ(β(l_w − l_l) − γ) = softplus(−(2·1 − 1)).
    assert loss("alpha_dpo", pair1(-1, -2, -1, -1), beta=2.0, gamma=1.0).item() == pytest.approx(
        SOFTPLUS_M1, abs=1e-12
    )


def test_tdpo_closed_form():
    # Δ = 2, β = 0.5, KL_w = 0.2, KL_l = 0.6 → δ = β(KL_l − KL_w) = 0.2; z = βΔ − αδ = 1 − 0.1 = 0.9.
    b = pair1(-1, -2, -2, -1, chosen_token_kl=t(0.2)[None], rejected_token_kl=t(0.6)[None])
    for variant in (1, 2):
        assert loss("tdpo", b, beta=0.5, alpha=0.5, variant=variant).item() == pytest.approx(
            0.3411538747320878, abs=1e-12
        )


def test_bco_unpaired_closed_form():
    # h = [1, −1], labels [desirable, undesirable], β = 1 → δ = mean(βh) = 0:
    # desirable softplus(−1), undesirable −log σ(−(−1)) = softplus(−1).
    one = torch.ones(2, 1, dtype=F64)
    b = UnpairedBatch(
        t(-1, -2)[:, None], one, torch.tensor([True, False]), ref_logps=t(-2, -1)[:, None]
    )
    torch.testing.assert_close(loss("bco", b, beta=1.0), t(SOFTPLUS_M1, SOFTPLUS_M1))


def test_simper_closed_form():
    # −exp(−1) + exp(−2) = −0.23254415793482963.
    assert loss("simper", pair1(-1, -2, 0, 0)).item() == pytest.approx(
        -0.23254415793482963, abs=1e-12
    )


def test_slic_cal_closed_form():
    # relu(δ − l_w + l_l) = relu(1 − (−1) + (−1.5)) = 0.5; λ·NLL(y_w) = 0.1·1 → 0.6.
    assert loss("slic_cal", pair1(-1, -1.5, 0, 0)).item() == pytest.approx(0.6, abs=1e-12)


def test_uld_closed_form_across_vocabularies():
    # student logits [0, 0] → p = [.5, .5]; teacher (3 tokens) [log 2, 0, −1e9] → [2/3, 1/3, 0].
    # sorted, zero-padded: |.5 − 2/3| + |.5 − 1/3| + 0 = 1/3; NLL of the label under the student = log 2.
    b = SingleBatch(
        logps=t(math.log(0.5))[None],
        mask=t(1.0)[None],
        logits=t(0, 0)[None, None],
        teacher_logits=t(math.log(2), 0, -1e9)[None, None],
    )
    assert loss("uld", b).item() == pytest.approx(1.0264805138932787, abs=1e-9)


def test_prm_bce_closed_form():
    # step logits [0, 2], labels [1, 0]: BCE = log 2 + softplus(2); a padded third step contributes 0.
    b = ScoreBatch(
        step_logits=t(0, 2, 5)[None], step_labels=t(1, 0, 1)[None], step_mask=t(1, 1, 0)[None]
    )
    out = loss("prm_bce", b)
    assert out.sum().item() == pytest.approx(2.820075191602918, abs=1e-12)
    assert out[0, 2].item() == 0.0


def test_rm_regression_closed_form():
    assert loss("rm_regression", ScoreBatch(scores=t(1.5), targets=t(1.0))).item() == pytest.approx(
        0.25
    )


def test_ipo_sum_closed_form():
    # Paper form (sums): Δ = 2, β = 0.5 → (2 − 1)² = 1; TRL's mean form is covered against TRL.
    assert loss(
        "ipo", pair1(-1, -2, -2, -1), beta=0.5, logp_reduction="sum"
    ).item() == pytest.approx(1.0)


def test_bco_pair_running_shift():
    # β h = [1, −1] for (w, l) → running δ = batch mean 0 → equals the δ = 0 form; with δ = 1 given:
    # −log σ(1 − 1) − log σ(−(−1 − 1)) = log 2 + softplus(−2).
    b = pair1(-1, -2, -2, -1)
    assert loss("bco_pair", b, beta=1.0, reward_shift="running").item() == pytest.approx(
        loss("bco_pair", b, beta=1.0).item()
    )
    b = replace(b, running_margin=t(1.0)[0])
    assert loss("bco_pair", b, beta=1.0, reward_shift="running").item() == pytest.approx(
        math.log(2) + 0.1269280110429725
    )


def test_beta_dpo_gradient_formula():
    # With β_b fixed by detached margins, ∂L/∂Δ_i = −β_b·σ(−β_bΔ_i)/B.
    batch = random_batch("paired", 3, 4, seed=3)
    pw = batch.policy_chosen_logps.clone().requires_grad_(True)
    out = get("beta_dpo").fn(
        replace(batch, policy_chosen_logps=pw), resolve_params("beta_dpo", {"alpha": 0.5})
    )
    (grad,) = torch.autograd.grad(out.loss.mean(), pw)
    beta_b = out.metrics["beta"]
    delta = out.metrics["rewards/margins"] / 0.1
    expected = (-beta_b * torch.sigmoid(-beta_b * delta) / 3)[:, None] * batch.chosen_mask
    torch.testing.assert_close(grad, expected)


# ------------------------------------------------------------------------------- gradcheck


GRADCHECK = {
    # entry: (input kind, differentiable fields, params, extra batch fields)
    "cdpo": (
        "paired",
        ("policy_chosen_logps", "policy_rejected_logps"),
        {"label_smoothing": 0.2},
        {},
    ),
    "odpo": ("paired", ("policy_chosen_logps", "policy_rejected_logps", "margins"), {}, {}),
    "dpop": ("paired", ("policy_chosen_logps", "ref_chosen_logps"), {"lambda_": 5.0}, {}),
    "r_dpo": ("paired", ("policy_chosen_logps", "policy_rejected_logps"), {}, {}),
    "reward_aware_po": (
        "paired",
        ("policy_chosen_logps", "chosen_rewards"),
        {"distance": "fwd_kl"},
        {},
    ),
    "cal_dpo": ("paired", ("policy_chosen_logps", "policy_rejected_logps"), {}, {}),
    "beta_dpo": ("paired", ("ref_chosen_logps",), {"alpha": 0.0}, {}),
    "alpha_dpo": (
        "paired",
        ("policy_chosen_logps", "policy_rejected_logps"),
        {},
        {"batch_size": 1},
    ),
    "tdpo": (
        "paired",
        ("policy_chosen_logps", "chosen_token_kl", "rejected_token_kl"),
        {"variant": 1},
        {},
    ),
    "bco": ("unpaired", ("policy_logps",), {}, {"reward_shift": torch.tensor(0.05, dtype=F64)}),
    "simper": ("paired", ("policy_chosen_logps", "policy_rejected_logps"), {}, {}),
    "slic_cal": ("paired", ("policy_chosen_logps", "policy_rejected_logps"), {"delta": 10.0}, {}),
    "uld": ("single", ("logits", "teacher_logits", "logps"), {}, {"batch_size": 1}),
    "prm_bce": ("scores", ("step_logits",), {"pos_weight": 2.0}, {}),
    "rm_regression": ("scores", ("scores", "targets"), {}, {}),
}


@pytest.mark.parametrize("name", sorted(GRADCHECK))
def test_gradcheck(name):
    kind, fields, params, extra = GRADCHECK[name]
    fixed = {k: v for k, v in extra.items() if k != "batch_size"}
    batch = replace(random_batch(kind, extra.get("batch_size", 3), 4, seed=11), **fixed)
    resolved = resolve_params(name, params)

    def fn(*leaves: torch.Tensor) -> torch.Tensor:
        return get(name).fn(replace(batch, **dict(zip(fields, leaves, strict=True))), resolved).loss

    leaves = tuple(getattr(batch, f).detach().clone().requires_grad_(True) for f in fields)
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6)
