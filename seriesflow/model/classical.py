"""The classical candidates, from a maintained library: statsforecast's AutoETS and AutoTheta,
and the naive and seasonal-naive forecasts (pure, no Prefect).

They are baselines in the evaluation and candidates of the per-series router
(``seriesflow/evaluation/router.py``): a series is served by the LSTM only where the LSTM
beat the best of them on its validation windows.

``classical_paths`` fits a model on a series' first ``n_fit`` points once and then rolls it
over later origins *without refitting* (statsforecast's ``forward``: the fitted parameters
applied to the series up to each origin), so every origin gets the forecast a user of that
model would have had then. ``classical_forecast`` fits on everything given and forecasts the
future (what the served model does for the series routed to a classical model).

A model that cannot be fit (statsforecast refuses "tiny datasets", or the fit fails) falls
back: AutoETS and AutoTheta to the seasonal-naive forecast when a whole season is known,
else to the naive one. The fallback is said in the returned form.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from seriesflow.data.schema import ETS, NAIVE, SEASONAL_NAIVE, THETA
from seriesflow.evaluation.metrics import naive_forecast, seasonal_naive_forecast

# The classical candidates, in the order a tie is broken (simplest wins a tie is NOT the
# rule: the order is by how often each wins on the benchmarks, so ties are rare anyway).
CLASSICAL = (ETS, THETA, SEASONAL_NAIVE, NAIVE)
FITTED = (ETS, THETA)  # the ones with parameters (statsforecast models)
# Longer series are fit on their latest points only: the form and parameters of exponential
# smoothing and Theta are about recent behaviour, and fitting time grows with length.
MAX_FIT_POINTS = 1000
# statsforecast's seasonal forms need a few seasons; above this season length (hourly data
# with a weekly season, say) the seasonal forms are not tried (their fits take minutes).
MAX_SEASON = 168


def _model(name: str, season: int):
    from statsforecast.models import AutoETS, AutoTheta  # lazily: numba and ~4 s of import

    season = season if 1 < season <= MAX_SEASON else 1
    if name == ETS:
        return AutoETS(season_length=season)
    if name == THETA:
        return AutoTheta(season_length=season)
    raise ValueError(f"unknown classical model {name!r}; one of {FITTED}")


def _simple(name: str, values: np.ndarray, origins: np.ndarray, steps: int, season: int):
    if name == SEASONAL_NAIVE and season > 1:
        return seasonal_naive_forecast(values, origins, steps, season)
    return naive_forecast(values, origins, steps)


def _fallback(n: int, season: int) -> str:
    return SEASONAL_NAIVE if season > 1 and n >= season else NAIVE


def _fit(name: str, train: np.ndarray, season: int):
    """A fitted statsforecast model, or None when it cannot be fit on ``train``."""
    if len(train) < 2 or not np.isfinite(train).all():
        return None
    model = _model(name, season)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter: a bad fit still forecasts
            model.fit(np.asarray(train, dtype=float))
    except (NotImplementedError, ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        return None
    return model


def _forward(model, values: np.ndarray, steps: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.forward(y=np.asarray(values, dtype=float), h=steps)["mean"])


def classical_paths(
    name: str, values: np.ndarray, n_fit: int, origins: np.ndarray, steps: int, season: int
) -> tuple[np.ndarray, str]:
    """Forecasts [windows, steps] of model ``name`` after each origin, and the form used.

    ``values`` [points] is the whole series in original units; AutoETS and AutoTheta are
    fit once on ``values[:n_fit]`` (its latest ``MAX_FIT_POINTS``) and rolled forward to
    each origin without refitting. Naive and seasonal naive need no fit.
    """
    values = np.asarray(values, dtype=float)
    origins = np.asarray(origins, dtype=np.int64)
    if name not in FITTED:
        return _simple(name, values, origins, steps, season), name
    start = max(0, n_fit - MAX_FIT_POINTS)
    model = _fit(name, values[start:n_fit], season)
    if model is None:
        used = _fallback(n_fit, season)
        return _simple(used, values, origins, steps, season), f"{used} (no {name} fit)"
    out = np.empty((len(origins), steps))
    for k, origin in enumerate(origins):
        out[k] = _forward(model, values[start : origin + 1], steps)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():  # a diverging state: the last value is a forecast, NaN is not
        out[bad] = naive_forecast(values, origins[bad], steps)
    return out, name


def classical_forecast(name: str, values: np.ndarray, steps: int, season: int) -> np.ndarray:
    """The next ``steps`` values [steps] of model ``name`` fit on all of ``values``."""
    values = np.asarray(values, dtype=float)
    last = np.array([len(values) - 1])
    if name not in FITTED:
        return _simple(name, values, last, steps, season)[0]
    model = _fit(name, values[-MAX_FIT_POINTS:], season)
    if model is None:
        return _simple(_fallback(len(values), season), values, last, steps, season)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = np.asarray(model.predict(h=steps)["mean"], dtype=float)
    return path if np.isfinite(path).all() else naive_forecast(values, last, steps)[0]


def seasonal_strength_test(values: np.ndarray, season: int) -> bool:
    """The classical 90% autocorrelation test for seasonality (as Theta and Naive2 use).

    Seasonal when |r_m| > 1.645 * sqrt((1 + 2 * sum_{k<m} r_k^2) / n), with r_k the
    autocorrelation at lag k of ``values``; never with fewer than three seasons.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if season <= 1 or n < 3 * season:
        return False
    centered = values - values.mean()
    denominator = float(np.dot(centered, centered))
    if denominator <= 0 or not math.isfinite(denominator):
        return False
    acf = np.array(
        [float(np.dot(centered[k:], centered[:-k])) / denominator for k in range(1, season + 1)]
    )
    limit = 1.645 * math.sqrt((1 + 2 * float(np.sum(acf[:-1] ** 2))) / n)
    return bool(abs(acf[-1]) > limit)
