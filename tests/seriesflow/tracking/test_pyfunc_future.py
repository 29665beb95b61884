"""The pyfunc forecaster with future covariates: their values travel in its input frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.data.schema import SERIES_ID, TIMESTAMP, VALUE
from seriesflow.model.forecasting import ForecastSettings, forecast_frame
from seriesflow.model.intervals import Intervals
from seriesflow.tracking.pyfunc import (
    INTERVALS,
    KERAS,
    SCALER,
    SETTINGS,
    SPEC,
    SeriesForecaster,
    forecaster_signature,
    input_columns,
    signature_example,
    with_future_rows,
)
from seriesflow.workspace.files import write_json
from tests.factories import promo_frame


@pytest.fixture(scope="module")
def saved(promo_model, tmp_path_factory):
    """The promo model saved as the pyfunc (MLflow's own save/load, no registry), with the
    signature the register stage builds: history and future rows."""
    import mlflow

    fitted, scaler, _ = promo_model
    folder = tmp_path_factory.mktemp("pyfunc")
    fitted.model.save(folder / "model.keras")
    intervals = Intervals([80], 2, {}, {"80": [1.0, 1.0]}, {"a": 1.0, "b": 1.0})
    settings = ForecastSettings(steps=2, levels=[80])
    files = {
        KERAS: folder / "model.keras",
        SPEC: write_json(fitted.spec.to_json(), folder / "model_spec.json"),
        SCALER: write_json(scaler.to_json(), folder / "scaler.json"),
        INTERVALS: write_json(intervals.to_json(), folder / "intervals.json"),
        SETTINGS: write_json(settings.to_json(), folder / "forecast.json"),
    }
    history = promo_frame()
    first = history[history[SERIES_ID] == "a"]
    columns = input_columns(scaler)
    ahead = with_future_rows(first[[SERIES_ID, TIMESTAMP, *columns]], scaler, 2)
    example = signature_example(ahead, columns, fitted.spec.timesteps + 4)
    signature = forecaster_signature(columns, intervals.levels)
    path = folder / "forecaster"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=SeriesForecaster(),
        artifacts={key: str(value) for key, value in files.items()},
        signature=signature,
        input_example=example,
        model_config={"model_version": "3"},
    )
    return mlflow.pyfunc.load_model(str(path)), fitted, scaler, intervals, settings


def with_promos(promos: dict[str, list[float]]) -> pd.DataFrame:
    """The last 12 hours of each series and two future rows with these promo values."""
    history = promo_frame()
    parts = []
    for sid, values in promos.items():
        part = history[history[SERIES_ID] == sid].tail(12)
        last = part[TIMESTAMP].iloc[-1]
        future = pd.DataFrame(
            {
                SERIES_ID: sid,
                TIMESTAMP: pd.date_range(last, periods=3, freq="h")[1:],
                VALUE: np.nan,
                "promo": values,
            }
        )
        parts += [part, future]
    frame = pd.concat(parts, ignore_index=True)
    return frame


def test_the_pyfunc_forecasts_with_future_covariate_values_in_its_input(saved):
    loaded, fitted, scaler, intervals, settings = saved
    assert "promo" in loaded.metadata.get_input_schema().input_names()  # the signature says so
    frame = with_promos({"a": [1.5, -1.5], "b": [-1.5, 1.5]})
    out = loaded.predict(frame)
    a = out[out[SERIES_ID] == "a"]["forecast"].to_numpy()
    b = out[out[SERIES_ID] == "b"]["forecast"].to_numpy()
    # value = level + 2 x promo: the promo swing of 3 moves the forecast by about 6
    assert a[0] - a[1] == pytest.approx(6.0, abs=1.2)
    assert b[1] - b[0] == pytest.approx(6.0, abs=1.2)
    assert a.mean() == pytest.approx(20.0, abs=0.6) and b.mean() == pytest.approx(25.0, abs=0.6)
    assert set(out["model_version"]) == {"3"}
    # the same forecasts as the library's, from the same frame
    direct, _ = forecast_frame(
        fitted.model, fitted.spec, scaler, intervals, with_promos({"a": [1.5, -1.5]}), settings
    )
    np.testing.assert_allclose(a, direct["forecast"].to_numpy(), rtol=1e-5)


def test_the_pyfunc_refuses_a_forecast_without_its_future_values(saved):
    from mlflow.exceptions import MlflowException

    loaded = saved[0]
    frame = with_promos({"a": [1.0, np.nan]})
    with pytest.raises(MlflowException, match=r"series 'a'.*'promo' at 2026-01-11T01:00:00\+00:00"):
        loaded.predict(frame)
