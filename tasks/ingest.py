"""Ingest: claim the settled files in the landing folder, read the new ones and coerce them
to the schema.

A settled file that matches ``ingest.patterns`` is claimed (moved out of landing into
``<workspace>/claimed/<run-id>/``, ``seriesflow/workspace/claims.py``) before it is read, and
files a dead run claimed but never committed are taken over first. Each new (by content
hash) claimed file is measured against the ``ingest.max_*`` limits
(``seriesflow/data/limits.py``), counted as an attempt, and read on its own
(``seriesflow/data/reading.py``); the rows are stacked after the accepted history.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import ColumnsConfig, IngestConfig
from seriesflow.data.errors import CheckFailure, DataRejected, shown_name
from seriesflow.data.limits import check_limits
from seriesflow.data.reading import read_series_file, unreadable
from seriesflow.data.schema import SERIES_ID, SOURCE_FILE, SOURCE_ROW
from seriesflow.ops.faults import fault_point
from seriesflow.ops.retries import is_transient
from seriesflow.ops.secrets import redact_text
from seriesflow.workspace.claims import (
    adopt_stale,
    claim_landed,
    own_claims,
    read_done,
    record_attempt,
)
from seriesflow.workspace.files import RunDir, Workspace, parquet_parts, release_arrow_memory
from seriesflow.workspace.history import (
    HISTORY_SOURCE,
    accepted_schema,
    history_has_rows,
    history_tables,
    history_version,
)
from seriesflow.workspace.landing import FILE, SPECIAL, SYMLINK, Landing
from seriesflow.workspace.ledger import (
    UNREADABLE,
    LandedFile,
    find_new,
    known_hashes,
    load_ledger,
    settle,
)
from seriesflow.workspace.results import IngestResult
from tasks.stage import stage_logger, transient_only


# I/O: listing and reading the landing area (a folder or an object store) is retried on a
# passing failure; a retry reads what the failed try already claimed (own_claims).
@task(name="ingest", cache_policy=NO_CACHE, retry_condition_fn=transient_only)
def ingest(
    workspace_root: Path, run: RunDir, landing: str, columns: ColumnsConfig, cfg: IngestConfig
) -> IngestResult:
    """Claim the settled files in ``landing`` (a folder or a URL) and read the new ones (by
    content hash). Runs under the workspace lock.

    Each file is read on its own: whatever goes wrong with one (unreadable, unknown
    format, a link, past a limit, a read error) becomes that file's failure and the others
    go on.
    """
    logger = stage_logger()
    workspace = Workspace(workspace_root)
    place = Landing(landing, cfg.landing_patterns)
    ledger = load_ledger(workspace.ledger)
    # files claimed by a run that died or failed before its commit come first: they landed
    # before anything still in landing
    # a retry of this task: what the failed try claimed is this run's already
    adopted = own_claims(workspace, run.run_id)
    adopted += adopt_stale(workspace, run.run_id, known_hashes(ledger), logger.warning)
    scan = settle(place, cfg.settle_seconds, workspace.looks, cfg.second_look, logger.info)
    # one file per name per run (validate and the rows' source_file know files by name): a
    # newer file under the name of a taken-over one waits in landing for the next run
    busy = {f.name for f in adopted}
    later = [f.name for f in scan.files if f.kind == FILE and f.name in busy]
    if later:
        logger.info("Left in landing for the next run (a claimed file has the name): %s", later)
    listed = [f for f in scan.files if not (f.kind == FILE and f.name in busy)]
    claimed = claim_landed(workspace, run.run_id, place, listed, logger.warning)
    new = find_new(adopted + claimed, ledger)
    logger.info(
        "Landing %s: %d file(s) claimed, %d taken over, %d new",
        place.display,
        len(claimed),
        len(adopted),
        len(new),
    )
    if scan.waiting:
        logger.info(
            "Not settled yet (changed, or first seen, within %ss), left for the next run: %s",
            cfg.settle_seconds,
            scan.waiting,
        )
    version = history_version(workspace)  # read as of it: the profile is checked against it
    if not new and not (cfg.retrain_without_new_data and history_has_rows(workspace, version)):
        return IngestResult(path=None)
    schema = (
        accepted_schema(columns)
        .append(pa.field(SOURCE_FILE, pa.string()))
        .append(pa.field(SOURCE_ROW, pa.int64()))
    )
    # the output is written as it is read: the history first (a bucket of the Delta table
    # at a time, merged in series order), then each new file's rows in landing order,
    # tagged by source (what stack_with_history builds, never all in memory)
    history_rows = 0
    tables = history_tables(workspace, version, spill=run.root / "ingest-history")
    try:
        with parquet_parts(run.ingested, schema) as write:
            for part in history_parts(tables, schema):
                history_rows += part.num_rows
                write(part)
            release_arrow_memory()
            if not new:
                logger.info(
                    "No new files; retraining on the %d accepted rows "
                    "(ingest.retrain_without_new_data)",
                    history_rows,
                )
            failures, taken = _read_new(workspace, run, new, columns, cfg, write, logger)
    finally:
        tables.close()  # its spilled buckets are removed
    return IngestResult(
        path=run.ingested,
        new_files=taken,
        read_failures=failures,
        history_rows=history_rows,
        history_version=version,
    )


def history_parts(
    history: Iterable[pa.Table], schema: pa.Schema, rows: int = 1_000_000
) -> Iterator[pa.Table]:
    """The history (tables in its order) as parts of the ingest table (``rows`` at a time),
    tagged as history with their row numbers; a column the history lacks (a covariate
    configured since) is empty. An empty history is one empty part: the file has its
    schema whatever arrives."""
    offset = 0
    batches = (b for table in history for b in table.to_batches(max_chunksize=rows) if b.num_rows)
    for k, batch in enumerate(itertools.chain(batches, [None])):  # None: the end
        if batch is None and k:
            break
        part = schema.empty_table() if batch is None else pa.Table.from_batches([batch])
        count = part.num_rows
        columns = {}
        for field in schema:
            if field.name == SOURCE_FILE:
                columns[field.name] = pa.array([HISTORY_SOURCE] * count, pa.string())
            elif field.name == SOURCE_ROW:
                columns[field.name] = pa.array(np.arange(offset, offset + count), pa.int64())
            elif field.name in part.column_names:
                columns[field.name] = part[field.name]
            else:
                columns[field.name] = pa.nulls(count, field.type)
        offset += count
        yield pa.table(columns).cast(schema)


def _read_new(workspace, run, new, columns, cfg, write, logger):
    """Read each new file on its own and ``write`` its rows; (read failures, files taken)."""
    failures, taken = {}, []
    for landed_file in new:
        if landed_file.kind in (SYMLINK, SPECIAL):
            what = "a symlink" if landed_file.kind == SYMLINK else "not a regular file"
            failures[landed_file.sha256] = unreadable(
                landed_file,
                f"{what}: never followed or read (put the file itself in the landing folder)",
            )
            taken.append(landed_file)
            continue
        if landed_file.kind == UNREADABLE:
            failures[landed_file.sha256] = unreadable(landed_file, str(landed_file.error))
            taken.append(landed_file)
            continue
        refused = _refused(workspace, run, landed_file, cfg)
        if refused is not None:
            logger.warning("Quarantined unread: %s", refused.describe())
            failures[landed_file.sha256] = [refused.to_dict()]
            taken.append(landed_file)
            continue
        try:
            fault_point("ingest:read")
            frame = read_series_file(landed_file.path, columns, cfg, landed_file.name)
        except DataRejected as exc:
            read_done(workspace, landed_file, run.run_id)
            logger.warning("Rejected on read: %s", exc)
            failures[landed_file.sha256] = [f.to_dict() for f in exc.failures]
            taken.append(landed_file)
            continue
        except Exception as exc:  # noqa: BLE001 - one file's error must not stop the others
            read_done(workspace, landed_file, run.run_id)
            if is_transient(exc):  # the storage, not the file: the task retries (claimed)
                raise
            why = f"could not read the file: {type(exc).__name__}: {redact_text(str(exc))}"
            logger.warning("Rejected on read: %s: %s", shown_name(landed_file.name), why)
            failures[landed_file.sha256] = unreadable(landed_file, why)
            taken.append(landed_file)
            continue
        read_done(workspace, landed_file, run.run_id)
        logger.info(
            "Read %s: %d rows, %d series",
            shown_name(landed_file.name),
            len(frame),
            frame[SERIES_ID].nunique(),
        )
        write(frame.assign(**{SOURCE_FILE: landed_file.name, SOURCE_ROW: frame.index}))
        taken.append(landed_file)
        del frame
    return failures, taken


def _refused(
    workspace: Workspace, run: RunDir, landed: LandedFile, cfg: IngestConfig
) -> CheckFailure | None:
    """Why ``landed`` is not read at all: it took down ``ingest.max_attempts`` runs already,
    or it is past a size limit. Otherwise its attempt is recorded (durably) before the read."""
    earlier = record_attempt(workspace, landed, run.run_id)
    for phase, runs in earlier.items():
        if len(runs) >= cfg.max_attempts:
            read_done(workspace, landed, run.run_id)
            times = "twice" if len(runs) == 2 else f"{len(runs)} times"
            return CheckFailure(
                landed.name,
                "crashed_the_pipeline",
                None,
                f"crashed the pipeline {times}: {len(runs)} run(s) died while "
                f"{'reading it' if phase == 'read' else 'validating an arrival it was in'} "
                f"(ingest.max_attempts={cfg.max_attempts}); quarantined unread so that the "
                "files behind it go on",
                examples=[{"phase": phase, "runs": runs}],
            )
    refused = check_limits(landed.path, landed.name, cfg)
    if refused is not None:
        read_done(workspace, landed, run.run_id)
    return refused
