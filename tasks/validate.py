"""Validate: a Great Expectations suite per arriving file, then on the merged history.

Each new file is checked on its own rows (schema, nulls, finite values, range,
unique and ordered timestamps), then against the accepted history's per-series
profile (``profile.parquet``, kept by the last commit; rebuilt once when missing or out
of step): no silent revision of accepted values, no back-fill, and per series length,
not constant, regular frequency and gaps -- without profiling the whole history again. A file that
fails is left out (or, with ``on_bad_file=reject_arrival``, the whole arrival) and
quarantined; data already accepted is never changed by it. The suites live in
``seriesflow/data/expectations.py``, the drift check in ``seriesflow/data/drift.py``, the
rules per arrival in ``seriesflow/data/arrival.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.arrival import Arrival, bad_files, report_rows, validate_arrival
from seriesflow.data.chunks import chunked, plan_chunks, shift_offsets, spill, validate_chunks
from seriesflow.data.errors import DataRejected, shown_name
from seriesflow.data.expectations import GxSession
from seriesflow.data.profile import build_profile
from seriesflow.data.schema import SERIES_ID, SOURCE_FILE
from seriesflow.evaluation.champion import champion_reference
from seriesflow.ops.artifacts import data_docs_markdown, reports_link
from seriesflow.workspace.context import RunContext
from seriesflow.workspace.files import (
    RunDir,
    Workspace,
    concat_parquet,
    read_parquet,
    write_json,
    write_parquet,
)
from seriesflow.workspace.history import HISTORY_SOURCE, accepted_schema, new_rows
from seriesflow.workspace.profile import load_profile, run_profile_path, settings_of, write_profile
from seriesflow.workspace.quarantine import quarantine_files
from seriesflow.workspace.results import IngestResult, ValidateResult
from tasks.stage import stage_logger

# --------------------------------------------------------------------------- the task


@task(name="validate", cache_policy=NO_CACHE)
def validate(ingested: IngestResult, config: PipelineConfig, context: RunContext) -> ValidateResult:
    """Validate the arrival; quarantine bad files; write the merged accepted rows.

    Drift is checked against ``context``'s champion (its training statistics).
    """
    logger = stage_logger()
    workspace, run = context.workspace, context.run
    readable = [f.name for f in ingested.new_files if f.sha256 not in ingested.read_failures]
    reference = {}
    if config.validation.drift != "off":
        reference = champion_reference(context.champion)
    docs = run.data_docs if config.validation.build_data_docs else None
    session = GxSession(docs)
    profile, why = load_profile(workspace, ingested.history_version, ingested.history_rows, config)
    if profile is None and ingested.history_rows:
        logger.info("Profiling the accepted history once (%s)", why)
    outputs = _Outputs(run, config)
    try:
        arrival = _validate(outputs, ingested, readable, config, session, reference, profile)
        return _conclude(outputs, arrival, ingested, config, session, context)
    finally:
        outputs.discard()


def _validate(
    outputs: _Outputs,
    ingested: IngestResult,
    readable: list[str],
    config: PipelineConfig,
    session: GxSession,
    reference: dict,
    profile: pd.DataFrame | None,
) -> Arrival:
    """The arrival's verdicts, in one pass or (a large arrival) a chunk of series at a time;
    ``outputs`` holds what is written once the verdicts are in."""
    logger = stage_logger()
    rows = pq.ParquetFile(ingested.path).metadata.num_rows
    if not chunked(rows, config):
        stacked = read_parquet(ingested.path)
        arrival = validate_arrival(
            stacked, readable, config, HISTORY_SOURCE, session, reference, profile
        )
        outputs.write(0, stacked, arrival)
        return arrival
    chunks = plan_chunks(ingested.path, config.validation.chunk_rows)
    logger.info(
        "Validating %d rows in %d chunks of whole series (validation.chunk_rows=%d)",
        rows,
        len(chunks),
        config.validation.chunk_rows,
    )
    outputs.parts = outputs.run.root / "validate-chunks"
    paths = spill(ingested.path, chunks, outputs.parts)
    return validate_chunks(
        paths,
        readable,
        config,
        HISTORY_SOURCE,
        session,
        reference,
        profile,
        outputs.write,
        logger.info,
    )


def _conclude(
    outputs: _Outputs,
    arrival: Arrival,
    ingested: IngestResult,
    config: PipelineConfig,
    session: GxSession,
    context: RunContext,
) -> ValidateResult:
    """Report and quarantine; raise when nothing usable arrived; else write the outputs."""
    logger = stage_logger()
    workspace, run = context.workspace, context.run
    index = session.build_docs()
    for page, urls in session.offline.unresolved.items():
        logger.warning(
            "Data Docs page %s loads %s from the internet: no vendored asset has that name "
            "(add it to seriesflow/data/datadocs-vendor/ and datadocs.ASSETS)",
            page,
            ", ".join(urls),
        )
    _report_drift(logger, run, arrival.drift_frame(), config.validation.drift)

    failures = bad_files(ingested, arrival, config.validation.on_bad_file)
    for items in failures.values():
        for failure in items:
            logger.error("%s", failure.describe())
    rejected = quarantine_files(workspace, ingested.new_files, failures, run.run_id)
    for item in rejected:
        if item["quarantined_to"]:
            # a landed name may hold a newline: shown escaped, it cannot forge a log line
            shown = shown_name(item["quarantined_to"])
            logger.warning("Quarantined %s -> %s", shown_name(item["name"]), shown)
        else:
            shown = shown_name(item["name"])
            why = shown_name(item["error"] or "")  # an OS error may quote the name
            logger.warning("Rejected %s (left in place): %s", shown, why)
    report = report_rows(arrival.reports)
    write_json(
        {
            "accepted": arrival.accepted,
            "rejected": rejected,
            "checks": report,
            "data_docs": str(index) if index else None,
        },
        run.validation_dir / "validation.json",
    )
    _report_checks(run, report, index, reports_link_of(config, workspace, index))
    if failures and not arrival.accepted:
        every = [f for items in failures.values() for f in items]
        raise DataRejected(
            every,
            hint="Nothing usable arrived: the files above were moved to "
            f"{workspace.quarantine}; fix them and drop them in the landing "
            "folder again.",
        )
    if rejected:
        logger.warning("Left out %d file(s): %s", len(rejected), [r["name"] for r in rejected])
    outputs.finish()
    logger.info(
        "Validated: accepted %s -> %d rows (%d new, %d revised), %d series",
        arrival.accepted,
        outputs.rows,
        outputs.appended,
        outputs.revised,
        outputs.series,
    )
    return ValidateResult(run.validated, arrival.accepted, rejected, outputs.rows, outputs.series)


class _Outputs:
    """What validate writes from each chunk's outcome (the whole arrival is chunk 0): the
    validated rows, what they add to the history (appended, revised) and their profile --
    into the run folder directly, or with ``parts`` set into per-chunk files there that
    ``stitch`` joins, in chunk (series) order, once every chunk is final."""

    def __init__(self, run: RunDir, config: PipelineConfig) -> None:
        self.run, self.config = run, config
        self.schema = accepted_schema(config.columns)
        self.parts: Path | None = None
        self.pending: tuple[pd.DataFrame, Arrival] | None = None
        self.done: dict[int, tuple[pd.DataFrame, int, int, int]] = {}

    @property
    def rows(self) -> int:
        return sum(d[1] for d in self.done.values())

    @property
    def series(self) -> int:
        return sum(len(d[0]) for d in self.done.values())

    @property
    def appended(self) -> int:
        return sum(d[2] for d in self.done.values())

    @property
    def revised(self) -> int:
        return sum(d[3] for d in self.done.values())

    def _path(self, final: Path, k: int) -> Path:
        return final if self.parts is None else self.parts / f"{final.stem}-{k:05d}.parquet"

    def write(self, k: int, stacked: pd.DataFrame, arrival: Arrival) -> None:
        """A chunk's outcome: written now (chunks), or kept for ``finish`` (the whole)."""
        if self.parts is None:
            self.pending = (stacked, arrival)
        else:
            self._write(k, stacked, arrival)

    def finish(self) -> None:
        """The run's validated rows, new rows and profile, once the verdicts are final."""
        if self.parts is None:
            stacked, arrival = self.pending
            self.pending = None
            self._write(0, stacked, arrival)
        else:
            self.stitch()

    def discard(self) -> None:
        """Drop what was not written (the chunks' files: the run keeps only its outputs)."""
        self.pending = None
        if self.parts is not None:
            shutil.rmtree(self.parts, ignore_errors=True)

    def _write(self, k: int, stacked: pd.DataFrame, arrival: Arrival) -> None:
        merged = arrival.merged
        write_parquet(merged, self._path(self.run.validated, k), self.schema)
        # what the commit adds to the history table (an append; revisions a merge)
        history = stacked.loc[stacked[SOURCE_FILE] == HISTORY_SOURCE, list(merged.columns)]
        allow = self.config.validation.allow_history_revisions
        appended, revised = new_rows(history, merged, allow)
        write_parquet(appended, self._path(self.run.new_rows, k), self.schema)
        revised_path = self._path(self.run.revised_rows, k)
        if len(revised):
            write_parquet(revised, revised_path, self.schema)
        elif self.parts is not None:
            revised_path.unlink(missing_ok=True)  # from this chunk's earlier outcome
        kept = arrival.profile
        if kept is None:  # the full path (allow_history_revisions) keeps none: profile the rows
            kept = build_profile(
                merged, self.config.validation.frequency, self.config.columns.static
            )
        self.done[k] = (kept, len(merged), len(appended), len(revised))
        if self.parts is None:
            self._write_profile(kept)

    def stitch(self) -> None:
        """The chunks' files as the run's, and their profiles as one."""
        assert self.parts is not None
        order = sorted(self.done)
        for final in (self.run.validated, self.run.new_rows):
            concat_parquet([self._path(final, k) for k in order], final, self.schema)
        revised = [p for k in order if (p := self._path(self.run.revised_rows, k)).exists()]
        if revised:
            concat_parquet(revised, self.run.revised_rows, self.schema)
        profiles, before = [], 0
        for k in order:
            kept, rows = self.done[k][0], self.done[k][1]
            profiles.append(shift_offsets(kept, before))
            before += rows
        self._write_profile(pd.concat(profiles) if profiles else self.done[0][0])

    def _write_profile(self, kept: pd.DataFrame) -> None:
        write_profile(
            kept,
            run_profile_path(self.run.validated),
            {"settings": settings_of(self.config), "history_rows": self.rows},
        )


