"""Fuzzing study/run YAML: `ptlab validate`, validate_file, load_study and load_run.

Every generated file must end in success or one-line errors that name the file (and the
field, for a document that parses): no traceback, no "internal error".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ptlab.api.load import (
    dump_json,
    load_documents,
    load_run,
    load_study,
    parse_object,
    validate_file,
)
from ptlab.api.models import ComparisonStudy, PostTrainingRun
from ptlab.errors import UserError
from tests.fuzz.support import (
    assert_cli_contract,
    assert_user_error,
    corrupted,
    fuzz,
    invoke,
    mutate,
    mutated,
    raw_garbage,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

RICH_RUN = """
apiVersion: ptlab.io/v1alpha1
kind: PostTrainingRun
metadata: {name: rich-run, labels: {study: s}}
spec:
  algorithm: {name: simpo, params: {beta: 2.0, gamma: 0.5}}
  model: {path: /models/m, scale: 1.5B, dtype: bfloat16, lora: {r: 16, alpha: 32, dropout: 0.1}}
  reference: {name: zoo/s1, update: soft, tau: 0.1}
  data: {domain: general, source: {format: pairs, path: prefs.jsonl}, train_size: 64}
  training: {budget: {tokens: 100000}, batch_size: 4, lr: 0.0001, seed: 3}
  rollout: {engine: vllm, num_generations: 8, max_new_tokens: 32, temperature: 0.7}
  eval: {domains: [arith, algebra], items: 50, pass_k: [1, 4], sampling: {n: 4, temperature: 0.6}}
  resources: {gpus: 2, nodes: 1, deepspeed: {zero_stage: 2}}
  tracking: {mlflow_uri: "http://127.0.0.1:5000", experiment: fuzz}
"""
RICH_STUDY = """
apiVersion: ptlab.io/v1alpha1
kind: ComparisonStudy
metadata: {name: rich-study}
spec:
  algorithms:
    - {name: dpo, params: {beta: 0.1}, tune: {beta: [0.05, 0.1, 0.3]}}
    - {name: grpo}
    - {name: kto}
  scales:
    - {name: 0.5B, model: {name: zoo/s1}}
    - {name: 7B, model: {path: /models/big, lora: {r: 8}}}
  domains: [arith, algebra, general]
  seeds: {count: 3, sequential: {max: 8}}
  budget: {flops: 1.0e15}
  tune: {trials: 2, budget_fraction: 0.5}
  parallelism: 4
  analysis: {metric: accuracy, alpha: 0.05, equivalence_margin: 0.01, bootstrap: 500}
"""


def _bases() -> list[Any]:
    """Valid documents: the examples as written, fully defaulted, and two rich ones; plus the
    bare spec of each run (``ptlab train`` and ``load_run`` accept those)."""
    docs = [d for f in sorted((ROOT / "examples").glob("*.yaml")) for _, d in load_documents(f)]
    docs += [yaml.safe_load(RICH_RUN), yaml.safe_load(RICH_STUDY)]
    for doc in list(docs):
        outcome = parse_object(doc)
        assert outcome.obj is not None, outcome.problems  # the bases themselves are valid
        docs.append(json.loads(dump_json(outcome.obj)))
    return docs + [d["spec"] for d in docs if d["kind"] == "PostTrainingRun"]


BASES = _bases()


@st.composite
def serialized(draw: st.DrawFn, doc: Any) -> bytes:
    """A document as YAML (block or flow), JSON, or one of several YAML documents."""
    how = draw(st.sampled_from(["yaml", "flow", "json", "multi"]))
    if how == "json":
        return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, default_flow_style=how == "flow")
    if how == "multi":
        other = yaml.safe_dump(draw(st.sampled_from(BASES)), allow_unicode=True)
        text = f"{other}---\n{text}" if draw(st.booleans()) else f"{text}---\n{other}"
    return text.encode()


structured_files = st.sampled_from(BASES).flatmap(lambda d: mutated([d])).flatmap(serialized)
garbage_files = st.one_of(
    st.sampled_from(BASES).flatmap(serialized).flatmap(corrupted),
    raw_garbage,
)


def check_spec_file(path: Path) -> None:
    """The loaders and `ptlab validate` on one file keep the error contract."""
    try:
        outcomes = validate_file(path)
    except UserError as err:
        assert_user_error(err, names=str(path))
        outcomes = None
    problems = [str(p) for o in outcomes or [] for p in o.problems]
    for text in problems:
        assert "\n" not in text and text.startswith(str(path)), text
    kinds = {type(o.obj) for o in outcomes or [] if o.obj is not None}
    for loader, kind in ((load_study, ComparisonStudy), (load_run, PostTrainingRun)):
        try:
            obj = loader(path)
        except UserError as err:
            assert_user_error(err, names=str(path))
        else:
            assert isinstance(obj, kind)
            assert kind in kinds or (kind is PostTrainingRun and outcomes is not None)
    result = invoke(["validate", str(path)])
    errors = assert_cli_contract(result, lines=None)
    assert (result.code == 0) == (outcomes is not None and not problems), result
    assert all(str(path) in line for line in errors), errors
    if outcomes is not None:
        assert len(errors) == len(problems)


@fuzz
@given(data=structured_files)
def test_mutated_specs_give_success_or_one_line_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(data)
    check_spec_file(path)


@fuzz
@given(data=garbage_files)
def test_corrupted_and_garbage_files_give_one_line_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(data)
    check_spec_file(path)


def test_bases_are_valid_and_mutations_are_caught(tmp_path: Path) -> None:
    """The fuzzer's starting points pass, and a known-bad mutation gives the expected line."""
    for i, doc in enumerate(BASES[:4]):
        path = tmp_path / f"base{i}.yaml"
        path.write_text(yaml.safe_dump(doc))
        assert invoke(["validate", str(path)]).code == 0
    bad = next(d for d in BASES if d.get("kind") == "PostTrainingRun")
    bad = mutate(bad, ("spec", "training", "lr"), "set", float("nan"))
    path = tmp_path / "nan-lr.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = invoke(["validate", str(path)])
    assert result.code == 2 and "spec.training.lr" in result.err, result
