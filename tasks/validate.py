"""Validate: a Great Expectations suite per arriving file, then on the merged history.

Each new file is checked on its own rows (schema, nulls, finite values, range,
unique and ordered timestamps), then merged into the accepted history and the
merged result is checked per series (length, not constant, regular frequency,
gaps, no silent revision of accepted values, no back-fill). A file that fails
is left out (or, with ``on_bad_file=reject_arrival``, the whole arrival); data
already accepted is never changed by it.

GX validates two tables: the rows themselves, and a per-series profile derived
from the merged rows (GX has no group-by expectations for pandas).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NONE

from tasks.config import ColumnsConfig, PipelineConfig, ValidationConfig
from tasks.errors import CheckFailure, DataRejected, example_rows
from tasks.ingest import HISTORY_SOURCE, IngestResult, accepted_schema
from tasks.io import RunDir, Workspace, read_parquet, write_json, write_parquet
from tasks.quarantine import quarantine
from tasks.runtime import stage_logger
from tasks.schema import LABEL, SERIES_ID, SOURCE_FILE, SOURCE_ROW, TIMESTAMP, VALUE

# The largest float: anything beyond (inf) is not a measurement.
_FINITE = float(np.finfo(np.float64).max)

# Derived row column: True where a timestamp follows the previous one of its series.
IN_TIME_ORDER = "in_time_order"

# Per-series profile columns.
N_POINTS = "n_points"
VALUE_SPAN = "value_span"
OFF_GRID_STEPS = "off_grid_steps"
MAX_GAP_STEPS = "max_gap_steps"
STEP_SECONDS = "step_seconds"


@dataclass(frozen=True)
class CheckReport:
    """One expectation's outcome, for the table artifact and the quarantine JSON."""

    table: str  # rows | series
    check: str
    column: str | None
    success: bool
    unexpected_count: int | None


@dataclass
class FileVerdict:
    name: str
    failures: list[CheckFailure] = field(default_factory=list)
    reports: list[CheckReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


# --------------------------------------------------------------------------- GX plumbing


class GxSession:
    """One ephemeral GX context per validation: suites, per-file runs, optional Data Docs.

    Each file's run is a stored ValidationDefinition run, so Data Docs show one
    page per file and table ("rows: chunk_0003.csv", "series: chunk_0003.csv").
    """

    def __init__(self, docs_dir: Path | None = None) -> None:
        # Imported lazily: GX takes ~5 s to import and a skipped run never needs it.
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.docs_dir = docs_dir
        if docs_dir is not None:
            self.context.add_data_docs_site(
                site_name="run",
                site_config={
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir.resolve()),
                    },
                },
            )
        source = self.context.data_sources.add_pandas("seriesflow")
        self._definitions = {
            asset: source.add_dataframe_asset(asset).add_batch_definition_whole_dataframe("whole")
            for asset in ("rows", "series")
        }
        self._suites: dict[str, Any] = {}
        self._runs = 0

    def suite(self, name: str, settings: Any, build: Any) -> Any:
        """The suite ``name`` built for ``settings`` (built once per distinct settings)."""
        key = f"{name}-{abs(hash(repr(settings))):x}"
        if key not in self._suites:
            self._suites[key] = self.context.suites.add(build(self._gx.ExpectationSuite(name=key)))
        return self._suites[key]

    def run(self, asset: str, suite: Any, frame: pd.DataFrame, label: str) -> Any:
        self._runs += 1
        definition = self.context.validation_definitions.add(
            self._gx.ValidationDefinition(
                name=f"{asset}: {label} #{self._runs}", data=self._definitions[asset], suite=suite
            )
        )
        return definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")

    def build_docs(self) -> Path | None:
        if self.docs_dir is None or not self._runs:
            return None
        self.context.build_data_docs(site_names=["run"])
        return self.docs_dir / "index.html"


