"""Column names and Parquet schemas every stage agrees on.

Input files may name their columns anything (see ``ColumnsConfig``); ingest
renames them to the canonical names below, so no other module spells a column
name as a string literal.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

# Canonical long-format columns (one row per series and time).
SERIES_ID = "series_id"
GROUP = "group"  # a series group (train.groups): the branch column of a grouped epoch table
TIMESTAMP = "timestamp"
VALUE = "value"
LABEL = "label"

# Added by ingest: which landed file a row came from (dropped before history).
SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"  # line in a CSV (header = 1), row position in a Parquet file

# Added by normalize.
SPLIT = "split"
VALUE_ORIGINAL = "value_original"
FILLED = "filled"  # True where a short gap was filled by time interpolation

# Window table.
ORIGIN_INDEX = "origin_index"  # position (within its series) of the last input step
TARGET_TIME = "target_time"  # time of the first target step

# Split labels, in chronological order.
TRAIN, VAL, TEST = "train", "val", "test"
SPLITS = (TRAIN, VAL, TEST)

# What a model does (train.task): forecast values, or predict a class.
REGRESSION, CLASSIFICATION = "regression", "classification"

# Model / baseline names in evaluation tables and the summary line.
MODEL, NAIVE, SEASONAL_NAIVE, CHAMPION = "model", "naive", "seasonal_naive", "champion"
ETS = "ets"  # statsforecast AutoETS (seriesflow/model/classical.py)
THETA = "theta"  # statsforecast AutoTheta
LSTM = "lstm"  # the LSTM, as a candidate of the per-series router
COMBINATION = "combination"  # the mean of the LSTM's, AutoETS' and AutoTheta's forecasts
ROUTED = "routed"  # the registered model: per series, the LSTM or a classical candidate
MAJORITY = "majority"  # classification baseline: each series' most common training class
ALL_SERIES = "__all__"  # the pooled row of a metrics table

# Scopes of an evaluation table: every test window, or only those the champion could score.
ALL_WINDOWS, CHAMPION_WINDOWS = "all", "champion_windows"
FOLD = "fold"  # backtest fold number (1 = oldest)

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def series_schema(covariates: tuple[str, ...] | list[str] = (), label: bool = False) -> pa.Schema:
    """Schema of the accepted history and of ``01_ingested`` / ``02_validated``."""
    fields = [
        pa.field(SERIES_ID, pa.string(), nullable=False),
        pa.field(TIMESTAMP, TIMESTAMP_TYPE, nullable=False),
        pa.field(VALUE, pa.float64()),
    ]
    fields += [pa.field(name, pa.float64()) for name in covariates]
    if label:
        fields.append(pa.field(LABEL, pa.string()))
    return pa.schema(fields)


def normalized_schema(
    covariates: tuple[str, ...] | list[str] = (), label: bool = False
) -> pa.Schema:
    base = series_schema(covariates, label)
    return (
        base.append(pa.field(VALUE_ORIGINAL, pa.float64()))
        .append(pa.field(SPLIT, pa.string()))
        .append(pa.field(FILLED, pa.bool_()))
    )


def windows_schema() -> pa.Schema:
    """The window index: what identifies a window (its values are gathered, not stored)."""
    return pa.schema(
        [
            pa.field(SERIES_ID, pa.string(), nullable=False),
            pa.field(ORIGIN_INDEX, pa.int64(), nullable=False),
            pa.field(TARGET_TIME, TIMESTAMP_TYPE, nullable=False),
            pa.field(SPLIT, pa.string(), nullable=False),
        ]
    )


LEDGER_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # ingested | rejected | failed
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("recorded_at", TIMESTAMP_TYPE, nullable=False),
        pa.field("reason", pa.string()),
        # the claimed copy's mtime, for the record (the hash memo lives in the looks, keyed by
        # inode and ctime: an mtime can be set back by a rewrite, a ctime cannot)
        pa.field("mtime_ns", pa.int64()),
    ]
)

# Series ids the pipeline itself uses in its tables: a series may not be called so.
RESERVED_SERIES_IDS = (ALL_SERIES,)
# Longest series id: ids end up in MLflow keys (250 characters at most) and file names.
MAX_SERIES_ID_LENGTH = 200


def branch_column(epochs: Any) -> str:
    """The column naming the branch of an epoch table: the series, or the group."""
    return GROUP if GROUP in epochs else SERIES_ID
