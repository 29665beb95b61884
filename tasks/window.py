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
from numpy.lib.stride_tricks import sliding_window_view
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import PipelineConfig, WindowConfig
from tasks.io import RunDir, read_parquet, write_table
from tasks.runtime import stage_logger
from tasks.schema import (
    CLASSIFICATION,
    LABEL,
    ORIGIN_INDEX,
    REGRESSION,
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
from tasks.window_table import DIRECTION_CLASSES, WINDOWS_META, direction_labels


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
    schema = schema.with_metadata({WINDOWS_META: json.dumps(meta).encode()})
    return pa.Table.from_arrays(arrays, schema=schema)


@task(name="window", cache_policy=NO_CACHE)
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
