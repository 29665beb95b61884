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
    check_profile,
    per_row,
    robust_outliers,
)
from seriesflow.data.frequency import Frequency, _micros
from seriesflow.data.grid import _steps
from seriesflow.data.profile import (
    FIRST_US,
    FREQUENCY,
    LAST_US,
    M2,
    MAX_GAP_STEPS,
    MEAN,
    MEDIAN,
    N_POINTS,
    N_VALUES,
    OFF_GRID_STEPS,
    OFFSET,
    ROBUST_AT,
    ROBUST_REFRESH,
    ROBUST_SD,
    STEPS_FOUND,
    VALUE_MAX,
    VALUE_MIN,
    VALUE_SPAN,
    as_floats,
    as_stored,
    build_profile,
    robust_stats,
    series_suite_frame,
    static_column,
)
from seriesflow.data.schema import SERIES_ID, SOURCE_FILE, SOURCE_ROW, TIMESTAMP, VALUE
from seriesflow.workspace.results import IngestResult


def merge_checks(
    accepted: pd.DataFrame,
    rows: pd.DataFrame,
    file: str,
    allow_revisions: bool,
    origins: pd.Series | None = None,
) -> list[CheckFailure]:
    """The merge rules of ``merge_file``: no silent revision, no back-fill (the failures).

    ``accepted`` need only hold the accepted rows of the series whose rows the file sends
    at or before their last accepted timestamp: a row after it is neither.
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
    return failures


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
    key = [SERIES_ID, TIMESTAMP]
    failures = merge_checks(accepted, rows, file, allow_revisions, origins)
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
    # the merged rows' per-series profile (``seriesflow/data/profile.py``); None: not kept
    profile: pd.DataFrame | None = None

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


def validate_arrival_full(
    stacked: pd.DataFrame,
    files: list[str],
    config: PipelineConfig,
    history_source: str,
    session: GxSession | None = None,
    reference: dict[str, dict[str, float]] | None = None,
    refuse: frozenset[str] = frozenset(),
) -> Arrival:
    """Check each new file and fold the good ones into the history, in landing order.

    Per file: the row suite; drift against ``reference`` (the champion's training
    statistics); merge rules (no silent revision, no back-fill); then the series
    suite on the merged rows of the series the file touches. Every file merges into,
    and profiles, the whole history again: ``validate_arrival`` checks against the
    history's profile instead; this path stays for ``allow_history_revisions`` (a revised
    value changes a series' statistics in ways no running profile follows) and as the
    reference the incremental path is measured and tested against.
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
            if verdict.ok and tracked and file not in refuse:
                origins = _with_origins(origins, rows, file, history_keys)
        except Exception as exc:  # noqa: BLE001 - one file's error must not stop the others
            why = f"the checks could not run on this file: {type(exc).__name__}: {exc}"
            verdict, candidate = (
                FileVerdict(file, [CheckFailure(file, "checks_ran", None, why)]),
                None,
            )
        arrival.reports[file] = verdict.reports
        if not verdict.ok:
            arrival.rejected[file] = verdict.failures
        elif file not in refuse:
            arrival.merged = candidate
            arrival.accepted.append(file)
    if _reject_whole_arrival(arrival, cfg.on_bad_file):
        arrival.merged = accepted
    return arrival


# --------------------------------------------------------------------------- incremental


