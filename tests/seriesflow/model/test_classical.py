"""The classical candidates: statsforecast fits on the training part, rolled without refitting."""

from __future__ import annotations

import numpy as np
import pytest
from statsforecast.models import AutoETS, AutoTheta

from seriesflow.data.schema import ETS, NAIVE, SEASONAL_NAIVE, THETA
from seriesflow.model.classical import (
    MAX_FIT_POINTS,
    MIN_FIT_POINTS,
    ClassicalFit,
    classical_forecast,
    classical_paths,
    fit_classical,
    fit_points,
    forecast_from_fit,
    paths_of,
    seasonal_strength_test,
)
from seriesflow.workspace.files import read_json, write_json


def seasonal(n: int = 120, season: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 0.3 * t + 8 * np.sin(2 * np.pi * t / season) + rng.normal(0, 0.5, n)


@pytest.mark.parametrize(("name", "model"), [(ETS, AutoETS), (THETA, AutoTheta)])
def test_paths_are_the_training_fit_rolled_forward_not_refit(name, model):
    values, n_fit = seasonal(), 84
    origins = np.array([83, 95, 107])
    paths, form = classical_paths(name, values, n_fit, origins, 6, 12)
    assert form == name and paths.shape == (3, 6)
    fitted = model(season_length=12).fit(values[:n_fit])
    for row, origin in zip(paths, origins, strict=True):  # by hand: forward from each origin
        expected = fitted.forward(y=values[: origin + 1], h=6)["mean"]
        np.testing.assert_allclose(row, expected, rtol=1e-9)
    # what follows an origin never changes its forecast (no look-ahead)
    later = values.copy()
    later[96:] += 1000
    again, _ = classical_paths(name, later, n_fit, origins[:2], 6, 12)
    np.testing.assert_allclose(again, paths[:2], rtol=1e-9)


def test_long_series_are_fit_on_their_latest_seasons_only():
    assert fit_points(24) == 240  # ten hourly days
    assert fit_points(4) == MIN_FIT_POINTS  # quarterly: never fewer than 200 points
    assert fit_points(168) == MAX_FIT_POINTS  # a weekly season of hours: capped
    assert fit_points(24, seasons=3) == MIN_FIT_POINTS
    values = seasonal(n=600, season=24)
    fit = fit_classical(ETS, values, 500, 24)
    assert fit.start == 500 - 240 and fit.state is not None
    by_hand = AutoETS(season_length=24).fit(values[260:500])
    np.testing.assert_allclose(
        paths_of(fit, values, np.array([520]), 5)[0],
        by_hand.forward(y=values[260:521], h=5)["mean"],
        rtol=1e-9,
    )


@pytest.mark.parametrize("name", [ETS, THETA])
def test_a_kept_fit_forecasts_from_json_as_the_fitted_model_does(name, tmp_path):
    """The fitted parameters survive JSON (router.json): the forecast from the file is the
    evaluation's forecast from the same origin, with no refit."""
    values = seasonal(n=300, season=12)
    fit = fit_classical(name, values, 240, 12)
    path = write_json(fit.to_json(), tmp_path / "fit.json")
    kept = ClassicalFit.from_json(read_json(path))
    assert kept.state is not None and kept.state["m"] == 12
    rolled = paths_of(fit, values, np.array([299]), 8)[0]
    np.testing.assert_allclose(forecast_from_fit(kept, values[kept.start :], 8), rolled, rtol=1e-9)
    # the same parameters on a longer history: a different (later) forecast, still no refit
    longer = np.concatenate([values, seasonal(n=324, season=12)[300:]])
    later = forecast_from_fit(kept, longer[kept.start :], 8)
    np.testing.assert_allclose(later, paths_of(fit, longer, np.array([323]), 8)[0], rtol=1e-9)
    assert not np.allclose(later, rolled)


def test_a_fit_that_failed_keeps_its_fallback():
    fit = fit_classical(ETS, np.array([5.0, 6.0, 7.0, 6.5]), 1, 12)
    assert fit.state is None and fit.form == "naive (no ets fit)"
    again = ClassicalFit.from_json(fit.to_json())
    np.testing.assert_allclose(forecast_from_fit(again, np.array([1.0, 2.0, 3.0]), 2), [3.0, 3.0])


def test_a_seasonal_fit_beats_the_naive_forecast_on_a_seasonal_series():
    values = seasonal()
    truth = values[96:108]
    ets = classical_forecast(ETS, values[:96], 12, 12)
    naive = classical_forecast(NAIVE, values[:96], 12, 12)
    assert np.abs(ets - truth).mean() < 0.5 * np.abs(naive - truth).mean()
    np.testing.assert_allclose(naive, np.repeat(values[95], 12))
    np.testing.assert_allclose(
        classical_forecast(SEASONAL_NAIVE, values[:96], 12, 12), values[84:96]
    )


def test_a_series_too_short_to_fit_falls_back_and_says_so():
    values = np.array([5.0, 6.0, 7.0, 6.5, 8.0])
    paths, form = classical_paths(ETS, values, 3, np.array([3]), 2, 12)
    assert form == "naive (no ets fit)"
    np.testing.assert_allclose(paths, [[6.5, 6.5]])
    assert np.isfinite(classical_forecast(ETS, values[:3], 4, 12)).all()


def test_the_seasonality_test_needs_three_seasons_and_a_real_season():
    assert seasonal_strength_test(seasonal(), 12)
    flat = np.random.default_rng(1).normal(10, 1, 120)
    assert not seasonal_strength_test(flat, 12)
    assert not seasonal_strength_test(seasonal(30), 12)  # 2.5 seasons: not tested
    assert not seasonal_strength_test(seasonal(), 1)
