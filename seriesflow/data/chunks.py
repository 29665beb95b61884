"""Validating a large arrival a chunk of whole series at a time, in bounded memory.

Every check of an arrival is about one file's rows of one series, or about one series'
merged rows (``seriesflow/data/arrival.py``), so the stacked ingest table (the history's
rows, then each new file's) can be cut into chunks of whole series and each chunk
validated on its own: the stage then holds one chunk, not every row ever accepted.

``plan_chunks`` cuts the sorted series ids into chunks of about ``chunk_rows`` rows (a
longer series is a chunk of its own); ``spill`` writes each chunk's rows, in their order
in the ingest table, to a file of its own in one pass; ``validate_chunks`` validates them
one by one. A file's verdict is over the whole arrival: a file that fails in one chunk is
left out of every chunk, and the chunks that had accepted it are validated again without
it (a later file may then fail there: the loop goes on until no chunk accepted a file
that failed somewhere). Failures and reports of a file are summed over its chunks, so the
outcome -- verdicts, counts, validated rows and their profile -- is what one pass over
everything gives; ``on_bad_file=reject_arrival`` is applied to the arrival as a whole.
The one setting that is not about a file's rows of one series is a
``max_value_null_fraction`` strictly between 0 and 1 (a share of the whole file): with
it, ``chunked`` says no and the arrival is validated in one pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.arrival import Arrival, _reject_whole_arrival, validate_arrival
from seriesflow.data.errors import CheckFailure
from seriesflow.data.expectations import CheckReport, GxSession
from seriesflow.data.grid import whole_series_chunks
from seriesflow.data.profile import MAX_GAP_STEPS, N_POINTS, OFF_GRID_STEPS, OFFSET, VALUE_SPAN
from seriesflow.data.schema import SERIES_ID, SOURCE_FILE
from seriesflow.workspace.files import read_parquet, release_memory

BATCH_ROWS = 1 << 20
EXAMPLES = 3  # example rows a failure shows (``example_rows``' limit)

# what the caller does with each chunk's outcome (its stacked rows, its Arrival), k = chunk
WriteChunk = Callable[[int, pd.DataFrame, Arrival], None]


def chunked(rows: int, config: PipelineConfig) -> bool:
    """Whether an ingest table of ``rows`` rows is validated a chunk at a time."""
    share = config.validation.max_value_null_fraction
    return rows > config.validation.chunk_rows and share in (0.0, 1.0)


def plan_chunks(path: str | Path, chunk_rows: int) -> list[np.ndarray]:
    """The sorted series ids of the ingest table at ``path``, cut into chunks of about
    ``chunk_rows`` rows each (whole series; one over it is a chunk of its own). Reads
    only the id column, a batch at a time."""
    counts: Counter[str] = Counter()
    for batch in pq.ParquetFile(path).iter_batches(columns=[SERIES_ID], batch_size=BATCH_ROWS):
        codes, names = _codes(batch.column(0))
        seen = np.bincount(codes[codes >= 0], minlength=len(names))
        counts.update({name: int(n) for name, n in zip(names, seen, strict=True) if n})
    ids = np.array(sorted(counts), dtype=object)
    sizes = np.array([counts[i] for i in ids], dtype=np.int64)
    chunks = [ids[part.start : part.stop] for part in whole_series_chunks(sizes, chunk_rows)]
    return chunks or [ids]


def spill(path: str | Path, chunks: list[np.ndarray], folder: Path) -> list[Path]:
    """Each chunk's rows of the ingest table at ``path`` (the history's rows first, then
    each file's, as there) in a file of its own under ``folder``, in one pass; a row without
    a series id goes to the first chunk (its file fails the row suite there)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    chunk_of = {name: k for k, ids in enumerate(chunks) for name in ids}
    paths = [folder / f"chunk-{k:05d}.parquet" for k in range(len(chunks))]
    writers = [pq.ParquetWriter(p, schema) for p in paths]
    try:
        for batch in source.iter_batches(batch_size=BATCH_ROWS):
            codes, names = _codes(batch.column(SERIES_ID))
            where = np.array([chunk_of.get(name, 0) for name in names] + [0], dtype=np.int64)[codes]
            order = np.argsort(where, kind="stable")
            table = pa.Table.from_batches([batch]).take(order)
            bounds = np.searchsorted(where[order], np.arange(len(chunks) + 1))
            for k in np.flatnonzero(np.diff(bounds)):
                writers[k].write_table(table.slice(bounds[k], bounds[k + 1] - bounds[k]))
    finally:
        for writer in writers:
            writer.close()
    return paths