def row_suite(suite: Any, columns: ColumnsConfig, cfg: ValidationConfig) -> Any:
    """Fill ``suite`` with the per-file row expectations."""
    import great_expectations as gx

    e = gx.expectations
    low = -_FINITE if cfg.value_min is None else cfg.value_min
    high = _FINITE if cfg.value_max is None else cfg.value_max
    for column in (SERIES_ID, TIMESTAMP, VALUE, *columns.covariates):
        suite.add_expectation(e.ExpectColumnToExist(column=column))
    suite.add_expectation(e.ExpectColumnValuesToBeOfType(column=SERIES_ID, type_="str"))
    suite.add_expectation(e.ExpectColumnValuesToBeOfType(column=TIMESTAMP, type_="Timestamp"))
    for column in (VALUE, *columns.covariates):
        suite.add_expectation(e.ExpectColumnValuesToBeOfType(column=column, type_="float64"))
    suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=SERIES_ID))
    suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=TIMESTAMP))
    if cfg.max_value_null_fraction < 1:
        suite.add_expectation(
            e.ExpectColumnValuesToNotBeNull(column=VALUE, mostly=1 - cfg.max_value_null_fraction)
        )
    # Finite (and, when configured, within the plausible range); nulls are checked above.
    suite.add_expectation(
        e.ExpectColumnValuesToBeBetween(column=VALUE, min_value=low, max_value=high)
    )
    if columns.label:
        suite.add_expectation(e.ExpectColumnToExist(column=LABEL))
        suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=LABEL))
    for column in columns.covariates:
        suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=column))
        suite.add_expectation(
            e.ExpectColumnValuesToBeBetween(column=column, min_value=-_FINITE, max_value=_FINITE)
        )
    suite.add_expectation(e.ExpectCompoundColumnsToBeUnique(column_list=[SERIES_ID, TIMESTAMP]))
    suite.add_expectation(e.ExpectColumnValuesToBeInSet(column=IN_TIME_ORDER, value_set=[True]))
    return suite


def series_suite(suite: Any, min_points: int, cfg: ValidationConfig) -> Any:
    """Fill ``suite`` with the per-series profile expectations (on the merged rows)."""
    import great_expectations as gx

    e = gx.expectations
    suite.add_expectation(e.ExpectColumnValuesToBeBetween(column=N_POINTS, min_value=min_points))
    # A constant series has no scale: MinMax would divide by zero.
    suite.add_expectation(
        e.ExpectColumnValuesToBeBetween(column=VALUE_SPAN, min_value=0, strict_min=True)
    )
    suite.add_expectation(e.ExpectColumnValuesToBeBetween(column=OFF_GRID_STEPS, max_value=0))
    suite.add_expectation(
        e.ExpectColumnValuesToBeBetween(column=MAX_GAP_STEPS, max_value=cfg.max_gap_steps)
    )
    return suite


_MESSAGES = {
    "expect_column_to_exist": "the column is missing",
    "expect_column_values_to_be_of_type": "the column has the wrong type",
    "expect_column_values_to_not_be_null": "missing values",
    "expect_column_values_to_be_between": "values outside the allowed range (or not finite)",
    "expect_compound_columns_to_be_unique": "a series_id+timestamp appears twice",
    "expect_column_values_to_be_in_set": "timestamps go backwards within a series",
}
_SERIES_MESSAGES = {
    N_POINTS: "series too short to window (needs timesteps + horizon points in each split)",
    VALUE_SPAN: "constant series: every value is the same, so it cannot be scaled",
    OFF_GRID_STEPS: "timestamps off the series' regular step",
    MAX_GAP_STEPS: "a gap longer than validation.max_gap_steps",
}


