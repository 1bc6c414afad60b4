"""Benchmark: each offline loss, forward + backward on a 64 × 512-token batch (float32), vs the same
computation through TRL 1.16's own loss code (``ptlab.algorithms.offline.trl_reference``).

Runs are interleaved (ours, TRL, ours, ...) and the median of REPEATS is kept: the machine is
shared. Both sides start from the same per-token log-probs (logits for distillation); TRL's side
includes its per-step metric bookkeeping, which is part of its loss method. Target: ratio
(ours/TRL) ≤ 1.2 for every entry, median ≤ 1.0. Writes benchmarks/results/losses.json.

    .venv/bin/python benchmarks/bench_losses.py
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import ptlab.algorithms  # noqa: F401  (registers entries)
from ptlab.algorithms.common import aggregate, random_batch, seq_logps
from ptlab.algorithms.offline.trl_reference import (
    GKDTrainer,
    cpo_trainer,
    orpo_trainer,
    trl_dpo_loss,
    trl_kto_loss,
    trl_reward_loss,
    trl_sft_nll,
    trl_sft_trainer_loss,
)
from ptlab.algorithms.registry import get, resolve_params

B, T, V, REPEATS = 64, 512, 256, 9
OUT = Path(__file__).parent / "results" / "losses.json"
DTYPE = torch.float32

# entry: (our overrides, TRL DPOTrainer loss types, weights, TRL config)
DPO = {
    "dpo": ({}, ["sigmoid"], None, {}),
    "ln_dpo": ({}, ["sigmoid_norm"], None, {}),
    "hinge": ({}, ["hinge"], None, {}),
    "ipo": ({}, ["ipo"], None, {}),
    "exo": ({"label_smoothing": 0.01}, ["exo_pair"], None, {"label_smoothing": 0.01}),
    "nca": ({}, ["nca_pair"], None, {}),
    "robust_dpo": ({}, ["robust"], None, {"label_smoothing": 0.1}),
    "bco_pair": ({}, ["bco_pair"], None, {}),
    "sppo_hard": ({}, ["sppo_hard"], None, {}),
    "aot": ({}, ["aot"], None, {}),
    "aot_unpaired": ({}, ["aot_unpaired"], None, {}),
    "apo_zero": ({}, ["apo_zero"], None, {}),
    "apo_down": ({}, ["apo_down"], None, {}),
    "discopop": ({}, ["discopop"], None, {}),
    "rpo": ({}, ["sigmoid", "sft"], [1.0, 1.0], {}),
    "mpo": ({}, ["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0], {}),
    "wpo": ({}, ["sigmoid"], None, {"use_weighting": True}),
    "ld_dpo": ({}, ["sigmoid"], None, {"ld_alpha": 0.5}),
    "fdpo_js": ({}, ["sigmoid"], None, {"f_divergence_type": "js_divergence"}),
    "fdpo_fkl": ({}, ["sigmoid"], None, {"f_divergence_type": "forward_kl"}),
    "fdpo_alpha": (
        {},
        ["sigmoid"],
        None,
        {"f_divergence_type": "alpha_divergence", "f_alpha": 0.5},
    ),
    "tr_dpo": ({}, ["sigmoid"], None, {}),
    "bema": ({}, ["sigmoid"], None, {}),
}


def _leaf(batch: Any, *names: str) -> Any:
    return replace(
        batch, **{n: getattr(batch, n).detach().clone().requires_grad_(True) for n in names}
    )


def _ours(
    name: str, batch: Any, overrides: dict[str, Any], mask_field: str | None = None
) -> Callable[[], torch.Tensor]:
    spec, params = get(name), resolve_params(name, overrides)

    def run() -> torch.Tensor:
        out = spec.fn(batch, params)
        return (
            aggregate(out.loss, getattr(batch, mask_field)) if out.token_level else out.loss.mean()
        )

    return run


def cases() -> list[
    tuple[str, str, Callable[[], torch.Tensor], Callable[[], torch.Tensor], list[torch.Tensor]]
]:
    paired = _leaf(
        random_batch("paired", B, T, seed=0, dtype=DTYPE),
        "policy_chosen_logps",
        "policy_rejected_logps",
    )
    pleaves = [paired.policy_chosen_logps, paired.policy_rejected_logps]
    out = []
    for name, (ours, types, weights, cfg) in DPO.items():
        trl_cfg = {"beta": 0.1, **cfg}
        out.append(
            (
                name,
                f"DPOTrainer._compute_loss {types}",
                _ours(name, paired, ours),
                lambda types=types, weights=weights, trl_cfg=trl_cfg: trl_dpo_loss(
                    paired, types, weights, **trl_cfg
                ),
                pleaves,
            )
        )

    def seq(avg: bool) -> tuple[torch.Tensor, torch.Tensor]:
        red = "mean" if avg else "sum"
        return (
            seq_logps(paired.policy_chosen_logps, paired.chosen_mask, red),
            seq_logps(paired.policy_rejected_logps, paired.rejected_mask, red),
        )

    def trl_nll() -> torch.Tensor:
        return trl_sft_nll(paired.policy_chosen_logps, paired.chosen_mask)

    cpo_cases = {
        "cpo": ({"alpha": 1.0}, {"loss_type": "sigmoid", "alpha": 0.0, "beta": 0.1}, False, 1.0),
        "simpo": (
            {},
            {"loss_type": "simpo", "alpha": 0.0, "beta": 2.0, "simpo_gamma": 1.0},
            True,
            0.0,
        ),
        "cpo_simpo": (
            {},
            {"loss_type": "simpo", "alpha": 0.0, "beta": 2.0, "simpo_gamma": 1.0},
            True,
            1.0,
        ),
        "alphapo": (
            {},
            {"loss_type": "simpo", "alpha": 0.25, "beta": 2.0, "simpo_gamma": 1.0},
            True,
            0.0,
        ),
    }
    for name, (ours, attrs, avg, nll_w) in cpo_cases.items():
        trainer = cpo_trainer(**attrs)

        def trl(trainer=trainer, avg=avg, nll_w=nll_w) -> torch.Tensor:
            loss = trainer.cpo_loss(*seq(avg))[0].mean()
            return loss + nll_w * trl_nll() if nll_w else loss

        out.append(
            (name, "CPOTrainer.cpo_loss (+ TRL sft NLL)", _ours(name, paired, ours), trl, pleaves)
        )
    orpo = orpo_trainer(0.1)
    out.append(
        (
            "orpo",
            "ORPOTrainer.odds_ratio_loss + TRL sft NLL",
            _ours("orpo", paired, {}),
            lambda: trl_nll() - orpo.odds_ratio_loss(*seq(True))[0].mean(),
            pleaves,
        )
    )

    unpaired = _leaf(random_batch("unpaired", B, T, seed=1, dtype=DTYPE), "policy_logps")
    for name, loss_type, kl in (("kto", "kto", True), ("apo_unpaired", "apo_zero_unpaired", False)):
        out.append(
            (
                name,
                f"KTOTrainer._compute_loss {loss_type}",
                _ours(name, unpaired, {}),
                lambda loss_type=loss_type, kl=kl: trl_kto_loss(unpaired, loss_type, kl),
                [unpaired.policy_logps],
            )
        )

    single = _leaf(random_batch("single", B, T, seed=2, dtype=DTYPE), "logps")
    for name, loss_type in (("sft", "nll"), ("rft", "nll"), ("dft", "dft")):
        out.append(
            (
                name,
                f"SFTTrainer.compute_loss {loss_type}",
                _ours(name, single, {}, "mask"),
                lambda loss_type=loss_type: trl_sft_trainer_loss(single, loss_type),
                [single.logps],
            )
        )

    distill = _leaf(random_batch("single", B, T, vocab=V, seed=3, dtype=DTYPE), "logits")
    labels = torch.where(distill.mask.bool(), distill.labels, torch.full_like(distill.labels, -100))
    for name, beta in (
        ("gkd", 0.5),
        ("kd_forward", 0.0),
        ("kd_reverse", 1.0),
        ("on_policy_distill", 1.0),
    ):
        ours = {"beta": beta} if name == "gkd" else {}
        out.append(
            (
                name,
                "GKDTrainer.generalized_jsd_loss",
                _ours(name, distill, ours, "mask"),
                lambda beta=beta: GKDTrainer.generalized_jsd_loss(
                    distill.logits, distill.teacher_logits, labels, beta=beta
                ),
                [distill.logits],
            )
        )

    scores = _leaf(random_batch("scores", B, T, seed=4, dtype=DTYPE), "chosen", "rejected")
    for name, margins in (("rm_bt", None), ("rm_bt_margin", scores.margins)):
        out.append(
            (
                name,
                "RewardTrainer.compute_loss",
                _ours(name, scores, {}),
                lambda margins=margins: trl_reward_loss(
                    scores.chosen, scores.rejected, margins, None
                ),
                [scores.chosen, scores.rejected],
            )
        )
    return out


def _time(fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    loss = fn()
    torch.autograd.grad(loss, leaves, allow_unused=True)
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(1)
    results = []
    for name, baseline, ours, trl, leaves in cases():
        _time(ours, leaves), _time(trl, leaves)  # warm-up
        mine, theirs = [], []
        for _ in range(REPEATS):
            mine.append(_time(ours, leaves))
            theirs.append(_time(trl, leaves))
        ours_s, base_s = statistics.median(mine), statistics.median(theirs)
        results.append(
            {
                "name": name,
                "ours_s": ours_s,
                "baseline": f"trl 1.16 {baseline}",
                "baseline_s": base_s,
                "ratio": ours_s / base_s,
                "target": 1.2,
                "details": {
                    "batch": B,
                    "tokens": T,
                    "dtype": "float32",
                    "repeats": REPEATS,
                    "threads": 1,
                    "statistic": "median, interleaved, forward+backward",
                },
            }
        )
        print(
            f"{name:18s} ours {ours_s * 1e3:8.2f} ms  trl {base_s * 1e3:8.2f} ms  ratio {ours_s / base_s:5.2f}"
        )
    ratios = [r["ratio"] for r in results]
    results.append(
        {
            "name": "median_ratio_over_entries",
            "ours_s": statistics.median(r["ours_s"] for r in results),
            "baseline": "trl 1.16 (same entries)",
            "baseline_s": statistics.median(r["baseline_s"] for r in results),
            "ratio": statistics.median(ratios),
            "target": 1.0,
            "details": {
                "entries": len(ratios),
                "max_ratio": max(ratios),
                "over_1.2": [r["name"] for r in results if r["ratio"] > 1.2],
            },
        }
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"median ratio {statistics.median(ratios):.2f}, max {max(ratios):.2f} → {OUT}")


if __name__ == "__main__":
    main()