def validate_arrival(
    stacked: pd.DataFrame,
    files: list[str],
    config: PipelineConfig,
    history_source: str,
    session: GxSession | None = None,
    reference: dict[str, dict[str, float]] | None = None,
    profile: pd.DataFrame | None = None,
    refuse: frozenset[str] = frozenset(),
) -> Arrival:
    """Check each new file against the accepted history's ``profile`` and fold the good
    ones in, in landing order; the same verdicts, messages and merged rows as
    ``validate_arrival_full``, without a pass over the whole history per file.

    Per file: the row suite (GX, on the file's rows); robust outliers against the
    profile's median and robust SD; drift against ``reference``; the merge rules, on the
    accepted rows of only the series the file sends rows at or before their last accepted
    timestamp (a re-send, a revision or a back-fill: usually none); the static covariates
    against the profile's values; then the series suite (GX) on the touched series'
    profile rows, carried forward from the profile with the file's new rows (length,
    value span, steps off the grid and the longest gap, on the grid through the series'
    first timestamp). A series that would fail, has no grid yet or is new is profiled
    exactly from its merged rows, so what a failure reports is what the full path reports.
    ``profile`` None: built from the history here (a workspace without one). The merged
    rows are built once, at the end, and ``Arrival.profile`` is their profile.

    ``refuse``: files checked (their failures and reports kept) but never accepted, even
    when they pass here: they failed elsewhere (``seriesflow/data/chunks.py``: another
    chunk of the same arrival).
    """
    cfg = config.validation
    if cfg.allow_history_revisions:
        return validate_arrival_full(
            stacked, files, config, history_source, session, reference, refuse
        )
    session = session or GxSession()
    keep = [c for c in stacked.columns if c not in (SOURCE_FILE, SOURCE_ROW)]
    history, new = _split_history(stacked, history_source, keep)
    if profile is None or int(profile[N_POINTS].sum()) != len(history):
        profile = build_profile(history, cfg.frequency, config.columns.static)
    state = _Running(history, profile)
    arrival = Arrival(merged=history)
    source = new[SOURCE_FILE]
    for file in files:
        try:
            part = new[(source == file).to_numpy()]
            # index rows by their place in the file, so example rows point at the line to fix
            rows = part[keep].set_axis(part[SOURCE_ROW].to_numpy(), axis=0)
            verdict = _check_incremental(
                state, rows, file, config, session, reference, arrival, file not in refuse
            )
        except Exception as exc:  # noqa: BLE001 - one file's error must not stop the others
            why = f"the checks could not run on this file: {type(exc).__name__}: {exc}"
            verdict = FileVerdict(file, [CheckFailure(file, "checks_ran", None, why)])
        arrival.reports[file] = verdict.reports
        if not verdict.ok:
            arrival.rejected[file] = verdict.failures
        elif file not in refuse:
            arrival.accepted.append(file)
    if _reject_whole_arrival(arrival, cfg.on_bad_file):
        arrival.merged, arrival.profile = history, profile
        return arrival
    arrival.merged, arrival.profile = state.finish()
    return arrival


