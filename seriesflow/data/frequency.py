"""Calendar frequencies: the regular grid of a series, as a pandas offset (pure, no Prefect).

A series' step is a pandas offset, not a fixed length of time: a month, a quarter,
a year or a business day has no constant length, so "regular" means "every
timestamp sits on the offset's calendar, one step after the previous one".

- ``Frequency.parse("MS")`` checks and canonicalizes a configured frequency;
- ``infer_frequency(times)`` finds the one that explains a series' timestamps
  with the fewest missing steps (gaps are allowed; validation bounds them);
- ``Frequency.positions(times)`` maps timestamps to integer grid positions
  (vectorized), so the grid check, gap counting, filling, the split, window
  target times and forecasts of future timestamps all use one calendar;
- ``Frequency.season_length()``: 30 min -> 48, hourly -> 24, daily -> 7,
  business daily -> 5, weekly -> 52, monthly -> 12, quarterly -> 4, yearly -> 1.

Timestamps are UTC (ingest converts them); arrays here are naive ``datetime64``
in UTC or tz-aware pandas objects.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from seriesflow.data.schema import FILLED, LABEL, TIMESTAMP

_DAY_US = 86_400_000_000
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
SUPPORTED = (
    "fixed steps ('30min', 'h', '6h', 'D', ...), 'B' (business days), 'W-SUN'..'W-SAT', "
    "'MS'/'ME' (month start/end), 'QS-JAN'/'QE-DEC' (quarter start/end, any anchor), "
    "'YS-JAN'/'YE-DEC' (year start/end, any anchor)"
)


def _micros(times: Any) -> np.ndarray:
    """Timestamps as int64 microseconds since 1970 (UTC); int64 input is taken as such."""
    if isinstance(times, np.ndarray) and times.dtype.kind in "iu":
        return times.astype(np.int64, copy=False)
    index = pd.DatetimeIndex(times)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("us").asi8


@dataclass(frozen=True)
class Frequency:
    """A supported pandas offset, by its canonical alias (``offset.freqstr``)."""

    code: str

    @classmethod
    def parse(cls, text: str) -> Frequency:
        """A frequency from a pandas alias; ValueError naming what is supported otherwise."""
        try:
            offset = to_offset(text)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"unknown frequency {text!r}: use one of {SUPPORTED}") from exc
        frequency = cls(offset.freqstr)
        if frequency.family == "other":
            raise ValueError(f"frequency {text!r} is not supported: use one of {SUPPORTED}")
        return frequency

    @classmethod
    def of_step(cls, step: pd.Timedelta) -> Frequency:
        """A fixed step as a frequency ('h', '30min', 'D', '3D', ...)."""
        if step <= pd.Timedelta(0):
            raise ValueError(f"a step must be positive, got {step}")
        if step % pd.Timedelta(days=1) == pd.Timedelta(0):
            days = step // pd.Timedelta(days=1)
            return cls("D" if days == 1 else f"{days}D")
        return cls(to_offset(step).freqstr)

    @property
    def offset(self) -> pd.DateOffset:
        return to_offset(self.code)

    @property
    def family(self) -> str:
        """fixed | business_day | week | month_start | month_end | quarter_start | ... | other."""
        offset = self.offset
        name = type(offset).__name__
        try:
            offset.nanos  # noqa: B018 - raises for calendar offsets
            return "fixed"
        except ValueError:
            pass
        if offset.n != 1:
            return "other"
        return {
            "BusinessDay": "business_day",
            "Week": "week" if getattr(offset, "weekday", None) is not None else "other",
            "MonthBegin": "month_start",
            "MonthEnd": "month_end",
            "QuarterBegin": "quarter_start",
            "QuarterEnd": "quarter_end",
            "YearBegin": "year_start",
            "YearEnd": "year_end",
        }.get(name, "other")

    @property
    def step(self) -> pd.Timedelta | None:
        """The fixed length of one step, or None for calendar frequencies."""
        return pd.Timedelta(self.offset.nanos, unit="ns") if self.family == "fixed" else None

    def default_horizon(self) -> int:
        """The forecasting competitions' horizon for this frequency (M4's where it has one):
        hourly 48, daily 14, business days 10, weekly 13, monthly 18, quarterly 8, yearly 6;
        other sub-daily steps two days of them."""
        family = self.family
        if family == "fixed":
            step = self.step
            day = pd.Timedelta(days=1)
            if step < day and day % step == pd.Timedelta(0):
                return 2 * int(day // step)
            if step == day:
                return 14
            if step == pd.Timedelta(days=7):
                return 13
            return 6
        return {
            "business_day": 10,
            "week": 13,
            "month_start": 18,
            "month_end": 18,
            "quarter_start": 8,
            "quarter_end": 8,
            "year_start": 6,
            "year_end": 6,
        }.get(family, 6)

    def season_length(self) -> int:
        """Steps per natural season: a day for sub-daily, a week for daily, a year beyond."""
        family = self.family
        if family == "fixed":
            step = self.step
            day, week = pd.Timedelta(days=1), pd.Timedelta(days=7)
            if step < day and day % step == pd.Timedelta(0):
                return int(day // step)
            if step == day:
                return 7
            if step == week:
                return 52
            return 1
        return {
            "business_day": 5,
            "week": 52,
            "month_start": 12,
            "month_end": 12,
            "quarter_start": 4,
            "quarter_end": 4,
        }.get(family, 1)

    def positions(self, times: Any, origin: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(grid position [n] int64, on the grid [n] bool) of each timestamp.

        Consecutive grid points have consecutive positions, so ``diff(positions) - 1``
        counts missing steps. ``origin`` (a timestamp, default the first one; or an array of
        int64 microseconds, one per timestamp, for many series at once) fixes the phase of
        fixed steps and the time of day of calendar steps.
        """
        t = _micros(times)
        if len(t) == 0:
            return np.empty(0, np.int64), np.empty(0, bool)
        if origin is None:
            o = t[0]
        elif isinstance(origin, np.ndarray) and origin.ndim == 1:
            o = _micros(origin)  # one origin per timestamp (many series at once)
        else:
            o = _micros([origin])[0]
        family = self.family
        if family == "fixed":
            step = int(self.offset.nanos // 1000)
            rel = t - o
            return rel // step, rel % step == 0
        same_time = (t % _DAY_US) == (o % _DAY_US)
        day = t // _DAY_US  # days since 1970-01-01 (a Thursday)
        weekday = (day + 3) % 7  # Monday = 0
        if family == "business_day":
            days = day.astype("datetime64[D]")
            ordinal = np.busday_count(np.datetime64("1970-01-01"), days).astype(np.int64)
            return ordinal, same_time & (weekday < 5)
        if family == "week":
            anchor = self.offset.weekday
            return (day - anchor + 3) // 7, same_time & (weekday == anchor)
        index = pd.DatetimeIndex(t.astype("datetime64[us]"))
        year, month, dom = index.year.to_numpy(), index.month.to_numpy(), index.day.to_numpy()
        months = year.astype(np.int64) * 12 + month - 1
        end = dom == index.days_in_month.to_numpy()
        start = dom == 1
        if family in ("month_start", "month_end"):
            return months, same_time & (start if family == "month_start" else end)
        if family in ("quarter_start", "quarter_end"):
            anchor = self.offset.startingMonth
            in_cycle = (month - anchor) % 3 == 0
            edge = start if family == "quarter_start" else end
            return (months - (anchor - 1)) // 3, same_time & in_cycle & edge
        if family in ("year_start", "year_end"):
            anchor = self.offset.month
            edge = start if family == "year_start" else end
            return (months - (anchor - 1)) // 12, same_time & (month == anchor) & edge
        raise ValueError(f"frequency {self.code!r} is not supported: use one of {SUPPORTED}")

    def grid(self, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        """Every grid point from ``first`` to ``last`` (both on the grid), inclusive."""
        return pd.date_range(first, last, freq=self.offset)

    def future(self, last: pd.Timestamp, steps: int) -> pd.DatetimeIndex:
        """The ``steps`` grid points after ``last``."""
        return pd.date_range(last, periods=steps + 1, freq=self.offset)[1:]

    def describe(self) -> str:
        return f"{self.code} ({self.family.replace('_', ' ')})"


def _step_text(micros: int) -> str:
    return str(pd.Timedelta(int(micros), unit="us")).replace(" 00:00:00", "")


def steps_found(times: Any, limit: int = 4) -> str:
    """The distinct steps between consecutive timestamps, most common first: '1 days x30, ...'."""
    t = np.sort(_micros(times))
    counts = Counter(np.diff(t).tolist())
    parts = [f"{_step_text(step)} x{n}" for step, n in counts.most_common(limit)]
    if len(counts) > limit:
        parts.append(f"... ({len(counts)} distinct steps)")
    return ", ".join(parts) if parts else "(a single timestamp)"


def _candidates(t: np.ndarray) -> list[Frequency]:
    """Frequencies worth trying for sorted unique timestamps ``t`` (int64 us)."""
    diffs = np.diff(t)
    diffs = diffs[diffs > 0]
    if not len(diffs):
        return []
    values, counts = np.unique(diffs, return_counts=True)
    return candidates_for(int(values[np.argmax(counts)]), pd.Timestamp(int(t[0]), unit="us"))


def candidates_for(mode: int, first: pd.Timestamp) -> list[Frequency]:
    """Frequencies worth trying for a series whose most common step is ``mode`` (us) and
    whose first timestamp is ``first`` (the anchors of weeks, quarters and years)."""
    day = _DAY_US
    found: list[Frequency] = []
    if mode <= 0:
        return found
    if mode < 28 * day:
        # The most common step is the grid: longer steps are gaps, shorter ones are off it.
        if mode == 7 * day:
            found.append(Frequency(f"W-{_WEEKDAYS[first.weekday()]}"))
        if mode == day:
            found.append(Frequency("B"))  # before "D": weekends missing every week are no gaps
        found.append(Frequency.of_step(pd.Timedelta(mode, unit="us")))
    elif mode <= 31 * day:
        found += [Frequency("MS"), Frequency("ME")]
    elif 89 * day <= mode <= 92 * day:
        start_anchor = _MONTHS[(first.month - 1) % 3]
        end_anchor = _MONTHS[(first.month - 1) % 3 + 9]
        found += [Frequency(f"QS-{start_anchor}"), Frequency(f"QE-{end_anchor}")]
    elif 365 * day <= mode <= 366 * day:
        found += [Frequency(f"YS-{_MONTHS[first.month - 1]}")]
        found += [Frequency(f"YE-{_MONTHS[first.month - 1]}")]
    return found


def grid_fit(frequency: Frequency, times: Any) -> tuple[int, int]:
    """(timestamps off the grid, missing steps) of sorted unique ``times`` on ``frequency``."""
    position, on_grid = frequency.positions(times)
    steps = np.diff(position)
    off = int((~on_grid).sum()) + int((steps <= 0).sum())
    missing = int(np.clip(steps - 1, 0, None).sum())
    return off, missing


def best_grid(times: Any) -> tuple[Frequency | None, int]:
    """The frequency with the fewest timestamps off its grid (then fewest missing steps),
    and how many are off; (None, 0) for fewer than two timestamps."""
    t = np.unique(_micros(times))
    best: tuple[int, int, int, Frequency] | None = None
    for rank, frequency in enumerate(_candidates(t)):
        off, missing = grid_fit(frequency, t)
        if best is None or (off, missing, rank) < best[:3]:
            best = (off, missing, rank, frequency)
    return (None, 0) if best is None else (best[3], best[0])


def infer_frequency(times: Any) -> Frequency | None:
    """The frequency that puts every timestamp on its grid with the fewest missing steps.

    None when no supported frequency fits (the steps are mixed) or there are fewer than
    two timestamps. Ties go to the first candidate (business days before daily).
    """
    found, off = best_grid(times)
    return found if off == 0 else None


def frequency_of(times: Any, configured: str | None) -> Frequency | None:
    """The configured frequency, else the inferred one (None if nothing fits)."""
    return Frequency.parse(configured) if configured else infer_frequency(times)


def infer_season_length(step_seconds: float) -> int:
    """Season of a fixed step in seconds: for scalers saved before frequencies were recorded."""
    if not step_seconds or math.isnan(step_seconds) or step_seconds <= 0:
        return 1
    day = 86_400
    if step_seconds < day and day % step_seconds == 0:
        return int(day // step_seconds)
    if step_seconds == day:
        return 7
    if step_seconds == 7 * day:
        return 52
    if 28 * day <= step_seconds <= 31 * day:
        return 12
    return 1


def fill_gaps(group: pd.DataFrame, frequency: Frequency, columns: list[str]) -> pd.DataFrame:
    """Put one series on its calendar grid; interpolate the missing steps in time.

    Validation has already rejected gaps longer than the tolerance; this fills
    the rest (and NaN values up to the configured null fraction).
    """
    group = group.sort_values(TIMESTAMP).set_index(TIMESTAMP)
    position, on_grid = frequency.positions(group.index)
    # already every step of its calendar (the usual case): no grid to build, nothing to add
    complete = on_grid.all() and (np.diff(position) == 1).all()
    if not complete:
        grid = frequency.grid(group.index[0], group.index[-1])
        if len(grid) != len(group) or not grid.equals(group.index):
            group = group.reindex(grid)
    filled = group[columns].isna().any(axis=1)
    if filled.any():
        group[columns] = group[columns].interpolate(method="time", limit_direction="both")
    if LABEL in group:
        group[LABEL] = group[LABEL].ffill()  # a filled step keeps the class it was in
    group[FILLED] = filled.to_numpy()
    group.index.name = TIMESTAMP
    return group.reset_index()
