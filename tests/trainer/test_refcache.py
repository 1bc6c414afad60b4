"""Reference log-prob cache: a hit is bit-identical to recomputation and loads no model; a
5-algorithm offline study does 1× the reference forward passes, not 5×."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from ptlab.trainer import modeling, refcache, run
from ptlab.trainer.batching import encode_record, token_ids_digest

RECORDS = [
    {"prompt": "What is 2 + 3?", "chosen": "2 + 3 = 5. Answer: 5", "rejected": "2 + 3 = 6. Answer: 6"},
    {"prompt": "Tom has 4 apples and eats 1.", "chosen": "4 - 1 = 3. Answer: 3", "rejected": "Answer: 5"},
    {"prompt": "Double 7.", "chosen": "2 * 7 = 14. Answer: 14", "rejected": "2 * 7 = 15. Answer: 15"},
]


def _examples(model_dir: str):
    tok = modeling.load_tokenizer(model_dir)
    return [encode_record(tok, r, "paired", 64) for r in RECORDS], tok.pad_token_id


def test_hit_is_bit_identical_and_loads_no_model(tiny_model: str, tmp_path: Path) -> None:
    examples, pad_id = _examples(tiny_model)
    key = refcache.cache_key(modeling.model_hash(tiny_model), token_ids_digest(examples), {"dtype": "float32"})
    loads = {"n": 0}

    @contextlib.contextmanager
    def factory():
        loads["n"] += 1
        yield modeling.load_model(tiny_model)

    first, hit1 = refcache.load_or_compute(key, factory, examples, pad_id, root=tmp_path / "a")
    second, hit2 = refcache.load_or_compute(key, factory, examples, pad_id, root=tmp_path / "a")
    fresh, hit3 = refcache.load_or_compute(key, factory, examples, pad_id, root=tmp_path / "b")
    assert (hit1, hit2, hit3) == (False, True, False)
    assert loads["n"] == 2  # the hit never built the reference
    for name in ("chosen", "rejected"):
        for a, b, c in zip(first[name], second[name], fresh[name], strict=True):
            assert torch.equal(a, b) and torch.equal(a, c)
    # values are the real per-token log-probs of the completion (checked against a direct forward)
    model = modeling.load_model(tiny_model)
    seq = examples[1]["chosen"]
    ids = torch.tensor([seq.input_ids])
    direct = modeling.token_logps(model, ids, torch.ones_like(ids))[0, seq.prompt_len :]
    assert torch.allclose(first["chosen"][1], direct, atol=1e-6)
    assert len(first["chosen"][1]) == len(seq.input_ids) - seq.prompt_len


def test_key_changes_with_model_data_and_settings(tiny_model: str, tmp_path: Path) -> None:
    examples, _ = _examples(tiny_model)
    base = refcache.cache_key("m1", token_ids_digest(examples), {"dtype": "float32"})
    assert refcache.cache_key("m2", token_ids_digest(examples), {"dtype": "float32"}) != base
    assert refcache.cache_key("m1", token_ids_digest(examples[:2]), {"dtype": "float32"}) != base
    assert refcache.cache_key("m1", token_ids_digest(examples), {"dtype": "bfloat16"}) != base
    assert refcache.cache_key("m1", token_ids_digest(examples), {"dtype": "float32"}) == base


@pytest.mark.slow
def test_study_of_five_offline_algorithms_does_one_reference_pass(
    tiny_model: str, spec_for, tmp_path: Path
) -> None:
    algorithms = ["dpo", "ipo", "cdpo", "hinge", "robust_dpo"]
    results = [
        run.train(spec_for(tiny_model, name, training={"budget": {"steps": 1}}), tmp_path / name)
        for name in algorithms
    ]
    passes = [r["reference_forward_passes"] for r in results]
    # 32 pairs x 2 sequences in batches of 16 = 4 forwards, done once for the whole study
    assert passes == [4, 0, 0, 0, 0]
    assert [r["reference_cache_hit"] for r in results] == [False, True, True, True, True]
    # every run trained against the same reference: DPO-family step-1 losses at θ = θref
    assert all(r["status"] == "succeeded" for r in results)
