"""Pretraining of the zoo models: data mix, the training loop, and the content-hashed cache.

Data: worked solutions of all three domains' *train* splits, chat-formatted exactly as the
trainer formats SFT examples (``chat.encode_prompt_completion``), packed into 128-token blocks.
Cache key: sha256 of (scale config, training budget, tokenizer, data token stream, seed,
ZOO_VERSION). Builds happen under a file lock into a temporary directory that is renamed into
place only when complete, so a killed build never leaves a usable half-written model.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from filelock import FileLock
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from ptlab.paths import cache_root
from ptlab.trainer.chat import encode_prompt_completion
from ptlab.trainer.domains import DOMAINS, get_domain
from ptlab.trainer.zoo.tokenizer import train_tokenizer

# Bump to force rebuilds; the source of the data generators and of this code is hashed too.
ZOO_VERSION = 1
_PACKAGE = Path(__file__).resolve().parents[1]
# What shapes the training data and the training itself (verifiers and evaluation do not).
CODE_FILES = (
    "chat.py",
    "domains/base.py",
    "domains/arith.py",
    "domains/algebra.py",
    "domains/general.py",
    "zoo/tokenizer.py",
    "zoo/build.py",
)
SEQ_LEN = 128  # packed block length; prompts + solutions are 30-170 tokens
BATCH = 16
THREADS = 2  # fixed: float results depend on the thread count
TOKENIZER_ITEMS = 3000  # per domain, to train the tokenizer
VOCAB = 1024


@dataclass(frozen=True)
class ScaleSpec:
    """One zoo scale: Qwen2 shape and pretraining budget (steps of BATCH x SEQ_LEN tokens)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    steps: int
    lr: float
    bf16: bool = False  # CPU bf16 autocast: ~2.2x faster at >=16M params, same loss
    items_per_domain: int = 20000
    seed: int = 0


# ~4x apart in parameters (tied embeddings, vocab ~600). Fewer tokens per parameter as scale grows.
SCALES: dict[str, ScaleSpec] = {
    "s1": ScaleSpec(hidden=64, layers=3, heads=2, intermediate=256, steps=1000, lr=3e-3),
    "s2": ScaleSpec(hidden=128, layers=4, heads=4, intermediate=512, steps=1200, lr=2e-3),
    "s3": ScaleSpec(
        hidden=256, layers=5, heads=4, intermediate=768, steps=2000, lr=1e-3, bf16=True
    ),
    "s4": ScaleSpec(
        hidden=384, layers=9, heads=6, intermediate=1152, steps=2500, lr=7e-4, bf16=True
    ),
}


def qwen2_config(
    spec: ScaleSpec, vocab_size: int, tokenizer: PreTrainedTokenizerFast
) -> Qwen2Config:
    """The transformers config of a scale (same family as Qwen2.5)."""
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _atomic_build(final: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmpdir)`` once per ``final`` across processes, then rename into place."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.is_dir():  # another process built it while we waited
            return final
        for stale in final.parent.glob(final.name + ".tmp-*"):  # left by a killed builder
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        tmp.mkdir()
        try:
            build(tmp)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _training_texts(items_per_domain: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, solution) of every domain's train split, interleaved deterministically."""
    pairs = [
        (it.prompt, it.solution)
        for name in sorted(DOMAINS)
        for it in get_domain(name).items("train", items_per_domain, seed)
    ]
    random.Random(seed).shuffle(pairs)
    return pairs


def code_version() -> str:
    """sha256 of the data generators', chat formatting's and zoo's source (the "code version")."""
    digest = hashlib.sha256(str(ZOO_VERSION).encode())
    for name in CODE_FILES:
        digest.update(name.encode() + (_PACKAGE / name).read_bytes())
    return digest.hexdigest()


def ensure_tokenizer(cache: Path) -> Path:
    """Train (once) and return the directory of the zoo tokenizer."""
    digest = hashlib.sha256(f"{code_version()}|{VOCAB}|{TOKENIZER_ITEMS}".encode()).hexdigest()[:12]

    def build(tmp: Path) -> None:
        texts = [t for p in _training_texts(TOKENIZER_ITEMS, 0) for t in p]
        train_tokenizer(texts, VOCAB).save_pretrained(tmp)

    return _atomic_build(cache / "zoo" / f"tokenizer-{digest}", build)


