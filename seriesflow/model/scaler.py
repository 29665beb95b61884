"""The per-series scaler: how values map to what the model sees, and back (pure).

Two layers, both fit on each series' *training part only* (the seed fit its
scaler on all data, which leaks the test range into training):

1. An affine map per series and feature, ``scaled = (value - center) / scale``,
   applied to the whole series by normalize and saved as ``scaler.json``.
2. A per-window map of the target feature (``normalize.method``), applied when a
   window is fed to the model:

   - ``minmax``: none; the affine map is MinMax on the training range. A series
     that later leaves that range feeds the network values it never saw.
   - ``last_value``: inputs and targets minus the window's last input value, so the
     model predicts the change from the last value (an untrained model with a zero
     head *is* the naive forecast); the affine scale is the standard deviation of
     the training part's one-step changes. Robust to level and trend.
   - ``window``: inputs and targets standardized by the window's own mean and
     standard deviation (instance normalization, as RevIN and NeuralForecast's
     temporal scalers); the model's output is mapped back by the same statistics.
   - ``seasonal_log`` (the default; Smyl's ES-RNN preprocessing, the M4 winner's): each
     series is divided by its multiplicative seasonal indices (classical decomposition
     on the training part, only where a 90% autocorrelation test finds seasonality) and
     logged; windows are then taken relative to their last input, as ``last_value``, so
     the model predicts log-ratios to the last deseasonalized level. The indices continue
     on the calendar (a season slot is a grid position counted from 1970 modulo the
     season length), so a forecast re-seasonalizes its own future steps. A series with a
     value <= 0 cannot be logged: it is scaled as ``last_value`` instead (said in
     ``scaler.json``: ``logged`` false).

Covariates always use MinMax (they are inputs, never forecast). Every stage and
flow that feeds the model or reads its outputs goes through this module, so
training, evaluation, the champion re-score and forecasts scale alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seriesflow.data.frequency import Frequency
from seriesflow.model.features import FeatureSpec
from seriesflow.workspace.files import read_json

MINMAX, LAST_VALUE, WINDOW = "minmax", "last_value", "window"
SEASONAL_LOG = "seasonal_log"
METHODS = (MINMAX, LAST_VALUE, WINDOW, SEASONAL_LOG)
# Windows relative to their last input value (the model predicts changes from it).
RELATIVE = (LAST_VALUE, SEASONAL_LOG)
EPOCH = np.datetime64("1970-01-01T00:00:00", "us")  # where season slots are counted from
SCALER_KIND = "affine"
# Smallest window spread (in scaled units) for the window method: a flat window is not
# blown up into noise.
MIN_WINDOW_SPREAD = 0.05


def fit_affine(train: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale) [features] from a series' training part [steps, features].

    Feature 0 is the target: MinMax for ``minmax``, else mean and the standard
    deviation of one-step changes (falling back to the values' spread, then 1).
    The other features (covariates) are MinMax.
    """
    train = np.asarray(train, dtype=float)
    low, high = train.min(axis=0), train.max(axis=0)
    center, scale = low.copy(), np.where(high - low == 0, 1.0, high - low)
    if method != MINMAX:
        target = train[:, 0]
        changes = np.diff(target)
        spread = float(changes.std()) if len(changes) > 1 else 0.0
        if not math.isfinite(spread) or spread <= 0:
            spread = float(target.std()) if len(target) > 1 else 0.0
        center[0] = float(target.mean())
        scale[0] = spread if math.isfinite(spread) and spread > 0 else 1.0
    return center, scale


