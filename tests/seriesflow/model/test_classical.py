"""The classical candidates: statsforecast fits on the training part, rolled without refitting."""

from __future__ import annotations

import numpy as np
import pytest
from statsforecast.models import AutoETS, AutoTheta

from seriesflow.data.schema import ETS, NAIVE, SEASONAL_NAIVE, THETA
from seriesflow.model.classical import (
    classical_forecast,
    classical_paths,
    seasonal_strength_test,
)


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