def _run_suite(
    session: GxSession,
    asset: str,
    frame: pd.DataFrame,
    suite: Any,
    file: str,
    examples_from: pd.DataFrame | None = None,
) -> FileVerdict:
    """Validate ``frame`` and translate GX results into failures with example rows."""
    verdict = FileVerdict(file)
    result = session.run(asset, suite, frame, file)
    for item in result.results:
        config = item.expectation_config
        kwargs = config.kwargs
        column = kwargs.get("column") or ",".join(kwargs.get("column_list", []) or []) or None
        details = item.result or {}
        raised = (item.exception_info or {}).get("raised_exception", False)
        count = details.get("unexpected_count")
        verdict.reports.append(CheckReport(asset, config.type, column, bool(item.success), count))
        if item.success:
            continue
        if raised:
            message = f"the check could not run: {item.exception_info.get('exception_message')}"
        elif asset == "series":
            message = _SERIES_MESSAGES.get(column, _MESSAGES.get(config.type, config.type))
        else:
            message = _MESSAGES.get(config.type, config.type)
        index = details.get("partial_unexpected_index_list") or []
        source = examples_from if examples_from is not None else frame
        examples = example_rows(source, source.index.isin(index)) if len(index) else []
        verdict.failures.append(CheckFailure(file, config.type, column, message, count, examples))
    return verdict


# --------------------------------------------------------------------------- pure checks


def with_time_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``in_time_order``: each timestamp is later than its series' previous row."""
    previous = rows.groupby(SERIES_ID, sort=False)[TIMESTAMP].shift()
    ordered = previous.isna() | (rows[TIMESTAMP] > previous)
    return rows.assign(**{IN_TIME_ORDER: ordered.astype(bool)})


def step_of(timestamps: pd.Series, frequency: str | None) -> pd.Timedelta | None:
    if frequency:
        return pd.Timedelta(pd.tseries.frequencies.to_offset(frequency))
    diffs = timestamps.sort_values().diff().dropna()
    diffs = diffs[diffs > pd.Timedelta(0)]
    return None if diffs.empty else diffs.mode().iloc[0]


def series_profile(merged: pd.DataFrame, frequency: str | None) -> pd.DataFrame:
    """One row per series: length, value span, off-grid steps, longest gap (in steps)."""
    records = []
    for series_id, group in merged.groupby(SERIES_ID, sort=True):
        times = group[TIMESTAMP].sort_values()
        step = step_of(times, frequency)
        values = group[VALUE].dropna()
        if step is None or step <= pd.Timedelta(0):
            off_grid, max_gap, seconds = 0, 0, math.nan
        else:
            ratios = (times.diff().dropna() / step).to_numpy(dtype=float)
            off_grid = int(np.sum(~np.isclose(ratios, np.round(ratios))))
            max_gap = int(max(0, np.max(np.round(ratios)) - 1)) if len(ratios) else 0
            seconds = step.total_seconds()
        records.append(
            {
                SERIES_ID: series_id,
                N_POINTS: len(group),
                VALUE_SPAN: float(values.max() - values.min()) if len(values) else 0.0,
                OFF_GRID_STEPS: off_grid,
                MAX_GAP_STEPS: max_gap,
                STEP_SECONDS: seconds,
            }
        )
    return pd.DataFrame.from_records(
        records,
        columns=[SERIES_ID, N_POINTS, VALUE_SPAN, OFF_GRID_STEPS, MAX_GAP_STEPS, STEP_SECONDS],
    )


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
    merged = pd.concat([accepted, rows], ignore_index=True)
    merged = merged.drop_duplicates(subset=key, keep="last")
    merged = merged.sort_values(key, kind="stable").reset_index(drop=True)
    return merged, failures


def check_file(
    session: GxSession,
    rows: pd.DataFrame,
    file: str,
    columns: ColumnsConfig,
    cfg: ValidationConfig,
) -> FileVerdict:
    """The row suite on one file's rows."""
    suite = session.suite("rows", (columns, cfg), lambda empty: row_suite(empty, columns, cfg))
    return _run_suite(session, "rows", with_time_order(rows), suite, file, examples_from=rows)


def check_merged(
    session: GxSession,
    merged: pd.DataFrame,
    file: str,
    config: PipelineConfig,
    touched: set[str] | None = None,
) -> FileVerdict:
    """The series suite on the merged rows (only series ``touched`` by the file, if given)."""
    subset = merged if touched is None else merged[merged[SERIES_ID].isin(touched)]
    profile = series_profile(subset, config.validation.frequency)
    suite = session.suite(
        "series",
        (config.min_points(), config.validation),
        lambda empty: series_suite(empty, config.min_points(), config.validation),
    )
    return _run_suite(session, "series", profile, suite, file)


