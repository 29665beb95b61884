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
from seriesflow.workspace.files import read_json

MINMAX, LAST_VALUE, WINDOW = "minmax", "last_value", "window"
METHODS = (MINMAX, LAST_VALUE, WINDOW)
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

    # ------------------------------------------------------------------ windows

    def window_inputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scaled windows [w, timesteps, features] -> model inputs and each window's
        (loc, spread) [w], which map the model's outputs back (``window_outputs``)."""
        x = np.asarray(x, dtype=np.float32)
        count = len(x)
        loc, spread = np.zeros(count, np.float32), np.ones(count, np.float32)
        if self.method == LAST_VALUE:
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
                }
                for sid in self.center
            },
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
        )

    @classmethod
    def load(cls, path: str | Path) -> Scaler:
        return cls.from_json(read_json(path))


def _legacy_frequency(step_seconds: float | None) -> str:
    import pandas as pd

    if step_seconds is None or not math.isfinite(step_seconds) or step_seconds <= 0:
        return "h"
    return Frequency.of_step(pd.Timedelta(seconds=step_seconds)).code
