"""Models: load a causal LM (hub id, local directory or zoo name), optional LoRA, log-probs.

Conventions used by every recipe (and by the reference cache):
    ``token_logps(model, ids, attn)[:, t] = log p(ids[:, t] | ids[:, :t])``, position 0 is 0.
So per-token log-probs, masks and input ids share one (B, T) layout: a completion mask from
:mod:`ptlab.trainer.batching` selects the target tokens directly, no shifting anywhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ptlab.api.models import LoraSpec, ModelSpec
from ptlab.errors import UserError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_source(name: str | None = None, path: str | None = None) -> str:
    """Local directory or hub id of a model given as ``name`` (hub id / ``zoo/<scale>``) or ``path``."""
    if path is not None:
        if not Path(path).is_dir():
            raise UserError(f"model.path {path!r} is not a directory", "point it at an HF model folder")
        return str(path)
    if name is None:
        raise UserError("model needs name or path", "set model.name (hub id, zoo/<scale>) or model.path")
    if name.startswith("zoo/"):
        from ptlab.trainer.zoo import resolve_model_name

        return str(resolve_model_name(name))
    return name


def source_of(spec: ModelSpec) -> str:
    """Local directory or hub id of a :class:`ModelSpec`."""
    return resolve_source(spec.name, spec.path)


def compute_dtype(name: str) -> torch.dtype:
    """Torch dtype of ``model.dtype``; ``auto`` = bfloat16 on CUDA, float32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return DTYPES[name]


def load_tokenizer(source: str) -> Any:
    """The tokenizer of ``source``; a missing pad token falls back to EOS."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(source: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    """``AutoModelForCausalLM`` from ``source`` with torch SDPA attention.

    SDPA is deterministic on CPU for a fixed thread count (reruns are bit-identical) and, unlike
    eager attention, never stores the (B, H, T, T) probabilities: 2,265 vs 3,065 MiB peak RSS for
    a 16-sequence x 256-token forward+backward of the s4 shape. It is also TRL's default, so
    the TRL benchmarks compare like with like.
    """
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation="sdpa")


def add_lora(model: nn.Module, lora: LoraSpec) -> nn.Module:
    """Wrap ``model`` with peft LoRA adapters; only adapter weights stay trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def build_policy(spec: ModelSpec) -> nn.Module:
    """The trainable policy of a run: model at its dtype, LoRA-wrapped when ``spec.lora``."""
    model = load_model(source_of(spec), compute_dtype(spec.dtype))
    return add_lora(model, spec.lora) if spec.lora is not None else model


@contextlib.contextmanager
def as_reference(model: nn.Module) -> Iterator[nn.Module]:
    """Use a LoRA policy as its own reference (adapters disabled: no second copy in memory)."""
    disable = getattr(model, "disable_adapter", None)
    with disable() if callable(disable) else contextlib.nullcontext():
        yield model


def count_parameters(model: nn.Module) -> int:
    """Parameters of the full network (frozen included): the N of the FLOPs estimate."""
    return sum(p.numel() for p in model.parameters())


def model_hash(source: str) -> str:
    """Content hash of a model: SHA-256 over file names and bytes of its local directory.

    A hub id that is not a local directory is resolved through the local HF cache; failing
    that, the id itself is hashed (the weights of a pinned hub id do not change).
    """
    directory = Path(source)
    if not directory.is_dir():
        try:
            from huggingface_hub import snapshot_download

            directory = Path(snapshot_download(source, local_files_only=True))
        except Exception:  # not cached: hash the id
            return hashlib.sha256(f"hub:{source}".encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = file.relative_to(directory).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        digest.update(rel.encode() + b"\0")
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def forward_logits(model: nn.Module, ids: Tensor, attn: Tensor) -> Tensor:
    """Raw logits (B, T, V): row t scores token t+1."""
    return model(input_ids=ids, attention_mask=attn, use_cache=False).logits


def align(values: Tensor) -> Tensor:
    """Per-position values computed from raw rows 0..T-2 → the target layout (row 0 = 0)."""
    return torch.nn.functional.pad(values, (1, 0) if values.dim() == 2 else (0, 0, 1, 0))


def next_token_logps(logits: Tensor, ids: Tensor) -> Tensor:
    """Per-token log-probs (B, T) from raw logits, in float32 (no copy of the logits)."""
    raw = logits[:, :-1].float()
    picked = torch.gather(raw, -1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return align(picked - torch.logsumexp(raw, dim=-1))


def shifted_logits(model: nn.Module, ids: Tensor, attn: Tensor) -> Tensor:
    """Logits (B, T, V) aligned with targets: row t scores token t; row 0 is zeros (a copy)."""
    return align(forward_logits(model, ids, attn)[:, :-1])


def gather_logps(logits: Tensor, ids: Tensor) -> Tensor:
    """log softmax(logits)[ids] per position (B, T) for *aligned* logits (see
    :func:`shifted_logits`), in float32; row 0 forced to 0."""
    logits32 = logits.float()
    picked = torch.gather(logits32, -1, ids.unsqueeze(-1)).squeeze(-1)
    logps = picked - torch.logsumexp(logits32, dim=-1)
    logps[:, 0] = 0.0
    return logps


def token_logps(model: nn.Module, ids: Tensor, attn: Tensor) -> Tensor:
    """Per-token log-probs (B, T) of ``ids`` under ``model`` (see module docstring)."""
    return next_token_logps(forward_logits(model, ids, attn), ids)


def configure_determinism(seed: int) -> int:
    """Seed python/numpy/torch, enable deterministic kernels, fix the CPU thread count.

    Threads: ``PTLAB_NUM_THREADS``, else ``OMP_NUM_THREADS`` (the study executor gives each of
    its parallel runs its share of the cores), else ``min(cpu_count, 8)``; the count changes GEMM
    reduction order, so bit-identical reruns need the same value (it is recorded in result.json).
    """
    import random

    import numpy as np

    env = os.environ.get("PTLAB_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    threads = int(env) if env else min(os.cpu_count() or 1, 8)
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return threads


def save_random_model(
    directory: str | os.PathLike[str], tokenizer: Any, *, hidden: int, layers: int, heads: int,
    intermediate: int, seed: int = 0,
) -> str:
    """Save a randomly initialised Qwen2 (the zoo architecture) with ``tokenizer`` in HF format.

    For plumbing tests and benchmarks that need a real model of a given shape but not a
    pretrained one (speed and memory do not depend on the weights' values).
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=512, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)
