"""The accepted history: every row that passed validation so far, as a Delta Lake table.

``<workspace>/history/`` is a Delta table (delta-rs, ``deltalake``; Spark, DuckDB, Polars
and Dask read it too) of the accepted rows (schema: series_id, timestamp, value,
covariates, label) plus ``series_bucket``, a stable hash of series_id mod
``history.buckets``, which partitions it: one series' rows are read alone
(``load_series``). Readers get the frame the old ``history.parquet`` gave (the bucket
column dropped, rows sorted by series and time, UTC timestamps).

Ingest reads it, validate merges new files into it and writes the run's new rows
(``02_new_rows.parquet``), and a run that completes appends them in one Delta transaction
tagged with its run id (``seriesflow/workspace/commit.py``: last, and journaled, so a run
that fails or dies earlier changes nothing). Revisions of accepted values
(``validation.allow_history_revisions``) are a merge of the revised rows, also one
transaction. Each model version is tagged with the table version it trained on
(``seriesflow.history_version``): ``load_history(..., version=N)`` is that time travel.

A workspace from before the table (``history.parquet``) is migrated once, under the
workspace lock (``migrate``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from seriesflow.config.pipeline import ColumnsConfig
from seriesflow.data.schema import SERIES_ID, TIMESTAMP, series_schema
from seriesflow.workspace.files import Workspace, fsync_dir, read_parquet, release_arrow_memory

# The source tag of history rows in the stacked ingest table (new rows carry their file name).
HISTORY_SOURCE = "<history>"
BUCKET = "series_bucket"
# Commit metadata keys in the Delta log: which run (or migration) wrote a version.
RUN_ID_KEY = "seriesflow.run_id"
BUCKETS_KEY = "seriesflow.series_buckets"
MIGRATED_KEY = "seriesflow.migrated_from"
MIGRATION = "migration"
# load_history's order, as Arrow sorts it (history_tables)
ORDER = [(SERIES_ID, "ascending"), (TIMESTAMP, "ascending")]


def accepted_schema(columns: ColumnsConfig) -> pa.Schema:
    """Schema of accepted rows for this config (covariates, and the label if configured)."""
    return series_schema(columns.kept, label=columns.label is not None)


def series_bucket(series_ids: pd.Series, buckets: int) -> np.ndarray:
    """A stable bucket per row: crc32 of the series id's UTF-8 bytes mod ``buckets``.

    crc32 (not Python's salted ``hash``) so that a series lands in the same bucket in every
    process and every version; computed once per distinct id.
    """
    codes, uniques = pd.factorize(series_ids.astype(str), sort=False)
    per_id = _buckets_of(uniques, buckets)
    return per_id[codes] if len(codes) else np.zeros(0, dtype=np.int32)


def _buckets_of(ids: Any, buckets: int) -> np.ndarray:
    """The bucket of each distinct id: crc32 of its UTF-8 bytes mod ``buckets``."""
    return np.array([zlib.crc32(str(u).encode()) % buckets for u in ids], dtype=np.int32)


# --------------------------------------------------------------------------- reading


def open_table(workspace: Workspace, version: int | None = None) -> DeltaTable | None:
    """The history table (at ``version``), or None when there is none yet."""
    if not (workspace.history / "_delta_log").is_dir():
        return None
    try:
        return DeltaTable(str(workspace.history), version=version)
    except TableNotFoundError:
        return None
    except DeltaError as exc:
        if version is None:
            raise
        raise ValueError(f"{workspace.history} has no version {version}: {exc}") from exc


def history_version(workspace: Workspace) -> int | None:
    """The table's latest version, None before the first commit."""
    table = open_table(workspace)
    return None if table is None else table.version()


def table_buckets(table: DeltaTable) -> int | None:
    """The bucket count the table was created with (each of our commits records it)."""
    for entry in table.history():
        if BUCKETS_KEY in entry:
            return int(entry[BUCKETS_KEY])
    return None


def _frame(table: pa.Table) -> pd.DataFrame:
    if BUCKET in table.column_names:
        table = table.drop_columns([BUCKET])
    frame = table.to_pandas()
    release_arrow_memory()
    frame = frame.sort_values([SERIES_ID, TIMESTAMP], kind="stable", ignore_index=True)
    return frame


def read_table(path: str | Path, version: int | None = None) -> pd.DataFrame:
    """Any history table folder as readers get it (outside a workspace: a copy, a backup)."""
    return _frame(DeltaTable(str(path), version=version).to_pyarrow_table())


def load_history(
    workspace: Workspace, columns: ColumnsConfig, version: int | None = None
) -> pd.DataFrame:
    """The accepted rows so far, or as of table ``version`` (an empty frame of the right
    schema before the first run). A workspace not migrated yet is read from its
    ``history.parquet`` (only a retrain, holding the lock, migrates it)."""
    table = open_table(workspace, version)
    if table is not None:
        return _frame(table.to_pyarrow_table())
    if version is not None:
        raise ValueError(f"{workspace.history} has no Delta table: no version {version}")
    if workspace.legacy_history.exists():
        return read_parquet(workspace.legacy_history)
    return accepted_schema(columns).empty_table().to_pandas()


def load_history_since(
    workspace: Workspace, columns: ColumnsConfig, since: pd.Timestamp, names: list[str]
) -> pd.DataFrame:
    """The accepted rows at or after ``since`` (columns ``names``), as ``load_history``
    gives them: a filtered scan of the table, so a run that scores a few forecast points
    does not read all of history (at 100M rows, a frame of gigabytes)."""
    table = open_table(workspace)
    if table is None:
        frame = load_history(workspace, columns)
        return frame.loc[frame[TIMESTAMP] >= since, names].reset_index(drop=True)
    dataset = table.to_pyarrow_dataset()
    stamp = pa.scalar(pd.Timestamp(since).to_pydatetime(), dataset.schema.field(TIMESTAMP).type)
    found = dataset.to_table(columns=names, filter=pc.field(TIMESTAMP) >= stamp)
    return _frame(found)


def history_tables(
    workspace: Workspace,
    version: int | None = None,
    spill: Path | None = None,
    rows: int = 1_000_000,
) -> Iterator[pa.Table]:
    """``load_history``'s rows in its order (series, then time) as Arrow tables of about
    ``rows`` rows, never turned into a frame: ingest streams them into its output.

    A bucketed table is read one bucket (partition) at a time: each is sorted and spilled to
    ``spill`` (a folder, removed afterwards), then the buckets are merged a series at a
    time (a series lives in one bucket), so memory follows the largest bucket, not the
    history: at 100M rows in 16 buckets, one sort of 6M rows instead of one of 100M."""
    table = open_table(workspace, version)
    if table is None:
        if version is not None:
            raise ValueError(f"{workspace.history} has no Delta table: no version {version}")
        if workspace.legacy_history.exists():
            yield from _in_parts(pq.read_table(workspace.legacy_history), rows)
        return
    buckets = table_buckets(table)
    if buckets is None or spill is None:  # one sort of everything
        whole = table.to_pyarrow_table()
        if BUCKET in whole.column_names:
            whole = whole.drop_columns([BUCKET])
        yield from _in_parts(whole.sort_by(ORDER), rows)
        return
    spill.mkdir(parents=True, exist_ok=True)
    try:
        yield from _merged_buckets(table, buckets, spill, rows)
    finally:
        import shutil

        shutil.rmtree(spill, ignore_errors=True)


def history_has_rows(workspace: Workspace, version: int | None = None) -> bool:
    """Whether the history holds any row (as of ``version``), without reading them."""
    table = open_table(workspace, version)
    if table is not None:
        return bool(table.file_uris())  # a commit adds a file only with rows in it
    if workspace.legacy_history.exists():
        return pq.read_metadata(workspace.legacy_history).num_rows > 0
    return False


def _in_parts(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    for batch in table.to_batches(max_chunksize=rows):
        yield pa.Table.from_batches([batch])


class _Cursor:
    """Rows of one sorted bucket file, handed out in order."""

    def __init__(self, path: Path, batch_rows: int) -> None:
        self._file = pq.ParquetFile(path)
        self._batches = self._file.iter_batches(batch_size=batch_rows)
        self._held: pa.RecordBatch | None = None
        self._at = 0

    def take(self, n: int) -> list[pa.RecordBatch]:
        out = []
        while n:
            if self._held is None or self._at == self._held.num_rows:
                self._held, self._at = next(self._batches), 0
            k = min(n, self._held.num_rows - self._at)
            out.append(self._held.slice(self._at, k))
            self._at += k
            n -= k
        return out

    def close(self) -> None:
        self._file.close()


def _merged_buckets(
    table: DeltaTable, buckets: int, spill: Path, rows: int, batch_rows: int = 65_536
) -> Iterator[pa.Table]:
    schema, index, cursors = None, [], {}
    for bucket in range(buckets):
        part = table.to_pyarrow_table(filters=[(BUCKET, "=", bucket)])
        if not part.num_rows:
            continue
        if BUCKET in part.column_names:
            part = part.drop_columns([BUCKET])
        schema = part.schema if schema is None else schema
        part = part.cast(schema).sort_by(ORDER)
        counts = pc.value_counts(part[SERIES_ID])  # a sorted column: in sorted order
        index += zip(
            counts.field("values").to_pylist(),
            [bucket] * len(counts),
            counts.field("counts").to_pylist(),
            strict=True,
        )
        path = spill / f"{bucket:05d}.parquet"
        pq.write_table(part, path, row_group_size=batch_rows)
        del part
        release_arrow_memory()
    try:
        for bucket in {b for _, b, _ in index}:
            cursors[bucket] = _Cursor(spill / f"{bucket:05d}.parquet", batch_rows)
        # a series is in one bucket: ids sorted as Arrow sorts them (UTF-8 bytes, which is
        # code-point order, Python's) give the global order
        index.sort(key=lambda entry: entry[0])
        pending: list[pa.RecordBatch] = []
        held = 0
        for _, bucket, count in index:
            pending += cursors[bucket].take(count)
            held += count
            if held >= rows:
                yield pa.Table.from_batches(pending, schema=schema)
                pending, held = [], 0
        if pending:
            yield pa.Table.from_batches(pending, schema=schema)
    finally:
        for cursor in cursors.values():
            cursor.close()


def load_series(workspace: Workspace, series_id: str, version: int | None = None) -> pd.DataFrame:
    """One series' rows, reading only its bucket's files (a partition filter)."""
    table = open_table(workspace, version)
    if table is None:
        raise ValueError(f"{workspace.history} has no Delta table yet")
    buckets = table_buckets(table)
    filters = None
    if buckets is not None:
        bucket = int(series_bucket(pd.Series([series_id]), buckets)[0])
        filters = [(BUCKET, "=", bucket)]
    rows = table.to_pyarrow_table(filters=filters)
    frame = _frame(rows)
    return frame[frame[SERIES_ID] == series_id].reset_index(drop=True)


def committed_version(workspace: Workspace, run_id: str) -> int | None:
    """The table version run ``run_id`` committed, read from the Delta log (None: it did
    not commit). This is how recovery knows whether a run's append happened."""
    table = open_table(workspace)
    if table is None:
        return None
    for entry in table.history():  # newest first
        if entry.get(RUN_ID_KEY) == run_id:
            return int(entry["version"])
    return None


# Delta operations that add a version without changing a row (retention's vacuum).
ROWS_UNCHANGED = frozenset({"VACUUM START", "VACUUM END"})


def same_rows(workspace: Workspace, since: int, until: int) -> bool:
    """Whether table versions ``since`` and ``until`` (later) hold the same rows: every
    version in between only vacuumed (read from the Delta log)."""
    table = open_table(workspace)
    if table is None or until < since:
        return False
    newest = table.history(limit=max(table.version() - since, 0) + 1)  # newest first
    between = [e for e in newest if since < e["version"] <= until]
    return len(between) == until - since and all(
        e.get("operation") in ROWS_UNCHANGED for e in between
    )


# --------------------------------------------------------------------------- what a run adds


def new_rows(
    history: pd.DataFrame, merged: pd.DataFrame, revisions: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What ``merged`` (history + the accepted files) adds to ``history``: (appended,
    revised). ``appended``: rows whose series_id+timestamp history lacks; ``revised``:
    rows history holds with another value (only when ``revisions`` are allowed: without
    them validation rejects a changed value and a back-fill, so what is new is exactly what
    follows each series' last accepted time)."""
    key = [SERIES_ID, TIMESTAMP]
    empty = merged.iloc[:0]
    if not len(history):
        return merged.reset_index(drop=True), empty
    if not revisions:
        last = history.groupby(SERIES_ID, observed=True)[TIMESTAMP].max()
        before = merged[SERIES_ID].map(last)
        fresh = before.isna() | (merged[TIMESTAMP] > before)
        return merged[fresh.to_numpy()].reset_index(drop=True), empty
    joined = merged.merge(history, on=key, how="left", suffixes=("", "__old"), indicator=True)
    appended = (joined["_merge"] == "left_only").to_numpy()
    changed = np.zeros(len(joined), dtype=bool)
    for column in [c for c in merged.columns if c not in key and f"{c}__old" in joined]:
        new, old = joined[column], joined[f"{column}__old"]
        same = (new == old) | (new.isna() & old.isna())
        changed |= ~same.fillna(False).to_numpy(dtype=bool)
    revised = changed & ~appended
    columns = list(merged.columns)
    return (
        joined.loc[appended, columns].reset_index(drop=True),
        joined.loc[revised, columns].reset_index(drop=True),
    )


# --------------------------------------------------------------------------- writing


def _with_buckets(frame: pd.DataFrame, schema: pa.Schema, buckets: int) -> pa.Table:
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    bucket = pa.array(series_bucket(frame[SERIES_ID], buckets), type=pa.int32())
    return table.append_column(pa.field(BUCKET, pa.int32(), nullable=False), bucket)


def append_rows(
    workspace: Workspace,
    rows: pd.DataFrame,
    schema: pa.Schema,
    run_id: str,
    buckets: int,
    revised: pd.DataFrame | None = None,
    extra: dict[str, str] | None = None,
) -> int:
    """Add ``rows`` (and apply ``revised``) in one Delta transaction tagged with ``run_id``;
    returns the new table version. Appends never rewrite a file; revisions merge into the
    buckets they touch."""
    table = open_table(workspace)
    buckets, commit = _commit_properties(table, buckets, run_id, extra)
    if revised is not None and len(revised) and table is not None:
        source = _with_buckets(pd.concat([revised, rows], ignore_index=True), schema, buckets)
        (
            table.merge(
                source,
                predicate=(
                    f"t.{BUCKET} = s.{BUCKET} AND t.{SERIES_ID} = s.{SERIES_ID} "
                    f"AND t.{TIMESTAMP} = s.{TIMESTAMP}"
                ),
                source_alias="s",
                target_alias="t",
                commit_properties=commit,
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
    else:
        _append(workspace, _with_buckets(rows, schema, buckets), commit)
    release_arrow_memory()
    return DeltaTable(str(workspace.history)).version()


def append_file(
    workspace: Workspace,
    path: Path,
    run_id: str,
    buckets: int,
    batch_rows: int = 1 << 17,
    extra: dict[str, str] | None = None,
) -> int:
    """``append_rows`` of the rows of a Parquet file (validate's ``02_new_rows.parquet``),
    streamed into the one Delta transaction a record batch at a time: a first run at 100M
    rows held them all as a frame (a Python string per id). Returns the new version.

    Batches of 128K rows, not 1M: the writer's files are the same (one row group per
    bucket file), but it holds fewer rows in flight (10M rows' append peaked 530 MiB above
    its start with 1M-row batches, 376 with these)."""
    buckets, commit = _commit_properties(open_table(workspace), buckets, run_id, extra)
    source = pq.ParquetFile(path)
    schema = source.schema_arrow.append(pa.field(BUCKET, pa.int32(), nullable=False))

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in source.iter_batches(batch_size=batch_rows):
            bucket = bucket_array(batch.column(SERIES_ID), buckets)
            yield pa.RecordBatch.from_arrays([*batch.columns, bucket], schema=schema)

    _append(workspace, pa.RecordBatchReader.from_batches(schema, batches()), commit)
    release_arrow_memory()
    return DeltaTable(str(workspace.history)).version()


def bucket_array(ids: pa.Array, buckets: int) -> pa.Array:
    """``series_bucket`` of an Arrow id column: crc32 once per distinct id."""
    encoded = ids.dictionary_encode() if not pa.types.is_dictionary(ids.type) else ids
    per_id = _buckets_of(encoded.dictionary.to_pylist(), buckets)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return pa.array(per_id[indices] if len(indices) else np.zeros(0, np.int32), pa.int32())


def _commit_properties(
    table: DeltaTable | None, buckets: int, run_id: str, extra: dict[str, str] | None
) -> tuple[int, CommitProperties]:
    """(the table's bucket count, or ``buckets`` for a new table; the commit's metadata)."""
    if table is not None:
        buckets = table_buckets(table) or buckets
    metadata = {RUN_ID_KEY: run_id, BUCKETS_KEY: str(buckets), **(extra or {})}
    return buckets, CommitProperties(custom_metadata=metadata)


def _append(workspace: Workspace, data: Any, commit: CommitProperties) -> None:
    write_deltalake(
        str(workspace.history),
        data,
        mode="append",
        partition_by=[BUCKET],
        schema_mode="merge",  # a covariate added to the config adds a column
        commit_properties=commit,
    )


# --------------------------------------------------------------------------- migration


def migrate(workspace: Workspace, buckets: int) -> str | None:
    """Move a workspace's ``history.parquet`` into the Delta table, once; returns what was
    done (None: nothing to do). Called under the workspace lock.

    Crash-safe and idempotent: the rows go in one transaction whose metadata names the
    migration; the old file is renamed aside (``history.parquet.migrated``) only after the
    log holds that commit. A crash before the commit leaves the old file (the next run
    migrates again; a torn write's data files are unreferenced, and vacuum removes them); a
    crash after it leaves the commit in the log, and the next run only renames the file.
    """
    legacy = workspace.legacy_history
    if not legacy.exists():
        return None
    table = open_table(workspace)
    done = committed_version(workspace, MIGRATION) if table is not None else None
    if table is not None and done is None:
        raise RuntimeError(
            f"{legacy} and the history table {workspace.history} both exist, and the table was "
            "not made from the file: which one is the history is unclear. Move the one that "
            "is not aside (docs/operations.md, Migrating history)"
        )
    if done is None:
        frame = pq.read_table(legacy)
        done = append_rows(
            workspace,
            frame.to_pandas(),
            frame.schema,
            MIGRATION,
            buckets,
            extra={MIGRATED_KEY: str(legacy)},
        )
    aside = legacy.with_name(legacy.name + ".migrated")
    legacy.replace(aside)
    fsync_dir(workspace.root)
    return (
        f"migrated {legacy.name} into the Delta table {workspace.history.name}/ (version "
        f"{done}); the old file is kept as {aside.name}"
    )
