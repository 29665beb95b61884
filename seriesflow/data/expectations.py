"""Great Expectations for seriesflow: the suites, one GX session per validation, verdicts.

GX validates two tables: the rows of one arriving file (``row_suite``), and a
per-series profile of the merged history (``series_suite``; GX has no group-by
expectations for pandas, so ``series_profile`` derives one row per series).
``run_suite`` turns GX results into ``CheckFailure``s that name the file, the
check, the column and example rows. No Prefect here: the validate stage wires it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.config.pipeline import ColumnsConfig, PipelineConfig, ValidationConfig
from seriesflow.data.datadocs import OfflineSite, make_offline
from seriesflow.data.errors import CheckFailure, example_rows
from seriesflow.data.frequency import Frequency, steps_found
from seriesflow.data.grid import SeriesRows, fit_grids
from seriesflow.data.schema import (
    LABEL,
    MAX_SERIES_ID_LENGTH,
    RESERVED_SERIES_IDS,
    SERIES_ID,
    TIMESTAMP,
    VALUE,
)

# The model computes in float32: a value beyond its finite range becomes inf in training
# (and would stay in the accepted history for good), so no file may carry one.
FLOAT32_MAX = float(np.finfo(np.float32).max)

# Derived row column: True where a timestamp follows the previous one of its series.
IN_TIME_ORDER = "in_time_order"

# Per-series profile columns.
N_POINTS = "n_points"
VALUE_SPAN = "value_span"
OFF_GRID_STEPS = "off_grid_steps"
MAX_GAP_STEPS = "max_gap_steps"
FREQUENCY = "frequency"  # the grid: configured, or inferred per series ("" if none fits)
STEPS_FOUND = "steps_found"  # the distinct steps of a series that is off its grid
PROFILE_COLUMNS = [
    SERIES_ID,
    N_POINTS,
    VALUE_SPAN,
    OFF_GRID_STEPS,
    MAX_GAP_STEPS,
    FREQUENCY,
    STEPS_FOUND,
]


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
        self.offline = OfflineSite()  # what the last build_docs could not vendor
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
        # GX rewrote the pages: point them at the vendored assets again
        self.offline = make_offline(self.docs_dir)
        return self.docs_dir / "index.html"


def row_suite(suite: Any, columns: ColumnsConfig, cfg: ValidationConfig) -> Any:
    """Fill ``suite`` with the per-file row expectations."""
    import great_expectations as gx

    e = gx.expectations
    low = -FLOAT32_MAX if cfg.value_min is None else max(cfg.value_min, -FLOAT32_MAX)
    high = FLOAT32_MAX if cfg.value_max is None else min(cfg.value_max, FLOAT32_MAX)
    for column in (SERIES_ID, TIMESTAMP, VALUE, *columns.kept):
        suite.add_expectation(e.ExpectColumnToExist(column=column))
    suite.add_expectation(e.ExpectColumnValuesToBeOfType(column=SERIES_ID, type_="str"))
    # Ids end up in metrics tables (where "__all__" is the pooled row), MLflow keys and
    # file names: reserved, empty, very long or control-character ids are refused.
    suite.add_expectation(
        e.ExpectColumnValuesToNotBeInSet(column=SERIES_ID, value_set=list(RESERVED_SERIES_IDS))
    )
    suite.add_expectation(
        e.ExpectColumnValueLengthsToBeBetween(
            column=SERIES_ID, min_value=1, max_value=MAX_SERIES_ID_LENGTH
        )
    )
    suite.add_expectation(
        e.ExpectColumnValuesToNotMatchRegex(column=SERIES_ID, regex=r"[\x00-\x1f\x7f]")
    )
    suite.add_expectation(e.ExpectColumnValuesToBeOfType(column=TIMESTAMP, type_="Timestamp"))
    for column in (VALUE, *columns.kept):
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
    for column in columns.kept:
        suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=column))
        suite.add_expectation(
            e.ExpectColumnValuesToBeBetween(
                column=column, min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX
            )
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
    "expect_column_values_to_be_between": "values outside the allowed range (value_min/value_max "
    "when set, and always float32's finite range, +-3.4e38, which the model computes in) or "
    "not finite",
    "expect_column_values_to_not_be_in_set": "a reserved series id "
    f"({', '.join(RESERVED_SERIES_IDS)} names the pooled row of every metrics table); "
    "rename the series",
    "expect_column_value_lengths_to_be_between": "empty series ids, or longer than "
    f"{MAX_SERIES_ID_LENGTH} characters",
    "expect_column_values_to_not_match_regex": "series ids with control characters",
    "expect_compound_columns_to_be_unique": "a series_id+timestamp appears twice",
    "expect_column_values_to_be_in_set": "timestamps go backwards within a series",
}
_SERIES_MESSAGES = {
    VALUE_SPAN: "constant series: every value is the same, so it cannot be scaled",
    OFF_GRID_STEPS: "timestamps that match no single frequency (see steps_found; supported: "
    "fixed steps, business days, weeks, month/quarter/year starts or ends) or fall off "
    "validation.frequency",
    MAX_GAP_STEPS: "a gap longer than validation.max_gap_steps",
}


def run_suite(
    session: GxSession,
    asset: str,
    frame: pd.DataFrame,
    suite: Any,
    file: str,
    examples_from: pd.DataFrame | None = None,
    messages: dict[str, str] | None = None,
) -> FileVerdict:
    """Validate ``frame`` and translate GX results into failures with example rows.

    ``messages`` (by column) replace the default explanation of a failed check.
    """
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
        elif messages and column in messages:
            message = messages[column]
        elif asset == "series":
            message = _SERIES_MESSAGES.get(column, _MESSAGES.get(config.type, config.type))
        else:
            message = _MESSAGES.get(config.type, config.type)
        index = details.get("partial_unexpected_index_list") or []
        source = examples_from if examples_from is not None else frame
        examples = example_rows(source, source.index.isin(index)) if len(index) else []
        verdict.failures.append(CheckFailure(file, config.type, column, message, count, examples))
    return verdict


# --------------------------------------------------------------------------- profiles and checks


def with_time_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``in_time_order``: each timestamp is later than its series' previous row."""
    previous = rows.groupby(SERIES_ID, sort=False)[TIMESTAMP].shift()
    ordered = previous.isna() | (rows[TIMESTAMP] > previous)
    return rows.assign(**{IN_TIME_ORDER: ordered.astype(bool)})


