"""Covariates as model features: calendar and holidays by hand, lead columns, forecasts that
read future covariates per step, the error paths, and a known future effect learned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.frequency import Frequency
from seriesflow.data.schema import SERIES_ID, TIMESTAMP, VALUE
from seriesflow.model.features import (
    FeatureSpec,
    calendar_columns,
    calendar_cycles,
    calendar_values,
    holiday_values,
)
from seriesflow.model.forecasting import ForecastSettings, forecast_frame, tail_arrays
from seriesflow.model.intervals import Intervals
from seriesflow.model.normalize import normalize_series
from seriesflow.model.saved_model import ModelSpec
from seriesflow.model.scaler import Scaler
from tests.factories import PROMO_NOISE, fit_promo

# ----------------------------------------------------------------------------- calendar


def test_calendar_values_by_hand():
    # Monday 2 March 2026, 06:00 UTC: a quarter into the day, the first day of the week,
    # March = month index 2 of 12 (1/6 of the year)
    values = calendar_values(pd.to_datetime(["2026-03-02T06:00:00Z"]), ["hour", "dow", "month"])
    expected = [1.0, 0.0, 0.0, 1.0, np.sin(np.pi / 3), 0.5]  # hour sin, cos; dow; month
    np.testing.assert_allclose(values[0], expected, atol=1e-12)
    # Sunday 18:00: three quarters into the day, day 6 of 7
    later = calendar_values(pd.to_datetime(["2026-03-08T18:00:00Z"]), ["hour", "dow"])
    np.testing.assert_allclose(
        later[0], [-1.0, 0.0, np.sin(2 * np.pi * 6 / 7), np.cos(2 * np.pi * 6 / 7)], atol=1e-12
    )


def test_calendar_cycles_follow_the_frequency():
    def cycles(*codes):
        return calendar_cycles([Frequency.parse(c) for c in codes])

    assert cycles("h") == cycles("30min") == ["hour", "dow"]
    assert cycles("D") == cycles("B") == ["dow", "month"]
    assert cycles("W-SUN") == cycles("MS") == cycles("ME") == ["month"]
    assert cycles("QS-JAN") == cycles("YS-JAN") == []
    assert cycles("MS", "h") == ["hour", "dow"]  # the finest series decides
    assert calendar_columns(["month"]) == ["calendar:month_sin", "calendar:month_cos"]


def test_holiday_flags_by_hand():
    # Christmas 2026 is a Friday; the 24th is not a US federal holiday
    days = pd.date_range("2026-12-23", periods=4, freq="D", tz="UTC")
    flags = holiday_values(days, "US")  # [holiday, day before one, day after one]
    np.testing.assert_array_equal(flags, [[0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])


# ----------------------------------------------------------------------------- lead columns


def test_lead_columns_hold_the_known_ahead_values_lead_steps_later():
    spec = FeatureSpec(future=["price"], calendar=["hour"], lead=2)
    times = pd.date_range("2026-01-01", periods=4, freq="h").to_numpy()
    raw = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])  # value, price
    matrix = spec.series_matrix(times, raw, np.array([]), Frequency.parse("h"))
    assert spec.columns() == ["value", "future:price", "calendar:hour_sin", "calendar:hour_cos"]
    np.testing.assert_array_equal(matrix[:, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(matrix[:2, 1], [30, 40])  # price two hours later
    assert np.isnan(matrix[2:, 1]).all()  # past the series' end
    # the calendar of 02:00 .. 05:00 (the grid continues past the last row)
    np.testing.assert_allclose(matrix[:, 2], np.sin(2 * np.pi * np.arange(2, 6) / 24))


def feature_scaler(series=("a",), lead=1, static=()) -> Scaler:
    """Identity maps over value, future:price (+ statics): original units are model units."""
    spec = FeatureSpec(future=["price"], static=list(static), lead=lead)
    columns = spec.columns()

    def each(value):
        return {s: value for s in series}

    return Scaler(
        columns,
        each([0.0] * len(columns)),
        each([1.0] * len(columns)),
        each("h"),
        each(""),
        each(""),
        covariates=spec.to_json(),
    )


def sum_model():
    """The window's value + its lead price (timesteps 1, horizon 1): y[t+1] = y[t] + price[t+1]."""
    import keras

    model = keras.Sequential(
        [keras.Input((1, 2)), keras.layers.Flatten(), keras.layers.Dense(1, use_bias=False)]
    )
    model.set_weights([np.ones((2, 1), "float32")])
    return model


def priced(values: list[float], prices: list[float], sid: str = "a") -> pd.DataFrame:
    """Rows of one hourly series: observed values, then future rows (value empty)."""
    times = pd.date_range("2026-01-01", periods=len(prices), freq="h", tz="UTC")
    value = values + [np.nan] * (len(prices) - len(values))
    return pd.DataFrame({SERIES_ID: sid, TIMESTAMP: times, VALUE: value, "price": prices})


