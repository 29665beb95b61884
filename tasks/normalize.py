"""Normalize: fill short gaps, split each series in time, MinMax-scale per series.

The scaler (``tasks/scaler.py``) is fit on each series' *training part only*
(the seed fit it on all data, which leaks the test range into training) and
saved as JSON next to the model, so a forecast can be scaled and un-scaled
exactly as in training.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import PipelineConfig, SplitConfig
from tasks.frequency import Frequency, fill_gaps, frequency_of, steps_found
from tasks.io import RunDir, read_parquet, write_json, write_parquet
from tasks.runtime import stage_logger
from tasks.scaler import Scaler, fit_affine
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


def split_sizes(n: int, cfg: SplitConfig) -> tuple[int, int, int]:
    """(train, val, test) point counts of a series of ``n`` points, in that order."""
    n_test = max(1, math.floor(n * cfg.test_fraction))
    n_val = max(1, math.floor(n * cfg.val_fraction))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(f"a series of {n} points cannot be split into train/val/test")
    return n_train, n_val, n_test


def series_frequency(times: pd.Series, series_id: str, configured: str | None) -> Frequency:
    """The series' calendar: configured, or inferred (validation has checked that one fits)."""
    found = frequency_of(times.to_numpy(), configured)
    if found is None:
        raise ValueError(
            f"series '{series_id}': its timestamps match no single frequency "
            f"(steps found: {steps_found(times.to_numpy())}); set validation.frequency"
        )
    return found


def normalize_series(frame: pd.DataFrame, config: PipelineConfig) -> tuple[pd.DataFrame, Scaler]:
    """Scaled long frame (+ ``value_original``, ``split``, ``filled``) and its scaler."""
    features = [VALUE, *config.columns.covariates]
    method = config.normalize.method
    parts, center, scale, frequency, val_start, test_start, stats = [], {}, {}, {}, {}, {}, {}
    for series_id, group in frame.groupby(SERIES_ID, sort=True):
        sid = str(series_id)
        found = series_frequency(group[TIMESTAMP], sid, config.validation.frequency)
        group = fill_gaps(group.drop(columns=[SERIES_ID]), found, features)
        n_train, n_val, n_test = split_sizes(len(group), config.split)
        labels = np.repeat(np.array(SPLITS), [n_train, n_val, n_test])
        raw = group[features].to_numpy(dtype=float)  # [n, features]
        train = raw[:n_train]
        low, span = fit_affine(train, method)
        out = pd.DataFrame((raw - low) / span, columns=features)
        out.insert(0, TIMESTAMP, group[TIMESTAMP].to_numpy())
        out.insert(0, SERIES_ID, series_id)
        out[VALUE_ORIGINAL] = raw[:, 0]
        out[SPLIT] = labels
        out[FILLED] = group[FILLED].to_numpy()
        if LABEL in group:
            out[LABEL] = group[LABEL].to_numpy()  # class names, never scaled
        parts.append(out)
        center[sid], scale[sid], frequency[sid] = low.tolist(), span.tolist(), found.code
        times = group[TIMESTAMP]
        val_start[sid] = times.iloc[n_train].isoformat()
        test_start[sid] = times.iloc[n_train + n_val].isoformat()
        train_values = train[:, 0]
        stats[sid] = {
            "mean": float(train_values.mean()),
            "sd": float(train_values.std(ddof=1)) if len(train_values) > 1 else 0.0,
            "n": int(len(train_values)),
        }
    normalized = pd.concat(parts, ignore_index=True)
    scaler = Scaler(features, center, scale, frequency, val_start, test_start, stats, method)
    return normalized, scaler


@task(name="normalize", cache_policy=NO_CACHE)
def normalize(validated: Path, run: RunDir, config: PipelineConfig) -> Path:
    logger = stage_logger()
    frame = read_parquet(validated)
    normalized, scaler = normalize_series(frame, config)
    schema = normalized_schema(config.columns.covariates, label=config.columns.label is not None)
    write_parquet(normalized, run.normalized, schema)
    write_json(scaler.to_json(), run.scaler)
    counts = normalized[SPLIT].value_counts().to_dict()
    frequencies = pd.Series(scaler.frequency).value_counts().to_dict()
    logger.info(
        "Normalized %d series (%s, fit on train only; frequencies %s): %d train / %d val / "
        "%d test points, %d filled",
        len(scaler.series),
        scaler.method,
        frequencies,
        counts.get(TRAIN, 0),
        counts.get(VAL, 0),
        counts.get(TEST, 0),
        int(normalized[FILLED].sum()),
    )
    return run.normalized