def validate_chunks(
    paths: list[Path],
    files: list[str],
    config: PipelineConfig,
    history_source: str,
    session: GxSession,
    reference: dict[str, dict[str, float]] | None,
    profile: pd.DataFrame | None,
    write: WriteChunk,
    log: Callable[[str], None] | None = None,
) -> Arrival:
    """Validate the chunks at ``paths`` (``spill``'s, in series order) and hand each
    chunk's outcome to ``write`` (again when a chunk is validated again: the last call for
    a chunk is its outcome). Returns the arrival's verdicts (``merged`` is empty: the rows
    went to ``write``); ``profile``: the history's, indexed by series id, or None."""
    present = [
        set(pq.read_table(p, columns=[SOURCE_FILE]).column(0).unique().to_pylist()) for p in paths
    ]
    anywhere = set().union(*present) if present else set()
    # a file with no rows is checked once, with the first chunk
    mine = [
        [f for f in files if f in present[k] or (k == 0 and f not in anywhere)]
        for k in range(len(paths))
    ]
    skip = config.model_copy(
        update={"validation": config.validation.model_copy(update={"on_bad_file": "skip_file"})}
    )
    outcomes: list[Arrival | None] = [None] * len(paths)
    used: list[frozenset[str]] = [frozenset()] * len(paths)  # each chunk's refused files
    bad: set[str] = set()
    todo = list(range(len(paths)))
    while todo:
        for k in todo:
            if log:
                log(f"Validating chunk {k + 1}/{len(paths)} ({len(mine[k])} file(s))")
            used[k] = frozenset(bad.intersection(mine[k]))
            outcomes[k] = _one(
                k,
                paths[k],
                mine[k],
                skip,
                history_source,
                session,
                reference,
                profile,
                write,
                used[k],
            )
            bad = {f for o in outcomes if o is not None for f in o.rejected}
        # again: a chunk that accepted a file failing elsewhere, or refused one that no
        # longer fails; a verdict depends only on earlier files', so this ends
        todo = [
            k
            for k, o in enumerate(outcomes)
            if o is not None and (bad.intersection(o.accepted) or used[k] - bad)
        ]
    done = [o for o in outcomes if o is not None]
    arrival = Arrival(merged=pd.DataFrame())
    for file in files:
        failed = [o.rejected[file] for o in done if file in o.rejected]
        first = min((_stage(f) for items in failed for f in items), default=SERIES_STAGE + 1)
        reports = [r for o in done if file in o.reports for r in o.reports[file]]
        arrival.reports[file] = _reports(
            []
            if first < 0
            else [r for r in reports if first >= SERIES_STAGE or r.table != "series"]
        )
        if failed:
            # as one pass: a file's checks stop at the first stage that fails anywhere
            arrival.rejected[file] = _failures(
                [[f for f in items if _stage(f) == first] for items in failed]
            )
        else:
            arrival.accepted.append(file)
    arrival.drift = [d for o in done for d in o.drift]
    if _reject_whole_arrival(arrival, config.validation.on_bad_file):
        for k, path in enumerate(paths):  # each chunk's history, as it was
            _one(k, path, [], skip, history_source, session, reference, profile, write)
    return arrival