# --------------------------------------------------------------------------- drift

DRIFT_COLUMNS = [
    "file",
    SERIES_ID,
    "reference_mean",
    "batch_mean",
    "mean_shift_sd",
    "reference_sd",
    "batch_sd",
    "sd_ratio",
    "drifted",
]


def drift_table(
    rows: pd.DataFrame, reference: dict[str, dict[str, float]], file: str, cfg: ValidationConfig
) -> pd.DataFrame:
    """Per series of one batch: level shift (in reference SDs) and spread ratio.

    ``reference`` holds the mean/sd of each series' training part for the
    current champion (its scaler.json). Series the champion never saw have no
    reference and are not reported.
    """
    records = []
    for series_id, group in rows.groupby(SERIES_ID, sort=True):
        ref = reference.get(str(series_id))
        values = group[VALUE].dropna().to_numpy(dtype=float)
        if ref is None or not len(values):
            continue
        ref_sd = ref["sd"] if ref["sd"] > 0 else math.nan
        batch_sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        shift = abs(float(values.mean()) - ref["mean"]) / ref_sd
        ratio = batch_sd / ref_sd
        spread_bad = math.isfinite(ratio) and (
            ratio > cfg.drift_max_sd_ratio or ratio < 1 / cfg.drift_max_sd_ratio
        )
        records.append(
            {
                "file": file,
                SERIES_ID: str(series_id),
                "reference_mean": ref["mean"],
                "batch_mean": float(values.mean()),
                "mean_shift_sd": shift,
                "reference_sd": ref["sd"],
                "batch_sd": batch_sd,
                "sd_ratio": ratio,
                "drifted": bool(
                    (math.isfinite(shift) and shift > cfg.drift_max_mean_shift) or spread_bad
                ),
            }
        )
    return pd.DataFrame.from_records(records, columns=DRIFT_COLUMNS)


def drift_failure(table: pd.DataFrame, file: str, cfg: ValidationConfig) -> CheckFailure | None:
    drifted = table[table["drifted"]]
    if drifted.empty:
        return None
    return CheckFailure(
        file,
        "no_drift",
        VALUE,
        f"values drifted from the champion's training data (level shift > "
        f"{cfg.drift_max_mean_shift} SD or spread ratio beyond {cfg.drift_max_sd_ratio}x) in "
        f"series {drifted[SERIES_ID].tolist()}; set validation.drift=warn to accept it",
        len(drifted),
        drifted.drop(columns=["file"]).to_dict("records"),
    )


# --------------------------------------------------------------------------- an arrival


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
    columns, cfg = config.columns, config.validation
    keep = [c for c in stacked.columns if c not in (SOURCE_FILE, SOURCE_ROW)]
    accepted = stacked.loc[stacked[SOURCE_FILE] == history_source, keep].reset_index(drop=True)
    arrival = Arrival(merged=accepted)
    for file in files:
        part = stacked[stacked[SOURCE_FILE] == file]
        # index rows by their place in the file, so example rows point at the line to fix
        rows = part[keep].set_axis(part[SOURCE_ROW].to_numpy(), axis=0)
        verdict = check_file(session, rows, file, columns, cfg)
        if verdict.ok and reference and cfg.drift != "off":
            table = drift_table(rows, reference, file, cfg)
            arrival.drift.append(table)
            failure = drift_failure(table, file, cfg)
            if failure is not None and cfg.drift == "reject":
                verdict.failures.append(failure)
        if verdict.ok:
            candidate, merge_failures = merge_file(
                arrival.merged, rows, file, cfg.allow_history_revisions
            )
            verdict.failures.extend(merge_failures)
            if verdict.ok:
                series_verdict = check_merged(
                    session, candidate, file, config, touched=set(rows[SERIES_ID])
                )
                verdict.failures.extend(series_verdict.failures)
                verdict.reports.extend(series_verdict.reports)
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