def series_profile(merged: pd.DataFrame, frequency: str | None) -> pd.DataFrame:
    """One row per series: length, value span, grid fit, longest gap (in steps).

    The grid is ``frequency`` (configured) or the one inferred per series
    (``seriesflow/data/frequency.py``); a series no supported frequency fits counts all of its
    steps off the grid, and ``steps_found`` says which steps it has. Every series at
    once (``seriesflow/data/grid.py``): no loop over series or rows.
    """
    configured = Frequency.parse(frequency) if frequency else None
    rows = SeriesRows.of(merged[SERIES_ID], merged[TIMESTAMP])
    fit = fit_grids(rows, configured)
    values = rows.sort(merged[VALUE].to_numpy(dtype=float))
    code = rows.code
    span = np.zeros(len(rows.ids))
    if len(values):
        low, high = np.full(len(rows.ids), np.inf), np.full(len(rows.ids), -np.inf)
        known = ~np.isnan(values)
        np.minimum.at(low, code[known], values[known])
        np.maximum.at(high, code[known], values[known])
        span = np.where(np.isfinite(low), high - low, 0.0)
    no_grid = np.array([f is None for f in fit.frequency], dtype=bool)
    # no supported frequency has these steps (e.g. every 45 days): every step is off a grid
    off_grid = np.where(no_grid, np.maximum(rows.distinct_count() - 1, 0), fit.off_grid)
    found = [
        "" if off_grid[k] == 0 else steps_found(rows.t[rows.start[k] : rows.start[k] + n])
        for k, n in enumerate(rows.length)
    ]
    return pd.DataFrame(
        {
            SERIES_ID: rows.ids,
            N_POINTS: rows.length,
            VALUE_SPAN: span,
            OFF_GRID_STEPS: off_grid,
            MAX_GAP_STEPS: np.where(no_grid, 0, fit.max_gap),
            FREQUENCY: [f.code if f else "" for f in fit.frequency],
            STEPS_FOUND: found,
        },
        columns=PROFILE_COLUMNS,
    )


def check_file(
    session: GxSession,
    rows: pd.DataFrame,
    file: str,
    columns: ColumnsConfig,
    cfg: ValidationConfig,
) -> FileVerdict:
    """The row suite on one file's rows."""
    suite = session.suite("rows", (columns, cfg), lambda empty: row_suite(empty, columns, cfg))
    return run_suite(session, "rows", with_time_order(rows), suite, file, examples_from=rows)


def check_merged(
    session: GxSession,
    merged: pd.DataFrame,
    file: str,
    config: PipelineConfig,
    touched: set[str] | None = None,
) -> FileVerdict:
    """The series suite on the merged rows (only series ``touched`` by the file, if given)."""
    subset = merged if touched is None else merged[merged[SERIES_ID].isin(touched)]
    return check_profile(session, series_profile(subset, config.validation.frequency), file, config)


