"""Atomic checkpoints (write to ``step-N.tmp``, then rename) and resume.

A checkpoint holds the engine state (model, optimizer, scheduler; DeepSpeed shards under
DeepSpeed), each rank's RNG states (torch, numpy, python) and the recipe's own state (data
position, budget counters, ...). A ``kill -9`` at any moment leaves either the previous or
the new checkpoint complete; leftover ``.tmp`` folders are ignored and removed.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptlab.trainer.distributed import DistInfo, Engine, barrier

STEP_DIR = re.compile(r"^step-(\d+)$")
KEEP = 2
"""Completed checkpoints kept (the newest ones)."""


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy and torch (CPU)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def latest(directory: Path) -> Path | None:
    """The newest complete checkpoint folder in ``directory``, if any."""
    if not directory.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in directory.iterdir() if (m := STEP_DIR.match(p.name))]
    return max(steps)[1] if steps else None


def save(directory: Path, step: int, engine: Engine, state: dict[str, Any], info: DistInfo) -> Path:
    """Write checkpoint ``step`` atomically on every rank; rank 0 renames and prunes."""
    final = directory / f"step-{step:08d}"
    tmp = directory / f"step-{step:08d}.tmp"
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    engine.save(tmp)
    torch.save(rng_state(), tmp / f"rng-{info.rank}.pt")
    if info.is_main:
        torch.save(state, tmp / "state.pt")
    barrier()
    if info.is_main:
        _fsync_dir(tmp)
        os.replace(tmp, final)
        _fsync_dir(directory)
        for old in sorted(p for p in directory.iterdir() if STEP_DIR.match(p.name))[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load(path: Path, engine: Engine, info: DistInfo) -> dict[str, Any]:
    """Restore engine and RNG states from ``path``; returns the recipe state."""
    engine.load(path)
    rng_file = path / f"rng-{info.rank}.pt"
    set_rng_state(torch.load(rng_file if rng_file.exists() else path / "rng-0.pt", weights_only=False))
    return torch.load(path / "state.pt", weights_only=False)


def clean_partial(directory: Path) -> None:
    """Remove ``.tmp`` leftovers of a checkpoint interrupted while being written."""
    if directory.is_dir():
        for tmp in directory.glob("step-*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
