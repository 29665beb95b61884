"""The window table: what the window stage writes and train, evaluate and tune read.

Each row of ``04_windows.parquet`` is one window: ``series_id``, ``origin_index``
(the last input step), ``target_time``, ``split``, the flattened inputs ``x``
[timesteps x features] and targets ``y`` [horizon] (+ ``label`` for
classification). The schema metadata (``WINDOWS_META``) carries timesteps,
horizon, feature names and the class vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.schema import (
    CLASSIFICATION,
    LABEL,
    ORIGIN_INDEX,
    REGRESSION,
    SERIES_ID,
    SPLIT,
    TARGET_TIME,
    X,
    Y,
)

WINDOWS_META = b"seriesflow.windows"
DIRECTION_CLASSES = ("down", "up")


def direction_labels(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """``up`` where ``values[o + horizon] > values[o]``, else ``down``: [windows] strings.

    ``values`` [steps] should be in original units: MinMax scaling keeps the order
    of values, but float32 rounding of scaled values could turn a tiny rise flat.
    """
    values = np.asarray(values, dtype=float)
    rise = values[origins + horizon] > values[origins]  # [windows]
    return np.where(rise, DIRECTION_CLASSES[1], DIRECTION_CLASSES[0]).astype(object)


@dataclass(frozen=True)
class Windows:
    """The window table loaded back into arrays."""

    x: np.ndarray  # [windows, timesteps, features]
    y: np.ndarray  # [windows, horizon]
    series_id: np.ndarray  # [windows]
    origin: np.ndarray  # [windows]
    target_time: np.ndarray  # [windows]
    split: np.ndarray  # [windows] split names
    features: list[str]
    labels: np.ndarray | None = None  # [windows] class names (classification only)
    classes: tuple[str, ...] = ()  # the label vocabulary, in output-unit order

    @property
    def task(self) -> str:
        return CLASSIFICATION if self.labels is not None else REGRESSION

    @property
    def codes(self) -> np.ndarray:
        """Class indexes [windows] (into ``classes``) of a classification window set."""
        if self.labels is None:
            raise ValueError("these windows carry no class labels (train.task is regression)")
        return np.searchsorted(np.asarray(self.classes, dtype=object), self.labels)

    @property
    def targets(self) -> np.ndarray:
        """What a model learns: [windows, horizon] values, or [windows] class indexes."""
        return self.codes if self.task == CLASSIFICATION else self.y

    def select(self, mask: np.ndarray) -> Windows:
        return Windows(
            self.x[mask],
            self.y[mask],
            self.series_id[mask],
            self.origin[mask],
            self.target_time[mask],
            self.split[mask],
            self.features,
            None if self.labels is None else self.labels[mask],
            self.classes,
        )

    def subset(self, split: str) -> Windows:
        return self.select(self.split == split)

    def __len__(self) -> int:
        return len(self.y)


def windows_from_table(table: pa.Table) -> Windows:
    """The arrays of a window table (as written by the window stage)."""
    meta = json.loads(table.schema.metadata[WINDOWS_META])
    t, h, features = meta["timesteps"], meta["horizon"], meta["features"]
    n = table.num_rows
    x = table[X].combine_chunks().flatten().to_numpy().reshape(n, t, len(features))
    y = table[Y].combine_chunks().flatten().to_numpy().reshape(n, h)
    labels = None
    if LABEL in table.column_names:
        labels = table[LABEL].to_numpy(zero_copy_only=False).astype(object)
    return Windows(
        x=x,  # [windows, timesteps, features]
        y=y,  # [windows, horizon]
        series_id=table[SERIES_ID].to_numpy(zero_copy_only=False).astype(object),
        origin=table[ORIGIN_INDEX].to_numpy(),
        target_time=table[TARGET_TIME].to_pandas().to_numpy(),
        split=table[SPLIT].to_numpy(zero_copy_only=False).astype(object),
        features=list(features),
        labels=labels,
        classes=tuple(meta.get("classes", ())),
    )


def load_windows(path: str | Path) -> Windows:
    return windows_from_table(pq.read_table(path))
