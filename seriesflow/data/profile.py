"""The accepted history's per-series profile: what validation compares new rows with.

One row per series of the accepted history (sorted by series id, as the history is):
its length, first and last timestamp, value range, mean and spread, grid (frequency,
timestamps off it, longest gap), the median and robust SD the outlier check uses, each
static covariate's value, and where the series' rows sit in the history file. A commit
keeps it beside the history (``seriesflow/workspace/profile.py``), so the next run checks
what is new against it instead of profiling the whole history again
(``seriesflow/data/arrival.py``). Pure: no I/O.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seriesflow.data.expectations import (
    FREQUENCY,
    MAX_GAP_STEPS,
    N_POINTS,
    OFF_GRID_STEPS,
    PROFILE_COLUMNS,
    STEPS_FOUND,
    VALUE_SPAN,
)
from seriesflow.data.frequency import Frequency, steps_found
from seriesflow.data.grid import SeriesRows, fit_grids
from seriesflow.data.schema import SERIES_ID, TIMESTAMP, VALUE

# Bumped when the columns below change meaning: an older profile is rebuilt.
PROFILE_VERSION = 1

FIRST_US = "first_us"  # first timestamp, int64 microseconds UTC
LAST_US = "last_us"  # last timestamp
VALUE_MIN = "value_min"  # over the non-null values (NaN when there are none)
VALUE_MAX = "value_max"
N_VALUES = "n_values"  # non-null values
MEAN = "mean"
M2 = "m2"  # sum of squared deviations from the mean (Welford): sd = sqrt(m2 / (n - 1))
MEDIAN = "median"  # of the non-null values, when ROBUST_AT was counted
ROBUST_SD = "robust_sd"  # 1.4826 x MAD (1.2533 x mean absolute deviation when MAD is 0)
ROBUST_AT = "robust_at"  # N_VALUES when MEDIAN and ROBUST_SD were computed
OFFSET = "offset"  # first row of the series in the history it describes (-1: not sorted)
STATIC_PREFIX = "static:"

# The outlier reference is refreshed once a series has grown by this share since it was
# computed: a median of everything accepted costs a pass over the whole series, so it is
# not recomputed for every small arrival (it moves little as a series grows by a few %).
ROBUST_REFRESH = 0.10


def static_column(name: str) -> str:
    return f"{STATIC_PREFIX}{name}"


def robust_stats(values: np.ndarray) -> tuple[float, float]:
    """(median, robust SD) of the non-null ``values``, as ``robust_outliers`` defines them."""
    known = values[~np.isnan(values)]
    if not len(known):
        return np.nan, np.nan
    median = float(np.median(known))
    deviation = np.abs(known - median)
    mad = float(np.median(deviation))
    scale = 1.4826 * mad if mad > 0 else 1.2533 * float(deviation.mean())
    return median, scale


def build_profile(
    rows: pd.DataFrame, frequency: str | None, static: list[str] | tuple[str, ...] = ()
) -> pd.DataFrame:
    """The profile of accepted ``rows`` (every series, all at once; no loop over rows).

    Its ``PROFILE_COLUMNS`` are what ``expectations.series_profile`` reports for the same
    rows, so the series suite can run on it directly.
    """
    configured = Frequency.parse(frequency) if frequency else None
    series = SeriesRows.of(rows[SERIES_ID], rows[TIMESTAMP])
    fit = fit_grids(series, configured)
    n = len(series.ids)
    code, start, length = series.code, series.start[:n], series.length  # start: [0] if n=0
    values = series.sort(rows[VALUE].to_numpy(dtype=float))
    known = ~np.isnan(values)
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(low, code[known], values[known])
    np.maximum.at(high, code[known], values[known])
    count = np.bincount(code[known], minlength=n).astype(np.int64)
    total = np.bincount(code[known], weights=values[known], minlength=n)
    mean = np.divide(total, count, out=np.full(n, np.nan), where=count > 0)
    m2 = np.bincount(code[known], weights=(values[known] - mean[code[known]]) ** 2, minlength=n)
    has = np.isfinite(low)
    no_grid = np.array([f is None for f in fit.frequency], dtype=bool)
    off_grid = np.where(no_grid, np.maximum(series.distinct_count() - 1, 0), fit.off_grid)
    robust = [robust_stats(values[s : s + k]) for s, k in zip(start, length, strict=True)]
    frame = pd.DataFrame(
        {
            SERIES_ID: series.ids,
            N_POINTS: length,
            VALUE_SPAN: np.where(has, high - low, 0.0),
            OFF_GRID_STEPS: off_grid,
            MAX_GAP_STEPS: np.where(no_grid, 0, fit.max_gap),
            FREQUENCY: [f.code if f else "" for f in fit.frequency],
            STEPS_FOUND: [
                "" if off_grid[k] == 0 else steps_found(series.t[start[k] : start[k] + m])
                for k, m in enumerate(length)
            ],
            FIRST_US: series.t[start],  # every series has rows: ids come from them
            LAST_US: series.t[start + length - 1],
            VALUE_MIN: np.where(has, low, np.nan),
            VALUE_MAX: np.where(has, high, np.nan),
            N_VALUES: count,
            MEAN: mean,
            M2: m2,
            MEDIAN: np.array([r[0] for r in robust], dtype=float),
            ROBUST_SD: np.array([r[1] for r in robust], dtype=float),
            ROBUST_AT: count,
            # rows are where the history keeps them only when it is sorted (it always is when
            # this project wrote it); -1 tells readers to look the series up instead
            OFFSET: start if series.order is None else np.full(n, -1, dtype=np.int64),
        }
    )
    for column in static:
        firsts = rows.groupby(SERIES_ID, sort=True)[column].first()  # first non-null
        frame[static_column(column)] = firsts.reindex(series.ids).to_numpy(dtype=float)
    frame.index = pd.Index(series.ids, dtype=object, name=None)
    return frame


# Counted columns: integers in a stored profile, floats while one is carried forward (a
# new series' row is NaN until it is filled).
COUNTS = [N_POINTS, OFF_GRID_STEPS, MAX_GAP_STEPS, N_VALUES, ROBUST_AT, OFFSET, FIRST_US, LAST_US]


def as_floats(profile: pd.DataFrame) -> pd.DataFrame:
    """The profile with its counted columns as floats, and its text columns as objects."""
    out = profile.astype({c: float for c in COUNTS})
    return out.astype({c: object for c in (SERIES_ID, FREQUENCY, STEPS_FOUND)})


def as_stored(profile: pd.DataFrame) -> pd.DataFrame:
    """The profile with its counted columns as int64 again (every row filled)."""
    out = profile.astype({c: np.int64 for c in COUNTS})
    out[SERIES_ID] = out.index.to_numpy(dtype=object)
    return out.astype({c: str for c in (SERIES_ID, FREQUENCY, STEPS_FOUND)})


def series_suite_frame(profile: pd.DataFrame) -> pd.DataFrame:
    """The profile's rows as the series suite reads them (``expectations.PROFILE_COLUMNS``)."""
    frame = profile[PROFILE_COLUMNS].reset_index(drop=True)
    frame = frame.astype({N_POINTS: np.int64, OFF_GRID_STEPS: np.int64, MAX_GAP_STEPS: np.int64})
    return frame.astype({SERIES_ID: str, FREQUENCY: str, STEPS_FOUND: str})