def check_profile(
    session: GxSession, profile: pd.DataFrame, file: str, config: PipelineConfig
) -> FileVerdict:
    """The series suite on a per-series profile (``PROFILE_COLUMNS``, one row per series)."""
    minimum = config.min_points()
    suite = session.suite(
        "series",
        (minimum, config.validation),
        lambda empty: series_suite(empty, minimum, config.validation),
    )
    short = (
        f"series too short: a series needs at least {minimum} points (the model's input, "
        "window.timesteps or window.min_inputs, and a horizon); see n_points"
    )
    return run_suite(session, "series", profile, suite, file, messages={N_POINTS: short})


def per_row(series_ids: pd.Series, by_series: pd.Series) -> np.ndarray:
    """``by_series`` (indexed by series id) looked up for each row's id; NaN where absent.

    Factorizes the ids once and looks up only the distinct ones: a per-row string lookup
    (``Series.map``) converts every Arrow string to a Python object first."""
    codes, uniques = pd.factorize(series_ids)
    found = by_series.reindex(pd.Index(np.asarray(uniques, dtype=object)))
    values = found.to_numpy(dtype=float)
    return values[codes] if len(codes) else np.empty(0)


def _robust_reference(
    accepted: pd.DataFrame, rows: pd.DataFrame
) -> tuple[pd.Series | None, pd.Series | None, pd.Series | None]:
    """(median, robust SD, non-null count) per series of the accepted rows ``rows`` holds."""
    # only the series the file holds: the whole history per file would be files x rows
    history = accepted.loc[accepted[SERIES_ID].isin(rows[SERIES_ID].unique()), [SERIES_ID, VALUE]]
    history = history.dropna()
    if not len(history):
        return None, None, None
    by_series = history.groupby(SERIES_ID)[VALUE]
    median = by_series.median()
    deviation = (history[VALUE] - history[SERIES_ID].map(median)).abs()
    mad = deviation.groupby(history[SERIES_ID]).median()
    # A series that is mostly one value has MAD 0: fall back to the mean absolute deviation.
    scale = (1.4826 * mad).where(mad > 0, 1.2533 * deviation.groupby(history[SERIES_ID]).mean())
    return median, scale, by_series.size()


def robust_outliers(
    rows: pd.DataFrame, accepted: pd.DataFrame, file: str, cfg: ValidationConfig
) -> CheckFailure | None:
    """Values absurd for their series: further than ``cfg.outlier_max_robust_z`` robust
    standard deviations (1.4826 x the median absolute deviation) from the median of the
    series' accepted values. Series with fewer than ``cfg.outlier_min_history`` accepted
    points (a new series) are not checked. Robust: the check is not fooled by the very
    outliers it looks for, as a mean and SD would be.

    ``accepted``: the accepted rows, or their per-series profile (``median``,
    ``robust_sd``, ``n_values``, indexed by series id) -- what validation passes, so
    that no file costs a pass over the whole history."""
    limit = cfg.outlier_max_robust_z
    if limit is None or not len(accepted) or not len(rows):
        return None
    if VALUE in accepted.columns:
        median, scale, size = _robust_reference(accepted, rows)
        if median is None:  # only new series: nothing to compare with
            return None
    else:  # a per-series reference: ``seriesflow/data/profile.py``'s median, robust_sd, n_values
        median, scale, size = accepted["median"], accepted["robust_sd"], accepted["n_values"]
    checked = (size >= cfg.outlier_min_history) & (scale > 0)
    center = per_row(rows[SERIES_ID], median[checked])
    spread = per_row(rows[SERIES_ID], scale[checked])
    with np.errstate(invalid="ignore"):
        z = np.abs(rows[VALUE].to_numpy(dtype=float) - center) / spread
    outliers = pd.Series(np.nan_to_num(z, nan=0.0) > limit, index=rows.index)
    if not outliers.any():
        return None
    first = rows[outliers].iloc[0]
    sid = first[SERIES_ID]
    return CheckFailure(
        file,
        "robust_outlier",
        VALUE,
        f"values more than {limit:g} robust SDs from their series' accepted median (series "
        f"{sid!r}: median {median[sid]:.6g}, robust SD {scale[sid]:.6g}); if the level really "
        "changed, raise validation.outlier_max_robust_z (or set it to null)",
        int(outliers.sum()),
        example_rows(rows, outliers),
    )
