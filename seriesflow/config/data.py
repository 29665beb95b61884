"""The data sections of the configuration: columns, ingest, validation, normalize, split.

What the data is, how it is read and checked, and how it is scaled and split. Imported
from ``seriesflow.config.pipeline``, which holds the root model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class FrozenModel(BaseModel):
    """A config section: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnsConfig(FrozenModel):
    """Column names in the landed files (renamed to the canonical names on ingest)."""

    series_id: str = "series_id"
    timestamp: str = "timestamp"
    value: str = "value"
    covariates: list[str] = Field(
        default_factory=list,
        description="The older name of columns.past (kept working; set one of the two).",
    )
    past: list[str] = Field(
        default_factory=list,
        description="Past covariates: numeric columns observed with the value, known only up "
        "to now (e.g. a measured temperature). A forecast carries their last value forward.",
    )
    future: list[str] = Field(
        default_factory=list,
        description="Future covariates: numeric columns known ahead (prices, promotions, "
        "planned shutdowns, weather forecasts). History rows carry their values; a forecast "
        "needs them for every forecast step, as rows after the last observation with the "
        "value empty (the pyfunc's input frame, or forecast.future_path).",
    )
    static: list[str] = Field(
        default_factory=list,
        description="Static covariates: numeric columns constant within a series (e.g. "
        "capacity; a category as an integer code, listed in features.static_categorical).",
    )
    label: str | None = Field(
        None,
        description="Class label column for train.task=classification: a window's class is "
        "the label at its last target step. Unset: the class is the direction of change "
        "over the horizon (up / down).",
    )

    @model_validator(mode="before")
    @classmethod
    def _past_is_covariates(cls, data: object) -> object:
        """``covariates`` and ``past`` name the same list: either may be given (a config
        dump carries both, equal); the validated section holds it under both names."""
        if not isinstance(data, dict):
            return data
        old, new = data.get("covariates"), data.get("past")
        if old and new and list(old) != list(new):
            raise ValueError(
                f"columns.covariates {list(old)} and columns.past {list(new)} differ: "
                "covariates is the older name of past, set one of them"
            )
        both = list(new or old or [])
        return {**data, "covariates": both, "past": both}

    @model_validator(mode="after")
    def _each_column_once(self) -> ColumnsConfig:
        named = [*self.past, *self.future, *self.static]
        twice = sorted({c for c in named if named.count(c) > 1})
        reserved = {self.series_id, self.timestamp, self.value, self.label}
        clash = sorted(set(named) & reserved)
        if twice or clash:
            raise ValueError(
                f"columns.past/future/static: {twice or clash} named twice (each covariate "
                "is one kind, and not the id, timestamp, value or label column)"
            )
        return self

    @property
    def kept(self) -> list[str]:
        """Every covariate column the pipeline reads and keeps: past, future, static."""
        return [*self.past, *self.future, *self.static]


