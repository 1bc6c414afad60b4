"""The tiny model zoo: four scales of one Qwen2-style architecture, pretrained by ptlab on CPU
on the three domains (chat-formatted), cached by content hash, loaded with ``from_pretrained``.

Public API (stable)::

    SCALES                          # {"s1": ScaleSpec, ..., "s4": ...}, ~0.25M/1M/4M/17M params
    ensure_model("s2") -> Path      # build lazily (file-locked, atomic), then the cached dir
    model_dir("s2") -> Path         # where it is / will be cached (no build)
    resolve_model_name("zoo/s2")    # -> str path; hub ids / local paths are returned unchanged
    load_pretrained(name) -> (model, tokenizer)   # resolve + from_pretrained (hub id, path, zoo/)
    list_models() -> list[dict]     # what is in the cache

Cache: ``$PTLAB_CACHE`` (default ``~/.cache/ptlab``) ``/zoo/<scale>-<hash>/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ptlab.errors import UserError
from ptlab.trainer.zoo.build import SCALES, ScaleSpec, build_scale, cache_root, model_dir

ZOO_PREFIX = "zoo/"

__all__ = [
    "SCALES",
    "ZOO_PREFIX",
    "ScaleSpec",
    "cache_root",
    "ensure_model",
    "list_models",
    "load_pretrained",
    "model_dir",
    "resolve_model_name",
]


def _check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise UserError(f"unknown zoo scale {scale!r}", f"choose one of {sorted(SCALES)}")
    return scale


def ensure_model(
    scale: str, *, cache: Path | None = None, progress: bool = True, **overrides: int
) -> Path:
    """Directory of the pretrained zoo model ``scale`` (built on first use; a cache hit is
    instant). ``overrides`` replace ScaleSpec fields, e.g. ``steps=3`` (tests)."""
    return build_scale(_check_scale(scale), cache=cache, progress=progress, **overrides)


def resolve_model_name(name: str, *, cache: Path | None = None, progress: bool = True) -> str:
    """``zoo/<scale>`` → the local directory of that zoo model (building it if needed); any other
    name (hub id such as ``Qwen/Qwen2.5-0.5B-Instruct`` or a local path) is returned unchanged
    for ``from_pretrained``."""
    if name.startswith(ZOO_PREFIX):
        return str(ensure_model(name[len(ZOO_PREFIX) :], cache=cache, progress=progress))
    return name


def load_pretrained(name: str, *, dtype: Any = None, cache: Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a zoo name, hub id or local path, via ``from_pretrained``.

    The tokenizer pads on the left (generation); a missing pad token is set to EOS.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_name(name, cache=cache)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as err:
        raise UserError(
            f"model {name!r} cannot be loaded: {err}".splitlines()[0],
            "give a zoo/<scale> name, a hub id, or a directory saved with save_pretrained",
        ) from err
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def list_models(cache: Path | None = None) -> list[dict[str, Any]]:
    """Built zoo models in the cache: scale, path, params, train tokens, final loss, build time."""
    root = (cache or cache_root()) / "zoo"
    rows = []
    for meta_file in sorted(root.glob("s*-*/zoo.json")):
        meta = json.loads(meta_file.read_text())
        rows.append(
            {
                "scale": meta["scale"],
                "path": str(meta_file.parent),
                "params": meta["params"],
                "train_tokens": meta["train_tokens"],
                "final_loss": meta["final_loss"],
                "build_s": meta["build_s"],
            }
        )
    return rows
