"""AutoTheta rolled over many origins at once equals statsforecast's ``forward`` per origin."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from statsforecast.models import AutoTheta

from seriesflow.model.classical import ClassicalFit, fit_classical, forecast_from_fit, paths_of
from seriesflow.model.theta import theta_paths


def _series(kind: str, n: int, season: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    wave = np.sin(2 * np.pi * t / max(season, 2))
    if kind == "positive":  # multiplicative decomposition
        return 100 + 20 * wave + rng.standard_normal(n) + 0.05 * t
    if kind == "crossing_zero":  # additive: the data are not all positive
        return 20 * wave + rng.standard_normal(n)
    if kind == "index_below_1pct":  # positive, but one phase's index < 0.01: additive
        return np.where(t % season == 0, 0.001, 100.0) + rng.uniform(0, 1e-4, n)
    if kind == "flat_start":  # a constant prefix (no variance to test), then a season
        return np.where(t < 60, 100.0, 100 + 20 * wave + rng.standard_normal(n))
    if kind == "noise":  # fails the seasonality test
        return 50 + rng.standard_normal(n)
    return 100 + np.cumsum(rng.standard_normal(n))  # a random walk


def _reference(model: AutoTheta, values: np.ndarray, origin: int, steps: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return model.forward(y=values[: origin + 1], h=steps)["mean"]
        except NotImplementedError:  # "tiny datasets"
            return np.full(steps, np.nan)


@pytest.mark.parametrize("modeltype", ["STM", "OTM", "DSTM", "DOTM"])
@pytest.mark.parametrize(
    "kind",
    ["positive", "crossing_zero", "index_below_1pct", "flat_start", "noise", "random_walk"],
)
@pytest.mark.parametrize("season", [1, 4, 12])
def test_every_origin_equals_forward_on_that_prefix(modeltype, kind, season):
    values = _series(kind, 160, season)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoTheta(season_length=season, model=modeltype).fit(values[:100])
    fitted = model.model_
    state = {"m": fitted["m"], "modeltype": fitted["modeltype"], "par": dict(fitted["par"])}
    # tiny prefixes, both sides of two whole seasons, inside and past the fit
    origins = np.unique(np.array([0, 2, 3, 6, 2 * season - 2, 2 * season - 1, 40, 99, 130, 159]))
    rolled = theta_paths(state, values, origins, 20)
    expected = np.array([_reference(model, values, int(o), 20) for o in origins])
    np.testing.assert_array_equal(np.isnan(rolled), np.isnan(expected))
    np.testing.assert_allclose(rolled, expected, rtol=1e-8, equal_nan=True)
    assert np.isfinite(rolled[origins >= 3]).all()


def test_a_long_hourly_series_matches_and_the_decomposition_is_used():
    t = np.arange(3000)
    values = 100 + 10 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(0).standard_normal(3000)
    fit = fit_classical("theta", values, 2000, 24)
    assert fit.state is not None and fit.start == 2000 - 240
    origins = np.linspace(2100, 2999, 16).astype(int)
    rolled = paths_of(fit, values, origins, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoTheta(season_length=24)
        model.model_ = {**fit.state, "par": dict(fit.state["par"]), "fit": None}
        expected = np.array(
            [model.forward(y=values[fit.start : o + 1], h=48)["mean"] for o in origins]
        )
    np.testing.assert_allclose(rolled, expected, rtol=1e-8)
    # the daily shape is in the forecast: a deseasonalised Theta line would be near flat
    assert np.ptp(rolled[0, :24]) > 10
    # the kept fit forecasts the same from JSON, one origin
    kept = ClassicalFit.from_json(fit.to_json())
    np.testing.assert_allclose(
        forecast_from_fit(kept, values[fit.start : origins[-1] + 1], 48), expected[-1], rtol=1e-8
    )
