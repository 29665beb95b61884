"""The per-series scaler: how values map to the [0, 1] range the model sees, and back.

Fit by normalize on each series' training part only (see ``tasks/normalize.py``),
saved as ``scaler.json`` beside the model, and used by every stage and flow that
feeds the model or reads its outputs (evaluate, the champion re-score, forecasts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tasks.io import read_json

FEATURE_RANGE = (0.0, 1.0)
SCALER_KIND = "minmax"


@dataclass(frozen=True)
class Scaler:
    """Per-series MinMax parameters for each feature column (value first)."""

    columns: list[str]
    minimum: dict[str, list[float]]
    maximum: dict[str, list[float]]
    val_start: dict[str, str]
    test_start: dict[str, str]
    step_seconds: dict[str, float]
    # mean/sd/n of the value on each series' training part: the drift reference
    stats: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def series(self) -> list[str]:
        return list(self.minimum)

    def bounds(self, series_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(low, span) per feature of one series: ``scaled = (value - low) / span``."""
        if series_id not in self.minimum:
            raise KeyError(f"series '{series_id}' was not in the training data of this scaler")
        low = np.asarray(self.minimum[series_id], dtype=float)
        span = np.asarray(self.maximum[series_id], dtype=float) - low
        # A constant training part is rejected by validation; guard anyway.
        return low, np.where(span == 0, 1.0, span)

    def transform(self, series_id: str, values: np.ndarray) -> np.ndarray:
        """``values``: [..., features] in original units -> [0, 1] on the training range."""
        low, span = self.bounds(series_id)
        return (values - low) / span

    def inverse(self, series_id: str, values: np.ndarray, feature: int = 0) -> np.ndarray:
        """Scaled values of one feature (default: the target) back to original units."""
        low, span = self.bounds(series_id)
        return values * span[feature] + low[feature]

    def inverse_all(self, series_id: str, values: np.ndarray) -> np.ndarray:
        """Scaled [..., features] back to original units (every feature)."""
        low, span = self.bounds(series_id)
        return values * span + low

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": SCALER_KIND,
            "feature_range": list(FEATURE_RANGE),
            "columns": self.columns,
            "series": {
                sid: {
                    "min": self.minimum[sid],
                    "max": self.maximum[sid],
                    "val_start": self.val_start[sid],
                    "test_start": self.test_start[sid],
                    "step_seconds": self.step_seconds[sid],
                    **({"stats": self.stats[sid]} if sid in self.stats else {}),
                }
                for sid in self.minimum
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scaler:
        if data.get("kind") != SCALER_KIND:
            raise ValueError(f"unknown scaler kind {data.get('kind')!r}; expected 'minmax'")
        series = data["series"]
        return cls(
            columns=list(data["columns"]),
            minimum={k: v["min"] for k, v in series.items()},
            maximum={k: v["max"] for k, v in series.items()},
            val_start={k: v["val_start"] for k, v in series.items()},
            test_start={k: v["test_start"] for k, v in series.items()},
            step_seconds={k: v["step_seconds"] for k, v in series.items()},
            stats={k: v["stats"] for k, v in series.items() if "stats" in v},
        )

    @classmethod
    def load(cls, path: str | Path) -> Scaler:
        return cls.from_json(read_json(path))
