"""Results-table input: loading, validation (one-line UserErrors), scale ordering, and the
per-(scale, domain) cells the statistics run on.

Contract (DESIGN.md §4): columns ``algorithm, scale, domain, seed, metric, value`` are
required; ``n_items`` and the rest are optional. A per-item file (JSON lines
``{algorithm, scale, domain, seed, item_id, score}``) turns each (algorithm, seed) value into a
row of item scores, so comparisons can be paired on the same items.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ptlab.errors import UserError

REQUIRED = ("algorithm", "scale", "domain", "seed", "metric", "value")
ITEM_KEYS = ("algorithm", "scale", "domain", "seed", "item_id", "score")
_KEY = ["algorithm", "scale", "domain", "seed"]
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_NUM = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([kKmMbBgGtT]?)")


@dataclass(frozen=True)
class Cell:
    """One (scale, domain): per algorithm a [seeds, items] score matrix (items = 1 without a
    per-item file). All algorithms share the same item columns, in the same order."""

    scale: str
    domain: str
    algorithms: tuple[str, ...]
    seeds: tuple[tuple[str, ...], ...]
    scores: tuple[np.ndarray, ...]

    @property
    def paired_seeds(self) -> bool:
        """True when every algorithm ran exactly the same seeds (seed resampling is joint)."""
        return all(s == self.seeds[0] for s in self.seeds)

    @property
    def n_items(self) -> int:
        """Item columns per matrix (1 when only per-seed values are known)."""
        return int(self.scores[0].shape[1])


@dataclass(frozen=True)
class Prepared:
    """A validated table for one metric, ready for analysis."""

    metric: str
    scales: tuple[str, ...]
    domains: tuple[str, ...]
    cells: tuple[Cell, ...]
    nan_dropped: int
    notes: tuple[str, ...]


def scale_key(name: str) -> tuple[int, float, str]:
    """Sort key from a numeric parse of a scale name: '0.5B' < '1.5B' < '7B' < '70B',
    '125M' < '1B', 's1' < 's2' < 's10'; names without a number sort last, alphabetically."""
    m = _NUM.search(name)
    if m is None:
        return (1, 0.0, name)
    return (0, float(m.group(1)) * _SUFFIX[m.group(2).lower()], name)


def order_scales(present: Sequence[str], scale_order: Sequence[str] | None) -> tuple[str, ...]:
    """Scales in analysis order: the explicit order (which must name every present scale,
    extra names are ignored) or the numeric parse of the names."""
    if not scale_order:
        return tuple(sorted(present, key=scale_key))
    missing = sorted(set(present) - set(scale_order), key=scale_key)
    if missing:
        raise UserError(
            f"scale_order does not list scale(s) {', '.join(map(repr, missing))} found in the "
            "table",
            "add them to --scale-order / scale_order",
        )
    return tuple(s for s in dict.fromkeys(scale_order) if s in set(present))


def read_results(path: Path) -> pd.DataFrame:
    """Read a results CSV (all columns as read by pandas); missing/unreadable file → UserError."""
    if not path.is_file():
        raise UserError(f"results file {str(path)!r} does not exist", "pass a results.csv path")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"results file {str(path)!r} is not a readable CSV: {first}") from err
    if not isinstance(table.index, pd.RangeIndex):  # pandas made extra fields an index
        raise UserError(
            f"results file {str(path)!r} has rows with more fields than its header",
            "quote values that contain commas",
        )
    return table


def read_items(path: Path) -> pd.DataFrame:
    """Read a per-item JSON-lines file; a bad line or missing key → UserError naming the line."""
    if not path.is_file():
        raise UserError(f"items file {str(path)!r} does not exist", "pass an items .jsonl path")
    rows = []
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"items file line {lineno}: invalid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise UserError(f"items file line {lineno}: expected a JSON object")
            missing = [k for k in ITEM_KEYS if k not in row]
            if missing:
                raise UserError(
                    f"items file line {lineno}: missing key(s) {', '.join(missing)}",
                    f"each line needs {', '.join(ITEM_KEYS)}",
                )
            rows.append({k: row[k] for k in ITEM_KEYS})
    return pd.DataFrame(rows, columns=list(ITEM_KEYS))


def _numeric(df: pd.DataFrame, column: str, what: str) -> tuple[pd.Series, int]:
    """Column as float; a non-numeric entry → UserError naming row and value; NaN count back."""
    raw = df[column]
    num = pd.to_numeric(raw, errors="coerce")
    suspect = num.isna() & raw.notna()
    if suspect.any():
        text = raw[suspect].astype(str).str.strip()
        bad = text[(text != "") & ~text.str.lower().isin({"nan", "none", "null", "na"})]
        if not bad.empty:
            idx = bad.index[0]
            raise UserError(
                f"{what} column {column!r} has a non-numeric entry {raw[idx]!r} (row {idx})",
                "values must be numbers; leave a cell empty for a missing result",
            )
    return num.astype(float), int(num.isna().sum())


def _labels(df: pd.DataFrame, columns: Sequence[str] = tuple(_KEY)) -> pd.DataFrame:
    """Key columns as strings (seed 0, 0.0 and '0' are the same seed)."""
    out = df.copy()
    for col in columns:
        values = out[col]
        if pd.api.types.is_float_dtype(values) and values.notna().all():
            whole = (values == values.round()).all()
            values = values.astype("int64") if whole else values
        out[col] = values.astype(str)
    return out


def validate_results(table: pd.DataFrame, metric: str | None) -> tuple[pd.DataFrame, str, int]:
    """Check the contract and select one metric → (rows [algorithm, scale, domain, seed, value],
    metric, NaN rows dropped)."""
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise UserError(
            f"results table is missing column(s) {', '.join(map(repr, missing))}",
            f"required: {', '.join(REQUIRED)}",
        )
    if table.empty:
        raise UserError("results table has no rows")
    null_keys = table[[*_KEY, "metric"]].isna().any(axis=1)
    if null_keys.any():
        idx = null_keys.idxmax()
        col = next(c for c in [*_KEY, "metric"] if pd.isna(table.loc[idx, c]))
        raise UserError(f"results table row {idx} has an empty {col!r}")
    metrics = sorted(table["metric"].astype(str).unique())
    if metric is None:
        if len(metrics) > 1:
            raise UserError(
                f"results table has several metrics ({', '.join(metrics)})",
                "choose one with --metric / metric=",
            )
        metric = metrics[0]
    elif metric not in metrics:
        raise UserError(f"metric {metric!r} is not in the table", f"found: {', '.join(metrics)}")
    rows = _labels(table[table["metric"].astype(str) == metric])
    values, n_nan = _numeric(rows, "value", "results table")
    rows = rows.assign(value=values).dropna(subset=["value"])
    dup = rows.duplicated(subset=_KEY, keep=False)
    if dup.any():
        first = rows[dup].iloc[0]
        raise UserError(
            "results table has duplicate rows for "
            f"(algorithm, scale, domain, seed)=({', '.join(str(first[c]) for c in _KEY)}) "
            f"and metric {metric!r}",
            "keep one row per run, e.g. filter by params_hash",
        )
    algos = sorted(rows["algorithm"].unique())
    if len(algos) < 2:
        only = f" ({algos[0]!r})" if algos else ""
        raise UserError(
            f"only one algorithm{only} has {metric!r} results: a comparison needs at least two"
        )
    return rows[[*_KEY, "value"]].reset_index(drop=True), metric, n_nan


def _cell_from_items(scale: str, domain: str, items: pd.DataFrame) -> tuple[Cell, str | None]:
    """Cell from per-item scores, restricted to items scored for every (algorithm, seed)."""
    wide = items.pivot(index=["algorithm", "seed"], columns="item_id", values="score")
    shared = wide.columns[wide.notna().all(axis=0)].sort_values()
    note = None
    if len(shared) < wide.shape[1]:
        note = (
            f"{scale}/{domain}: {wide.shape[1] - len(shared)} item(s) not scored for every "
            "algorithm and seed were left out"
        )
    if len(shared) == 0:
        raise UserError(f"items for {scale}/{domain} share no item_id across algorithms/seeds")
    wide = wide[shared].sort_index()
    algos = tuple(str(a) for a in wide.index.get_level_values(0).unique())
    seeds = tuple(tuple(wide.loc[a].index) for a in algos)
    scores = tuple(wide.loc[a].to_numpy(dtype=float) for a in algos)
    return Cell(scale, domain, algos, seeds, scores), note


def _cell_from_values(scale: str, domain: str, algo: np.ndarray, seed: np.ndarray,
                      value: np.ndarray) -> Cell:
    """Cell from one value per (algorithm, seed), rows sorted by (algorithm, seed):
    matrices with a single item column."""
    names, starts = np.unique(algo, return_index=True)
    bounds = [*starts[1:], len(algo)]
    return Cell(
        scale, domain, tuple(str(n) for n in names),
        tuple(tuple(seed[a:b]) for a, b in zip(starts, bounds, strict=True)),
        tuple(value[a:b, None] for a, b in zip(starts, bounds, strict=True)),
    )


def _validate_items(items: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Key columns as labels, score numeric; returns rows and the count of NaN scores."""
    missing = [c for c in ITEM_KEYS if c not in items.columns]
    if missing:
        raise UserError(f"items table is missing column(s) {', '.join(map(repr, missing))}")
    out = _labels(items, (*_KEY, "item_id"))
    score, n_nan = _numeric(out, "score", "items")
    out = out.assign(score=score)
    if out.duplicated(subset=[*_KEY, "item_id"]).any():
        raise UserError("items table has duplicate (algorithm, scale, domain, seed, item_id) rows")
    return out, n_nan


