"""The ETS baseline: fit on the training part, rolled over later origins without refitting."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

from seriesflow.model.classical import ets_forecasts, fit_ets


def trending(n: int = 160, season: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 0.8 * t + 6 * np.sin(2 * np.pi * t / season) + rng.normal(0, 1, n)


def test_one_step_forecasts_are_the_fitted_model_filtering_the_actuals():
    values, n_train = trending(), 110
    origins = np.arange(120, 159)
    forecasts, name = ets_forecasts(values, n_train, origins, horizon=1, season=12)
    fit = fit_ets(values[:n_train], 12)
    assert name == fit.name and name.endswith("A)")  # a seasonal form wins on this series
    reference = ETSModel(values[: origins.max() + 1], error="add", **fit.form).smooth(fit.params)
    inside = origins[:-1]  # the last origin is the end of the data: a forecast proper
    np.testing.assert_allclose(forecasts[:-1, 0], reference.fittedvalues[inside + 1], rtol=1e-9)
    assert forecasts[-1, 0] == pytest.approx(reference.forecast(1)[0])
    # no look-ahead: what happens after an origin changes nothing before it
    later = values.copy()
    later[140:] += 500
    again, _ = ets_forecasts(later, n_train, origins, horizon=1, season=12)
    np.testing.assert_allclose(again[origins < 139], forecasts[origins < 139])
    # and it is worth having: on a trend with a season it beats the last value
    actual = values[origins + 1]
    assert np.abs(forecasts[:, 0] - actual).mean() < 0.5 * np.abs(values[origins] - actual).mean()


def test_multi_step_forecasts_continue_from_each_origin():
    values, n_train = trending(), 110
    origins = np.array([115, 130])
    forecasts, _ = ets_forecasts(values, n_train, origins, horizon=3, season=12)
    fit = fit_ets(values[:n_train], 12)
    for row, origin in enumerate(origins):
        known = ETSModel(values[: origin + 1], error="add", **fit.form).smooth(fit.params)
        np.testing.assert_allclose(forecasts[row], known.forecast(3), rtol=1e-9)


def test_short_or_seasonless_series_use_the_forms_they_can_hold():
    values = trending(n=30, season=12)  # 20 training points: fewer than two seasons + 2
    forecasts, name = ets_forecasts(values, 20, np.array([25]), horizon=1, season=12)
    assert name.endswith("N)") and np.isfinite(forecasts).all()
    assert fit_ets(np.ones(3), 1) is None  # nothing to fit: callers fall back to naive
    nothing, name = ets_forecasts(np.ones(3), 2, np.array([1]), horizon=1, season=1)
    assert name == "none" and np.isnan(nothing).all()
