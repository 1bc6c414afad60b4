"""Evaluation: greedy accuracy, unbiased pass@k from n samples, and multiple-choice scoring by
option log-likelihood; per-item scores go to ``<out_dir>/items.jsonl`` so studies can pair
algorithms on the same items. Deterministic: greedy decoding, seeded sampling, fixed order.

    evaluate(model, tokenizer, domain, items, *, max_new_tokens, pass_k, n_samples,
             temperature, seed, out_dir) -> {"accuracy", "parse_failure_rate", "pass@k", ...}
    generate(model, tokenizer, prompts, *, max_new_tokens, num_samples, temperature, seed)
    pass_at_k(n, c, k)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ptlab.errors import UserError
from ptlab.trainer.chat import encode_prompt_completion, format_prompt
from ptlab.trainer.domains import Domain, Item, get_domain
from ptlab.trainer.domains.general import LETTERS


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021,
    arXiv:2107.03374, eq. 1): ``1 - C(n-c, k) / C(n, k)``, as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    num_samples: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 32,
) -> list[list[str]]:
    """``num_samples`` completions per prompt (chat-formatted, batched, left-padded).

    ``temperature == 0`` is greedy decoding; otherwise pure temperature sampling (no top-k/p),
    seeded with ``seed + batch index`` so results do not depend on earlier calls.
    """
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    sampling = {"do_sample": False}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    out: list[list[str]] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [format_prompt(tokenizer, p) for p in prompts[start : start + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            torch.manual_seed(seed + start // batch_size)
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                num_return_sequences=num_samples,
                pad_token_id=pad_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
            new = tokenizer.batch_decode(
                ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
            )
            out += [new[i : i + num_samples] for i in range(0, len(new), num_samples)]
    finally:
        tokenizer.padding_side = side
    return out


@torch.inference_mode()
def choice_logliks(model: Any, tokenizer: Any, item: Item, max_len: int = 256) -> list[float]:
    """Sum log-probability of each option's text as the completion of ``item.prompt``."""
    scores = []
    for choice in item.choices:
        enc = encode_prompt_completion(tokenizer, item.prompt, choice, max_len, add_eos=False)
        ids = torch.tensor([enc.input_ids], device=model.device)
        logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        target = ids[0, 1:]
        token_logps = logps.gather(-1, target[:, None])[:, 0]
        scores.append(float(token_logps[enc.prompt_len - 1 :].sum()))
    return scores


def _write_items(out_dir: Path, domain: str, rows: list[dict[str, Any]]) -> None:
    """Replace this domain's rows in ``items.jsonl`` (other domains' rows kept), atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "items.jsonl"
    kept = []
    if path.exists():
        kept = [r for r in map(json.loads, path.read_text().splitlines()) if r["domain"] != domain]
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept + rows))
    os.replace(tmp, path)


def evaluate(
    model: Any,
    tokenizer: Any,
    domain: Domain | str,
    items: Sequence[Item],
    *,
    max_new_tokens: int = 128,
    pass_k: Sequence[int] = (),
    n_samples: int = 0,
    temperature: float = 1.0,
    seed: int = 0,
    out_dir: Path | str | None = None,
    batch_size: int = 32,
    choice_scoring: str = "letter",
) -> dict[str, float]:
    """Score ``items`` with ``domain``'s verifier; returns mean metrics.

    Args:
        max_new_tokens: generation budget per completion.
        pass_k: the k of pass@k, each <= ``n_samples``; samples use ``temperature``, ``seed``.
        out_dir: where ``items.jsonl`` (one row per item: id, domain, reward, parse_failed,
            completion, n_correct/n_samples, pass@k) is written; None = not written.
        choice_scoring: 'letter' (generate, verify the answer letter) or 'loglik' (pick the
            option with the highest log-likelihood; multiple-choice items only).

    Returns: ``accuracy`` (mean greedy reward), ``parse_failure_rate``, ``pass@k`` per k,
    ``n_items``.
    """
    dom = get_domain(domain) if isinstance(domain, str) else domain
    bad_k = [k for k in pass_k if not 1 <= k <= n_samples]
    if bad_k:
        raise UserError(
            f"eval.pass_k {bad_k} needs 1 <= k <= n_samples ({n_samples})",
            "raise eval.sampling.n or lower pass_k",
        )
    if choice_scoring not in ("letter", "loglik"):
        raise UserError(f"choice_scoring {choice_scoring!r} is not 'letter' or 'loglik'")
    prompts = [it.prompt for it in items]
    if choice_scoring == "loglik":
        picks = [
            LETTERS[max(range(len(s)), key=s.__getitem__)]
            for s in (choice_logliks(model, tokenizer, it) for it in items)
        ]
        greedy = [f"Answer: {p}" for p in picks]
    else:
        greedy = [
            c[0]
            for c in generate(
                model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size
            )
        ]
    samples: list[list[str]] = [[] for _ in items]
    if n_samples:
        samples = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            num_samples=n_samples,
            temperature=temperature,
            seed=seed,
            batch_size=max(1, batch_size // n_samples),
        )
    rows = []
    for item, completion, drawn in zip(items, greedy, samples, strict=True):
        verdict = dom.verify(item, completion)
        n_correct = sum(dom.verify(item, s).reward >= 1.0 for s in drawn)
        row: dict[str, Any] = {
            "id": item.id,
            "domain": dom.name,
            "reward": verdict.reward,
            "parse_failed": verdict.parse_failed,
            "completion": completion,
            "n_samples": len(drawn),
            "n_correct": n_correct,
        }
        row.update({f"pass@{k}": pass_at_k(len(drawn), n_correct, k) for k in pass_k})
        rows.append(row)
    if out_dir is not None:
        _write_items(Path(out_dir), dom.name, rows)
    n = max(1, len(rows))
    metrics = {
        "accuracy": sum(r["reward"] for r in rows) / n,
        "parse_failure_rate": sum(r["parse_failed"] for r in rows) / n,
        "n_items": float(len(rows)),
    }
    metrics.update({f"pass@{k}": sum(r[f"pass@{k}"] for r in rows) / n for k in pass_k})
    return metrics
