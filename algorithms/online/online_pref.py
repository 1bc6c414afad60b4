"""Online preference methods (family ``online-pref``): pairwise / self-play losses on completions
sampled during training. The ``trainer`` metadata says what the trainer must do around the loss:

- ``sample``: what to generate per prompt (``pair`` = two policy samples, ``policy_vs_reference``,
  ``policy_vs_mixture``, ``n`` samples); ``judge``: who labels them (``verifier`` = the domain
  verifier / reward, ``preference`` = a pairwise preference probability);
- ``iterate_reference``: replace πref by the current policy after each iteration (SPIN, SPPO);
- ``select``: data selection before the loss (RAFT keeps the best of n).

Log-probabilities are summed over completion tokens (TRL convention for these methods).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ptlab.algorithms.online.aggregation import masked_mean
from ptlab.algorithms.registry import NoParams, param, register
from ptlab.algorithms.types import LossOutput, PairedBatch, SingleBatch


def _seq_sum(logps: Tensor, mask: Tensor) -> Tensor:
    return (logps * mask.to(logps.dtype)).sum(-1)


def pair_log_ratio_margin(batch: PairedBatch) -> Tensor:
    """Δ = (log πθ(yw) − log πref(yw)) − (log πθ(yl) − log πref(yl)), summed over tokens, (B,)."""
    if batch.ref_chosen_logps is None or batch.ref_rejected_logps is None:
        raise ValueError("online preference losses need ref_chosen_logps and ref_rejected_logps")
    chosen = _seq_sum(batch.policy_chosen_logps - batch.ref_chosen_logps, batch.chosen_mask)
    rejected = _seq_sum(batch.policy_rejected_logps - batch.ref_rejected_logps, batch.rejected_mask)
    return chosen - rejected


def _pair_metrics(margin: Tensor, beta: float) -> dict[str, Tensor]:
    m = margin.detach()
    return {"rewards/margin": beta * m, "rewards/accuracy": (m > 0).to(m.dtype).mean()}


@dataclass(frozen=True)
class OnlineDpoParams:
    """Online DPO (TRL OnlineDPOConfig): β and the pairwise loss."""

    beta: float = param(0.1, gt=0, doc="β of the implicit reward")
    loss_type: str = param(
        "sigmoid", choices=("sigmoid", "ipo"), doc="DPO sigmoid or IPO squared loss"
    )


def online_dpo_loss(batch: PairedBatch, params: OnlineDpoParams) -> LossOutput:
    """Online DPO (Guo+ 2402.04792 Alg. 1): DPO on two fresh policy samples ranked by the judge.

    sigmoid: −log σ(βΔ); ipo: (Δ − 1/(2β))² (TRL online DPO, summed log-ratios).
    """
    margin = pair_log_ratio_margin(batch)
    if params.loss_type == "ipo":
        loss = (margin - 1 / (2 * params.beta)) ** 2
    else:
        loss = -F.logsigmoid(params.beta * margin)
    return LossOutput(loss=loss, metrics=_pair_metrics(margin, params.beta))


@dataclass(frozen=True)
class SpinParams:
    """SPIN: λ (=β) and the convex loss ℓ (logistic in the paper, hinge as ablation)."""

    beta: float = param(0.1, gt=0, doc="λ scaling the log-ratio margin")
    loss_type: str = param(
        "logistic", choices=("logistic", "hinge"), doc="ℓ(t) = log(1+e^−t) or max(0, 1−t)"
    )


def spin_loss(batch: PairedBatch, params: SpinParams) -> LossOutput:
    """SPIN (Chen+ 2401.01335 eq. 4.7): ℓ(λΔ) with yw the human (SFT) response and yl the
    previous iterate's own sample; πref is the previous iterate (trainer: iterate_reference)."""
    margin = pair_log_ratio_margin(batch)
    t = params.beta * margin
    loss = torch.relu(1 - t) if params.loss_type == "hinge" else F.softplus(-t)
    return LossOutput(loss=loss, metrics=_pair_metrics(margin, params.beta))


@dataclass(frozen=True)
class XpoParams:
    """XPO: DPO β plus exploration weight α (TRL XPOConfig defaults 0.1 / 1e-5)."""

    beta: float = param(0.1, gt=0, doc="β of the DPO term")
    alpha: float = param(1e-5, ge=0, doc="α of the exploration bonus")


def xpo_loss(batch: PairedBatch, params: XpoParams) -> LossOutput:
    """XPO (Xie+ 2405.21046 Alg. 1, TRL XPOTrainer): −log σ(βΔ) + α·log πθ(ỹ), ỹ ~ πref.

    Minimising the policy likelihood of reference samples pushes probability mass to responses
    πref rarely produces (optimism / exploration). ``explore_logps`` hold log πθ(ỹ) per token.
    """
    if batch.explore_logps is None or batch.explore_mask is None:
        raise ValueError(
            "xpo needs explore_logps/explore_mask: policy log-probs of a reference-model sample"
        )
    margin = pair_log_ratio_margin(batch)
    bonus = _seq_sum(batch.explore_logps, batch.explore_mask)
    loss = -F.logsigmoid(params.beta * margin) + params.alpha * bonus
    return LossOutput(
        loss=loss,
        metrics=_pair_metrics(margin, params.beta) | {"explore_logp": bonus.detach().mean()},
    )


