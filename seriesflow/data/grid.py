"""Many series on their calendars at once: grid fit, gaps and filling, vectorized (pure).

``seriesflow/data/frequency.py`` says what a calendar is for one series; this module does the
same work for every series of a long table in a few array passes, with no Python
loop over rows or per-series pandas operations (the loops left are over the handful
of distinct candidate frequencies, and over series only to build small dicts):

- ``SeriesRows``: rows sorted by (series, time) as integer codes, boundaries and
  int64 microsecond timestamps;
- ``fit_grids``: each series' frequency (configured, or the candidate with the fewest
  timestamps off its grid, then the fewest missing steps: ``frequency.best_grid`` for
  all series at once), timestamps off the grid, missing steps, the longest gap;
- ``fill_grids``: every series put on its grid, missing steps interpolated in time
  (``frequency.fill_gaps``' result, without a per-series reindex).

Rows must be sorted by series then time (``SeriesRows.of`` sorts when they are not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from seriesflow.data.frequency import _DAY_US, Frequency, _micros, candidates_for

_MONTH_EPOCH = 1970 * 12  # months since year 0 of 1970-01 (positions count months from 0)


@dataclass(frozen=True)
class SeriesRows:
    """A long table's rows as arrays, sorted by series then time."""

    ids: np.ndarray  # [series] series ids, sorted (object)
    code: np.ndarray  # [rows] index into ids
    start: np.ndarray  # [series] first row of each series
    length: np.ndarray  # [series] rows of each series
    t: np.ndarray  # [rows] int64 microseconds, UTC
    order: np.ndarray | None  # [rows] positions in the input that sort it (None: already sorted)

    @classmethod
    def of(cls, series_ids: pd.Series | np.ndarray, times: pd.Series | np.ndarray) -> SeriesRows:
        if not isinstance(series_ids, pd.Series):
            series_ids = pd.Series(np.asarray(series_ids, dtype=object))
        codes, ids = pd.factorize(series_ids, sort=True)  # hashes, no Python str per row
        t = _micros(times)
        order = None
        if len(t) > 1:
            step_code, step_t = np.diff(codes), np.diff(t)
            if (step_code < 0).any() or ((step_code == 0) & (step_t < 0)).any():
                order = np.lexsort((t, codes))  # stable: equal keys keep their order
                codes, t = codes[order], t[order]
        length = np.bincount(codes, minlength=len(ids)).astype(np.int64)
        start = np.r_[0, np.cumsum(length)[:-1]].astype(np.int64)
        return cls(np.asarray(ids, dtype=object), codes.astype(np.int64), start, length, t, order)

    def sort(self, values: np.ndarray) -> np.ndarray:
        """``values`` [rows, ...] of the input in this sorted order."""
        return values if self.order is None else values[self.order]

    def distinct(self) -> np.ndarray:
        """[rows] False where a row repeats the previous row's series and timestamp."""
        if not len(self.t):
            return np.empty(0, dtype=bool)
        return np.r_[True, (np.diff(self.t) != 0) | (np.diff(self.code) != 0)]

    def distinct_count(self) -> np.ndarray:
        """[series] distinct timestamps of each series."""
        return np.bincount(self.code[self.distinct()], minlength=len(self.ids))

    @property
    def first(self) -> np.ndarray:
        """[rows] True at each series' first row."""
        first = np.zeros(len(self.t), dtype=bool)
        first[self.start[self.length > 0]] = True
        return first


def keys_in_order(ids: np.ndarray, times: np.ndarray) -> bool:
    """Whether rows with these (series, time) keys [rows] are in (series, time) order,
    equal keys allowed (a stable sort keeps them). Ids: codes, or str objects."""
    if len(ids) < 2:
        return True
    later, same = ids[1:] > ids[:-1], ids[1:] == ids[:-1]
    return bool((later | (same & (times[1:] >= times[:-1]))).all())