# --------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class ValidateResult:
    path: Path
    accepted: list[str]
    rejected: list[dict[str, Any]]  # name, sha256, quarantined_to, failures
    rows: int
    series: int


def _report_rows(reports: dict[str, list[CheckReport]]) -> list[dict[str, Any]]:
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


def champion_reference(config: PipelineConfig, tracking_uri: str) -> dict[str, dict[str, float]]:
    """Per-series training statistics of the current champion ({} when there is none)."""
    from tasks.registry import SCALER_ARTIFACT, champion_version, run_json, use_tracking

    use_tracking(tracking_uri, config.register.experiment, config.paths.workspace_path())
    version = champion_version(config.register.model_name)
    if version is None:
        return {}
    scaler = run_json(version.run_id, SCALER_ARTIFACT)
    return {sid: item["stats"] for sid, item in scaler["series"].items() if "stats" in item}


@task(name="validate", cache_policy=NONE)
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
    by_name = {f.name: f for f in ingested.new_files}
    readable = [f.name for f in ingested.new_files if f.sha256 not in ingested.read_failures]
    stacked = read_parquet(ingested.path)
    reference = {}
    if tracking_uri and config.validation.drift != "off":
        reference = champion_reference(config, tracking_uri)
    docs = run.validation_dir / "data_docs" if config.validation.build_data_docs else None
    session = GxSession(docs)
    arrival = validate_arrival(stacked, readable, config, HISTORY_SOURCE, session, reference)
    index = session.build_docs()
    if index is not None:
        create_link_artifact(
            key="data-docs",
            link=index.resolve().as_uri(),
            link_text="Great Expectations Data Docs",
            description=f"Validation results per file, run {run.run_id}",
        )
    drift = arrival.drift_frame()
    if len(drift):
        write_parquet(drift, run.validation_dir / "drift.parquet")
        create_table_artifact(
            key="drift",
            table=drift.round(4).to_dict("records"),
            description="Arriving data vs the champion's training data, per series "
            f"(mode: {config.validation.drift})",
        )
        for _, row in drift[drift["drifted"]].iterrows():
            logger.warning(
                "Drift in %s, series %s: level shift %.2f SD, spread ratio %.2f (%s)",
                row["file"],
                row[SERIES_ID],
                row["mean_shift_sd"],
                row["sd_ratio"],
                config.validation.drift,
            )

    failures: dict[str, list[CheckFailure]] = {
        f.name: [CheckFailure(**d) for d in ingested.read_failures[f.sha256]]
        for f in ingested.new_files
        if f.sha256 in ingested.read_failures
    }
    failures.update(arrival.rejected)
    if failures and config.validation.on_bad_file == "reject_arrival":
        for name in readable:
            failures.setdefault(name, arrival.rejected.get(name, []))

    rejected = []
    for name, items in failures.items():
        target = quarantine(workspace, by_name[name], items, run.run_id)
        for failure in items:
            logger.error("%s", failure.describe())
        logger.warning("Quarantined %s -> %s", name, target)
        rejected.append(
            {
                "name": name,
                "sha256": by_name[name].sha256,
                "quarantined_to": str(target),
                "failures": [f.to_dict() for f in items],
            }
        )

    report = _report_rows(arrival.reports)
    write_json(
        {
            "accepted": arrival.accepted,
            "rejected": rejected,
            "checks": report,
            "data_docs": str(index) if index else None,
        },
        run.validation_dir / "validation.json",
    )
    if report:
        create_table_artifact(
            key="validation-checks",
            table=report,
            description=f"Expectations per file, run {run.run_id}",
        )
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
    logger.info(
        "Validated: accepted %s -> %d rows, %d series",
        arrival.accepted,
        len(merged),
        merged[SERIES_ID].nunique(),
    )
    return ValidateResult(
        run.validated, arrival.accepted, rejected, len(merged), int(merged[SERIES_ID].nunique())
    )