@functools.lru_cache(maxsize=2)
def _token_stream(tok_dir: Path, items_per_domain: int, seed: int) -> tuple[int, ...]:
    """All training examples, chat-formatted and concatenated (each ends with EOS); shared by
    the scales built in one process (same tokenizer, items and seed)."""
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    stream: list[int] = []
    for prompt, solution in _training_texts(items_per_domain, seed):
        stream += encode_prompt_completion(tokenizer, prompt, solution, 4 * SEQ_LEN).input_ids
    return tuple(stream)


def _batches(stream: torch.Tensor, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """``steps`` batches of BATCH random-order blocks, epoch after epoch, deterministic."""
    blocks = stream[: len(stream) // SEQ_LEN * SEQ_LEN].view(-1, SEQ_LEN)
    gen = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < BATCH:
            order = torch.cat([order, torch.randperm(len(blocks), generator=gen)])
        yield blocks[order[:BATCH]]
        order = order[BATCH:]


@contextlib.contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    """Fixed thread count and deterministic kernels, restored afterwards."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def pretrain(
    model: Qwen2ForCausalLM, stream: torch.Tensor, spec: ScaleSpec, name: str, progress: bool
) -> list[float]:
    """AdamW with linear warmup (3%) and cosine decay to 10%; returns the loss per step."""
    torch.manual_seed(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warm = max(1, spec.steps // 33)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warm) / max(1, spec.steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    losses: list[float] = []
    columns = (
        TextColumn(f"zoo {name}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("pretrain", total=spec.steps, loss=float("nan"))
        model.train()
        for batch in _batches(stream, spec.steps, spec.seed):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec.bf16):
                loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            recent = sum(losses[-20:]) / len(losses[-20:])
            bar.update(task, advance=1, loss=recent)
            if (
                progress
                and not bar.console.is_terminal
                and len(losses) % max(1, spec.steps // 10) == 0
            ):
                print(f"zoo {name}: step {len(losses)}/{spec.steps} loss {recent:.3f}", flush=True)
    model.eval()
    return losses


def _cache_key(spec: ScaleSpec, tok_dir: Path) -> dict[str, object]:
    """Everything the weights depend on (the data via the generators' code version)."""
    return {
        "code": code_version(),
        "scale": asdict(spec),
        "tokenizer": tok_dir.name,
        "seq_len": SEQ_LEN,
        "batch": BATCH,
        "threads": THREADS,
        "torch": torch.__version__,
    }


def model_dir(name: str, cache: Path | None = None, **overrides: int) -> Path:
    """Where the model of scale ``name`` (with ``overrides``) is or will be cached."""
    cache = cache or cache_root()
    key = _cache_key(replace(SCALES[name], **overrides), ensure_tokenizer(cache))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return cache / "zoo" / f"{name}-{digest}"


def build_scale(
    name: str, cache: Path | None = None, progress: bool = True, **overrides: int
) -> Path:
    """Build (or find in the cache) the model of scale ``name``; returns its directory.

    ``overrides`` replace ScaleSpec fields (tests: ``steps=3, items_per_domain=100``); they are
    part of the cache key. The key is cheap to compute, so a cache hit is instant.
    """
    cache = cache or cache_root()
    spec = replace(SCALES[name], **overrides)
    tok_dir = ensure_tokenizer(cache)
    key = _cache_key(spec, tok_dir)

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        stream = list(_token_stream(tok_dir, spec.items_per_domain, spec.seed))
        config = qwen2_config(spec, len(tokenizer), tokenizer)
        key["data"] = hashlib.sha256(torch.tensor(stream).numpy().tobytes()).hexdigest()
        with _deterministic(THREADS):
            torch.manual_seed(spec.seed)
            model = Qwen2ForCausalLM(config)
            losses = pretrain(model, torch.tensor(stream), spec, name, progress)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {
            "scale": name,
            "params": sum(p.numel() for p in model.parameters()),
            "train_tokens": spec.steps * BATCH * SEQ_LEN,
            "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
            "build_s": round(time.perf_counter() - start, 1),
            "key": key,
        }
        (tmp / "zoo.json").write_text(json.dumps(meta, indent=1, default=str))

    return _atomic_build(model_dir(name, cache, **overrides), build)
