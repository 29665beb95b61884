"""Normalize: fill short gaps, split each series in time, scale per series (vectorized).

The scaler (``seriesflow/model/scaler.py``) is fit on each series' *training part only*
(the seed fit it on all data, which leaks the test range into training) and
saved as JSON next to the model, so a forecast can be scaled and un-scaled
exactly as in training.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import (
    FILLED,
    LABEL,
    SERIES_ID,
    SPLIT,
    TEST,
    TIMESTAMP,
    TRAIN,
    VAL,
    VALUE,
    normalized_schema,
)
from seriesflow.model.normalize import normalize_series
from seriesflow.workspace.files import RunDir, read_parquet, write_json, write_parquet
from tasks.stage import stage_logger


@task(name="normalize", cache_policy=NO_CACHE)
def normalize(validated: Path, run: RunDir, config: PipelineConfig) -> Path:
    logger = stage_logger()
    columns = [SERIES_ID, TIMESTAMP, VALUE, *config.columns.kept]
    columns += [LABEL] if config.columns.label else []
    frame = read_parquet(validated, columns)
    normalized, scaler = normalize_series(frame, config)
    del frame
    schema = normalized_schema(scaler.columns[1:], label=config.columns.label is not None)
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
