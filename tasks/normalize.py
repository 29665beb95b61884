"""Normalize: fill short gaps, split each series in time, MinMax-scale per series.

The scaler is fit on each series' *training part only* (the seed fit it on all
data, which leaks the test range into training) and saved as JSON next to the
model, so a forecast can be scaled and un-scaled exactly as in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from tasks.config import PipelineConfig, SplitConfig
from tasks.io import RunDir, read_json, read_parquet, write_json, write_parquet
from tasks.runtime import stage_logger
from tasks.schema import (
    FILLED,
    LABEL,
    SERIES_ID,
    SPLIT,
    SPLITS,
    TEST,
    TIMESTAMP,
    TRAIN,
    VAL,
    VALUE,
    VALUE_ORIGINAL,
    normalized_schema,
)
from tasks.validate import step_of

FEATURE_RANGE = (0.0, 1.0)


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

    def _bounds(self, series_id: str) -> tuple[np.ndarray, np.ndarray]:
        if series_id not in self.minimum:
            raise KeyError(f"series '{series_id}' was not in the training data of this scaler")
        low = np.asarray(self.minimum[series_id], dtype=float)
        span = np.asarray(self.maximum[series_id], dtype=float) - low
        # A constant training part is rejected by validation; guard anyway.
        return low, np.where(span == 0, 1.0, span)

    def transform(self, series_id: str, values: np.ndarray) -> np.ndarray:
        """``values``: [..., features] in original units -> [0, 1] on the training range."""
        low, span = self._bounds(series_id)
        return (values - low) / span

    def inverse(self, series_id: str, values: np.ndarray, feature: int = 0) -> np.ndarray:
        """Scaled values of one feature (default: the target) back to original units."""
        low, span = self._bounds(series_id)
        return values * span[feature] + low[feature]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "minmax",
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
        if data.get("kind") != "minmax":
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


def split_sizes(n: int, cfg: SplitConfig) -> tuple[int, int, int]:
    """(train, val, test) point counts of a series of ``n`` points, in that order."""
    n_test = max(1, math.floor(n * cfg.test_fraction))
    n_val = max(1, math.floor(n * cfg.val_fraction))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(f"a series of {n} points cannot be split into train/val/test")
    return n_train, n_val, n_test


def fill_short_gaps(
    group: pd.DataFrame, step: pd.Timedelta | None, columns: list[str]
) -> pd.DataFrame:
    """Put one series on its regular grid; interpolate the missing steps in time.

    Validation has already rejected gaps longer than the tolerance; this fills
    the rest (and NaN values up to the configured null fraction).
    """
    group = group.sort_values(TIMESTAMP).set_index(TIMESTAMP)
    if step is not None:
        grid = pd.date_range(group.index[0], group.index[-1], freq=step)
        group = group.reindex(grid)
    filled = group[columns].isna().any(axis=1)
    group[columns] = group[columns].interpolate(method="time", limit_direction="both")
    if LABEL in group:
        group[LABEL] = group[LABEL].ffill()  # a filled step keeps the class it was in
    group[FILLED] = filled.to_numpy()
    group.index.name = TIMESTAMP
    return group.reset_index()


def normalize_series(frame: pd.DataFrame, config: PipelineConfig) -> tuple[pd.DataFrame, Scaler]:
    """Scaled long frame (+ ``value_original``, ``split``, ``filled``) and its scaler."""
    features = [VALUE, *config.columns.covariates]
    parts, minimum, maximum, val_start, test_start, steps, stats = [], {}, {}, {}, {}, {}, {}
    for series_id, group in frame.groupby(SERIES_ID, sort=True):
        step = step_of(group[TIMESTAMP], config.validation.frequency)
        group = fill_short_gaps(group.drop(columns=[SERIES_ID]), step, features)
        n_train, n_val, n_test = split_sizes(len(group), config.split)
        labels = np.repeat(np.array(SPLITS), [n_train, n_val, n_test])
        raw = group[features].to_numpy(dtype=float)  # [n, features]
        train = raw[:n_train]
        low, high = train.min(axis=0), train.max(axis=0)
        span = np.where(high - low == 0, 1.0, high - low)
        scaled = (raw - low) / span
        out = pd.DataFrame(scaled, columns=features)
        out.insert(0, TIMESTAMP, group[TIMESTAMP].to_numpy())
        out.insert(0, SERIES_ID, series_id)
        out[VALUE_ORIGINAL] = raw[:, 0]
        out[SPLIT] = labels
        out[FILLED] = group[FILLED].to_numpy()
        if LABEL in group:
            out[LABEL] = group[LABEL].to_numpy()  # class names, never scaled
        parts.append(out)
        sid = str(series_id)
        minimum[sid], maximum[sid] = low.tolist(), high.tolist()
        times = group[TIMESTAMP]
        val_start[sid] = times.iloc[n_train].isoformat()
        test_start[sid] = times.iloc[n_train + n_val].isoformat()
        steps[sid] = step.total_seconds() if step is not None else math.nan
        train_values = train[:, 0]
        stats[sid] = {
            "mean": float(train_values.mean()),
            "sd": float(train_values.std(ddof=1)) if len(train_values) > 1 else 0.0,
            "n": int(len(train_values)),
        }
    normalized = pd.concat(parts, ignore_index=True)
    return normalized, Scaler(features, minimum, maximum, val_start, test_start, steps, stats)


@task(name="normalize", cache_policy=NONE)
def normalize(validated: Path, run: RunDir, config: PipelineConfig) -> Path:
    logger = stage_logger()
    frame = read_parquet(validated)
    normalized, scaler = normalize_series(frame, config)
    schema = normalized_schema(config.columns.covariates, label=config.columns.label is not None)
    write_parquet(normalized, run.normalized, schema)
    write_json(scaler.to_json(), run.scaler)
    counts = normalized[SPLIT].value_counts().to_dict()
    logger.info(
        "Normalized %d series (MinMax fit on train only): %d train / %d val / %d test points, "
        "%d filled",
        len(scaler.minimum),
        counts.get(TRAIN, 0),
        counts.get(VAL, 0),
        counts.get(TEST, 0),
        int(normalized[FILLED].sum()),
    )
    return run.normalized
