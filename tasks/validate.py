"""Validate: a Great Expectations suite per arriving file, then on the merged history.

Each new file is checked on its own rows (schema, nulls, finite values, range,
unique and ordered timestamps), then merged into the accepted history and the
merged result is checked per series (length, not constant, regular frequency,
gaps, no silent revision of accepted values, no back-fill). A file that fails
is left out (or, with ``on_bad_file=reject_arrival``, the whole arrival) and
quarantined; data already accepted is never changed by it. The suites live in
``seriesflow/data/expectations.py``, the drift check in ``seriesflow/data/drift.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.drift import DRIFT_COLUMNS, drift_failure, drift_table
from seriesflow.data.errors import CheckFailure, DataRejected, example_rows
from seriesflow.data.expectations import (
    CheckReport,
    FileVerdict,
    GxSession,
    check_file,
    check_merged,
    robust_outliers,
)
from seriesflow.data.schema import SERIES_ID, SOURCE_FILE, SOURCE_ROW, TIMESTAMP, VALUE
from seriesflow.evaluation.champion import champion_reference
from seriesflow.ops.artifacts import data_docs_markdown, reports_link
from seriesflow.workspace.files import RunDir, Workspace, read_parquet, write_json, write_parquet
from seriesflow.workspace.history import HISTORY_SOURCE, accepted_schema
from seriesflow.workspace.quarantine import quarantine_files
from seriesflow.workspace.results import IngestResult, ValidateResult
from tasks.stage import stage_logger

# --------------------------------------------------------------------------- pure rules


def merge_file(
    accepted: pd.DataFrame, rows: pd.DataFrame, file: str, allow_revisions: bool
) -> tuple[pd.DataFrame, list[CheckFailure]]:
    """Merge one file's rows into the accepted rows (later wins on series_id+timestamp).

    Re-sent identical rows are harmless. Without ``allow_revisions`` a row that
    changes an accepted value, or one that back-fills before a series' last
    accepted timestamp, rejects the file.
    """
    failures = []
    key = [SERIES_ID, TIMESTAMP]
    if not allow_revisions and len(accepted):
        lookup = accepted.set_index(key)[VALUE]
        keys = pd.MultiIndex.from_frame(rows[key])
        known = pd.Series(keys.isin(lookup.index), index=rows.index)
        before = lookup.reindex(keys).to_numpy(dtype=float)
        same = np.isclose(rows[VALUE].to_numpy(dtype=float), before, equal_nan=True)
        changed = known & ~pd.Series(same, index=rows.index)
        if changed.any():
            failures.append(
                CheckFailure(
                    file,
                    "no_revision_of_accepted_values",
                    VALUE,
                    "rows change values already accepted for the same series_id and timestamp "
                    "(set validation.allow_history_revisions=true to let later files win)",
                    int(changed.sum()),
                    example_rows(rows, changed),
                )
            )
        last = accepted.groupby(SERIES_ID)[TIMESTAMP].max()
        series_last = rows[SERIES_ID].map(last)
        backfill = ~known & series_last.notna() & (rows[TIMESTAMP] <= series_last)
        if backfill.any():
            failures.append(
                CheckFailure(
                    file,
                    "no_backfill",
                    TIMESTAMP,
                    "rows go back in time: they fall before the series' last accepted timestamp "
                    f"({series_last[backfill].iloc[0]})",
                    int(backfill.sum()),
                    example_rows(rows, backfill),
                )
            )
    if failures:
        return accepted, failures
    if len(accepted) and accepted[SERIES_ID].isin(rows[SERIES_ID].unique()).any():
        merged = pd.concat([accepted, rows], ignore_index=True)
        merged = merged.drop_duplicates(subset=key, keep="last")
        return merged.sort_values(key, kind="stable").reset_index(drop=True), failures
    # Only new series (a file per group of series, at scale): the same result without
    # hashing and sorting the whole history again for every file.
    fresh = rows.drop_duplicates(subset=key, keep="last").sort_values(key, kind="stable")
    merged = pd.concat([accepted, fresh], ignore_index=True)
    if not merged[SERIES_ID].is_monotonic_increasing:
        merged = merged.sort_values(key, kind="stable", ignore_index=True)
    return merged, failures


@dataclass
class Arrival:
    """Outcome of validating one arrival of files."""

    merged: pd.DataFrame
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, list[CheckFailure]] = field(default_factory=dict)
    reports: dict[str, list[CheckReport]] = field(default_factory=dict)
    drift: list[pd.DataFrame] = field(default_factory=list)

    def drift_frame(self) -> pd.DataFrame:
        parts = [d for d in self.drift if len(d)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=DRIFT_COLUMNS)


def check_one_file(
    arrival: Arrival,
    rows: pd.DataFrame,
    file: str,
    config: PipelineConfig,
    session: GxSession,
    reference: dict[str, dict[str, float]] | None,
) -> tuple[FileVerdict, pd.DataFrame | None]:
    """One file's checks, in order; the merged rows if it passes."""
    cfg = config.validation
    verdict = check_file(session, rows, file, config.columns, cfg)
    if verdict.ok:
        outliers = robust_outliers(rows, arrival.merged, file, cfg)
        if outliers is not None:
            verdict.failures.append(outliers)
    if verdict.ok and reference and cfg.drift != "off":
        table = drift_table(rows, reference, file, cfg)
        arrival.drift.append(table)
        failure = drift_failure(table, file, cfg)
        if failure is not None and cfg.drift == "reject":
            verdict.failures.append(failure)
    if not verdict.ok:
        return verdict, None
    candidate, merge_failures = merge_file(arrival.merged, rows, file, cfg.allow_history_revisions)
    verdict.failures.extend(merge_failures)
    if verdict.ok:
        series_verdict = check_merged(
            session, candidate, file, config, touched=set(rows[SERIES_ID].unique())
        )
        verdict.failures.extend(series_verdict.failures)
        verdict.reports.extend(series_verdict.reports)
    return verdict, candidate


