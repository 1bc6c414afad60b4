"""Adapters that run TRL 1.16's own loss code on our batches (tests and benchmarks; needs ``trl``).

TRL's losses live inside trainer methods that call a model. Each trainer is built with
``object.__new__`` (no __init__, no model download) with only the attributes its loss method reads;
the "model" is a stand-in module returning the per-token log-probs we feed our own loss (what
TRL's fused LM head returns: log-probs of the labels, zero on ignored positions). Everything after
the forward pass — reductions, masks, the loss formula — is TRL's code. Not imported by the package.
"""

from __future__ import annotations

import os
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
from trl.experimental.cpo.cpo_trainer import CPOTrainer
from trl.experimental.gkd.gkd_trainer import GKDTrainer
from trl.experimental.orpo.orpo_trainer import ORPOTrainer
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.kto_trainer import KTOTrainer
from trl.trainer.reward_trainer import RewardTrainer
from trl.trainer.sft_trainer import SFTTrainer

from ptlab.algorithms.types import PairedBatch, SingleBatch, UnpairedBatch

__all__ = [
    "CPOTrainer",
    "GKDTrainer",
    "ORPOTrainer",
    "cpo_trainer",
    "orpo_trainer",
    "trl_dpo_loss",
    "trl_kto_loss",
    "trl_reward_loss",
    "trl_sft_nll",
    "trl_sft_trainer_loss",
]


class _Accelerator:
    device = torch.device("cpu")
    parallelism_config = None

    @staticmethod
    def gather(x: torch.Tensor) -> torch.Tensor:
        return x

    gather_for_metrics = gather


class _FakeLM(torch.nn.Module):
    """Returns stored per-token log-probs for the ``input_ids`` tensor it is called with."""

    is_gradient_checkpointing = False

    def __init__(
        self, table: dict[int, torch.Tensor], extra: dict[int, torch.Tensor] | None = None
    ):
        super().__init__()
        self.table, self.extra = table, extra or {}

    def forward(self, input_ids: torch.Tensor, **_: Any) -> SimpleNamespace:
        lp = self.table[id(input_ids)]
        zeros = torch.zeros_like(lp)
        return SimpleNamespace(
            log_probs=lp,
            entropy=zeros,
            mean_logits=zeros,
            is_top1=torch.zeros_like(lp, dtype=torch.bool),
            label_mask=lp != 0,
            log_sum_sq_probs=self.extra.get(id(input_ids)),
            aux_loss=None,
        )


def _bare(cls: type, **attrs: Any) -> Any:
    trainer = object.__new__(cls)
    base = dict(
        accelerator=_Accelerator(),
        _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0,
        _tp_size=1,
        aux_loss_enabled=False,
    )
    for key, value in {**base, **attrs}.items():
        setattr(trainer, key, value)
    return trainer


