"""The pyfunc's input handling, params and signature (no model needed)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from seriesflow.data.schema import SERIES_ID, TIMESTAMP, VALUE
from seriesflow.model.forecasting import FORECAST_COLUMNS
from seriesflow.tracking.pyfunc import forecast_params, forecaster_signature, history_frame


def test_aware_naive_and_string_timestamps_read_as_the_same_utc_times():
    aware = pd.DataFrame(
        {
            SERIES_ID: ["a", "a"],
            TIMESTAMP: pd.to_datetime(["2026-03-01 00:00", "2026-03-01 01:00"]).tz_localize(
                "Europe/Berlin"
            ),
            VALUE: [1.0, 2.0],
        }
    )
    expected = pd.to_datetime(["2026-02-28 23:00", "2026-03-01 00:00"]).tz_localize("UTC")
    naive_utc = aware.assign(**{TIMESTAMP: aware[TIMESTAMP].dt.tz_convert(None)})
    strings = aware.assign(**{TIMESTAMP: [t.isoformat() for t in aware[TIMESTAMP]]})
    for frame in (aware, naive_utc, strings):
        got = history_frame(frame, [VALUE])[TIMESTAMP]
        assert got.tolist() == expected.tolist() and str(got.dt.tz) == "UTC"
    with pytest.raises(MlflowException, match="timestamp: not a date/time"):
        history_frame(strings.assign(**{TIMESTAMP: ["soon", "later"]}), [VALUE])


def test_params_steps_and_levels_are_checked():
    assert forecast_params(None, [80, 95]) == (None, [])
    assert forecast_params({"steps": 5, "levels": [95]}, [80, 95]) == (5, [95])
    assert forecast_params({"steps": 0, "levels": [95, 80, 95]}, [80, 95]) == (None, [80, 95])
    for params, message in (
        ({"levels": [90]}, r"level\(s\) \[90\] not calibrated; this model has intervals at"),
        ({"steps": -1}, "steps must be 0"),
        ({"steps": "many"}, "steps must be an integer"),
    ):
        with pytest.raises(MlflowException, match=message) as caught:
            forecast_params(params, [80, 95])
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_the_signature_declares_params_and_types_without_mlflow_hints():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        signature = forecaster_signature([VALUE, "temp"], [80, 95])
    assert [str(w.message) for w in caught] == []
    inputs = {c["name"]: c["type"] for c in signature.inputs.to_dict()}
    assert inputs == {SERIES_ID: "string", TIMESTAMP: "any", VALUE: "double", "temp": "double"}
    outputs = {c["name"]: c["type"] for c in signature.outputs.to_dict()}
    assert list(outputs) == FORECAST_COLUMNS
    assert outputs["step"] == outputs["level"] == "long"
    params = {p["name"]: p for p in signature.params.to_dict()}
    assert params["steps"]["type"] == "long" and params["steps"]["default"] == 0
    assert params["levels"]["default"] == [80, 95] and tuple(params["levels"]["shape"]) == (-1,)