@dataclass(frozen=True)
class NashMdParams:
    """Nash-MD: KL weight β and the geometric mixture coefficient of the opponent (TRL defaults)."""

    beta: float = param(0.1, gt=0, doc="β of the KL(πθ‖πref) regulariser")
    mixture_coef: float = param(
        0.5, ge=0, le=1, doc="opponent = πθ^(1−m)·πref^m (trainer samples from it)"
    )


def nash_md_loss(batch: SingleBatch, params: NashMdParams) -> LossOutput:
    """Nash-MD (Munos+ 2312.00886 §7, TRL NashMDTrainer): REINFORCE on the preference against a
    mixture-policy opponent, with a REINFORCE KL term.

    l = −(P(y ≻ y') − ½)·log πθ(y) + β·sg(log πθ(y)/πref(y))·log πθ(y); ``rewards`` = P(y ≻ y').
    """
    if batch.ref_logps is None or batch.rewards is None:
        raise ValueError(
            "nash_md needs ref_logps and rewards (preference probability of y over the opponent)"
        )
    logp = _seq_sum(batch.logps, batch.mask)
    log_ratio = (batch.logps - batch.ref_logps).detach()
    kl_term = _seq_sum(log_ratio * batch.logps, batch.mask)
    score = (batch.rewards - 0.5) * logp
    loss = params.beta * kl_term - score
    return LossOutput(
        loss=loss,
        metrics={"kl": _seq_sum(log_ratio, batch.mask).mean(), "score": score.detach().mean()},
    )


@dataclass(frozen=True)
class SppoParams:
    """SPPO: η scaling the win-rate target (Wu+ 2405.00675 §4, η = 1e3 in their runs)."""

    eta: float = param(1e3, gt=0, doc="η in (log πθ/πt − η(P − ½))²")


def sppo_loss(batch: SingleBatch, params: SppoParams) -> LossOutput:
    """SPPO (Wu+ 2405.00675 eq. 4.6): l = (log πθ(y)/πt(y) − η(P̂(y ≻ πt) − ½))² per sample.

    ``ref_logps`` are the previous iterate πt (trainer: iterate_reference), ``rewards`` the
    estimated win rate P̂ of y against πt's samples. (The offline pairwise variant is ``sppo_hard``.)
    """
    if batch.ref_logps is None or batch.rewards is None:
        raise ValueError(
            "sppo needs ref_logps (previous iterate) and rewards (estimated win rate P(y > pi_t))"
        )
    h = _seq_sum(batch.logps - batch.ref_logps, batch.mask)
    loss = (h - params.eta * (batch.rewards - 0.5)) ** 2
    return LossOutput(loss=loss, metrics={"log_ratio": h.detach().mean()})


def raft_loss(batch: SingleBatch, params: NoParams) -> LossOutput:
    """RAFT (Dong+ 2304.06767 Alg. 1): token NLL −log πθ(y_t) on the best-of-n sample per prompt
    (selection by the trainer), aggregated token-mean like SFT."""
    loss = -batch.logps * batch.mask.to(batch.logps.dtype)
    return LossOutput(
        loss=loss, metrics={"nll": masked_mean(-batch.logps.detach(), batch.mask)}, token_level=True
    )


_PREF: tuple[tuple[str, object, type, str, str, bool, dict[str, object]], ...] = (
    (
        "online_dpo",
        online_dpo_loss,
        OnlineDpoParams,
        "Guo+ 2402.04792",
        "-log sigmoid(beta*Delta) on fresh policy pairs",
        True,
        {"sample": "pair", "judge": "verifier", "input": "paired"},
    ),
    (
        "spin",
        spin_loss,
        SpinParams,
        "Chen+ 2401.01335",
        "l(lambda*Delta), yw human, yl self-generated",
        True,
        {"sample": "one", "pairs": "sft_vs_self", "iterate_reference": True, "input": "paired"},
    ),
    (
        "xpo",
        xpo_loss,
        XpoParams,
        "Xie+ 2405.21046",
        "-log sigmoid(beta*Delta) + alpha*log pi(y_ref)",
        True,
        {"sample": "policy_vs_reference", "judge": "verifier", "input": "paired"},
    ),
    (
        "nash_md",
        nash_md_loss,
        NashMdParams,
        "Munos+ 2312.00886",
        "-(P(y>y')-1/2) log pi(y) + beta*sg(log pi/pi_ref) log pi(y)",
        True,
        {
            "sample": "policy_vs_mixture",
            "mixture": "geometric",
            "judge": "preference",
            "input": "single",
        },
    ),
    (
        "sppo",
        sppo_loss,
        SppoParams,
        "Wu+ 2405.00675",
        "(log pi/pi_t - eta*(P - 1/2))^2",
        True,
        {"sample": "n", "judge": "preference", "iterate_reference": True, "input": "single"},
    ),
    (
        "raft",
        raft_loss,
        NoParams,
        "Dong+ 2304.06767",
        "NLL on best-of-n samples",
        False,
        {
            "sample": "n",
            "judge": "verifier",
            "select": "best_of_n",
            "aggregation": "token-mean",
            "input": "single",
        },
    ),
)

for _name, _fn, _params, _cite, _formula, _ref, _trainer in _PREF:
    register(
        _name,
        family="online-pref",
        input_kind="paired" if _trainer["input"] == "paired" else "single",
        params=_params,
        citation=_cite,
        formula=_formula,
        needs_reference=_ref,
        needs_rollouts=True,
        trainer=_trainer,
    )(_fn)