def validate_arrival(
    stacked: pd.DataFrame,
    files: list[str],
    config: PipelineConfig,
    history_source: str,
    session: GxSession | None = None,
    reference: dict[str, dict[str, float]] | None = None,
) -> Arrival:
    """Check each new file and fold the good ones into the history, in landing order.

    Per file: the row suite; drift against ``reference`` (the champion's training
    statistics); merge rules (no silent revision, no back-fill); then the series
    suite on the merged rows of the series the file touches.
    """
    session = session or GxSession()
    cfg = config.validation
    keep = [c for c in stacked.columns if c not in (SOURCE_FILE, SOURCE_ROW)]
    accepted = stacked.loc[stacked[SOURCE_FILE] == history_source, keep].reset_index(drop=True)
    arrival = Arrival(merged=accepted)
    for file in files:
        part = stacked[stacked[SOURCE_FILE] == file]
        # index rows by their place in the file, so example rows point at the line to fix
        rows = part[keep].set_axis(part[SOURCE_ROW].to_numpy(), axis=0)
        try:
            verdict, candidate = check_one_file(arrival, rows, file, config, session, reference)
        except Exception as exc:  # noqa: BLE001 - one file's error must not stop the others
            why = f"the checks could not run on this file: {type(exc).__name__}: {exc}"
            verdict, candidate = (
                FileVerdict(file, [CheckFailure(file, "checks_ran", None, why)]),
                None,
            )
        arrival.reports[file] = verdict.reports
        if verdict.ok:
            arrival.merged = candidate
            arrival.accepted.append(file)
        else:
            arrival.rejected[file] = verdict.failures
    if arrival.rejected and cfg.on_bad_file == "reject_arrival":
        for file in arrival.accepted:
            arrival.rejected[file] = [
                CheckFailure(
                    file,
                    "arrival_rejected",
                    None,
                    "another file of the same arrival failed and validation.on_bad_file is "
                    "reject_arrival",
                )
            ]
        arrival.accepted = []
        arrival.merged = accepted
    return arrival


def bad_files(
    ingested: IngestResult, arrival: Arrival, on_bad_file: str
) -> dict[str, list[CheckFailure]]:
    """Every file to quarantine, with its failures: unreadable, failed checks, and -- with
    ``reject_arrival`` -- the good files of an arrival that held a bad one."""
    failures: dict[str, list[CheckFailure]] = {
        f.name: [CheckFailure(**d) for d in ingested.read_failures[f.sha256]]
        for f in ingested.new_files
        if f.sha256 in ingested.read_failures
    }
    failures.update(arrival.rejected)
    if failures and on_bad_file == "reject_arrival":
        for f in ingested.new_files:
            failures.setdefault(f.name, arrival.rejected.get(f.name, []))
    return failures


def report_rows(reports: dict[str, list[CheckReport]]) -> list[dict[str, Any]]:
    """One row per expectation and file, for the table artifact and validation.json."""
    return [
        {
            "file": file,
            "table": r.table,
            "expectation": r.check,
            "column": r.column or "",
            "success": r.success,
            "unexpected_count": r.unexpected_count or 0,
        }
        for file, items in reports.items()
        for r in items
    ]


# --------------------------------------------------------------------------- the task


@task(name="validate", cache_policy=NO_CACHE)
def validate(
    workspace_root: Path,
    run: RunDir,
    ingested: IngestResult,
    config: PipelineConfig,
    tracking_uri: str | None = None,
) -> ValidateResult:
    """Validate the arrival; quarantine bad files; write the merged accepted rows."""
    logger = stage_logger()
    workspace = Workspace(workspace_root)
    readable = [f.name for f in ingested.new_files if f.sha256 not in ingested.read_failures]
    reference = {}
    if tracking_uri and config.validation.drift != "off":
        reference = champion_reference(config, tracking_uri)
    docs = run.validation_dir / "data_docs" if config.validation.build_data_docs else None
    session = GxSession(docs)
    stacked = read_parquet(ingested.path)
    arrival = validate_arrival(stacked, readable, config, HISTORY_SOURCE, session, reference)
    index = session.build_docs()
    _report_drift(logger, run, arrival.drift_frame(), config.validation.drift)

    failures = bad_files(ingested, arrival, config.validation.on_bad_file)
    for items in failures.values():
        for failure in items:
            logger.error("%s", failure.describe())
    rejected = quarantine_files(workspace, ingested.new_files, failures, run.run_id)
    for item in rejected:
        if item["quarantined_to"]:
            logger.warning("Quarantined %s -> %s", item["name"], item["quarantined_to"])
        else:
            logger.warning("Rejected %s (left in place): %s", item["name"], item["error"] or "")
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
    merged = arrival.merged
    write_parquet(merged, run.validated, accepted_schema(config.columns))
    series = int(merged[SERIES_ID].nunique())
    logger.info(
        "Validated: accepted %s -> %d rows, %d series", arrival.accepted, len(merged), series
    )
    return ValidateResult(run.validated, arrival.accepted, rejected, len(merged), series)


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
