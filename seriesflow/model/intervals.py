"""Prediction intervals from residuals the model never trained on (split conformal, pure).

For each series and forecast step k, the interval at level L is the forecast
+- q, where q is the ceil((n + 1) * L)-th smallest absolute residual of that
series at step k among the calibration forecasts (split-conformal prediction:
with exchangeable errors, the interval covers the truth with probability >= L).
A series with too few residuals for a level (n < 1 / (1 - L) - 1) borrows the
pooled quantile of every series' residuals in units of its own scale (the
in-sample seasonal-naive MAE), multiplied by its scale. Steps beyond those
calibrated widen with the square root of the step (a random walk's growth).

Calibration residuals come from validation (and, for the registered model, test)
windows: periods the model never fit. ``coverage`` measures how often actuals
fall inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.data.schema import SERIES_ID

DEFAULT_LEVELS = (80, 95)


def conformal_quantile(residuals: np.ndarray, level: float) -> float:
    """The split-conformal quantile of |residuals| at ``level`` (0-1); inf if too few."""
    values = np.abs(np.asarray(residuals, dtype=float))
    values = np.sort(values[np.isfinite(values)])
    n = len(values)
    rank = math.ceil((n + 1) * level)
    return float(values[rank - 1]) if 0 < rank <= n else math.inf


@dataclass(frozen=True)
class Intervals:
    """Half-widths per series, level and step; pooled ones in scale units as a fallback."""

    levels: list[int]  # percent, e.g. [80, 95]
    steps: int  # steps calibrated
    half_width: dict[str, dict[str, list[float]]]  # series -> str(level) -> [steps]
    pooled: dict[str, list[float]]  # str(level) -> [steps], in units of a series' scale
    scale: dict[str, float]  # series -> scale (MASE denominator)
    calibrated_on: str = ""
    coverage: dict[str, float] = field(default_factory=dict)  # str(level) -> measured

    def widths(self, series_id: str, level: int, steps: int) -> np.ndarray:
        """Half-widths [steps] for one series (pooled, then widened, where not calibrated)."""
        key = str(level)
        own = self.half_width.get(series_id, {}).get(key, [])
        scale = self.scale.get(series_id, math.nan)
        out = np.full(steps, math.nan)
        for k in range(steps):
            value = own[k] if k < len(own) else math.inf
            if not math.isfinite(value) and k < len(self.pooled.get(key, [])):
                value = self.pooled[key][k] * scale
            out[k] = value
        calibrated = min(self.steps, steps)
        if steps > calibrated and calibrated > 0:  # beyond the calibrated steps: sqrt growth
            last = out[calibrated - 1]
            k = np.arange(calibrated + 1, steps + 1)
            out[calibrated:] = last * np.sqrt(k / calibrated)
        return out

    def width_rows(self, series_ids: np.ndarray, level: int, steps: int) -> np.ndarray:
        """``widths`` for each row's series [rows, steps], computed once per series."""
        ids = np.asarray(series_ids).astype(str)
        if not len(ids):
            return np.empty((0, steps))
        unique, inverse = np.unique(ids, return_inverse=True)
        return np.vstack([self.widths(str(s), level, steps) for s in unique])[inverse]

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "split conformal: |residual| quantile per series and step",
            "levels": self.levels,
            "steps": self.steps,
            "half_width": self.half_width,
            "pooled": self.pooled,
            "scale": self.scale,
            "calibrated_on": self.calibrated_on,
            "coverage": self.coverage,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Intervals:
        return cls(
            levels=[int(v) for v in data["levels"]],
            steps=int(data["steps"]),
            half_width=data["half_width"],
            pooled=data["pooled"],
            scale={k: float(v) for k, v in data["scale"].items()},
            calibrated_on=data.get("calibrated_on", ""),
            coverage=data.get("coverage", {}),
        )


def group_quantiles(groups: np.ndarray, values: np.ndarray, count: int, level: float) -> np.ndarray:
    """``conformal_quantile`` of |values| within each group 0..count-1 [count], in one sort
    (inf for a group with too few finite values)."""
    return group_quantiles_at(groups, values, count, [level])[0]


FEW_GROUPS = 1024  # up to this many groups, each group's values are selected and partitioned


def group_quantiles_at(
    groups: np.ndarray, values: np.ndarray, count: int, levels: list[float], few: int = FEW_GROUPS
) -> np.ndarray:
    """``group_quantiles`` at each of ``levels`` [levels, count], from the one sort; with at
    most ``few`` groups (the pooled widths: one per step, over every window's residuals)
    a group at a time, so that no sort of every value is held (at 10M rows one took 290 MB
    at the end of evaluate, the stage's high-water). Both give the same order statistics."""
    if count <= few:
        return _few_group_quantiles_at(groups, values, count, levels)
    values = np.abs(np.asarray(values, dtype=float))
    groups = np.asarray(groups, dtype=np.int64)
    finite = np.isfinite(values)
    groups, values = groups[finite], values[finite]
    # by group, then value: the values sorted, then a stable sort by group (twice as fast
    # as np.lexsort on millions of residuals; ties may swap, the sorted values are the same)
    by_value = np.argsort(values)
    ordered = values[by_value][np.argsort(groups[by_value], kind="stable")]
    sizes = np.bincount(groups, minlength=count)[:count]
    starts = np.cumsum(sizes) - sizes
    out = np.full((len(levels), count), math.inf)
    for k, level in enumerate(levels):
        rank = np.ceil((sizes + 1) * level).astype(np.int64)  # math.ceil((n + 1) * level)
        ok = (rank > 0) & (rank <= sizes)
        out[k, ok] = ordered[starts[ok] + rank[ok] - 1]
    return out