def prepare(
    table: pd.DataFrame,
    *,
    metric: str | None = None,
    items: pd.DataFrame | None = None,
    scale_order: Sequence[str] | None = None,
) -> Prepared:
    """Validate the table (and items), order scales, and build one Cell per (scale, domain).

    A cell uses item scores when the items table has rows for it, else the per-seed values.
    """
    rows, metric, n_nan = validate_results(table, metric)
    notes: list[str] = []
    item_rows = None
    if items is not None:
        item_rows, n_item_nan = _validate_items(items)
        if n_item_nan:
            notes.append(f"{n_item_nan} NaN item score(s) dropped")
        item_rows = item_rows.dropna(subset=["score"])
    scales = order_scales(list(rows["scale"].unique()), scale_order)
    domains = tuple(sorted(rows["domain"].unique()))
    cells: list[Cell] = []
    rows = rows.sort_values(["scale", "domain", "algorithm", "seed"], ignore_index=True)
    algo, seed = rows["algorithm"].to_numpy(object), rows["seed"].to_numpy(object)
    value = rows["value"].to_numpy(float)
    by_cell = rows.groupby(["scale", "domain"], sort=False).indices
    by_item = {} if item_rows is None else dict(iter(item_rows.groupby(["scale", "domain"])))
    for scale in scales:
        for domain in domains:
            key = (scale, domain)
            if key in by_item:
                cell, note = _cell_from_items(scale, domain, by_item[key])
                notes.extend([note] if note else [])
            elif key in by_cell:
                at = by_cell[key]
                cell = _cell_from_values(scale, domain, algo[at], seed[at], value[at])
            else:
                continue
            if len(cell.algorithms) < 2:
                notes.append(f"{scale}/{domain}: only {cell.algorithms[0]!r}, cell skipped")
                continue
            cells.append(cell)
    if not cells:
        raise UserError(
            f"no scale/domain cell has {metric!r} results for two algorithms: nothing to compare",
            "each (scale, domain) needs rows for at least two algorithms",
        )
    if n_nan:
        notes.insert(0, f"{n_nan} NaN value row(s) dropped")
    return Prepared(metric, scales, domains, tuple(cells), n_nan, tuple(notes))