def test_recursive_forecasts_read_each_steps_future_covariate_by_hand():
    # y[t+1] = y[t] + price[t+1]: from 10 with future prices 1, 2, 3 -> 11, 13, 16
    spec = ModelSpec("regression", 1, ["value", "future:price"], 1)
    intervals = Intervals([80], 3, {}, {"80": [1.0, 1.0, 1.0]}, {"a": 1.0})
    frame = priced([8.0, 10.0], [0.0, 2.0, 1.0, 2.0, 3.0])
    out, skipped = forecast_frame(
        sum_model(),
        spec,
        feature_scaler(),
        intervals,
        frame,
        ForecastSettings(steps=3, levels=[80]),
    )
    assert not skipped
    np.testing.assert_allclose(out["forecast"], [11.0, 13.0, 16.0], rtol=1e-6)
    assert out[TIMESTAMP].iloc[0] == pd.Timestamp("2026-01-01T02:00", tz="UTC")


def test_a_missing_future_value_names_the_series_and_the_first_missing_timestamp():
    spec = ModelSpec("regression", 1, ["value", "future:price"], 1)
    frame = priced([8.0, 10.0], [0.0, 2.0, 1.0, np.nan, 3.0])  # 03:00 has no price
    with pytest.raises(ValueError) as error:
        tail_arrays(frame, feature_scaler(), spec, steps=3)
    message = str(error.value)
    assert "series 'a'" in message and "'price'" in message
    assert "2026-01-01T03:00:00+00:00" in message and "first missing" in message
    # no future rows at all: the first forecast step is the first missing one
    with pytest.raises(ValueError, match=r"2026-01-01T02:00:00\+00:00"):
        tail_arrays(priced([8.0, 10.0], [0.0, 2.0]), feature_scaler(), spec, steps=1)


def test_a_missing_static_value_names_the_series():
    spec = ModelSpec("regression", 1, ["value", "future:price", "static:capacity"], 1)
    scaler = feature_scaler(("a", "b"), static=["capacity"])
    frame = pd.concat([priced([8.0, 10.0], [0.0, 2.0, 1.0]), priced([1.0, 2.0], [0, 0, 1], "b")])
    frame["capacity"] = np.where(frame[SERIES_ID] == "a", 5.0, np.nan)
    with pytest.raises(ValueError, match="static covariate 'capacity' is missing for series 'b'"):
        tail_arrays(frame, scaler, spec, steps=1)


def test_normalize_builds_every_kind_of_column_and_leaves_fixed_ones_unscaled():
    n = 48
    times = pd.date_range("2026-01-05", periods=n, freq="h", tz="UTC")  # a Monday
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    SERIES_ID: sid,
                    TIMESTAMP: times,
                    VALUE: 10.0 + k + np.sin(np.arange(n)),
                    "temp": np.arange(n, dtype=float),
                    "price": np.arange(n, dtype=float) * 2,
                    "size": 100.0 * (k + 1),
                    "region": float(k + 1),
                }
            )
            for k, sid in enumerate(("a", "b"))
        ],
        ignore_index=True,
    )
    cfg = PipelineConfig.model_validate(
        {
            "columns": {"past": ["temp"], "future": ["price"], "static": ["size", "region"]},
            "features": {"static_categorical": ["region"]},
            "window": {"timesteps": 4, "horizon": 3},
            "normalize": {"method": "minmax"},
        }
    )
    normalized, scaler = normalize_series(frame, cfg)
    assert scaler.columns == [
        "value", "temp", "future:price",
        "calendar:hour_sin", "calendar:hour_cos", "calendar:dow_sin", "calendar:dow_cos",
        "static:size", "static:region=1", "static:region=2",
    ]  # fmt: skip
    a = normalized[normalized[SERIES_ID] == "a"].reset_index(drop=True)
    # price leads by the horizon (3 steps) on the series' own MinMax map; the last three rows
    # look past the end and carry the last value
    center, scale = scaler.affine("a")
    lead = a["future:price"].to_numpy() * scale[2] + center[2]
    np.testing.assert_allclose(lead[:-3], 2.0 * np.arange(3, n))
    np.testing.assert_allclose(lead[-3:], 2.0 * (n - 1))
    # calendar, statics: on a common scale (identity map), statics standardized / one-hot
    assert center[3:].tolist() == [0.0] * 7 and scale[3:].tolist() == [1.0] * 7
    np.testing.assert_allclose(a["calendar:hour_sin"].iloc[0], np.sin(2 * np.pi * 3 / 24))
    assert set(a["static:size"]) == {-1.0} and set(a["static:region=1"]) == {1.0}
    assert set(a["static:region=2"]) == {0.0}
    rebuilt = Scaler.from_json(scaler.to_json()).feature_spec
    assert rebuilt.static_stats == {"size": [150.0, 50.0]} and rebuilt.lead == 3
    assert rebuilt.categories == {"region": [1.0, 2.0]}


# ----------------------------------------------------------------------------- learned


def test_a_future_covariate_with_a_known_effect_is_learned(promo_model):
    # promo_model (tests/seriesflow/conftest.py): value = level + 2 x promo + noise
    _, _, with_it = promo_model
    _, _, without = fit_promo(future=False)
    assert with_it < 2 * PROMO_NOISE, with_it  # close to the noise floor
    assert without > 5 * PROMO_NOISE, without  # the covariate's effect (sd 2) is unexplained