def _one(
    k: int,
    path: Path,
    files: list[str],
    config: PipelineConfig,
    history_source: str,
    session: GxSession,
    reference: dict[str, dict[str, float]] | None,
    profile: pd.DataFrame | None,
    write: WriteChunk,
    refuse: frozenset[str] = frozenset(),
) -> Arrival:
    stacked = read_parquet(path)
    ids = stacked[SERIES_ID].dropna().unique()
    arrival = validate_arrival(
        stacked,
        files,
        config,
        history_source,
        session,
        reference,
        _profile_of(profile, ids),
        refuse,
    )
    write(k, stacked, arrival)
    outcome = Arrival(
        merged=pd.DataFrame(),
        accepted=arrival.accepted,
        rejected=arrival.rejected,
        reports=arrival.reports,
        drift=arrival.drift,
    )
    del stacked, arrival
    release_memory()
    return outcome


def _profile_of(profile: pd.DataFrame | None, ids: np.ndarray) -> pd.DataFrame | None:
    """The history profile's rows of a chunk's series, their offsets into the chunk's
    history rows (the chunk's series are consecutive in the sorted history)."""
    if profile is None:
        return None
    part = profile[profile.index.isin(ids)].copy()
    offset = part[OFFSET].to_numpy()
    if len(part) and (offset >= 0).all():
        part[OFFSET] = offset - offset.min()
    return part


def shift_offsets(profile: pd.DataFrame, rows_before: int) -> pd.DataFrame:
    """A chunk's profile with offsets into the whole validated table."""
    offset = profile[OFFSET].to_numpy()
    if len(profile) and (offset >= 0).all():
        profile = profile.assign(**{OFFSET: offset + rows_before})
    return profile


# the order of a file's checks (``check_one_file``): the first stage that fails ends them
_STAGES = {
    "robust_outlier": 1,
    "no_drift": 2,
    "no_conflict_within_arrival": 3,
    "no_revision_of_accepted_values": 3,
    "no_backfill": 3,
    "static_is_constant": 4,
}
SERIES_STAGE = 5
_SERIES_COLUMNS = {N_POINTS, VALUE_SPAN, OFF_GRID_STEPS, MAX_GAP_STEPS}


def _stage(failure: CheckFailure) -> int:
    """Where ``failure``'s check comes in a file's checks: -1 (they could not run), 0 (the
    row suite) to ``SERIES_STAGE`` (the series suite)."""
    if failure.check == "checks_ran":
        return -1
    if failure.check.startswith("expect_"):
        return SERIES_STAGE if failure.column in _SERIES_COLUMNS else 0
    return _STAGES.get(failure.check, 0)


def _reports(reports: list[CheckReport]) -> list[CheckReport]:
    """One report per check: it succeeded in every chunk; unexpected rows summed."""
    merged: dict[tuple, CheckReport] = {}
    for r in reports:
        key = (r.table, r.check, r.column)
        if key not in merged:
            merged[key] = r
            continue
        was = merged[key]
        count = None
        if was.unexpected_count is not None or r.unexpected_count is not None:
            count = (was.unexpected_count or 0) + (r.unexpected_count or 0)
        merged[key] = replace(was, success=was.success and r.success, unexpected_count=count)
    return list(merged.values())


def _failures(parts: list[list[CheckFailure]]) -> list[CheckFailure]:
    """One failure per check and column: the first chunk's message, counts summed, the
    first example rows."""
    merged: dict[tuple, CheckFailure] = {}
    for failures in parts:
        for f in failures:
            key = (f.check, f.column)
            if key not in merged:
                merged[key] = replace(f, examples=list(f.examples))
                continue
            was = merged[key]
            count = was.unexpected_count
            if f.unexpected_count is not None:
                count = (count or 0) + f.unexpected_count
            examples = was.examples + f.examples[: max(0, EXAMPLES - len(was.examples))]
            merged[key] = replace(was, unexpected_count=count, examples=examples)
    return list(merged.values())


def _codes(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """(each row's code into the names, -1 where null; the distinct names)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    codes = column.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, [str(v) for v in column.dictionary.to_pylist()]
