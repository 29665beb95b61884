"""Ingest: read the new files in the landing folder and coerce them to the schema.

Each new (by content hash) settled file is fetched and read on its own
(``seriesflow/data/reading.py``); the rows are stacked after the accepted history.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import ColumnsConfig, IngestConfig
from seriesflow.data.errors import DataRejected, shown_name
from seriesflow.data.reading import read_series_file, stack_with_history, unreadable
from seriesflow.data.schema import SERIES_ID, SOURCE_FILE, SOURCE_ROW
from seriesflow.ops.secrets import redact_text
from seriesflow.workspace.files import RunDir, Workspace, sha256_file, write_parquet
from seriesflow.workspace.history import accepted_schema, load_history
from seriesflow.workspace.landing import SPECIAL, SYMLINK, Landing
from seriesflow.workspace.ledger import UNREADABLE, find_new, load_ledger, settle
from seriesflow.workspace.results import IngestResult
from tasks.stage import stage_logger


@task(name="ingest", cache_policy=NO_CACHE)
def ingest(
    workspace_root: Path, run: RunDir, landing: str, columns: ColumnsConfig, cfg: IngestConfig
) -> IngestResult:
    """Read every new (by content hash) settled file in ``landing`` (a folder or a URL).

    Each file is read on its own: whatever goes wrong with one (unreadable, unknown
    format, a link, a read error) becomes that file's failure and the others go on.
    """
    logger = stage_logger()
    workspace = Workspace(workspace_root)
    place = Landing(landing)
    ledger = load_ledger(workspace.ledger)
    scan = settle(place, cfg.settle_seconds, workspace.looks, ledger, cfg.second_look, logger.info)
    new = find_new(scan.files, ledger)
    logger.info("Landing %s: %d file(s), %d new", place.display, len(scan.files), len(new))
    if scan.waiting:
        logger.info(
            "Not settled yet (changed, or first seen, within %ss), left for the next run: %s",
            cfg.settle_seconds,
            scan.waiting,
        )
    history = load_history(workspace, columns)
    if not new and not (cfg.retrain_without_new_data and len(history)):
        return IngestResult(path=None)
    if not new:
        logger.info(
            "No new files; retraining on the %d accepted rows (ingest.retrain_without_new_data)",
            len(history),
        )

    frames, failures, taken = [], {}, []
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
        try:
            local = place.fetch(landed_file.name, run.root / "00_landed" / landed_file.name)
            if place.remote and sha256_file(local) != landed_file.sha256:
                logger.info(
                    "%s changed since it was listed: left for the next run",
                    shown_name(landed_file.name),
                )
                continue
            landed_file = replace(landed_file, path=local)
            frame = read_series_file(local, columns, cfg, landed_file.name)
        except DataRejected as exc:
            logger.warning("Rejected on read: %s", exc)
            failures[landed_file.sha256] = [f.to_dict() for f in exc.failures]
            taken.append(landed_file)
            continue
        except Exception as exc:  # noqa: BLE001 - one file's error must not stop the others
            why = f"could not read the file: {type(exc).__name__}: {redact_text(str(exc))}"
            logger.warning("Rejected on read: %s: %s", shown_name(landed_file.name), why)
            failures[landed_file.sha256] = unreadable(landed_file, why)
            taken.append(landed_file)
            continue
        logger.info(
            "Read %s: %d rows, %d series", landed_file.name, len(frame), frame[SERIES_ID].nunique()
        )
        frames.append((landed_file.name, frame))
        taken.append(landed_file)

    stacked = stack_with_history(history, frames)
    schema = (
        accepted_schema(columns)
        .append(pa.field(SOURCE_FILE, pa.string()))
        .append(pa.field(SOURCE_ROW, pa.int64()))
    )
    write_parquet(stacked, run.ingested, schema)
    return IngestResult(
        path=run.ingested, new_files=taken, read_failures=failures, history_rows=len(history)
    )