class IngestConfig(FrozenModel):
    extensions: list[str] = Field(
        default_factory=lambda: [".csv", ".parquet", ".pq"],
        description="File types the reader takes; also the landing patterns (*<ext>) when "
        "ingest.patterns is not set.",
    )
    patterns: list[str] | None = Field(
        None,
        description="Names in the landing folder that are arrivals (shell patterns, "
        "case-insensitive, e.g. ['plants_*.csv']); anything else there is left alone: not "
        "read, moved, quarantined or alerted on. Default: one '*<ext>' per ingest.extensions.",
    )
    max_file_bytes: int = Field(
        512 * 1024**2,
        ge=1,
        description="Largest landed file read (bytes, on disk); a larger one is quarantined.",
    )
    max_rows: int = Field(
        20_000_000,
        ge=1,
        description="Most rows in one file (CSV: lines after the header; Parquet: its "
        "metadata's row count, read before any data); more: quarantined.",
    )
    max_columns: int = Field(
        1_000,
        ge=1,
        description="Most columns in one file (CSV header fields; Parquet schema); more: "
        "quarantined before the file is parsed.",
    )
    max_decoded_bytes: int = Field(
        4 * 1024**3,
        ge=1,
        description="Largest decoded size of a Parquet file, estimated from its footer alone "
        "(per row group, the larger of its uncompressed size and rows x row width): a small "
        "file of highly compressed rows would otherwise decode past the memory; larger: "
        "quarantined unread.",
    )
    max_attempts: int = Field(
        2,
        ge=1,
        description="Runs that may die while reading or validating the same file (killed, "
        "out of memory) before it is quarantined instead of read again.",
    )
    settle_seconds: float = Field(
        30.0,
        ge=0,
        description="A file is taken only when two looks at least this far apart see the same "
        "size and modification time (and inode change time; in an object store, ETag) "
        "(writers should write NAME.part and rename it when done).",
    )
    second_look: bool = Field(
        True,
        description="A run that sees files it has not yet seen settle looks again once, "
        "settle_seconds later, instead of leaving them for the next run.",
    )
    timezone: str = Field(
        "UTC", description="Timezone assumed for timestamps that carry no offset."
    )
    retrain_without_new_data: bool = Field(
        False,
        description="Retrain on the accepted history even when no new file arrived "
        "(e.g. a UI run with a changed config); off: such a run ends as skipped.",
    )

    @property
    def landing_patterns(self) -> list[str]:
        """The names that are arrivals: ``patterns``, or one ``*<ext>`` per extension (so a
        config written before ``patterns`` existed still takes the same files)."""
        if self.patterns is not None:
            return list(self.patterns)
        return [f"*{ext}" for ext in self.extensions]


class ValidationConfig(FrozenModel):
    on_bad_file: Literal["skip_file", "reject_arrival"] = Field(
        "skip_file",
        description="skip_file: quarantine a bad file and use the good files of the same "
        "arrival; reject_arrival: quarantine every file of an arrival that holds a bad one.",
    )
    max_value_null_fraction: float = Field(
        0.0, ge=0, le=1, description="Largest share of missing values allowed in a file."
    )
    value_min: float | None = Field(None, description="Optional lower bound for values.")
    value_max: float | None = Field(None, description="Optional upper bound for values.")
    frequency: str | None = Field(
        None,
        description="Calendar of every series as a pandas offset alias: 'h', '30min', 'D', "
        "'B' (business days), 'W-SUN', 'MS'/'ME' (month start/end), 'QS-JAN'/'QE-DEC', "
        "'YS-JAN'/'YE-DEC'. Default: inferred per series (the one that fits every "
        "timestamp with the fewest missing steps).",
    )

    @field_validator("frequency")
    @classmethod
    def _known_frequency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from seriesflow.data.frequency import Frequency  # pandas; config itself stays light

        return Frequency.parse(value).code

    max_gap_steps: int = Field(
        3,
        ge=0,
        description="Missing steps in a row that normalize may fill by time interpolation; "
        "a longer gap rejects the file that leaves it.",
    )
    allow_history_revisions: bool = Field(
        False,
        description="Let a new file change values already accepted (later file wins). "
        "Off: such a file is rejected, so accepted data never changes silently.",
    )
    drift: Literal["warn", "reject", "off"] = Field(
        "warn",
        description="Compare each arriving file with the champion's training data per series: "
        "warn (report it), reject (quarantine the file) or off.",
    )
    drift_max_mean_shift: float = Field(
        3.0, gt=0, description="Level shift, in the reference's standard deviations, that is drift."
    )
    drift_max_sd_ratio: float = Field(
        3.0,
        gt=1,
        description="Spread ratio (batch SD / reference SD, or its inverse) that is drift.",
    )
    min_points_per_series: int | None = Field(
        None,
        ge=1,
        description="Minimum rows per series. Default: the model's input (window.min_inputs, "
        "else window.timesteps, where numbers) and a horizon, at least 3 (3 with auto "
        "settings); the model is global, so a short training part is fine.",
    )
    outlier_max_robust_z: float | None = Field(
        20.0,
        gt=0,
        description="Reject a file whose values lie further than this many robust standard "
        "deviations (1.4826 x MAD) from the median of the series' accepted history; None: off.",
    )
    outlier_min_history: int = Field(
        30,
        ge=3,
        description="Accepted points a series needs before the outlier check applies "
        "(a new series is not checked).",
    )
    build_data_docs: bool = Field(True, description="Write GX Data Docs HTML into the run folder.")
    chunk_rows: int = Field(
        2_000_000,
        gt=0,
        description="An arrival (with the accepted rows of its series) of more rows than this "
        "is validated a chunk of whole series at a time, each chunk's rows spilled to its own "
        "file first: the stage's memory grows with this, not with the history. The verdicts, "
        "reports and validated rows are those of one pass over everything (a file that fails "
        "in one chunk is left out of all of them). A max_value_null_fraction strictly between "
        "0 and 1 is a share of the whole file: such a config validates in one pass.",
    )


