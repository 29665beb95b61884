"""Covariates as model features: past, future (known ahead), static, calendar, holidays (pure).

What the model reads at each step of a window is one row of these columns, in this order::

    value, *past, future:<c>..., calendar:<name>..., holiday:<name>..., static:<c>[=<code>]...

- ``past`` covariates (``columns.past``, formerly ``columns.covariates``) are observed with
  the value and only known up to now: row t holds the value at t. Beyond the last
  observation a forecast carries them forward.
- Known-ahead columns (``future:``, ``calendar:``, ``holiday:``) are *lead* columns: row t
  holds the value at t + ``lead`` (the model's horizon). A window ending at origin o therefore
  carries, in its last ``lead`` rows, the known-ahead values of its ``lead`` target steps
  o+1 .. o+lead, in order, and the model's per-step head (``seriesflow/model/lstm.py``)
  reads exactly those rows: future covariates enter per horizon step. The window, scaler
  and training code see only more columns.
- ``static`` columns are constant within a series: numeric ones standardized across the
  training series, ``features.static_categorical`` ones (integer codes) one-hot encoded,
  which the first layers turn into a learned embedding.

Calendar features are derived from the frequency (no input needed), cyclic (sin, cos):
sub-daily hour-of-day and day-of-week, daily day-of-week and month, weekly and monthly
month. Holidays (``features.holidays``) come from the ``holidays`` package: the day is a
holiday, the day before one, the day after one.

``FeatureSpec`` (saved in ``scaler.json``) is what a forecast needs to rebuild the same
columns from a caller's frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.data.frequency import Frequency
from seriesflow.data.schema import VALUE

FUTURE_PREFIX, CALENDAR_PREFIX = "future:", "calendar:"
HOLIDAY_PREFIX, STATIC_PREFIX = "holiday:", "static:"
KNOWN_AHEAD = (FUTURE_PREFIX, CALENDAR_PREFIX, HOLIDAY_PREFIX)
HOLIDAY_NAMES = ("holiday", "day_before", "day_after")
# A calendar cycle: its name and its phase in [0, 1) from a DatetimeIndex.
CYCLES = ("hour", "dow", "month")


def is_known_ahead(column: str) -> bool:
    return column.startswith(KNOWN_AHEAD)


def has_step_features(columns: list[str]) -> bool:
    """Whether a model on ``columns`` needs the per-step head (any known-ahead column)."""
    return any(is_known_ahead(c) for c in columns)


def calendar_cycles(frequencies: list[Frequency]) -> list[str]:
    """The calendar cycles for a set of series' frequencies: those of the finest one.

    sub-daily: hour-of-day and day-of-week; daily (and business days): day-of-week and
    month; weekly and monthly: month; quarterly, yearly or other fixed steps: none.
    """
    best: list[str] = []
    for frequency in frequencies:
        found = _cycles_of(frequency)
        if len(found) > len(best) or (found[:1] == ["hour"] and best[:1] != ["hour"]):
            best = found
    return best


def _cycles_of(frequency: Frequency) -> list[str]:
    family = frequency.family
    if family == "fixed":
        step = frequency.step
        if step < pd.Timedelta(days=1):
            return ["hour", "dow"]
        if step == pd.Timedelta(days=1):
            return ["dow", "month"]
        if step == pd.Timedelta(days=7):
            return ["month"]
        return []
    if family == "business_day":
        return ["dow", "month"]
    if family in ("week", "month_start", "month_end"):
        return ["month"]
    return []


def calendar_columns(cycles: list[str]) -> list[str]:
    return [f"{CALENDAR_PREFIX}{c}_{f}" for c in cycles for f in ("sin", "cos")]


def cycle_phase(times: pd.DatetimeIndex, cycle: str) -> np.ndarray:
    """Where each timestamp is in a calendar cycle, in [0, 1) [n].

    hour: time of day (06:00 -> 0.25); dow: Monday 0, Sunday 6/7; month: January 0,
    December 11/12.
    """
    if cycle == "hour":
        minutes = times.hour.to_numpy() * 60 + times.minute.to_numpy()
        return minutes / (24 * 60)
    if cycle == "dow":
        return times.dayofweek.to_numpy() / 7
    if cycle == "month":
        return (times.month.to_numpy() - 1) / 12
    raise ValueError(f"unknown calendar cycle {cycle!r}; one of {CYCLES}")


def calendar_values(times: Any, cycles: list[str]) -> np.ndarray:
    """Calendar features [n, 2 * cycles] (sin, cos of each cycle's phase) at ``times`` (UTC)."""
    index = _utc_index(times)
    out = np.empty((len(index), 2 * len(cycles)))
    for k, cycle in enumerate(cycles):
        angle = 2 * np.pi * cycle_phase(index, cycle)
        out[:, 2 * k], out[:, 2 * k + 1] = np.sin(angle), np.cos(angle)
    return out


def holiday_values(times: Any, country: str, subdiv: str | None = None) -> np.ndarray:
    """[n, 3] 0/1: the day of each timestamp is a holiday, the day before one, the day after
    one (``holidays.country_holidays(country, subdiv)``; dates in UTC)."""
    import holidays  # lazily: only configs with features.holidays need it

    index = _utc_index(times)
    days = index.normalize().tz_localize(None)
    years = range(int(days.year.min()) - 1, int(days.year.max()) + 2) if len(days) else []
    calendar = holidays.country_holidays(country, subdiv=subdiv, years=years)
    found = {pd.Timestamp(d) for d in calendar}

    def flag(shifted: pd.DatetimeIndex) -> np.ndarray:
        return np.array([d in found for d in shifted], dtype=float)

    one = pd.Timedelta(days=1)
    return np.stack([flag(days), flag(days + one), flag(days - one)], axis=1)


def _utc_index(times: Any) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(pd.to_datetime(np.asarray(times)))
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index


@dataclass(frozen=True)
class FeatureSpec:
    """What turns a series' rows into model columns (saved in ``scaler.json``)."""

    past: list[str] = field(default_factory=list)
    future: list[str] = field(default_factory=list)
    static: list[str] = field(default_factory=list)
    calendar: list[str] = field(default_factory=list)  # cycles: hour, dow, month
    holidays: dict[str, str | None] | None = None  # {"country": "US", "subdiv": "CA"}
    lead: int = 1  # known-ahead columns hold the value this many steps later (the horizon)
    # numeric statics: [mean, sd] across the training series; categorical: the known codes
    static_stats: dict[str, list[float]] = field(default_factory=dict)
    categories: dict[str, list[float]] = field(default_factory=dict)

    @property
    def raw(self) -> list[str]:
        """Per-step input columns a frame carries: the value, past and future covariates."""
        return [VALUE, *self.past, *self.future]

    def columns(self) -> list[str]:
        """The model's columns, in order (the feature names of scaler, windows and spec)."""
        names = [VALUE, *self.past, *(f"{FUTURE_PREFIX}{c}" for c in self.future)]
        names += calendar_columns(self.calendar)
        if self.holidays:
            names += [f"{HOLIDAY_PREFIX}{n}" for n in HOLIDAY_NAMES]
        for column in self.static:
            if column in self.categories:
                names += [f"{STATIC_PREFIX}{column}={_code(v)}" for v in self.categories[column]]
            else:
                names.append(f"{STATIC_PREFIX}{column}")
        return names

    def fixed_scale(self) -> list[bool]:
        """Columns the per-series affine map leaves alone (already on a common scale):
        calendar, holiday and static columns."""
        fixed = (CALENDAR_PREFIX, HOLIDAY_PREFIX, STATIC_PREFIX)
        return [c.startswith(fixed) for c in self.columns()]

    def known_ahead(self) -> np.ndarray:
        """[columns] True for lead columns (their future rows are known, not carried)."""
        return np.array([is_known_ahead(c) for c in self.columns()], dtype=bool)

    def described(self) -> dict[str, list[str]]:
        """The features used, by kind (the run summary's list)."""
        calendar = [c.removeprefix(CALENDAR_PREFIX) for c in calendar_columns(self.calendar)]
        holidays = []
        if self.holidays:
            where = self.holidays["country"] + (
                f"-{self.holidays['subdiv']}" if self.holidays.get("subdiv") else ""
            )
            holidays = [f"{n} ({where})" for n in HOLIDAY_NAMES]
        return {
            "past": list(self.past),
            "future": list(self.future),
            "static": list(self.static),
            "calendar": calendar,
            "holidays": holidays,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FeatureSpec:
        return cls(**data) if data else cls()

    @classmethod
    def of_columns(cls, columns: list[str]) -> FeatureSpec:
        """A scaler written before feature specs: the value and past covariates only."""
        return cls(past=[c for c in columns if c != VALUE])

    # ------------------------------------------------------------------ building rows

    def static_row(self, sid: str, values: dict[str, float]) -> np.ndarray:
        """One series' static columns [n_static_columns] from its raw static values."""
        out: list[float] = []
        for column in self.static:
            value = values.get(column, np.nan)
            if value is None or not np.isfinite(value):
                raise ValueError(
                    f"static covariate '{column}' is missing for series '{sid}': every "
                    "series needs one value of each columns.static"
                )
            if column in self.categories:
                out += [float(value == code) for code in self.categories[column]]
            else:
                mean, sd = self.static_stats.get(column, [0.0, 1.0])
                out.append((value - mean) / (sd if sd > 0 else 1.0))
        return np.asarray(out, dtype=float)

    def series_matrix(
        self,
        times: Any,
        raw: np.ndarray,
        statics: np.ndarray,
        frequency: Frequency,
    ) -> np.ndarray:
        """One series' model columns [n, columns] in original units from its rows.

        ``times`` [n] its grid timestamps (UTC), ``raw`` [n, raw columns] (value, past,
        future; NaN where unknown), ``statics`` from ``static_row``. Lead columns at row t
        take the future covariates at row t + lead (NaN past the last row) and the calendar
        and holidays at the grid time lead steps later (computed, never missing).
        """
        n = len(raw)
        lead = self.lead
        n_past = 1 + len(self.past)
        parts = [raw[:, :n_past]]
        future = raw[:, n_past:]
        shifted = np.full_like(future, np.nan)  # [n, future]
        if n > lead:
            shifted[: n - lead] = future[lead:]
        parts.append(shifted)
        if self.calendar or self.holidays:
            lead_times = self.lead_times(times, frequency)
            if self.calendar:
                parts.append(calendar_values(lead_times, self.calendar))
            if self.holidays:
                parts.append(
                    holiday_values(
                        lead_times, str(self.holidays["country"]), self.holidays.get("subdiv")
                    )
                )
        if len(statics):
            parts.append(np.repeat(statics[None, :], n, axis=0))
        return np.concatenate(parts, axis=1)

    def lead_times(self, times: Any, frequency: Frequency) -> pd.DatetimeIndex:
        """The grid time ``lead`` steps after each of ``times`` [n] (a series' grid)."""
        index = _utc_index(times)
        if not len(index):
            return index
        after = frequency.future(pd.Timestamp(index[-1]), self.lead)
        after = _utc_index(after.to_numpy())
        extended = index.append(after)
        return extended[self.lead :]


def _code(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def fit_feature_spec(
    columns: Any,
    features: Any,
    frequencies: list[Frequency],
    lead: int,
    statics: pd.DataFrame,
) -> FeatureSpec:
    """The feature spec of a run: ``columns`` (``ColumnsConfig``), ``features``
    (``FeaturesConfig``), the series' frequencies, the horizon, and ``statics`` (one row per
    training series, its static values; the numeric ones' mean and spread and the categorical
    ones' codes are fit on them)."""
    stats: dict[str, list[float]] = {}
    categories: dict[str, list[float]] = {}
    for column in columns.static:
        values = statics[column].to_numpy(dtype=float) if column in statics else np.array([])
        values = values[np.isfinite(values)]
        if column in features.static_categorical:
            categories[column] = sorted({float(v) for v in values})
        else:
            sd = float(values.std()) if len(values) > 1 else 0.0
            stats[column] = [float(values.mean()) if len(values) else 0.0, sd if sd > 0 else 1.0]
    holidays = None
    if features.holidays is not None:
        holidays = {"country": features.holidays.country, "subdiv": features.holidays.subdiv}
    return FeatureSpec(
        past=list(columns.past),
        future=list(columns.future),
        static=list(columns.static),
        calendar=calendar_cycles(frequencies) if features.calendar else [],
        holidays=holidays,
        lead=int(lead),
        static_stats=stats,
        categories=categories,
    )


def static_values(frame: pd.DataFrame, sid: str, columns: list[str]) -> dict[str, float]:
    """One series' static values from its rows: the first non-missing value of each column
    (validation checks they are constant); NaN where there is none."""
    out = {}
    for column in columns:
        if column not in frame:
            out[column] = np.nan
            continue
        found = pd.to_numeric(frame[column], errors="coerce").dropna()
        out[column] = float(found.iloc[0]) if len(found) else np.nan
    return out


def first_missing(
    sid: str, times: Any, future: np.ndarray, names: list[str]
) -> tuple[str, pd.Timestamp] | None:
    """(column, first timestamp) where a series' future covariate values ``future``
    [steps, future] at ``times`` [steps] are missing, or None."""
    missing = ~np.isfinite(future)
    if not missing.any():
        return None
    row, col = np.argwhere(missing)[0]
    return names[int(col)], pd.Timestamp(_utc_index(times)[int(row)]).tz_localize("UTC")


def missing_future_error(sid: str, column: str, at: pd.Timestamp, last: pd.Timestamp) -> str:
    return (
        f"series '{sid}': no value of future covariate '{column}' at {at.isoformat()} "
        f"(the first missing timestamp; last observation {last.isoformat()}). A forecast "
        "needs every columns.future value for each forecast step: give rows after the last "
        "observation with the value empty and the future covariates filled"
    )