def _report_drift(logger, run: RunDir, drift: pd.DataFrame, mode: str) -> None:
    if not len(drift):
        return
    write_parquet(drift, run.validation_dir / "drift.parquet")
    create_table_artifact(
        key="drift",
        table=drift.round(4).to_dict("records"),
        description=f"Arriving data vs the champion's training data, per series (mode: {mode})",
    )
    for _, row in drift[drift["drifted"]].iterrows():
        logger.warning(
            "Drift in %s, series %s: level shift %.2f SD, spread ratio %.2f (%s)",
            row["file"],
            row[SERIES_ID],
            row["mean_shift_sd"],
            row["sd_ratio"],
            mode,
        )


def reports_link_of(config: PipelineConfig, workspace: Workspace, index: Path | None) -> str | None:
    """The Data Docs' http URL under the reports base URL, if one is set."""
    if index is None:
        return None
    try:
        return reports_link(config.paths.resolved_reports_url(), workspace.runs, index)
    except ValueError as exc:  # a bad SERIESFLOW_REPORTS_URL costs the link, not the run
        stage_logger().warning("No Data Docs link: %s", exc)
        return None


def _report_checks(
    run: RunDir, report: list[dict[str, Any]], index: Path | None, url: str | None
) -> None:
    description = f"Validation results per file, run {run.run_id}"
    if url:  # a browser opens http links from the UI, never file:// ones
        create_link_artifact(
            key="data-docs",
            link=url,
            link_text="Great Expectations Data Docs",
            description=description,
        )
    elif index is not None:
        create_markdown_artifact(
            key="data-docs", markdown=data_docs_markdown(None, index), description=description
        )
    if report:
        create_table_artifact(
            key="validation-checks",
            table=report,
            description=f"Expectations per file, run {run.run_id}",
        )
