"""``data.pairs: self-sampled``: on-policy pairs / unpaired labels from the starting model's own
samples, labelled by the verifier, cached so a study samples once per (model, data, settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptlab.api.models import PostTrainingRunSpec
from ptlab.errors import UserError
from ptlab.trainer import modeling, samples
from ptlab.trainer.domains import get_domain
from tests.trainer.conftest import make_spec


def _spec(model: str, algorithm: str, **data: object) -> PostTrainingRunSpec:
    return PostTrainingRunSpec.model_validate(make_spec(
        model, algorithm,
        data={"domain": "general", "train_size": 24, "pairs": "self-sampled", **data},
        rollout={"num_generations": 4, "max_new_tokens": 24, "temperature": 1.0},
    ))


@pytest.mark.slow
def test_pairs_and_labels_come_from_verified_samples_once(zoo_s1: str) -> None:
    tok, policy = modeling.load_tokenizer(zoo_s1), modeling.load_model(zoo_s1)
    domain = get_domain("general")
    by_prompt = {it.prompt: it for it in domain.items("train", 24, seed=0)}
    before = dict(samples.STATS)

    pairs = samples.self_sampled_records(_spec(zoo_s1, "dpo"), "paired", policy, tok)
    assert samples.STATS["misses"] == before["misses"] + 1
    assert 1 <= len(pairs) <= 24  # prompts with both a right and a wrong sample
    for p in pairs:
        item = by_prompt[p["prompt"]]
        assert domain.verify(item, p["chosen"]).reward == 1.0
        assert domain.verify(item, p["rejected"]).reward < 1.0

    rows = samples.self_sampled_records(_spec(zoo_s1, "kto"), "unpaired", policy, tok)
    assert samples.STATS["hits"] == before["hits"] + 1  # same model, items, settings: no resampling
    assert {r["label"] for r in rows} == {True, False}
    for r in rows:
        assert (domain.verify(by_prompt[r["prompt"]], r["completion"]).reward == 1.0) == r["label"]
    # the chosen side of every pair is one of the desirable rows (the same samples)
    desirable = {(r["prompt"], r["completion"]) for r in rows if r["label"]}
    assert {(p["prompt"], p["chosen"]) for p in pairs} <= desirable


def test_no_correct_sample_is_a_clear_error(tiny_model: str) -> None:
    spec = _spec(tiny_model, "dpo", domain="arith")
    tok, policy = modeling.load_tokenizer(tiny_model), modeling.load_model(tiny_model)
    with pytest.raises(UserError, match="gave no correct-vs-incorrect data"):
        samples.self_sampled_records(spec, "paired", policy, tok)


def test_file_data_cannot_be_self_sampled(tiny_model: str, tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    spec = _spec(tiny_model, "dpo", source={"format": "pairs", "path": str(path)})
    tok, policy = modeling.load_tokenizer(tiny_model), modeling.load_model(tiny_model)
    with pytest.raises(UserError, match="needs a generated domain"):
        samples.self_sampled_records(spec, "paired", policy, tok)
