"""Window: vectorized sliding windows per series, labelled by the time of their targets.

For a series of n steps with features ``v`` [n, features], the window with
origin index ``o`` (the last input step) is

    x = v[o - timesteps + 1 : o + 1]          # [timesteps, features]
    y = v[o + 1 : o + 1 + horizon, 0]         # [horizon]  (the target is feature 0)

and it belongs to the split of its targets: train/val/test when all of its
``horizon`` targets fall in that split; windows whose targets straddle a split
boundary are dropped, so no training target lies in the validation period.
The inputs of a test window may reach back into val/train: that is history a
forecaster has at that moment, not leakage.

For ``train.task: classification`` each window also gets a class label: the
value of ``columns.label`` at its last target step ``o + horizon``, or -- with
no label column -- the direction of change over the horizon, ``up`` when
``v[o + horizon] > v[o]`` (in original units) and ``down`` otherwise (a flat
step counts as down).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.lib.stride_tricks import sliding_window_view
from prefect import task
from prefect.cache_policies import NONE

from tasks.config import PipelineConfig, WindowConfig
from tasks.io import RunDir, read_parquet, write_table
from tasks.runtime import stage_logger
from tasks.schema import (
    LABEL,
    ORIGIN_INDEX,
    SERIES_ID,
    SPLIT,
    SPLITS,
    TARGET_TIME,
    TIMESTAMP,
    TRAIN,
    VALUE,
    VALUE_ORIGINAL,
    X,
    Y,
    windows_schema,
)

_META = b"seriesflow.windows"
REGRESSION, CLASSIFICATION = "regression", "classification"
DIRECTION_CLASSES = ("down", "up")


@dataclass(frozen=True)
class SeriesWindows:
    x: np.ndarray  # [windows, timesteps, features]
    y: np.ndarray  # [windows, horizon]
    origin: np.ndarray  # [windows] index of the last input step
    split: np.ndarray  # [windows] split code (index into SPLITS)


def make_windows(values: np.ndarray, split_codes: np.ndarray, cfg: WindowConfig) -> SeriesWindows:
    """All windows of one series. ``values`` [n, features]; ``split_codes`` [n] ints."""
    if values.ndim != 2:
        raise ValueError(f"values must be [steps, features], got shape {values.shape}")
    n, features = values.shape
    t, h = cfg.timesteps, cfg.horizon
    count = n - t - h + 1
    if count <= 0:
        empty = np.empty((0,), dtype=np.int64)
        return SeriesWindows(np.empty((0, t, features)), np.empty((0, h)), empty, empty)
    origins = np.arange(t - 1, t - 1 + count, cfg.stride)  # [windows]
    starts = origins - (t - 1)
    inputs = sliding_window_view(values, t, axis=0)  # [n - t + 1, features, t]
    x = inputs[starts].transpose(0, 2, 1)  # [windows, timesteps, features]
    targets = sliding_window_view(values[:, 0], h)  # [n - h + 1, h]
    y = targets[origins + 1]  # [windows, horizon]
    first = split_codes[origins + 1]
    last = split_codes[origins + h]
    keep = first == last
    return SeriesWindows(x[keep], y[keep], origins[keep], first[keep])


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


def windows_table(
    normalized: pd.DataFrame, features: list[str], cfg: WindowConfig, task: str = REGRESSION
) -> pa.Table:
    """Windows of every series as one Arrow table (``x`` flattened row-major).

    ``task="classification"`` adds a ``label`` column: the frame's ``label`` column
    at the last target step when it has one, else the direction of change.
    """
    if task not in (REGRESSION, CLASSIFICATION):
        raise ValueError(f"train.task must be regression or classification, got {task!r}")
    code_of = {name: i for i, name in enumerate(SPLITS)}
    classify = task == CLASSIFICATION
    from_column = classify and LABEL in normalized.columns
    parts = []
    for series_id, group in normalized.groupby(SERIES_ID, sort=True):
        values = group[features].to_numpy(dtype=np.float32)  # [n, features]
        codes = group[SPLIT].map(code_of).to_numpy()
        w = make_windows(values, codes, cfg)
        times = group[TIMESTAMP].to_numpy()
        part = {
            SERIES_ID: np.full(len(w.y), str(series_id), dtype=object),
            ORIGIN_INDEX: w.origin.astype(np.int64),
            TARGET_TIME: times[w.origin + 1],
            SPLIT: np.array(SPLITS, dtype=object)[w.split.astype(int)],
            X: w.x.reshape(len(w.y), -1).astype(np.float32),
            Y: w.y.astype(np.float32),
        }
        if from_column:
            labels = group[LABEL].to_numpy(dtype=object)[w.origin + cfg.horizon]  # [windows]
            missing = pd.isna(labels)
            if missing.any():
                row = int(w.origin[missing][0] + cfg.horizon)
                raise ValueError(
                    f"columns.label: series '{series_id}' has no label at "
                    f"{group[TIMESTAMP].iloc[row]} (the target of a window); every row "
                    "needs a class"
                )
            part[LABEL] = np.array([str(v) for v in labels], dtype=object)
        elif classify:
            original = VALUE_ORIGINAL if VALUE_ORIGINAL in group else features[0]
            part[LABEL] = direction_labels(group[original].to_numpy(), w.origin, cfg.horizon)
        parts.append(part)
    n_inputs = cfg.timesteps * len(features)
    schema = windows_schema(n_inputs, cfg.horizon)
    names = [SERIES_ID, ORIGIN_INDEX, TARGET_TIME, SPLIT] + ([LABEL] if classify else [])
    columns = {}
    for name in names:
        columns[name] = np.concatenate([p[name] for p in parts]) if parts else []
    flat_x = np.concatenate([p[X].ravel() for p in parts]) if parts else np.empty(0, np.float32)
    flat_y = np.concatenate([p[Y].ravel() for p in parts]) if parts else np.empty(0, np.float32)
    arrays = [
        pa.array(columns[SERIES_ID], pa.string()),
        pa.array(columns[ORIGIN_INDEX], pa.int64()),
        pa.array(pd.to_datetime(columns[TARGET_TIME], utc=True), schema.field(TARGET_TIME).type),
        pa.array(columns[SPLIT], pa.string()),
        pa.FixedSizeListArray.from_arrays(pa.array(flat_x, pa.float32()), n_inputs),
        pa.FixedSizeListArray.from_arrays(pa.array(flat_y, pa.float32()), cfg.horizon),
    ]
    meta = {"timesteps": cfg.timesteps, "horizon": cfg.horizon, "features": features}
    if classify:
        arrays.append(pa.array(columns[LABEL], pa.string()))
        schema = schema.append(pa.field(LABEL, pa.string(), nullable=False))
        if from_column:
            meta["classes"] = sorted(set(normalized[LABEL].dropna().astype(str)))
        else:
            meta["classes"] = list(DIRECTION_CLASSES)
    schema = schema.with_metadata({_META: json.dumps(meta).encode()})
    return pa.Table.from_arrays(arrays, schema=schema)


def windows_from_table(table: pa.Table) -> Windows:
    """The arrays of a window table (as written by ``windows_table``)."""
    meta = json.loads(table.schema.metadata[_META])
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


@task(name="window", cache_policy=NONE)
def window(normalized: Path, run: RunDir, config: PipelineConfig) -> Path:
    logger = stage_logger()
    frame = read_parquet(normalized)
    features = [VALUE, *config.columns.covariates]
    task_kind = config.train.task
    if task_kind == CLASSIFICATION and config.columns.label and LABEL not in frame.columns:
        raise ValueError(
            f"columns.label is '{config.columns.label}' but the normalized data has no "
            f"'{LABEL}' column: ingest/normalize did not carry it"
        )
    if task_kind == REGRESSION and config.columns.label:
        logger.warning("columns.label is set but train.task is regression: the label is unused")
    table = windows_table(frame, features, config.window, task_kind)
    write_table(table, run.windows)
    counts = pd.Series(table[SPLIT].to_pylist()).value_counts().to_dict()
    logger.info(
        "Windows (timesteps=%d, horizon=%d, features=%d): %s",
        config.window.timesteps,
        config.window.horizon,
        len(features),
        counts,
    )
    if task_kind == CLASSIFICATION:
        train_labels = table.filter(pc.equal(table[SPLIT], TRAIN))[LABEL].to_pylist()
        logger.info(
            "Classes (%s) in the train windows: %s",
            "columns.label" if config.columns.label else "direction of change",
            pd.Series(train_labels).value_counts().to_dict(),
        )
    for split in SPLITS:
        if not counts.get(split):
            raise ValueError(
                f"window: no {split} windows; series are too short for timesteps="
                f"{config.window.timesteps} + horizon={config.window.horizon} with split "
                f"fractions val={config.split.val_fraction}, test={config.split.test_fraction}. "
                "Lower window.timesteps or supply longer series."
            )
    return run.windows
