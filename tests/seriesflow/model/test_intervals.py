"""Split-conformal intervals: quantiles by hand, the pooled fallback, coverage near nominal."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seriesflow.model.intervals import (
    Intervals,
    bounds,
    calibrate,
    conformal_quantile,
    coverage,
    group_quantiles_at,
)


def test_conformal_quantile_by_hand():
    residuals = np.arange(1.0, 20.0)  # 19 residuals 1..19
    assert conformal_quantile(residuals, 0.95) == 19  # rank ceil(20 * 0.95) = 19
    assert conformal_quantile(residuals, 0.80) == 16  # rank ceil(20 * 0.8) = 16
    assert conformal_quantile(-residuals, 0.80) == 16  # absolute values
    assert math.isinf(conformal_quantile(np.arange(10.0), 0.95))  # rank 11 > 10: too few


def residual_table(rng, series: dict[str, tuple[int, float]], steps: int) -> pd.DataFrame:
    """``series``: id -> (residuals per step, sd); errors grow with the step."""
    parts = []
    for sid, (count, sd) in series.items():
        for k in range(1, steps + 1):
            parts.append(
                pd.DataFrame(
                    {"series_id": sid, "step": k, "residual": rng.normal(0, sd * k, count)}
                )
            )
    return pd.concat(parts, ignore_index=True)


def test_intervals_cover_about_their_level_on_fresh_residuals():
    rng = np.random.default_rng(0)
    spec = {"a": (400, 1.0), "b": (400, 5.0)}
    calibration = residual_table(rng, spec, steps=3)
    intervals = calibrate(calibration, {"a": 1.0, "b": 5.0}, [80, 95], 3, "val")
    fresh = residual_table(rng, spec, steps=3)
    for level in (80, 95):
        forecast = np.zeros((len(fresh), 1))
        width = np.array(
            [
                intervals.widths(s, level, 3)[k - 1]
                for s, k in zip(fresh.series_id, fresh.step, strict=True)
            ]
        )
        inside = np.abs(fresh["residual"].to_numpy()) <= width
        assert abs(inside.mean() - level / 100) < 0.03
        lower, upper = bounds(forecast[:1], np.array(["b"]), intervals, level)
        assert upper[0, 0] == pytest.approx(intervals.half_width["b"][str(level)][0])
    # errors grow with the step and with the series' scale
    w = intervals.widths("b", 95, 3)
    assert w[0] < w[1] < w[2] and intervals.widths("a", 95, 3)[0] < w[0] / 3


def test_a_series_with_few_residuals_borrows_the_pooled_quantile_in_its_scale():
    rng = np.random.default_rng(1)
    calibration = residual_table(rng, {"big": (500, 2.0), "tiny": (5, 2.0)}, steps=1)
    intervals = calibrate(calibration, {"big": 2.0, "tiny": 10.0}, [95], 1, "val")
    assert math.isinf(intervals.half_width["tiny"]["95"][0])  # 5 residuals: no 95% quantile
    pooled = intervals.pooled["95"][0]  # in units of each series' scale
    assert intervals.widths("tiny", 95, 1)[0] == pytest.approx(pooled * 10.0)
    # and beyond the calibrated steps, half-widths grow with the square root of the step
    big = intervals.widths("big", 95, 4)
    np.testing.assert_allclose(big[1:], big[0] * np.sqrt([2, 3, 4]))


def test_coverage_and_json_round_trip():
    assert coverage(np.array([1.0, 5.0, np.nan]), np.zeros(3), np.full(3, 2.0)) == 0.5
    intervals = Intervals([80], 1, {"a": {"80": [1.5]}}, {"80": [1.0]}, {"a": 2.0}, "val")
    again = Intervals.from_json(intervals.to_json())
    assert again == intervals and again.widths("a", 80, 1)[0] == 1.5


def _calibrate_by_groups(residuals, scale, levels, steps):
    """The per-group reference (one conformal_quantile per series, level and step)."""
    table = residuals.assign(abs=residuals["residual"].abs())
    table["scaled"] = table["abs"] / table["series_id"].map(scale)
    half, pooled = {}, {}
    for level in levels:
        key = str(level)
        pooled[key] = [
            conformal_quantile(table.loc[table["step"] == k, "scaled"].to_numpy(), level / 100)
            for k in range(1, steps + 1)
        ]
        for sid, part in table.groupby("series_id", sort=True):
            half.setdefault(str(sid), {})[key] = [
                conformal_quantile(part.loc[part["step"] == k, "abs"].to_numpy(), level / 100)
                for k in range(1, steps + 1)
            ]
    return half, pooled


def test_calibration_in_one_sort_equals_a_quantile_per_series_and_step():
    rng = np.random.default_rng(5)
    rows = 4000
    residuals = pd.DataFrame(
        {
            "series_id": rng.choice(
                ["a", "b", "c", "d", "tiny"], rows, p=[0.3, 0.3, 0.2, 0.199, 0.001]
            ),
            "step": rng.integers(1, 8, rows),  # step 7 is past the 6 calibrated: ignored
            "residual": rng.standard_t(3, rows) * 5,
        }
    )
    residuals.loc[rng.choice(rows, 200, replace=False), "residual"] = np.nan  # unscorable
    residuals.loc[(residuals["series_id"] == "d") & (residuals["step"] == 2), "residual"] = np.nan
    scale = {"a": 2.0, "b": 0.5, "c": 0.0, "tiny": 1.0}  # c: zero scale, d: no scale at all
    intervals = calibrate(residuals, scale, [80, 95], 6, "val")
    half, pooled = _calibrate_by_groups(residuals, scale, [80, 95], 6)
    assert intervals.half_width == half and intervals.pooled == pooled
    assert math.isinf(intervals.half_width["d"]["80"][1])  # no finite residual at step 2
    assert list(intervals.half_width) == ["a", "b", "c", "d", "tiny"]


def test_interval_coverage_counts_rows_inside_their_series_and_step_width():
    from seriesflow.model.forecasting import interval_coverage

    rng = np.random.default_rng(9)
    residuals = pd.DataFrame(
        {
            "series_id": rng.choice(["a", "b"], 500),
            "step": rng.integers(1, 5, 500),
            "residual": rng.normal(0, 3, 500),
        }
    )
    intervals = calibrate(residuals.iloc[:250], {"a": 1.0, "b": 1.0}, [80], 4, "val")
    found = interval_coverage(residuals.iloc[250:], intervals, 80)
    test = residuals.iloc[250:]
    inside = [
        abs(r) <= intervals.widths(s, 80, 4)[k - 1]
        for s, k, r in zip(test["series_id"], test["step"], test["residual"], strict=True)
    ]
    expected = pd.Series(inside, index=test.index).groupby(test["series_id"]).mean()
    assert found.drop("__all__").to_dict() == pytest.approx(expected.to_dict())
    assert found["__all__"] == pytest.approx(np.mean(inside))


def test_series_codes_equal_numpy_unique_of_the_ids_as_text_whatever_their_dtype():
    from seriesflow.model.intervals import series_codes

    ids = ["s10", "s2", "s10", "b", "s2", "a", "b"]
    want_names, want_codes = np.unique(np.array(ids, dtype=object), return_inverse=True)
    columns = {
        "object": pd.Series(ids, dtype=object),
        "arrow strings": pd.Series(ids, dtype=pd.StringDtype("pyarrow")),
        # as residuals_of makes them: categories in another order, one never used
        "categorical": pd.Series(pd.Categorical(ids, categories=["s2", "s10", "zz", "b", "a"])),
    }
    for kind, column in columns.items():
        names, codes = series_codes(column)
        assert names.tolist() == want_names.tolist(), kind
        assert codes.tolist() == want_codes.tolist(), kind


@pytest.mark.parametrize("count", [1, 3, 48, 700])
def test_quantiles_a_group_at_a_time_equal_the_one_sort(count):
    # the pooled widths (few groups) select each group's values instead of sorting every
    # value: the same order statistics, with NaN and inf left out and groups past count
    # ignored, as the one sort does
    rng = np.random.default_rng(count)
    n = 20 * count + 7
    groups = rng.integers(0, count + 2, n)
    values = rng.standard_normal(n) * rng.choice([1.0, 1.0, 1.0, np.nan, -np.inf], n)
    levels = [0.0, 0.5, 0.8, 0.95, 0.999]
    one_sort = group_quantiles_at(groups, values, count, levels, few=0)
    a_group_at_a_time = group_quantiles_at(groups, values, count, levels, few=count)
    np.testing.assert_array_equal(a_group_at_a_time, one_sort)
    assert np.isfinite(one_sort[1:4]).any() and np.isinf(one_sort[0]).all()  # rank 0: none
