"""Registry-wide contract: every entry (offline and online) runs on a tiny random batch with finite
output of the right shape, and its metadata is consistent. Catalog names must all be registered."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import replace

import pytest
import torch

import ptlab.algorithms  # noqa: F401  (registers every entry)
from ptlab.algorithms import registry
from ptlab.algorithms.common import random_batch
from ptlab.algorithms.registry import ALIASES, FAMILIES, REGISTRY, entries, get, resolve_params
from ptlab.algorithms.types import AdvantageOutput, LossOutput

# Catalog (../shared/ALGORITHMS.md) sections "Supervised and distillation", "Reward models",
# "Paired offline preference", "Unpaired", "Reference-free": each name must resolve (entry or alias).
CATALOG_OFFLINE = [
    "sft",
    "rft",
    "dft",
    "kd_forward",
    "kd_reverse",
    "gkd",
    "on_policy_distill",
    "uld",
    "rm_bt",
    "rm_bt_margin",
    "rm_regression",
    "prm_bce",
    "dpo",
    "cdpo",
    "robust_dpo",
    "ipo",
    "hinge",
    "exo",
    "nca",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_pair",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "fdpo_alpha",
    "fdpo_js",
    "fdpo_fkl",
    "ln_dpo",
    "wpo",
    "ld_dpo",
    "r_dpo",
    "odpo",
    "dpop",
    "rpo",
    "reward_aware_po",
    "cal_dpo",
    "beta_dpo",
    "alpha_dpo",
    "tdpo",
    "tr_dpo",
    "mpo",
    "sigmoid_norm",
    "bema",
    "kto",
    "bco",
    "apo_unpaired",
    "orpo",
    "cpo",
    "simpo",
    "cpo_simpo",
    "alphapo",
    "simper",
    "slic_cal",
    # TRL DPO loss_type names and other aliases
    "sigmoid",
    "slic",
    "exo_pair",
    "nca_pair",
    "robust",
    "apo_zero_unpaired",
]
OFFLINE_FAMILIES = (
    "sft",
    "distill",
    "reward-model",
    "paired-offline",
    "unpaired-offline",
    "reference-free",
)
ALL = [s.name for s in entries()]
REF_FIELDS = ("ref_chosen_logps", "ref_rejected_logps", "ref_logps", "kl_ref_logps")


def _run(spec: registry.AlgorithmSpec, batch):  # type: ignore[no-untyped-def]
    return spec.fn(batch, resolve_params(spec.name))


@pytest.mark.parametrize("name", CATALOG_OFFLINE)
def test_catalog_name_is_registered(name):
    assert get(name).family in OFFLINE_FAMILIES


def test_offline_entry_count_and_aliases_not_counted_twice():
    offline = [s for s in entries() if s.family in OFFLINE_FAMILIES]
    assert len(offline) >= 50
    assert len({s.name for s in entries()}) == len(REGISTRY) == len(entries())
    assert not set(ALIASES) & set(REGISTRY)
    for alias, target in ALIASES.items():
        assert alias in REGISTRY[target].aliases


def _contract_cases() -> list:  # type: ignore[type-arg]
    return [pytest.param(name, size, id=f"{name}-{size}") for name in ALL for size in (1, 4)]


@pytest.mark.parametrize(("name", "size"), _contract_cases())
def test_entry_contract_finite_and_shaped(name, size):
    """Finite output of the right shape — or, for a batch of one that an entry cannot accept by
    definition (e.g. pass@k needs a group of ≥ k completions), a one-line ValueError."""
    spec = get(name)
    batch = random_batch(spec.input_kind, size, 5, seed=size)
    try:
        out = _run(spec, batch)
    except ValueError as err:
        assert size == 1 and "\n" not in str(err) and "group" in str(err), f"{name}: {err}"
        return
    if isinstance(out, AdvantageOutput):
        assert out.advantages.shape == (size, 5)
        assert torch.isfinite(out.advantages).all()
        return
    assert isinstance(out, LossOutput)
    expected = (size, 5) if out.token_level else (size,)
    assert tuple(out.loss.shape) == expected, f"{name}: loss shape {tuple(out.loss.shape)}"
    assert torch.isfinite(out.loss).all()
    for key, value in out.metrics.items():
        assert isinstance(value, torch.Tensor) and not value.requires_grad, f"{name}: metric {key}"
        assert torch.isfinite(value).all()


@pytest.mark.parametrize("name", ALL)
def test_entry_metadata_consistent(name):
    spec = get(name)
    assert spec.family in FAMILIES
    assert spec.citation.strip() and spec.formula.strip()
    assert spec.fn.__doc__ and spec.fn.__doc__.strip()
    assert dataclasses.is_dataclass(spec.params) and spec.params.__dataclass_params__.frozen  # type: ignore[attr-defined]
    for pname, (default, rng) in spec.param_ranges().items():
        assert rng.check(pname, default) is None, (
            f"{name}.{pname} default {default!r} outside its range"
        )
    json.dumps(spec.describe())  # the CLI's --json must serialise
    if spec.family in OFFLINE_FAMILIES:
        assert re.search(r"arXiv:\d{4}\.\d{4,5}|no single source|no arXiv", spec.citation), (
            spec.citation
        )


@pytest.mark.parametrize("name", [n for n in ALL if not get(n).needs_reference])
def test_entries_without_reference_run_without_it(name):
    spec = get(name)
    batch = random_batch(spec.input_kind, 3, 5)
    batch = random_batch(spec.input_kind, 4, 5)
    cleared = {f: None for f in REF_FIELDS if hasattr(batch, f)}
    out = _run(spec, replace(batch, **cleared))
    tensor = out.loss if isinstance(out, LossOutput) else out.advantages
    assert torch.isfinite(tensor).all()


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in ALL
        if get(n).family in OFFLINE_FAMILIES and (get(n).needs_reference or get(n).needs_teacher)
    ],
)
def test_offline_needs_flags_are_enforced(name):
    spec = get(name)
    batch = random_batch(spec.input_kind, 3, 5)
    field = (
        "teacher_logits" if spec.needs_teacher else next(f for f in REF_FIELDS if hasattr(batch, f))
    )
    with pytest.raises(ValueError, match=f"{field}"):
        _run(spec, replace(batch, **{field: None}))


def test_duplicate_names_and_aliases_raise_without_side_effects():
    before = (dict(REGISTRY), dict(ALIASES))

    def fn(batch, params):  # type: ignore[no-untyped-def]
        """Dummy."""

    common = dict(family="sft", input_kind="single", citation="x", formula="x")
    with pytest.raises(ValueError, match="'dpo' is registered twice"):
        registry.register("dpo", **common)(fn)
    with pytest.raises(ValueError, match="'slic' is registered twice"):
        registry.register("brand_new_entry", aliases=("slic",), **common)(fn)
    with pytest.raises(ValueError, match="'hinge' is registered twice"):
        registry.register("brand_new_entry", aliases=("hinge",), **common)(fn)
    assert (dict(REGISTRY), dict(ALIASES)) == before


@pytest.mark.parametrize(
    ("typo", "hint"), [("simpoo", "simpo"), ("dpoo", "dpo"), ("kto_", "kto"), ("orpo2", "orpo")]
)
def test_unknown_name_suggests_close_matches(typo, hint):
    with pytest.raises(registry.UnknownAlgorithmError, match=rf"did you mean .*\b{hint}\b"):
        get(typo)


def test_alias_resolves_to_entry_and_params():
    assert get("slic") is get("hinge")
    assert resolve_params("sigmoid", {"beta": 0.2}) == resolve_params("dpo", {"beta": 0.2})


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        ("dpo", {"beta": 0}, "beta=0 must be > 0"),
        ("robust_dpo", {"label_smoothing": 0.5}, "must be < 0.5"),
        ("ipo", {"logp_reduction": "median"}, "is not one of"),
        ("simpo", {"gamma_mode": "relative"}, "is not one of"),
        ("kto", {"z0": "mean"}, "is not one of"),
        ("dpo", {"betta": 0.1}, "unknown parameter 'betta'"),
        ("cdpo", {"label_smoothing": "high"}, "must be a number"),
    ],
)
def test_out_of_range_params_rejected(name, override, message):
    with pytest.raises(registry.InvalidParamError, match=re.escape(message)):
        resolve_params(name, override)
