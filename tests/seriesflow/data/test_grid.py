"""Many series on their calendars at once: the vectorized grid agrees with the per-series one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.data.frequency import Frequency, best_grid, fill_gaps
from seriesflow.data.grid import SeriesRows, fill_grids, fit_grids, times_at, whole_series_chunks

# (frequency, first timestamp): every calendar family, with anchors other than the default
CALENDARS = [
    ("h", "2001-03-01 05:00"),
    ("30min", "2001-03-01 00:30"),
    ("6h", "2001-03-01 03:00"),
    ("D", "2001-03-01 07:00"),
    ("3D", "2001-03-01"),
    ("B", "2001-03-02 09:00"),
    ("W-SUN", "2001-03-04"),
    ("W-WED", "2001-03-07"),
    ("MS", "2001-03-01"),
    ("ME", "2001-02-28 12:00"),
    ("QS-JAN", "2001-04-01"),
    ("QS-FEB", "2001-02-01"),
    ("QE-DEC", "2001-03-31"),
    ("YS-MAR", "2001-03-01"),
    ("YE-DEC", "2001-12-31"),
]


def gappy_frame(seed: int = 0) -> pd.DataFrame:
    """One series per calendar, shuffled, with missing steps and a few NaN values."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, (code, first) in enumerate(CALENDARS):
        times = pd.date_range(first, periods=40, freq=code, tz="UTC")
        keep = rng.random(40) > 0.2
        keep[[0, 1, -1]] = True
        times = times[keep]
        value = rng.standard_normal(len(times)).cumsum()
        value[rng.random(len(times)) < 0.05] = np.nan
        parts.append(
            pd.DataFrame(
                {
                    "series_id": f"s{k:02d}-{code}",
                    "timestamp": times,
                    "value": value,
                    "cov": rng.random(len(times)),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).sample(frac=1, random_state=seed)


def test_every_calendar_is_inferred_and_filled_as_one_series_at_a_time_would_be():
    frame = gappy_frame()
    rows = SeriesRows.of(frame["series_id"], frame["timestamp"])
    assert rows.order is not None  # shuffled input: sorted here
    fit = fit_grids(rows)
    grid = fill_grids(rows, fit, rows.sort(frame[["value", "cov"]].to_numpy()))
    for k, sid in enumerate(rows.ids):
        one = frame[frame["series_id"] == sid]
        expected, off = best_grid(one["timestamp"].to_numpy())
        assert fit.frequency[k] == expected and off == 0 and fit.off_grid[k] == 0, sid
        assert expected.code == sid.split("-", 1)[1]
        reference = fill_gaps(one.drop(columns=["series_id"]), expected, ["value", "cov"])
        mine = slice(grid.start[k], grid.start[k] + grid.length[k])
        times = pd.to_datetime(grid.t[mine], unit="us", utc=True)
        assert (times == reference["timestamp"].to_numpy()).all(), sid
        np.testing.assert_allclose(grid.values[mine], reference[["value", "cov"]], rtol=1e-12)
        assert grid.filled[mine].tolist() == reference["filled"].tolist()
        steps = np.diff(expected.positions(one["timestamp"].sort_values())[0])
        assert fit.max_gap[k] == int(steps.max() - 1) and fit.missing[k] == int((steps - 1).sum())


def test_gaps_are_interpolated_in_time_and_the_ends_take_the_nearest_value():
    # month starts: Feb has 28 days, Mar 31, so time weights differ from step weights
    times = pd.to_datetime(["2023-01-01", "2023-04-01", "2023-05-01"], utc=True)
    frame = pd.DataFrame({"series_id": "m", "timestamp": times, "value": [0.0, 89.0, np.nan]})
    rows = SeriesRows.of(frame["series_id"], frame["timestamp"])
    fit = fit_grids(rows, Frequency("MS"))
    grid = fill_grids(rows, fit, frame[["value"]].to_numpy())
    assert pd.to_datetime(grid.t, unit="us").strftime("%m-%d").tolist() == [
        "01-01",
        "02-01",
        "03-01",
        "04-01",
        "05-01",
    ]
    # Jan 1 -> Apr 1 is 90 days: Feb 1 is day 31, Mar 1 day 59
    np.testing.assert_allclose(grid.values[:, 0], [0.0, 31 * 89 / 90, 59 * 89 / 90, 89.0, 89.0])
    assert grid.filled.tolist() == [False, True, True, False, True]
    assert fit.missing.tolist() == [2] and fit.max_gap.tolist() == [2]


@pytest.mark.parametrize("code", [c for c, _ in CALENDARS])
def test_times_at_inverts_positions(code):
    frequency = Frequency(code)
    first = dict(CALENDARS)[code]
    times = pd.date_range(first, periods=30, freq=code, tz="UTC")
    origin = int(times[0].value // 1000)
    position, on_grid = frequency.positions(times.to_numpy())
    assert on_grid.all()
    back = times_at(frequency, position, np.full(len(times), origin))
    assert (pd.to_datetime(back, unit="us", utc=True) == times).all()


def test_off_grid_and_repeated_timestamps_count_against_the_grid():
    times = pd.to_datetime(
        ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:00", "2024-01-01 02:30"], utc=True
    )
    frame = pd.DataFrame({"series_id": "x", "timestamp": times})
    fit = fit_grids(SeriesRows.of(frame["series_id"], frame["timestamp"]))
    assert fit.frequency[0] == Frequency("h")
    assert fit.off_grid.tolist() == [2]  # the repeat, and 02:30 half an hour off


@pytest.mark.parametrize(
    ("sizes", "most", "chunks"),
    [
        ([], 10, []),
        ([3, 3, 3, 3], 6, [[0, 1], [2, 3]]),  # exactly full, then the next chunk
        ([3, 3, 3, 3], 7, [[0, 1], [2, 3]]),
        ([2, 12, 2, 2], 5, [[0], [1], [2, 3]]),  # a series over the bound is a chunk alone
        ([12], 5, [[0]]),
        ([1, 1, 1], 100, [[0, 1, 2]]),
    ],
)
def test_whole_series_chunks_cut_consecutive_series_at_the_bound(sizes, most, chunks):
    found = whole_series_chunks(np.asarray(sizes, dtype=np.int64), most)
    assert [list(part) for part in found] == chunks
    assert [k for part in found for k in part] == list(range(len(sizes)))