class NormalizeConfig(FrozenModel):
    method: Literal["seasonal_log", "minmax", "last_value", "window"] = Field(
        "seasonal_log",
        description="How the model sees a window: seasonal_log (the default, the M4 winner's "
        "preprocessing: each series divided by its multiplicative seasonal indices, fit on the "
        "training part where a 90% autocorrelation test finds a season, and logged; windows "
        "relative to their last input, so the model predicts log-ratios; a series with a "
        "value <= 0 is scaled as last_value instead), last_value (inputs and targets relative to "
        "the last input value, scaled by the training part's one-step changes: the model "
        "learns corrections to the naive forecast, robust to level and trend), window "
        "(each window standardized by its own mean and spread, as RevIN), or minmax "
        "(the seed's per-series MinMax on the training range).",
    )
    chunk_rows: int = Field(
        1_000_000,
        gt=0,
        description="Rows normalized at a time (whole series; a longer series is a chunk "
        "of its own). The stage's memory grows with this, not with the history: about "
        "0.3 GB per million rows of a chunk on top of the validated table in Arrow.",
    )


class SplitConfig(FrozenModel):
    """Chronological split of each series (fractions of its points)."""

    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)


class HolidaysConfig(FrozenModel):
    country: str = Field(
        description="ISO 3166 country code of the ``holidays`` package, e.g. 'US', 'DE', 'GB'."
    )
    subdiv: str | None = Field(
        None, description="A subdivision (state, province) of the country, e.g. 'CA', 'BY'."
    )

    @model_validator(mode="after")
    def _known(self) -> HolidaysConfig:
        import holidays  # the package knows its countries and subdivisions

        try:
            holidays.country_holidays(self.country, subdiv=self.subdiv, years=2020)
        except NotImplementedError as exc:
            raise ValueError(
                f"features.holidays: {exc} (the holidays package knows this list)"
            ) from exc
        return self


class FeaturesConfig(FrozenModel):
    """Features the model reads besides the columns: calendar, holidays, static codes."""

    calendar: bool = Field(
        True,
        description="Calendar features derived from each series' frequency, cyclic (sin, "
        "cos), known ahead: sub-daily hour-of-day and day-of-week, daily day-of-week and "
        "month, weekly and monthly month (none for quarterly or yearly). No input needed.",
    )
    holidays: HolidaysConfig | None = Field(
        None,
        description="Public holidays of a country (and subdivision) from the holidays "
        "package, known ahead: the day is a holiday, the day before one, the day after one. "
        "Off by default; e.g. {country: US, subdiv: CA}.",
    )
    static_categorical: list[str] = Field(
        default_factory=list,
        description="Static columns (columns.static) that are categories given as integer "
        "codes: one-hot encoded (a learned embedding) instead of read as numbers.",
    )