def _ids_and_mask(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and completion_mask with one prompt token in front (TRL shifts by one)."""
    n = mask.shape[0]
    ids = torch.zeros(n, mask.shape[1] + 1, dtype=torch.long)
    completion = torch.cat([torch.zeros(n, 1), mask.to(torch.float64)], dim=1).long()
    return ids, completion


def trl_dpo_loss(
    batch: PairedBatch, loss_types: list[str], weights: list[float] | None = None, **cfg: Any
) -> torch.Tensor:
    """TRL ``DPOTrainer._compute_loss`` on our batch (reference log-probs from a reference stand-in)."""
    logps = torch.cat([batch.policy_chosen_logps, batch.policy_rejected_logps])
    ref = torch.cat([batch.ref_chosen_logps, batch.ref_rejected_logps])
    ids, completion = _ids_and_mask(torch.cat([batch.chosen_mask, batch.rejected_mask]))
    extra = {}
    if cfg.get("use_weighting"):
        extra[id(ids)] = torch.cat([batch.chosen_log_sum_sq, batch.rejected_log_sum_sq])
    model = _FakeLM({id(ids): logps}, extra)
    trainer = _bare(
        DPOTrainer,
        model=model,
        ref_model=_FakeLM({id(ids): ref}),
        args=SimpleNamespace(
            discopop_tau=cfg.get("discopop_tau", 0.05), gradient_checkpointing_kwargs=None
        ),
        precompute_ref_logps=False,
        loss_types=loss_types,
        loss_weights=weights or [1.0] * len(loss_types),
        beta=cfg.get("beta", 0.1),
        label_smoothing=cfg.get("label_smoothing", 0.0),
        f_divergence_type=cfg.get("f_divergence_type", "reverse_kl"),
        f_alpha_divergence_coef=cfg.get("f_alpha", 0.5),
        ld_alpha=cfg.get("ld_alpha"),
        use_weighting=cfg.get("use_weighting", False),
    )
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "completion_mask": completion,
    }
    return trainer._compute_loss(model, inputs, return_outputs=False)


def trl_sft_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TRL's chosen NLL (DPO ``sft`` loss type): token mean over the batch."""
    pb = PairedBatch(logps, logps.detach(), mask, mask, logps.detach(), logps.detach())
    return trl_dpo_loss(pb, ["sft"])


def trl_sft_trainer_loss(batch: SingleBatch, loss_type: str) -> torch.Tensor:
    """TRL ``SFTTrainer.compute_loss`` (``nll`` or ``dft``)."""
    ids, _ = _ids_and_mask(batch.mask)
    ids = ids[:, 1:]
    model = _FakeLM({id(ids): batch.logps})
    trainer = _bare(
        SFTTrainer,
        model=model,
        compute_loss_func=None,
        label_smoother=None,
        args=SimpleNamespace(
            loss_type=loss_type, average_tokens_across_devices=False, max_length=None
        ),
    )
    return trainer.compute_loss(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})


def trl_kto_loss(
    batch: UnpairedBatch, loss_type: str, calculate_kl: bool, **cfg: Any
) -> torch.Tensor:
    """TRL ``KTOTrainer._compute_loss`` with policy/reference stand-ins for main and KL sequences."""
    ids, completion = _ids_and_mask(batch.mask)
    kl_ids, kl_completion = _ids_and_mask(batch.kl_mask)
    model = _FakeLM({id(ids): batch.policy_logps, id(kl_ids): batch.kl_policy_logps})
    ref = _FakeLM({id(ids): batch.ref_logps, id(kl_ids): batch.kl_ref_logps})
    trainer = _bare(
        KTOTrainer,
        model=model,
        ref_model=ref,
        args=SimpleNamespace(gradient_checkpointing_kwargs=None),
        precompute_ref_logps=False,
        calculate_KL=calculate_kl,
        loss_type=loss_type,
        beta=cfg.get("beta", 0.1),
        desirable_weight=cfg.get("desirable_weight", 1.0),
        undesirable_weight=cfg.get("undesirable_weight", 1.0),
    )
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "completion_mask": completion,
        "KL_input_ids": kl_ids,
        "KL_attention_mask": torch.ones_like(kl_ids),
        "KL_completion_mask": kl_completion,
        "label": batch.labels,
    }
    return trainer._compute_loss(model, inputs, return_outputs=False)


def trl_reward_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margins: torch.Tensor | None, center: float | None
) -> torch.Tensor:
    """TRL ``RewardTrainer.compute_loss`` on given scores (the model returns them as logits)."""
    scores = torch.cat([chosen, rejected])[:, None]
    trainer = _bare(
        RewardTrainer,
        model=SimpleNamespace(training=True),
        args=SimpleNamespace(center_rewards_coefficient=center),
    )
    inputs: dict[str, Any] = {"attention_mask": torch.ones(scores.shape[0], 1)}
    if margins is not None:
        inputs["margin"] = margins

    def forward(**_: Any) -> SimpleNamespace:
        return SimpleNamespace(logits=scores)

    return trainer.compute_loss(forward, inputs)


def cpo_trainer(**attrs: Any) -> CPOTrainer:
    """A CPOTrainer whose ``cpo_loss`` reads only ``attrs`` (beta, loss_type, alpha, simpo_gamma, ...)."""
    return _bare(CPOTrainer, **{"label_smoothing": 0.0, "simpo_gamma": 0.5, **attrs})


def orpo_trainer(beta: float) -> ORPOTrainer:
    """An ORPOTrainer whose ``odds_ratio_loss`` uses ``beta``."""
    return _bare(ORPOTrainer, beta=beta)
