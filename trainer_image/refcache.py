"""Reference log-probs computed once per (reference model, data, tokenisation) and cached on disk.

Every run of a study that uses the same reference model and data shares one cache entry in
``$PTLAB_CACHE/reflogps/`` (default ``~/.cache/ptlab``). A hit returns exactly the tensors that
were computed (``torch.save`` is lossless) and never calls the model factory, so the reference
model is not even loaded. Concurrent runs computing the same key serialise on a file lock.
:data:`STATS` counts reference forward passes in this process (benchmarks assert 1× not 5×).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ptlab.api.hashing import content_hash
from ptlab.paths import cache_root
from ptlab.trainer.batching import Encoded, completion_values, pad
from ptlab.trainer.modeling import token_logps

STATS: dict[str, int] = {"forward_passes": 0, "sequences": 0, "hits": 0, "misses": 0}
"""Process-wide counters: reference forward passes (batches), sequences, cache hits/misses."""

PRECOMPUTE_BATCH = 16
"""Sequences per reference forward; part of the key since padding width can change rounding."""

RefLogps = dict[str, list[Tensor]]
"""Sequence name (chosen/rejected/completion/kl) → per-example completion log-probs (1-D)."""


def cache_key(model_hash: str, data_hash: str, settings: Mapping[str, Any]) -> str:
    """Key of one entry: reference weights, tokenised data, and settings (dtype, max_len...)."""
    return content_hash(
        {"reference": model_hash, "data": data_hash, "settings": dict(settings),
         "batch": PRECOMPUTE_BATCH}
    )


@torch.no_grad()
def compute(model: nn.Module, examples: Sequence[Mapping[str, Encoded]], pad_id: int) -> RefLogps:
    """Reference completion log-probs of every named sequence, in fixed batches of 16."""
    was_training = model.training
    model.eval()
    out: RefLogps = {}
    for name in sorted(examples[0]) if examples else []:
        seqs = [ex[name] for ex in examples]
        values: list[Tensor] = []
        for lo in range(0, len(seqs), PRECOMPUTE_BATCH):
            batch = pad(seqs[lo : lo + PRECOMPUTE_BATCH], pad_id)
            logps = token_logps(model, batch.ids, batch.attn)
            STATS["forward_passes"] += 1
            STATS["sequences"] += len(batch.ids)
            values.extend(completion_values(logps, batch.mask))
        out[name] = values
    model.train(was_training)
    return out


def load_or_compute(
    key: str,
    model_factory: Callable[[], contextlib.AbstractContextManager[nn.Module]],
    examples: Sequence[Mapping[str, Encoded]],
    pad_id: int,
    root: Path | None = None,
) -> tuple[RefLogps, bool]:
    """Cached reference log-probs for ``key`` (computed with ``model_factory()`` on a miss).

    Returns ``(logps, hit)``. The factory is a context manager so a separately loaded
    reference can be freed as soon as the entry is written.
    """
    from filelock import FileLock

    directory = (root or cache_root()) / "reflogps"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.pt"
    with FileLock(str(path) + ".lock"):
        if path.exists():
            STATS["hits"] += 1
            return torch.load(path, weights_only=True), True
        with model_factory() as model:
            logps = compute(model, examples, pad_id)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(logps, tmp)
        os.replace(tmp, path)
        STATS["misses"] += 1
        return logps, False