def _split_history(
    stacked: pd.DataFrame, history_source: str, keep: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history rows, the new files' rows) of the stacked ingest table."""
    is_history = (stacked[SOURCE_FILE] == history_source).to_numpy(dtype=bool)
    leading = int(np.argmin(is_history)) if not is_history.all() else len(is_history)
    if not is_history[leading:].any():  # ingest stacks the history first: slices, no mask
        return stacked.iloc[:leading][keep].reset_index(drop=True), stacked.iloc[leading:]
    return stacked.loc[is_history, keep].reset_index(drop=True), stacked.loc[~is_history]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Row positions [sum(lengths)] of the blocks ``starts[k] : starts[k] + lengths[k]``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.repeat(
        np.asarray(starts, dtype=np.int64) - np.r_[0, np.cumsum(lengths)[:-1]], lengths
    )
    return offsets + np.arange(int(lengths.sum()))


def _dedupe_sorted(frame: pd.DataFrame) -> pd.DataFrame:
    key = [SERIES_ID, TIMESTAMP]
    frame = frame.drop_duplicates(subset=key, keep="last")
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


class _Running:
    """The accepted state while an arrival's files are checked one by one: the history
    (sorted by series, then time), its profile carried forward with each accepted file,
    and the accepted files' rows."""

    def __init__(self, history: pd.DataFrame, profile: pd.DataFrame) -> None:
        self.history = history
        self.start = profile  # the history's own: outlier reference, where its rows are
        self.profile = as_floats(profile)
        self.parts: list[tuple[str, pd.DataFrame]] = []
        self.resent = False  # an accepted file re-sent accepted rows: merge the full way
        self._located = self._offsets_hold()

    def _offsets_hold(self) -> bool:
        """Whether the profile's offsets find each series' rows in the history (spot check)."""
        p = self.start
        if not len(p):
            return True
        offset, count = p[OFFSET].to_numpy(), p[N_POINTS].to_numpy()
        if (offset < 0).any() or int(offset[-1] + count[-1]) != len(self.history):
            return False
        ids = self.history[SERIES_ID]
        firsts = ids.iloc[offset].to_numpy(dtype=object)
        lasts = ids.iloc[offset + count - 1].to_numpy(dtype=object)
        names = p.index.to_numpy(dtype=object)
        return bool((firsts == names).all() and (lasts == names).all())

    def history_rows(self, series: np.ndarray) -> pd.DataFrame:
        if not self._located:
            return self.history[self.history[SERIES_ID].isin(series)]
        known = self.start.reindex(pd.Index(series, dtype=object)).dropna(subset=[OFFSET])
        index = _ranges(known[OFFSET].to_numpy(), known[N_POINTS].to_numpy())
        return self.history.iloc[np.sort(index)]

    def accepted_rows(self, series: np.ndarray) -> pd.DataFrame:
        """The accepted rows of ``series``: history and earlier files of the arrival."""
        parts = [self.history_rows(series)]
        parts += [rows[rows[SERIES_ID].isin(series)] for _, rows in self.parts]
        return _dedupe_sorted(pd.concat(parts, ignore_index=True))

    def origins(self, series: np.ndarray) -> pd.Series:
        """series_id+timestamp -> the earlier file of this arrival that brought it first."""
        found = []
        for file, rows in self.parts:
            mine = rows[rows[SERIES_ID].isin(series)]
            last = per_row(mine[SERIES_ID], self.start[LAST_US])
            fresh = np.isnan(last) | (_micros(mine[TIMESTAMP]).astype(float) > last)
            keys = pd.MultiIndex.from_frame(mine.loc[fresh, [SERIES_ID, TIMESTAMP]])
            found.append(pd.Series(file, index=keys, dtype=object))
        if not found:
            return pd.Series(
                [],
                index=pd.MultiIndex.from_arrays([[], []], names=[SERIES_ID, TIMESTAMP]),
                dtype=object,
            )
        origins = pd.concat(found)
        return origins[~origins.index.duplicated(keep="first")]

    def accept(self, file: str, rows: pd.DataFrame, resent: bool, updated: pd.DataFrame) -> None:
        self.parts.append((file, rows))
        self.resent = self.resent or resent
        fresh = updated.index.difference(self.profile.index)
        if len(fresh):
            self.profile = pd.concat([self.profile, updated.loc[fresh]])
        known = updated.index.intersection(self.profile.index).difference(fresh)
        if len(known):
            self.profile.loc[known, updated.columns] = updated.loc[known]

    def finish(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The merged rows (as ``merge_file`` file after file gives them) and their profile."""
        profile = self.profile.sort_index()
        if not self.parts:
            return self.history, as_stored(profile)
        new = pd.concat([rows for _, rows in self.parts], ignore_index=True)
        if self.resent or not self._located:
            merged = _dedupe_sorted(pd.concat([self.history, new], ignore_index=True))
        else:
            # every accepted row comes after its series' accepted rows (no overlap: no
            # re-sent row was accepted), so the merge is an insertion at each series' end
            merged = _insert_at_series_ends(self.history, self.start, new)
        profile[OFFSET] = np.r_[0, np.cumsum(profile[N_POINTS].to_numpy())[:-1]].astype(np.int64)
        return merged, as_stored(_refresh_robust(profile, merged))


def _insert_at_series_ends(
    history: pd.DataFrame, located: pd.DataFrame, new: pd.DataFrame
) -> pd.DataFrame:
    """``history`` (sorted, its series where ``located``'s offsets say) with the ``new`` rows,
    each later than its series' history, put in place: what concat, drop_duplicates and a
    sort give, in two array passes per column instead of hashing and sorting every row."""
    new = new.sort_values([SERIES_ID, TIMESTAMP], kind="stable", ignore_index=True)
    ids = located.index.to_numpy(dtype=object)
    offset = located[OFFSET].to_numpy().astype(np.int64)
    count = located[N_POINTS].to_numpy().astype(np.int64)
    codes, uniques = pd.factorize(new[SERIES_ID])
    uniques = np.asarray(uniques, dtype=object)
    place = np.searchsorted(ids, uniques, side="right")  # history series sorting <= it
    if len(ids):
        before = np.maximum(place - 1, 0)
        exists = (place > 0) & (ids[before] == uniques)
        starts = np.r_[offset, len(history)]
        insert = np.where(exists, offset[before] + count[before], starts[place])[codes]
    else:
        insert = np.zeros(len(new), dtype=np.int64)
    # runs of new rows with one insertion point, between slices of the history: concat
    # copies each slice once (Arrow strings are not even copied, only chunked)
    cuts = np.flatnonzero(np.r_[True, insert[1:] != insert[:-1]]) if len(new) else []
    bounds = np.r_[cuts, len(new)].astype(np.int64)
    pieces, previous = [], 0
    for k, first in enumerate(cuts):
        point = int(insert[first])
        if point > previous:
            pieces.append(history.iloc[previous:point])
        pieces.append(new.iloc[int(first) : int(bounds[k + 1])])
        previous = point
    if previous < len(history) or not pieces:
        pieces.append(history.iloc[previous:])
    return pd.concat(pieces, ignore_index=True)


def _refresh_robust(profile: pd.DataFrame, merged: pd.DataFrame) -> pd.DataFrame:
    """Recompute the outlier reference of the series that grew by ``ROBUST_REFRESH``."""
    stale = profile[N_VALUES] > profile[ROBUST_AT] * (1 + ROBUST_REFRESH)
    if not stale.any():
        return profile
    values = merged[VALUE].to_numpy(dtype=float)
    offset = profile[OFFSET].to_numpy().astype(np.int64)
    count = profile[N_POINTS].to_numpy().astype(np.int64)
    for k in np.flatnonzero(stale.to_numpy()):
        median, scale = robust_stats(values[offset[k] : offset[k] + count[k]])
        profile.iloc[k, profile.columns.get_loc(MEDIAN)] = median
        profile.iloc[k, profile.columns.get_loc(ROBUST_SD)] = scale
    profile.loc[stale, ROBUST_AT] = profile.loc[stale, N_VALUES]
    return profile


def _check_incremental(
    state: _Running,
    rows: pd.DataFrame,
    file: str,
    config: PipelineConfig,
    session: GxSession,
    reference: dict[str, dict[str, float]] | None,
    arrival: Arrival,
    accept: bool = True,
) -> FileVerdict:
    """One file's checks against the running state; accepted into it if they pass (and
    ``accept``)."""
    cfg = config.validation
    verdict = check_file(session, rows, file, config.columns, cfg)
    if verdict.ok:
        outliers = robust_outliers(rows, state.start[[MEDIAN, ROBUST_SD, N_VALUES]], file, cfg)
        if outliers is not None:
            verdict.failures.append(outliers)
    if verdict.ok and reference and cfg.drift != "off":
        table = drift_table(rows, reference, file, cfg)
        arrival.drift.append(table)
        failure = drift_failure(table, file, cfg)
        if failure is not None and cfg.drift == "reject":
            verdict.failures.append(failure)
    if not verdict.ok:
        return verdict
    t = _micros(rows[TIMESTAMP]).astype(float)
    last = per_row(rows[SERIES_ID], state.profile[LAST_US])
    old = ~np.isnan(last) & (t <= last)  # re-sent, revised or back-filled: look them up
    if old.any():
        series = rows.loc[old, SERIES_ID].unique()
        accepted = state.accepted_rows(np.asarray(series, dtype=object))
        verdict.failures.extend(
            merge_checks(accepted, rows, file, False, state.origins(np.asarray(series, object)))
        )
    if verdict.ok:
        verdict.failures.extend(_static_failures(state, rows, file, config.columns.static))
    if not verdict.ok:
        return verdict
    suite_rows, updated = _touched_profile(state, rows, ~old, config)
    series_verdict = check_profile(session, suite_rows, file, config)
    verdict.failures.extend(series_verdict.failures)
    verdict.reports.extend(series_verdict.reports)
    if verdict.ok and accept:
        state.accept(file, rows, bool(old.any()), updated)
    return verdict


def _static_failures(
    state: _Running, rows: pd.DataFrame, file: str, static: list[str]
) -> list[CheckFailure]:
    """``static_failures`` against the profile's value of each static covariate."""
    failures = []
    for column in static:
        by_series = rows.groupby(SERIES_ID, sort=True)[column]
        distinct, first = by_series.nunique(dropna=True), by_series.first()
        if static_column(column) in state.profile.columns:
            before = state.profile[static_column(column)].reindex(first.index)
        else:
            before = pd.Series(np.nan, index=first.index)
        differs = before.notna() & first.notna() & (before != first)
        varying = distinct[(distinct > 1) | differs].index
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


def _touched_profile(
    state: _Running, rows: pd.DataFrame, fresh: np.ndarray, config: PipelineConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the series suite's rows for the series ``rows`` touch, their updated profile).

    Carried forward from the profile where a series has a grid and every point on it;
    profiled exactly from the merged rows otherwise, and wherever the carried-forward row
    would fail (so a failure reports what ``series_profile`` of the merged rows reports).
    """
    cfg = config.validation
    codes, uniques = pd.factorize(rows[SERIES_ID], sort=True)
    ids = pd.Index(np.asarray(uniques, dtype=object))
    before = state.profile.reindex(ids)
    configured = Frequency.parse(cfg.frequency).code if cfg.frequency else None
    grid = before[FREQUENCY].fillna("").astype(str)
    carried = (
        before[N_POINTS].notna().to_numpy()
        & (grid != "").to_numpy()
        & (before[OFF_GRID_STEPS].fillna(1) == 0).to_numpy()
    )
    if configured is not None:
        carried &= (grid == configured).to_numpy()
    updated = before.copy()
    if carried.any():
        _carry_forward(updated, carried, rows, codes, fresh)
    # a carried-forward row that would fail is profiled exactly, as is one not carried
    fails = (
        (updated[N_POINTS].to_numpy(dtype=float) < config.min_points())
        | ~(updated[VALUE_SPAN].to_numpy(dtype=float) > 0)
        | (updated[OFF_GRID_STEPS].to_numpy(dtype=float) > 0)
        | (updated[MAX_GAP_STEPS].to_numpy(dtype=float) > cfg.max_gap_steps)
    )
    exact = ~carried | fails
    if exact.any():
        series = ids.to_numpy()[exact]
        mine = rows[rows[SERIES_ID].isin(series)]
        merged = _dedupe_sorted(pd.concat([state.accepted_rows(series), mine], ignore_index=True))
        profiled = as_floats(build_profile(merged, cfg.frequency, config.columns.static))
        profiled = profiled.reindex(columns=updated.columns)
        profiled[OFFSET] = before.loc[series, OFFSET].to_numpy()  # where the history has it
        updated.loc[series] = profiled.loc[series]
    for column in config.columns.static:
        name = static_column(column)
        firsts = rows.groupby(SERIES_ID, sort=True)[column].first()
        if name not in updated.columns:
            updated[name] = np.nan
        updated[name] = updated[name].fillna(firsts.reindex(ids))
    updated[SERIES_ID] = ids.to_numpy()
    return series_suite_frame(updated), updated


def _carry_forward(
    updated: pd.DataFrame,
    carried: np.ndarray,
    rows: pd.DataFrame,
    codes: np.ndarray,
    fresh: np.ndarray,
) -> None:
    """Fill ``updated`` (the touched series' profile rows, in place) for the series
    ``carried`` [series] with the file's ``fresh`` rows: those after their last timestamp."""
    n = len(updated)
    take = fresh & carried[codes]
    code = codes[take]
    t = _micros(rows[TIMESTAMP])[take]
    values = rows[VALUE].to_numpy(dtype=float)[take]
    known = ~np.isnan(values)
    count = np.bincount(code, minlength=n)
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(low, code[known], values[known])
    np.maximum.at(high, code[known], values[known])
    n_b = np.bincount(code[known], minlength=n).astype(float)
    total = np.bincount(code[known], weights=values[known], minlength=n)
    mean_b = np.divide(total, n_b, out=np.zeros(n), where=n_b > 0)
    m2_b = np.bincount(code[known], weights=(values[known] - mean_b[code[known]]) ** 2, minlength=n)
    n_a = updated[N_VALUES].to_numpy(dtype=float)
    mean_a = np.nan_to_num(updated[MEAN].to_numpy(dtype=float))
    m2_a = np.nan_to_num(updated[M2].to_numpy(dtype=float))
    both = np.where(carried, n_a + n_b, n_a)
    delta = mean_b - mean_a
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_b > 0, mean_a + delta * n_b / np.maximum(both, 1), mean_a)
        m2 = np.where(n_b > 0, m2_a + m2_b + delta**2 * n_a * n_b / np.maximum(both, 1), m2_a)
    vmin = np.fmin(updated[VALUE_MIN].to_numpy(dtype=float), np.where(np.isinf(low), np.nan, low))
    vmax = np.fmax(updated[VALUE_MAX].to_numpy(dtype=float), np.where(np.isinf(high), np.nan, high))
    # the grid: each carried series' last accepted timestamp, then its fresh rows, on the
    # grid through its first timestamp (as series_profile places it)
    gap_new = np.zeros(n, dtype=np.int64)
    off_new = np.zeros(n, dtype=np.int64)
    last_us = updated[LAST_US].to_numpy(dtype=float)
    for code_f in sorted(set(updated.loc[carried, FREQUENCY])):
        frequency = Frequency.parse(code_f)
        group = np.flatnonzero(carried & (updated[FREQUENCY] == code_f).to_numpy())
        mine = np.isin(code, group)
        tail_code = np.r_[group, code[mine]]
        tail_t = np.r_[last_us[group].astype(np.int64), t[mine]]
        order = np.lexsort((tail_t, tail_code))
        tail_code, tail_t = tail_code[order], tail_t[order]
        origin = updated[FIRST_US].to_numpy(dtype=float).astype(np.int64)[tail_code]
        position, on_grid = frequency.positions(tail_t, origin=origin)
        first = np.r_[True, tail_code[1:] != tail_code[:-1]]
        steps = _steps(position, first)
        off_new += np.bincount(tail_code, weights=(~on_grid) | (steps <= 0), minlength=n).astype(
            np.int64
        )
        np.maximum.at(gap_new, tail_code, np.clip(steps - 1, 0, None))
    c = carried
    updated.loc[c, N_POINTS] = (updated[N_POINTS].to_numpy(dtype=float) + count)[c]
    updated.loc[c, N_VALUES] = both[c]
    updated.loc[c, MEAN] = mean[c]
    updated.loc[c, M2] = m2[c]
    updated.loc[c, VALUE_MIN] = vmin[c]
    updated.loc[c, VALUE_MAX] = vmax[c]
    span = np.where(np.isnan(vmax - vmin), 0.0, vmax - vmin)
    updated.loc[c, VALUE_SPAN] = span[c]
    latest = np.full(n, -np.inf)
    np.maximum.at(latest, code, t.astype(float))
    updated.loc[c, LAST_US] = np.fmax(last_us, np.where(np.isinf(latest), np.nan, latest))[c]
    updated.loc[c, OFF_GRID_STEPS] = off_new[c]
    updated.loc[c, MAX_GAP_STEPS] = np.maximum(
        updated[MAX_GAP_STEPS].to_numpy(dtype=float), gap_new
    )[c]
    updated.loc[c, STEPS_FOUND] = ""


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


def _reject_whole_arrival(arrival, on_bad_file: str) -> bool:
    """With ``on_bad_file=reject_arrival`` and a file rejected, reject the files it had
    accepted too (each with the reason); True when it did (the caller restores its merge)."""
    if not (arrival.rejected and on_bad_file == "reject_arrival"):
        return False
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
    return True
