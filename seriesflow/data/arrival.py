"""Validating an arrival of files: per-file checks, merge rules, the merged-series checks.

Each new file is checked on its own rows (the row suite, robust outliers, drift against
the champion's training statistics), then merged into the accepted history (no silent
revision, no back-fill) and the merged result is checked per series. A file that fails
is left out (or, with ``on_bad_file=reject_arrival``, the whole arrival). The suites
live in ``seriesflow/data/expectations.py``, the drift check in
``seriesflow/data/drift.py``; the validate task (``tasks/validate.py``) quarantines and
writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.drift import DRIFT_COLUMNS, drift_failure, drift_table
from seriesflow.data.errors import CheckFailure, example_rows, shown_name
from seriesflow.data.expectations import (
    CheckReport,
    FileVerdict,
    GxSession,
    check_file,
    check_merged,
    robust_outliers,
)
from seriesflow.data.schema import SERIES_ID, SOURCE_FILE, SOURCE_ROW, TIMESTAMP, VALUE
from seriesflow.workspace.results import IngestResult


def merge_file(
    accepted: pd.DataFrame,
    rows: pd.DataFrame,
    file: str,
    allow_revisions: bool,
    origins: pd.Series | None = None,
) -> tuple[pd.DataFrame, list[CheckFailure]]:
    """Merge one file's rows into the accepted rows.

    Re-sent identical rows are harmless. With ``allow_revisions`` the file's row wins on
    series_id+timestamp. Without it a row that changes an accepted value, or one that
    back-fills before a series' last accepted timestamp, rejects the file; ``origins``
    (series_id+timestamp -> file, for the rows earlier files of the same arrival brought)
    names the earlier file when the value it changes came from one.
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
        if changed.any() and origins is not None and len(origins):
            origin = pd.Series(origins.reindex(keys).to_numpy(), index=rows.index)
            within = changed & origin.notna()
            changed = changed & origin.isna()
            if within.any():
                earlier = sorted(set(origin[within]))
                failures.append(
                    CheckFailure(
                        file,
                        "no_conflict_within_arrival",
                        VALUE,
                        f"rows give other values for the same series_id and timestamp than "
                        f"{', '.join(map(shown_name, earlier))}, accepted earlier in this "
                        "arrival (files apply in landing order, as if each came in its own "
                        "run); correct one of the files, or set "
                        "validation.allow_history_revisions=true to let the later file win",
                        int(within.sum()),
                        example_rows(rows, within),
                    )
                )
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


def static_failures(
    merged: pd.DataFrame, rows: pd.DataFrame, file: str, static: list[str]
) -> list[CheckFailure]:
    """``columns.static`` must hold one value per series (over the history and the file)."""
    failures = []
    touched = merged[merged[SERIES_ID].isin(rows[SERIES_ID].unique())]
    for column in static:
        distinct = touched.groupby(SERIES_ID)[column].nunique(dropna=True)
        varying = distinct[distinct > 1].index
        if len(varying):
            bad = rows[SERIES_ID].isin(varying)
            failures.append(
                CheckFailure(
                    file,
                    "static_is_constant",
                    column,
                    f"static covariate '{column}' takes more than one value within series "
                    f"{sorted(map(str, varying))[:5]}: a static covariate has one value per "
                    "series (list a changing column in columns.past or columns.future)",
                    int(bad.sum()),
                    example_rows(rows, bad),
                )
            )
    return failures


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
    origins: pd.Series | None = None,
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
    candidate, merge_failures = merge_file(
        arrival.merged, rows, file, cfg.allow_history_revisions, origins
    )
    verdict.failures.extend(merge_failures)
    if verdict.ok:
        verdict.failures.extend(static_failures(candidate, rows, file, config.columns.static))
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
    # Files apply in landing order, each as if it came in its own run: which earlier file of
    # this arrival brought a series_id+timestamp the history lacked, so that a later file
    # giving it another value is rejected naming both (allow_history_revisions: it wins).
    tracked = not cfg.allow_history_revisions
    history_keys = pd.MultiIndex.from_frame(accepted[[SERIES_ID, TIMESTAMP]]) if tracked else None
    origins = pd.Series(
        [], index=pd.MultiIndex.from_arrays([[], []], names=[SERIES_ID, TIMESTAMP]), dtype=object
    )
    for file in files:
        try:
            part = stacked[stacked[SOURCE_FILE] == file]
            # index rows by their place in the file, so example rows point at the line to fix
            rows = part[keep].set_axis(part[SOURCE_ROW].to_numpy(), axis=0)
            verdict, candidate = check_one_file(
                arrival, rows, file, config, session, reference, origins
            )
            if verdict.ok and tracked:
                origins = _with_origins(origins, rows, file, history_keys)
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


def _with_origins(
    origins: pd.Series, rows: pd.DataFrame, file: str, history_keys: pd.MultiIndex
) -> pd.Series:
    """``origins`` plus the series_id+timestamp keys ``file`` brought first."""
    keys = pd.MultiIndex.from_frame(rows[[SERIES_ID, TIMESTAMP]]).unique()
    fresh = keys[~keys.isin(history_keys) & ~keys.isin(origins.index)]
    if not len(fresh):
        return origins
    return pd.concat([origins, pd.Series(file, index=fresh, dtype=object)])


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
