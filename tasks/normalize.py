"""Normalize: fill short gaps, split each series in time, scale per series (vectorized).

The scaler (``seriesflow/model/scaler.py``) is fit on each series' *training part only*
(the seed fit it on all data, which leaks the test range into training) and
saved as JSON next to the model, so a forecast can be scaled and un-scaled
exactly as in training.

The rows are normalized a chunk of whole series at a time (``normalize.chunk_rows``) and
written as each chunk is done (``write_parquet_parts``): the stage holds the validated
table in Arrow (ids dictionary-encoded) and one chunk's arrays, not every row's arrays.
What spans series -- the horizon and the feature spec -- is fit first, on the ids,
timestamps and statics of all of them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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
from seriesflow.model.normalize import merge_scalers, normalize_chunks
from seriesflow.model.scaler import Scaler
from seriesflow.workspace.files import (
    RunDir,
    release_arrow_memory,
    write_json,
    write_parquet_parts,
)
from tasks.stage import stage_logger


@task(name="normalize", cache_policy=NO_CACHE)
def normalize(validated: Path, run: RunDir, config: PipelineConfig) -> Path:
    """Normalize ``validated`` a chunk of whole series at a time (``normalize.chunk_rows``):
    the output is written as each chunk is done, so memory holds one chunk's arrays."""
    logger = stage_logger()
    columns = [SERIES_ID, TIMESTAMP, VALUE, *config.columns.kept]
    columns += [LABEL] if config.columns.label else []
    # ids as a dictionary: the table holds one copy of each id, not one per row
    table = pq.read_table(validated, columns=columns, read_dictionary=[SERIES_ID])
    scalers: list[Scaler] = []
    counts = {TRAIN: 0, VAL: 0, TEST: 0}
    filled = 0

    def chunks(table: pa.Table):
        nonlocal filled
        for frame, scaler in normalize_chunks(table, config, config.normalize.chunk_rows):
            scalers.append(scaler)
            for split, count in frame[SPLIT].value_counts().items():
                counts[split] += int(count)
            filled += int(frame[FILLED].sum())
            if len(scalers) > 1 or len(frame) < table.num_rows:
                logger.info(
                    "Normalized chunk %d: %d series, %d rows",
                    len(scalers),
                    len(scaler.series),
                    len(frame),
                )
            yield frame
            release_arrow_memory()

    def schema(_first: pa.Table) -> pa.Schema:  # the features are known after chunk 1
        return normalized_schema(scalers[0].columns[1:], label=config.columns.label is not None)

    write_parquet_parts(chunks(table), run.normalized, schema)
    del table
    release_arrow_memory()
    scaler = merge_scalers(scalers)
    write_json(scaler.to_json(), run.scaler)
    frequencies = pd.Series(scaler.frequency).value_counts().to_dict()
    logger.info(
        "Normalized %d series (%s, fit on train only; frequencies %s): %d train / %d val / "
        "%d test points, %d filled",
        len(scaler.series),
        scaler.method,
        frequencies,
        counts[TRAIN],
        counts[VAL],
        counts[TEST],
        filled,
    )
    return run.normalized