@dataclass(frozen=True)
class Scaler:
    """Per-series affine maps for each feature column (target first), and the window method."""

    columns: list[str]
    center: dict[str, list[float]]
    scale: dict[str, list[float]]
    frequency: dict[str, str]  # pandas offset alias per series ('h', 'MS', 'B', ...)
    val_start: dict[str, str]
    test_start: dict[str, str]
    # mean/sd/n of the value on each series' training part: the drift reference
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    method: str = MINMAX
    # seasonal_log: per series, the multiplicative index of each season slot ([] = none),
    # and whether its target is logged (False: scaled as last_value)
    seasonal: dict[str, list[float]] = field(default_factory=dict)
    logged: dict[str, bool] = field(default_factory=dict)
    # the FeatureSpec (seriesflow/model/features.py) that built ``columns``; {} before it
    covariates: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_spec(self) -> FeatureSpec:
        """How ``columns`` are built from a series' rows (the value and past covariates
        only for a scaler written before feature specs)."""
        if self.covariates:
            return FeatureSpec.from_json(self.covariates)
        return FeatureSpec.of_columns(self.columns)

    @property
    def series(self) -> list[str]:
        return list(self.center)

    def frequency_of(self, series_id: str) -> Frequency:
        return Frequency(self.frequency[series_id])

    def affine(self, series_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(center, scale) per feature of one series: ``scaled = (value - center) / scale``."""
        if series_id not in self.center:
            raise KeyError(f"series '{series_id}' was not in the training data of this scaler")
        center = np.asarray(self.center[series_id], dtype=float)
        scale = np.asarray(self.scale[series_id], dtype=float)
        return center, np.where(scale == 0, 1.0, scale)

    def transform(self, series_id: str, values: np.ndarray) -> np.ndarray:
        """``values``: [..., features] in original units -> scaled."""
        center, scale = self.affine(series_id)
        return (values - center) / scale

    def inverse(self, series_id: str, values: np.ndarray, feature: int = 0) -> np.ndarray:
        """Scaled values of one feature (default: the target) back to original units."""
        center, scale = self.affine(series_id)
        return values * scale[feature] + center[feature]

    def inverse_all(self, series_id: str, values: np.ndarray) -> np.ndarray:
        """Scaled [..., features] back to original units (every feature)."""
        center, scale = self.affine(series_id)
        return values * scale + center

    # ------------------------------------------------------------------ seasons, logs

    def slots(self, series_id: str, times: np.ndarray) -> np.ndarray:
        """Season slot [n] of each timestamp: its calendar grid position mod the season."""
        index = self.seasonal.get(series_id) or []
        if len(index) <= 1:
            return np.zeros(len(times), dtype=np.int64)
        positions, _ = self.frequency_of(series_id).positions(
            np.asarray(times, dtype="datetime64[us]"), origin=EPOCH
        )
        return positions % len(index)

    def factors(self, series_id: str, times: np.ndarray) -> np.ndarray:
        """Multiplicative seasonal factor [n] at each timestamp (1 without seasonality)."""
        index = self.seasonal.get(series_id) or []
        if len(index) <= 1:
            return np.ones(len(times))
        return np.asarray(index, dtype=float)[self.slots(series_id, times)]

    def to_model(self, series_id: str, values: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Original values [n, features] at ``times`` [n] -> what the model reads (scaled)."""
        values = np.array(values, dtype=float, copy=True)
        if self.logged.get(series_id):
            values[..., 0] = np.log(values[..., 0] / self.factors(series_id, times))
        return self.transform(series_id, values)

    def restore(
        self, series_ids: np.ndarray, scaled: np.ndarray, origin_times: np.ndarray
    ) -> np.ndarray:
        """Scaled forecasts [w, steps] made at ``origin_times`` [w] -> original units.

        Step k of window i is the k-th grid point after its origin: its seasonal factor
        continues the calendar, whether or not that time has been observed.
        """
        scaled = np.asarray(scaled, dtype=float)
        out = np.empty_like(scaled)
        steps = scaled.shape[1]
        series_ids = np.asarray(series_ids).astype(str)
        for sid in np.unique(series_ids):
            mask = series_ids == sid
            values = self.inverse(sid, scaled[mask])
            if self.logged.get(sid):
                index = self.seasonal.get(sid) or []
                if len(index) > 1:
                    first = self.slots(sid, np.asarray(origin_times)[mask])  # [w]
                    slot = (first[:, None] + np.arange(1, steps + 1)[None, :]) % len(index)
                    values = np.exp(values) * np.asarray(index, dtype=float)[slot]
                else:
                    values = np.exp(values)
            out[mask] = values
        return out

    # ------------------------------------------------------------------ windows

    def window_inputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scaled windows [w, timesteps, features] -> model inputs and each window's
        (loc, spread) [w], which map the model's outputs back (``window_outputs``)."""
        x = np.asarray(x, dtype=np.float32)
        count = len(x)
        loc, spread = np.zeros(count, np.float32), np.ones(count, np.float32)
        if self.method in RELATIVE:
            loc = x[:, -1, 0].copy()
        elif self.method == WINDOW:
            loc = x[:, :, 0].mean(axis=1)
            spread = np.maximum(x[:, :, 0].std(axis=1), MIN_WINDOW_SPREAD).astype(np.float32)
        if self.method != MINMAX:
            x = x.copy()
            x[:, :, 0] = (x[:, :, 0] - loc[:, None]) / spread[:, None]
        return x, loc, spread

    def window_targets(self, y: np.ndarray, loc: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """Scaled targets [w, horizon] -> what the model learns."""
        return ((np.asarray(y, dtype=np.float32) - loc[:, None]) / spread[:, None]).astype(
            np.float32
        )

    def window_outputs(self, p: np.ndarray, loc: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """Model outputs [w, horizon] -> scaled forecasts (the inverse of window_targets)."""
        return np.asarray(p, dtype=float) * spread[:, None] + loc[:, None]

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": SCALER_KIND,
            "method": self.method,
            "columns": self.columns,
            "series": {
                sid: {
                    "center": self.center[sid],
                    "scale": self.scale[sid],
                    "frequency": self.frequency[sid],
                    "val_start": self.val_start[sid],
                    "test_start": self.test_start[sid],
                    **({"stats": self.stats[sid]} if sid in self.stats else {}),
                    **({"seasonal": self.seasonal[sid]} if self.seasonal.get(sid) else {}),
                    **({"logged": True} if self.logged.get(sid) else {}),
                }
                for sid in self.center
            },
            **({"covariates": self.covariates} if self.covariates else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scaler:
        kind = data.get("kind")
        series = data["series"]
        if kind == "minmax":  # written before frequencies and window methods existed
            return cls(
                columns=list(data["columns"]),
                center={k: v["min"] for k, v in series.items()},
                scale={
                    k: [hi - lo for lo, hi in zip(v["min"], v["max"], strict=True)]
                    for k, v in series.items()
                },
                frequency={k: _legacy_frequency(v.get("step_seconds")) for k, v in series.items()},
                val_start={k: v["val_start"] for k, v in series.items()},
                test_start={k: v["test_start"] for k, v in series.items()},
                stats={k: v["stats"] for k, v in series.items() if "stats" in v},
                method=MINMAX,
            )
        if kind != SCALER_KIND:
            raise ValueError(f"unknown scaler kind {kind!r}; expected '{SCALER_KIND}'")
        method = data.get("method", MINMAX)
        if method not in METHODS:
            raise ValueError(f"unknown normalize.method {method!r} in scaler; one of {METHODS}")
        return cls(
            columns=list(data["columns"]),
            center={k: v["center"] for k, v in series.items()},
            scale={k: v["scale"] for k, v in series.items()},
            frequency={k: v["frequency"] for k, v in series.items()},
            val_start={k: v["val_start"] for k, v in series.items()},
            test_start={k: v["test_start"] for k, v in series.items()},
            stats={k: v["stats"] for k, v in series.items() if "stats" in v},
            method=method,
            seasonal={k: v["seasonal"] for k, v in series.items() if v.get("seasonal")},
            logged={k: True for k, v in series.items() if v.get("logged")},
            covariates=dict(data.get("covariates") or {}),
        )

    @classmethod
    def load(cls, path: str | Path) -> Scaler:
        return cls.from_json(read_json(path))


def _legacy_frequency(step_seconds: float | None) -> str:
    import pandas as pd

    if step_seconds is None or not math.isfinite(step_seconds) or step_seconds <= 0:
        return "h"
    return Frequency.of_step(pd.Timedelta(seconds=step_seconds)).code


def seasonal_indices(values: np.ndarray, slots: np.ndarray, season: int) -> list[float]:
    """Multiplicative seasonal indices [season] of a positive series, or [] when none.

    Classical decomposition, as the Theta method and the M4 benchmarks deseasonalize:
    a centred moving average of one season (2 x m for even m) gives the trend, each
    value's ratio to it is averaged per season slot (``slots`` [n], the calendar slot
    of each value), and the indices are normalized to mean 1. Applied only where the
    90% autocorrelation test finds seasonality (``seasonal_strength_test``), with at
    least three seasons of data; [] otherwise.
    """
    from seriesflow.model.classical import seasonal_strength_test

    values = np.asarray(values, dtype=float)
    n = len(values)
    if season <= 1 or n < 3 * season or (values <= 0).any() or not np.isfinite(values).all():
        return []
    if not seasonal_strength_test(values, season):
        return []
    weights = np.ones(season + 1 if season % 2 == 0 else season)
    if season % 2 == 0:
        weights[0] = weights[-1] = 0.5
    weights /= season
    trend = np.convolve(values, weights, mode="valid")  # [n - len(weights) + 1]
    offset = (len(weights) - 1) // 2
    ratio = values[offset : offset + len(trend)] / trend
    slot = np.asarray(slots)[offset : offset + len(trend)] % season
    total = np.bincount(slot, weights=ratio, minlength=season)
    count = np.bincount(slot, minlength=season)
    if (count == 0).any():
        return []
    index = total / count
    index = index / index.mean()
    if not np.isfinite(index).all() or (index <= 0).any():
        return []
    return [float(v) for v in index]


def seasonal_log_fit(
    scaler_method: str, values: np.ndarray, slots: np.ndarray, season: int
) -> tuple[list[float], bool]:
    """(indices, logged) of one series' training part for ``normalize.method``.

    Only ``seasonal_log`` deseasonalizes and logs, and only a series whose training values
    are all > 0 (a log needs them); anything else is scaled as ``last_value``.
    """
    values = np.asarray(values, dtype=float)
    if scaler_method != SEASONAL_LOG or not len(values) or (values <= 0).any():
        return [], False
    return seasonal_indices(values, slots, season), True
