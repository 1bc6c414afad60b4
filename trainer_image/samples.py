"""On-policy preference data for offline algorithms (``data.pairs: self-sampled``).

k = ``rollout.num_generations`` samples per training prompt from the model being trained, before
any update, with the run's sampling settings; the domain's verifier labels them. Paired entries
(DPO family) get correct-vs-incorrect pairs, unpaired ones (KTO, BCO) every sample with its
desirable/undesirable label — the on-policy data of the OXRL study. Prompts whose k samples are
all right or all wrong give no pair.

Samples are cached in ``$PTLAB_CACHE/samples/`` per (model weights, items, sampling settings,
seed), so every offline run of a study on the same model and data shares one sampling pass
(and a resumed run sees exactly the data it started with).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ptlab.api.hashing import content_hash
from ptlab.api.models import PostTrainingRunSpec
from ptlab.errors import UserError
from ptlab.paths import cache_root
from ptlab.trainer import modeling
from ptlab.trainer.domains import Domain, Item, get_domain
from ptlab.trainer.recipes.online import prompt_ids
from ptlab.trainer.rollout import HFEngine, SamplingSettings

STATS: dict[str, int] = {"hits": 0, "misses": 0}
"""Process-wide sample-cache hits and misses (tests count sampling passes)."""


def sample_texts(
    model: nn.Module, tokenizer: Any, items: Sequence[Item], k: int, settings: SamplingSettings,
    max_prompt: int,
) -> list[list[str]]:
    """``k`` decoded completions per item from ``model`` (HF generate, seeded)."""
    prompts = [prompt_ids(tokenizer, it, max_prompt) for it in items]  # as the online recipe
    engine = HFEngine(model, tokenizer.pad_token_id, [tokenizer.eos_token_id])
    was_training = model.training
    model.eval()
    completions = engine.generate(prompts, k, settings)
    model.train(was_training)
    texts = tokenizer.batch_decode([list(c.token_ids) for c in completions], skip_special_tokens=True)
    out: list[list[str]] = [[] for _ in items]
    for completion, text in zip(completions, texts, strict=True):
        out[completion.group].append(text)
    return out


def load_or_sample(key: str, sample: Callable[[], list[list[str]]], root: Path | None = None) -> list[list[str]]:
    """The cached samples of ``key``, or ``sample()`` written atomically (file-locked)."""
    from filelock import FileLock

    directory = (root or cache_root()) / "samples"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.json"
    with FileLock(str(path) + ".lock"):
        if path.exists():
            STATS["hits"] += 1
            return json.loads(path.read_text())
        texts = sample()
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(texts))
        os.replace(tmp, path)
        STATS["misses"] += 1
        return texts


def records_from_samples(
    domain: Domain, items: Sequence[Item], texts: Sequence[Sequence[str]], input_kind: str
) -> list[dict[str, Any]]:
    """Offline records of ``input_kind`` from verified samples (see the module docstring)."""
    if input_kind in ("paired", "scores"):
        pairs = domain.self_sampled_pairs(items, texts, max_pairs_per_item=1)
        return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    rows = domain.unpaired(items, texts)
    return [{"prompt": r.prompt, "completion": r.completion, "label": r.desirable} for r in rows]


def self_sampled_records(
    spec: PostTrainingRunSpec, input_kind: str, policy: nn.Module, tokenizer: Any
) -> list[dict[str, Any]]:
    """Records built from the starting policy's own verified samples (cached on disk)."""
    data, rollout, training = spec.data, spec.rollout, spec.training
    if data.source.format != "generated":
        raise UserError(
            "data.pairs=self-sampled needs a generated domain (its verifier labels the samples)",
            "use data.pairs: given with a pairs file, or a generated domain",
        )
    if input_kind not in ("paired", "scores", "unpaired"):
        raise UserError(f"data.pairs=self-sampled is for preference input, not {input_kind!r}",
                        "use data.pairs: given")
    domain = get_domain(data.domain)
    items = domain.items("train", data.train_size, seed=training.seed)
    settings = SamplingSettings(rollout.max_new_tokens, rollout.temperature, rollout.top_p,
                                seed=training.seed)
    max_prompt = max(8, training.max_len - rollout.max_new_tokens)
    key = content_hash({
        "model": modeling.model_hash(modeling.source_of(spec.model)),
        "items": [it.id for it in items], "k": rollout.num_generations,
        "settings": [settings.max_new_tokens, settings.temperature, settings.top_p, settings.seed],
        "max_prompt": max_prompt, "dtype": spec.model.dtype,
    })
    texts = load_or_sample(key, lambda: sample_texts(
        policy, tokenizer, items, rollout.num_generations, settings, max_prompt))
    records = records_from_samples(domain, items, texts, input_kind)
    if not records or (input_kind == "unpaired" and len({r["label"] for r in records}) < 2):
        raise UserError(
            f"data.pairs=self-sampled: the model's {rollout.num_generations} samples on "
            f"{len(items)} {data.domain} prompts gave no correct-vs-incorrect data",
            "raise rollout.num_generations or train_size, or use data.pairs: given",
        )
    return records