def whole_series_chunks(sizes: np.ndarray, most: int) -> list[range]:
    """Consecutive positions of ``sizes`` (rows or windows of each series, in order) cut
    into chunks of at most ``most`` in all; a series over ``most`` is a chunk of its own.
    The one rule behind validate's, the window stage's and evaluate's chunks."""
    chunks, first, held = [], 0, 0
    for k, size in enumerate(np.asarray(sizes, dtype=np.int64).tolist()):
        if held and held + size > most:
            chunks.append(range(first, k))
            first, held = k, 0
        held += size
    if first < len(sizes):
        chunks.append(range(first, len(sizes)))
    return chunks


def string_column(names: list[str], code: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``names[code]`` as a pandas string array, built in Arrow (no Python str per row)."""
    taken = pa.array(names, pa.string()).take(pa.array(np.asarray(code, dtype=np.int64)))
    return pd.array(taken, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def _sum(values: np.ndarray, code: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(code, weights=values, minlength=n)


def _steps(position: np.ndarray, first: np.ndarray) -> np.ndarray:
    """[rows] position minus the previous row's, 1 at each series' first row (no step)."""
    steps = np.diff(position, prepend=position[:1] - 1)
    steps[first] = 1
    return steps


def _mode_steps(rows: SeriesRows, keep: np.ndarray) -> np.ndarray:
    """Each series' most common positive step in microseconds (ties: the shortest); 0 if none."""
    n = len(rows.ids)
    d = np.diff(rows.t, prepend=rows.t[:1])
    valid = keep & ~rows.first & (d > 0)
    mode = np.zeros(n, dtype=np.int64)
    if not valid.any():
        return mode
    frame = pd.DataFrame({"code": rows.code[valid], "step": d[valid]})
    counts = frame.value_counts(sort=False).reset_index(name="n")
    counts = counts.sort_values(["code", "n", "step"], ascending=[True, False, True])
    best = counts.drop_duplicates("code")
    mode[best["code"].to_numpy()] = best["step"].to_numpy()
    return mode


def _rows_of(rows: SeriesRows, series: np.ndarray) -> np.ndarray:
    """Row indexes [rows of these series] of the series codes ``series``, in order."""
    lengths = rows.length[series]
    offsets = np.repeat(rows.start[series] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return offsets + np.arange(int(lengths.sum()))


@dataclass(frozen=True)
class GridFit:
    """Per series [series]: its grid and how the timestamps sit on it."""

    frequency: list[Frequency | None]  # None: fewer than two timestamps, or no candidate
    off_grid: np.ndarray  # timestamps off the grid, + repeated or backward steps
    missing: np.ndarray  # missing steps in all
    max_gap: np.ndarray  # the longest run of missing steps
    position: np.ndarray  # [rows] grid position of each row (0 where no grid)


@dataclass(frozen=True)
class _Evaluated:
    index: np.ndarray  # rows evaluated
    position: np.ndarray  # [index] grid positions
    off: np.ndarray  # [series] (every series; meaningful for those evaluated)
    missing: np.ndarray
    longest: np.ndarray


def _evaluate(
    rows: SeriesRows, series: np.ndarray, frequency: Frequency, subset: np.ndarray | None = None
) -> _Evaluated:
    """``series`` on ``frequency``: positions, timestamps off the grid, missing steps and the
    longest gap; ``subset`` [rows] limits which rows count (e.g. distinct timestamps)."""
    index = _rows_of(rows, series)
    if subset is not None:
        index = index[subset[index]]
    code = rows.code[index]
    t = rows.t[index]
    first = np.r_[True, code[1:] != code[:-1]] if len(code) else np.empty(0, bool)
    origin = np.maximum.accumulate(np.where(first, np.arange(len(t)), 0))
    position, on_grid = frequency.positions(t, origin=t[origin])  # origin: the series' first
    steps = _steps(position, first)
    n = len(rows.ids)
    off = _sum((~on_grid).astype(float), code, n) + _sum((steps <= 0).astype(float), code, n)
    gap = np.clip(steps - 1, 0, None)
    longest = np.zeros(n, dtype=np.int64)
    np.maximum.at(longest, code, gap)
    return _Evaluated(index, position, off, _sum(gap.astype(float), code, n), longest)


def fit_grids(rows: SeriesRows, configured: Frequency | None = None) -> GridFit:
    """Each series' grid, and its timestamps' fit to it (``frequency.best_grid`` for all).

    Inference looks at each series' distinct timestamps (as ``best_grid`` does); the
    counts reported are over every row, so a repeated timestamp counts as off the grid.
    """
    n = len(rows.ids)
    frequency: list[Frequency | None] = [configured] * n
    evaluated: dict[Frequency, _Evaluated] = {}  # on distinct rows; reused when all are
    distinct = rows.distinct()
    if configured is None:
        mode = _mode_steps(rows, distinct)
        has = np.flatnonzero(rows.length > 0)
        firsts = pd.DatetimeIndex(rows.t[rows.start[has]].astype("datetime64[us]"))
        by_frequency: dict[Frequency, list[tuple[int, int]]] = {}
        for k, first in zip(has, firsts, strict=True):
            for rank, f in enumerate(candidates_for(int(mode[k]), first)):
                by_frequency.setdefault(f, []).append((int(k), rank))
        best: dict[int, tuple[float, float, int, Frequency]] = {}
        for f, members in by_frequency.items():
            series = np.array([k for k, _ in members], dtype=np.int64)
            evaluated[f] = found = _evaluate(rows, series, f, distinct)
            for k, rank in members:
                key = (found.off[k], found.missing[k], rank, f)
                if k not in best or key[:3] < best[k][:3]:
                    best[k] = key
        for k, (_, _, _, f) in best.items():
            frequency[k] = f
    position = np.zeros(len(rows.t), dtype=np.int64)
    off, missing, gap = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)
    for f in {f for f in frequency if f is not None}:
        chosen = np.array([found == f for found in frequency], dtype=bool)  # [series]
        result = evaluated.get(f) if distinct.all() else None
        if result is None:
            result = _evaluate(rows, np.flatnonzero(chosen), f)
        mine = chosen[rows.code[result.index]]
        position[result.index[mine]] = result.position[mine]
        off[chosen], missing[chosen] = result.off[chosen], result.missing[chosen]
        gap[chosen] = result.longest[chosen]
    return GridFit(frequency, off.astype(np.int64), missing.astype(np.int64), gap, position)


# --------------------------------------------------------------------------- filling


def times_at(frequency: Frequency, position: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Timestamps [n] int64 us of grid ``position`` [n] (as ``Frequency.positions`` counts
    them) on the grid through ``origin`` [n] (us): the inverse of ``positions``."""
    position = np.asarray(position, dtype=np.int64)
    origin = np.asarray(origin, dtype=np.int64)
    family = frequency.family
    if family == "fixed":
        return origin + position * int(frequency.offset.nanos // 1000)
    time_of_day = origin % _DAY_US
    if family == "business_day":
        days = np.busday_offset(np.datetime64("1970-01-01", "D"), position, roll="forward")
        day = days.astype(np.int64)
    elif family == "week":
        day = position * 7 + frequency.offset.weekday - 3
    else:
        if family in ("month_start", "month_end"):
            months = position
        elif family in ("quarter_start", "quarter_end"):
            months = position * 3 + frequency.offset.startingMonth - 1
        elif family in ("year_start", "year_end"):
            months = position * 12 + frequency.offset.month - 1
        else:
            raise ValueError(f"frequency {frequency.code!r} has no grid to fill")
        month = (months - _MONTH_EPOCH).astype("datetime64[M]")
        if family.endswith("_start"):
            day = month.astype("datetime64[D]").astype(np.int64)
        else:
            day = (month + 1).astype("datetime64[D]").astype(np.int64) - 1
    return day * _DAY_US + time_of_day


@dataclass(frozen=True)
class Filled:
    """Every series on its grid: [rows out] arrays, sorted by series then time."""

    code: np.ndarray  # series index into SeriesRows.ids
    start: np.ndarray  # [series] first output row
    length: np.ndarray  # [series] grid points
    t: np.ndarray  # int64 us
    values: np.ndarray  # [rows out, columns] float64, gaps interpolated in time
    filled: np.ndarray  # True where a step was missing or a value was NaN
    source: np.ndarray  # row of the sorted input behind each output row, -1 for a new step


def fill_grids(rows: SeriesRows, fit: GridFit, values: np.ndarray) -> Filled:
    """Put every series on its grid and interpolate missing steps in time.

    ``values`` [rows, columns] are in the rows' sorted order. A series with no grid
    (fewer than two timestamps) is kept as it is. NaN values are filled too, and a
    series' leading or trailing NaNs take its first or last value (as pandas'
    ``interpolate(method="time", limit_direction="both")``).
    """
    values = np.asarray(values, dtype=float).reshape(len(rows.t), -1)
    n = len(rows.ids)
    no_grid = np.array([f is None for f in fit.frequency], dtype=bool)  # [series]
    origin = np.zeros(n, dtype=np.int64)  # grid position of each series' first row
    has = rows.length > 0
    origin[has] = fit.position[rows.start[has]]
    own_row = np.arange(len(rows.t)) - np.repeat(rows.start, rows.length)
    # each row's place on its series' grid, counted from the series' first row
    rel = np.where(
        np.repeat(no_grid, rows.length), own_row, fit.position - np.repeat(origin, rows.length)
    )
    span = np.zeros(n, dtype=np.int64)  # grid points per series, first to last row
    last = rows.start + rows.length - 1
    span[has] = rel[last[has]] + 1
    out_start = np.r_[0, np.cumsum(span)[:-1]].astype(np.int64)
    total = int(span.sum())
    target = np.repeat(out_start, rows.length) + rel  # [rows] output row of each input row
    code = np.repeat(np.arange(n, dtype=np.int64), span)  # [rows out]
    source = np.full(total, -1, dtype=np.int64)
    source[target] = np.arange(len(rows.t))
    t = np.empty(total, dtype=np.int64)
    t[target] = rows.t
    new = source < 0
    if new.any():
        local = np.arange(total) - out_start[code]  # [rows out] steps from the series' start
        first_t = rows.t[np.minimum(rows.start, max(len(rows.t) - 1, 0))]
        for f in {f for f in fit.frequency if f is not None}:
            mine = new & np.isin(code, [k for k in range(n) if fit.frequency[k] == f])
            if mine.any():
                k = code[mine]
                t[mine] = times_at(f, origin[k] + local[mine], first_t[k])
    out = np.full((total, values.shape[1]), np.nan)
    out[target] = values
    missing = np.isnan(out)
    filled = missing.any(axis=1)
    for column in np.flatnonzero(missing.any(axis=0)):
        out[:, column] = _interpolate_time(out[:, column], t, code, out_start, span)
    return Filled(code, out_start, span, t, out, filled, source)


def _interpolate_time(
    y: np.ndarray, t: np.ndarray, code: np.ndarray, start: np.ndarray, length: np.ndarray
) -> np.ndarray:
    """NaNs of ``y`` linearly interpolated in time ``t`` within each series; the ends take the
    nearest value (a series with no value at all stays NaN)."""
    y = y.copy()
    index = np.arange(len(y))
    known = ~np.isnan(y)
    first_row = start[code]
    last_row = (start + length - 1)[code]
    # the latest known row at or before each row, within its series (-1: none)
    prev = np.where(known, index, -1)
    prev = np.maximum.accumulate(prev)
    prev = np.where(prev >= first_row, prev, -1)
    # the earliest known row at or after each row, within its series (len: none)
    nxt = np.where(known, index, len(y))
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]
    nxt = np.where(nxt <= last_row, nxt, len(y))
    gap = ~known
    has_prev, has_next = prev >= 0, nxt < len(y)
    both = gap & has_prev & has_next
    p, q = prev[both], nxt[both]
    weight = (t[both] - t[p]) / (t[q] - t[p])
    y[both] = y[p] + (y[q] - y[p]) * weight
    only_next = gap & ~has_prev & has_next
    y[only_next] = y[nxt[only_next]]
    only_prev = gap & has_prev & ~has_next
    y[only_prev] = y[prev[only_prev]]
    return y
