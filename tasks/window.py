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
(``seriesflow/model/windows.py``, which also holds this stage's pure functions), so
nothing is copied ``timesteps`` times. Beside the index table it writes the scaled values
and the index as .npy files (``04_windows.arrays/``), which training and evaluation open
as read-only memory maps: their batches are read from disk, not held in memory.

``window.timesteps``, ``window.horizon`` and ``window.min_inputs`` resolve here
(``auto``: ``seriesflow/model/windows.py``: two horizons or seasons of input, the
frequency's competition horizon, and a short series' windows padded with its first value).

For ``train.task: classification`` each window also gets a class label: the
value of ``columns.label`` at its last target step ``o + horizon``, or -- with
no label column -- the direction of change over the horizon, ``up`` when
``v[o + horizon] > v[o]`` (in original units) and ``down`` otherwise (a flat
step counts as down).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import AUTO, PipelineConfig
from seriesflow.data.schema import CLASSIFICATION, LABEL, REGRESSION, SPLITS
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import (
    SeriesArrays,
    resolve_min_inputs,
    resolve_timesteps,
    resolve_window_horizon,
    save_window_arrays,
    write_windows_table,
)
from seriesflow.workspace.files import RunDir
from tasks.stage import stage_logger


@task(name="window", cache_policy=NO_CACHE)
def window(normalized: Path, scaler: Path, run: RunDir, config: PipelineConfig) -> Path:
    """The window index of ``normalized``; ``scaler`` (normalize's) gives ``auto`` its seasons."""
    logger = stage_logger()
    fitted = Scaler.load(scaler)
    features = list(fitted.columns)  # the value, covariates, calendar ... (normalize's)
    arrays = SeriesArrays.load(normalized, features)
    task_kind = config.train.task
    if task_kind == CLASSIFICATION and config.columns.label and arrays.labels is None:
        raise ValueError(
            f"columns.label is '{config.columns.label}' but the normalized data has no "
            f"'{LABEL}' column: ingest/normalize did not carry it"
        )
    if task_kind == REGRESSION and config.columns.label:
        logger.warning("columns.label is set but train.task is regression: the label is unused")
    timesteps = resolve_timesteps(config, fitted, arrays)
    horizon = resolve_window_horizon(config, fitted)
    min_inputs = resolve_min_inputs(config, fitted, arrays, timesteps)
    # the index table a block of series at a time; its rows and codes go on
    written = write_windows_table(
        arrays, run.windows, timesteps, horizon, task_kind, config.window.stride, min_inputs
    )
    counts = {split: n for split, n in written.counts.items() if n}
    # the values and the index as .npy files that training and evaluation memory-map
    save_window_arrays(arrays, written.row, written.code, run.windows, normalized)
    logger.info(
        "Windows (timesteps=%d%s, horizon=%d%s, at least %d observed inputs, features=%d): %s",
        timesteps,
        " (auto)" if config.window.timesteps == AUTO else "",
        horizon,
        " (auto)" if config.window.horizon == AUTO else "",
        min_inputs,
        len(features),
        counts,
    )
    if task_kind == CLASSIFICATION:
        logger.info(
            "Classes (%s) in the train windows: %s",
            "columns.label" if config.columns.label else "direction of change",
            pd.Series(written.train_labels).value_counts().to_dict(),
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
