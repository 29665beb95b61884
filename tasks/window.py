"""Window: which windows each series holds, labelled by the time of their targets.

For a series of n steps with features ``v`` [n, features], the window with
origin index ``o`` (the last input step) is

    x = v[o - timesteps + 1 : o + 1]          # [timesteps, features]
    y = v[o + 1 : o + 1 + horizon, 0]         # [horizon]  (the target is feature 0)

and it belongs to the split of its targets: train/val/test when all of its
``horizon`` targets fall in that split; windows whose targets straddle a split
boundary are dropped, so no training target lies in the validation period.
The inputs of a test window may reach back into val/train: that is history a
forecaster has at that moment, not leakage. Val and test windows whose targets
were interpolated by normalize (short gaps) are dropped: scores are on
observations only.

The stage writes only what identifies a window (series, origin, target time,
split); inputs and targets are gathered from the normalized values when needed
(``seriesflow/model/windows.py``), so nothing is copied ``timesteps`` times.

``window.timesteps: auto`` resolves here: two seasons of the series' frequency,
bounded by the shortest training part (``window_table.auto_timesteps``).

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
from prefect import task
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import AUTO, PipelineConfig
from seriesflow.data.schema import (
    CLASSIFICATION,
    LABEL,
    REGRESSION,
    SPLIT,
    SPLITS,
    TRAIN,
    VALUE,
    windows_schema,
)
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import (
    DIRECTION_CLASSES,
    WINDOWS_META,
    SeriesArrays,
    auto_timesteps,
    direction_labels,
    input_offsets,
    target_offsets,
)
from seriesflow.workspace.files import RunDir, write_table
from tasks.stage import stage_logger


@dataclass(frozen=True)
class SeriesWindows:
    origin: np.ndarray  # [windows] index of the last input step
    split: np.ndarray  # [windows] split code (index into SPLITS)


def window_origins(
    split_codes: np.ndarray,
    timesteps: int,
    horizon: int,
    stride: int = 1,
    filled: np.ndarray | None = None,
) -> SeriesWindows:
    """Origins of one series' windows and their split codes (``split_codes`` [n] ints).

    With ``filled`` [n] (steps normalize interpolated), val and test windows whose
    targets include a filled step are dropped: a model is scored on observations only.
    """
    n = len(split_codes)
    count = n - timesteps - horizon + 1
    if count <= 0:
        empty = np.empty((0,), dtype=np.int64)
        return SeriesWindows(empty, empty)
    origins = np.arange(timesteps - 1, timesteps - 1 + count, stride)  # [windows]
    first = split_codes[origins + 1]
    last = split_codes[origins + horizon]
    keep = first == last  # all targets in one split
    if filled is not None and filled.any():
        targets = origins[:, None] + target_offsets(horizon)[None, :]  # [windows, horizon]
        scored = first != SPLITS.index(TRAIN)
        keep &= ~(scored & filled[targets].any(axis=1))
    return SeriesWindows(origins[keep], first[keep])


def make_windows(
    values: np.ndarray, split_codes: np.ndarray, timesteps: int, horizon: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, SeriesWindows]:
    """All windows of one series, materialized: (x [w, timesteps, features], y [w, horizon],
    origins and splits). The pipeline gathers instead; this is the hand-checkable form."""
    if values.ndim != 2:
        raise ValueError(f"values must be [steps, features], got shape {values.shape}")
    w = window_origins(split_codes, timesteps, horizon, stride)
    x = values[w.origin[:, None] + input_offsets(timesteps)[None, :]]  # [w, timesteps, features]
    y = values[w.origin[:, None] + target_offsets(horizon)[None, :], 0]  # [w, horizon]
    return x.reshape(len(w.origin), timesteps, values.shape[1]), y, w


def resolve_timesteps(config: PipelineConfig, scaler: Scaler, arrays: SeriesArrays) -> int:
    """``window.timesteps``, or for ``auto`` two seasons bounded by the shortest train part."""
    if config.window.timesteps != AUTO:
        return int(config.window.timesteps)
    seasons = [scaler.frequency_of(sid).season_length() for sid in arrays.series]
    train_rows = np.add.reduceat((arrays.split == SPLITS.index(TRAIN)).astype(int), arrays.start)
    return auto_timesteps(seasons, int(train_rows.min()), config.window.horizon)


def windows_table(
    arrays: SeriesArrays,
    timesteps: int,
    horizon: int,
    task: str = REGRESSION,
    stride: int = 1,
    classes: list[str] | None = None,
) -> pa.Table:
    """The window index of every series as one Arrow table (no values: see window_table).

    ``task="classification"`` adds a ``label`` column: the arrays' label at the last
    target step when they have one, else the direction of change.
    """
    if task not in (REGRESSION, CLASSIFICATION):
        raise ValueError(f"train.task must be regression or classification, got {task!r}")
    classify = task == CLASSIFICATION
    ids, origins, times, splits, labels = [], [], [], [], []
    for code, sid in enumerate(arrays.series):
        rows = arrays.rows_of(code)
        filled = None if arrays.filled is None else arrays.filled[rows]
        w = window_origins(arrays.split[rows], timesteps, horizon, stride, filled)
        ids.append(np.full(len(w.origin), sid, dtype=object))
        origins.append(w.origin)
        times.append(arrays.times[rows][w.origin + 1])
        splits.append(np.array(SPLITS, dtype=object)[w.split.astype(int)])
        if classify and arrays.labels is not None:
            found = arrays.labels[rows][w.origin + horizon]  # [windows]
            missing = pd.isna(found)
            if missing.any():
                at = arrays.times[rows][int(w.origin[missing][0] + horizon)]
                raise ValueError(
                    f"columns.label: series '{sid}' has no label at {at} (the target of a "
                    "window); every row needs a class"
                )
            labels.append(np.array([str(v) for v in found], dtype=object))
        elif classify:
            labels.append(direction_labels(arrays.original[rows], w.origin, horizon))

    def joined(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype)

    schema = windows_schema()
    columns = [
        pa.array(joined(ids, object), pa.string()),
        pa.array(joined(origins, np.int64), pa.int64()),
        pa.array(pd.to_datetime(joined(times, "datetime64[us]"), utc=True), schema.field(2).type),
        pa.array(joined(splits, object), pa.string()),
    ]
    meta = {"timesteps": timesteps, "horizon": horizon, "features": arrays.features}
    if classify:
        columns.append(pa.array(joined(labels, object), pa.string()))
        schema = schema.append(pa.field(LABEL, pa.string(), nullable=False))
        if classes is None:
            if arrays.labels is not None:
                classes = sorted({str(v) for v in arrays.labels if not pd.isna(v)})
            else:
                classes = list(DIRECTION_CLASSES)
        meta["classes"] = classes
    schema = schema.with_metadata({WINDOWS_META: json.dumps(meta).encode()})
    return pa.Table.from_arrays(columns, schema=schema)


@task(name="window", cache_policy=NO_CACHE)
def window(normalized: Path, run: RunDir, config: PipelineConfig) -> Path:
    logger = stage_logger()
    features = [VALUE, *config.columns.covariates]
    arrays = SeriesArrays.load(normalized, features)
    task_kind = config.train.task
    if task_kind == CLASSIFICATION and config.columns.label and arrays.labels is None:
        raise ValueError(
            f"columns.label is '{config.columns.label}' but the normalized data has no "
            f"'{LABEL}' column: ingest/normalize did not carry it"
        )
    if task_kind == REGRESSION and config.columns.label:
        logger.warning("columns.label is set but train.task is regression: the label is unused")
    timesteps = resolve_timesteps(config, Scaler.load(run.scaler), arrays)
    horizon = config.window.horizon
    table = windows_table(arrays, timesteps, horizon, task_kind, config.window.stride)
    write_table(table, run.windows)
    # counted in Arrow: to_pylist() would make a Python string per window (10M at scale)
    counts = {c["values"]: c["counts"] for c in pc.value_counts(table[SPLIT]).to_pylist()}
    logger.info(
        "Windows (timesteps=%d%s, horizon=%d, features=%d): %s",
        timesteps,
        " (auto)" if config.window.timesteps == AUTO else "",
        horizon,
        len(features),
        counts,
    )
    if task_kind == CLASSIFICATION:
        train_labels = pd.Series(table[LABEL].to_pylist())[table[SPLIT].to_numpy() == TRAIN]
        logger.info(
            "Classes (%s) in the train windows: %s",
            "columns.label" if config.columns.label else "direction of change",
            train_labels.value_counts().to_dict(),
        )
    for split in SPLITS:
        if not counts.get(split):
            raise ValueError(
                f"window: no {split} windows; series are too short for timesteps={timesteps} + "
                f"horizon={horizon} with split fractions val={config.split.val_fraction}, "
                f"test={config.split.test_fraction}. Lower window.timesteps or supply longer "
                "series."
            )
    return run.windows