def _few_group_quantiles_at(
    groups: np.ndarray, values: np.ndarray, count: int, levels: list[float]
) -> np.ndarray:
    """``group_quantiles_at`` one group at a time: its finite values, partitioned at the
    ranks the levels ask for."""
    values, groups = np.asarray(values, dtype=float), np.asarray(groups)
    out = np.full((len(levels), count), math.inf)
    for group in range(count):
        mine = np.abs(values[groups == group])
        mine = mine[np.isfinite(mine)]
        size = len(mine)
        # the rank as the one-sort path computes it: ceil((n + 1) * level) in float64
        rank = np.ceil((np.full(len(levels), size) + 1) * np.asarray(levels)).astype(np.int64)
        ok = (rank > 0) & (rank <= size)
        if ok.any():
            kth = rank[ok] - 1
            out[ok, group] = np.partition(mine, np.unique(kth))[kth]
    return out


def series_codes(ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct ids as str, sorted; each row's index into them) of a series-id column:
    ``np.unique(ids.astype(str), return_inverse=True)`` without sorting a string per row
    (hashed, or a categorical's codes: a residual table has a row per window and step,
    millions at scale)."""
    codes, uniques = pd.factorize(ids, sort=False)
    names = np.asarray([str(u) for u in uniques], dtype=object)
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return names[order], rank[np.asarray(codes, dtype=np.int64)]


def calibrate(
    residuals: pd.DataFrame, scale: dict[str, float], levels: list[int], steps: int, on: str
) -> Intervals:
    """Intervals from a residual table (``series_id``, ``step`` 1..steps, ``residual``): the
    conformal quantile per series and step, and pooled per step over scaled residuals."""
    codes = residual_codes(residuals, steps)  # the ids factorized once, for both
    step, scaled = scaled_residuals(codes, scale)
    half = series_half_widths(codes, levels, steps)
    return Intervals(
        list(levels), steps, half, pooled_half_widths(step, scaled, levels, steps), dict(scale), on
    )


ResidualCodes = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def residual_codes(residuals: pd.DataFrame, steps: int) -> ResidualCodes:
    """A residual table as arrays: (|residual|, step 0-based, within ``steps``, the sorted
    series ids, each row's index into them); what ``scaled_residuals`` and
    ``series_half_widths`` read, the ids factorized once for both."""
    magnitude = np.abs(residuals["residual"].to_numpy(dtype=float))
    step = residuals["step"].to_numpy(dtype=np.int64) - 1
    inside = (step >= 0) & (step < steps)
    series, code = series_codes(residuals[SERIES_ID])  # sorted, as groupby(sort=True)
    return magnitude, step, inside, series, code


def scaled_residuals(
    codes: ResidualCodes, scale: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(step 0..steps-1, |residual| / the series' MASE scale) of the rows within ``steps``
    (``residual_codes``): what the pooled half-widths are quantiles of (collected chunk by
    chunk at scale)."""
    magnitude, step, inside, series, code = codes
    divisor = np.array([scale.get(s, math.nan) for s in series], dtype=float)[code]
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero scale: not finite, left out
        scaled = magnitude / divisor
    return step[inside].astype(np.int32), scaled[inside]


def pooled_half_widths(
    step: np.ndarray, scaled: np.ndarray, levels: list[int], steps: int
) -> dict[str, list[float]]:
    """The pooled (scaled) half-width per level and step, from ``scaled_residuals``."""
    every = group_quantiles_at(step, scaled, steps, [level / 100 for level in levels])
    return {str(level): every[j].tolist() for j, level in enumerate(levels)}


def series_half_widths(
    codes: ResidualCodes, levels: list[int], steps: int
) -> dict[str, dict[str, list[float]]]:
    """Each series' own half-widths per level and step (a series' rows alone decide them),
    from ``residual_codes`` of the same ``steps``."""
    magnitude, step, inside, series, code = codes
    every = group_quantiles_at(
        (code * steps + step)[inside],
        magnitude[inside],
        len(series) * steps,
        [level / 100 for level in levels],
    ).reshape(len(levels), len(series), steps)
    half: dict[str, dict[str, list[float]]] = {}
    for j, level in enumerate(levels):
        for k, sid in enumerate(series):
            half.setdefault(str(sid), {})[str(level)] = every[j, k].tolist()
    return half


def bounds(
    forecast: np.ndarray, series_ids: np.ndarray, intervals: Intervals, level: int
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) [windows, steps] around ``forecast`` [windows, steps]."""
    steps = forecast.shape[1]
    width = intervals.width_rows(series_ids, level, steps)
    return forecast - width, forecast + width


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of finite actuals inside [lower, upper]."""
    inside = (actual >= lower) & (actual <= upper)
    known = np.isfinite(actual)
    return float(inside[known].mean()) if known.any() else math.nan
