"""AutoTheta rolled over many origins at once: what statsforecast's ``AutoTheta.forward``
gives at each origin, without its per-call cost (pure, numpy only).

``forward`` on a series prefix does three things, each of which costs O(prefix) in Python
and C++ per call (2-4 ms on a few thousand points, measured):

1. the 90% seasonality test on the autocorrelation at lag ``m`` (statsmodels ``acf``, which
   correlates at *every* lag);
2. when seasonal, a classical decomposition (``seasonal_decompose``: a centred moving
   average, per-phase means of the detrended values, normalised), multiplicative when the
   data are positive and no index is below 0.01, else additive;
3. the Theta state recursion over the whole deseasonalised prefix (``pegels_resid``) and a
   forecast from its last state, reseasonalised.

Evaluation asks for 2 x 64 origins per series. Here the trend is computed once for the
whole series (a prefix's centred average is the series' own, its last half-season
missing), the test correlates at the ``m`` lags it reads only, and the recursion's last
state is a closed form: the level is an exponentially weighted sum, the mean a mean, and
the dynamic models' slope a cumulative sum (``(i+2)(i+1)i * B_i`` grows by
``6 i (y_i - mean_{i-1})`` at each step). The forecast recursion then runs for all origins
together, one numpy step per horizon step. ``tests/seriesflow/model/test_theta.py``
checks the result against ``forward`` per origin (every model type, multiplicative,
additive and no decomposition, short prefixes).
"""

from __future__ import annotations

import numpy as np

# statsforecast's test: |r_m| / sqrt((1 + 2 sum_{k<m} r_k^2) / n) > norm.ppf(0.95)
_Z95 = 1.6448536269514722
_DYNAMIC = ("DSTM", "DOTM")
MIN_POINTS = 4  # statsforecast refuses 3 points or fewer ("tiny datasets")


def _seasonal(values: np.ndarray, m: int) -> bool:
    """statsforecast's seasonality test on ``values`` (a prefix), lags 1..m only."""
    n = len(values)
    centred = values - values.mean()
    denominator = float(np.dot(centred, centred))
    if denominator == 0.0:
        return False
    r = np.array([np.dot(centred[: n - k], centred[k:]) for k in range(1, m + 1)]) / denominator
    stat = np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / n)
    return bool(np.abs(r[-1]) / stat > _Z95)


def _centred_average(values: np.ndarray, m: int) -> np.ndarray:
    """statsmodels' two-sided moving average of period ``m`` [points], NaN where the
    window does not fit (``m // 2`` at each end)."""
    if m % 2 == 0:
        weights = np.r_[0.5, np.ones(m - 1), 0.5] / m
    else:
        weights = np.full(m, 1.0 / m)
    trend = np.full(len(values), np.nan)
    half = m // 2
    if len(values) >= len(weights):
        trend[half : len(values) - half] = np.convolve(values, weights, mode="valid")
    return trend


def _indexes(values: np.ndarray, trend: np.ndarray, m: int, multiplicative: bool) -> np.ndarray:
    """The ``m`` seasonal indexes of a prefix (per-phase means of the detrended values,
    normalised), phase 0 at the prefix's first point."""
    half = m // 2
    n = len(values)
    inner = slice(half, n - half)
    detrended = values[inner] / trend[inner] if multiplicative else values[inner] - trend[inner]
    phase = np.arange(half, n - half) % m
    means = np.bincount(phase, weights=detrended, minlength=m) / np.bincount(phase, minlength=m)
    return means / means.mean() if multiplicative else means - means.mean()


def _last_state(y: np.ndarray, model: str, level0: float, alpha: float, powers: np.ndarray):
    """The Theta recursion's last state (level, mean, A, B) over ``y``, in closed form;
    ``powers``: (1 - alpha) ** k for k = 0, 1, ... (at least ``len(y) + 1`` of them)."""
    n = len(y)
    level = alpha * float(np.dot(powers[:n][::-1], y)) + powers[n] * level0
    mean = float(y.mean())
    if model in _DYNAMIC:
        if n == 1:
            return level, mean, float(y[0]), 0.0
        before = np.cumsum(y)[:-1]  # S_{k-1} = k * mean_{k-1}, k = 1..n-1
        k = np.arange(1, n, dtype=float)
        growth = 6.0 * (float(np.dot(k, y[1:])) - float(before.sum()))
        slope = growth / ((n + 1.0) * n * (n - 1.0))
        return level, mean, mean - slope * (n + 1) / 2, slope
    weighted = float(np.dot(y, np.arange(1, n + 1, dtype=float))) / n
    slope = 6 * (2 * weighted - (n + 1) * mean) / (n * n - 1)
    return level, mean, mean - (n + 1) * slope / 2, slope


def theta_paths(state: dict, values: np.ndarray, origins: np.ndarray, steps: int) -> np.ndarray:
    """AutoTheta's forecasts [windows, steps] after each origin of ``values``.

    ``state``: the fitted model's ``m``, ``modeltype`` and ``par`` (``initial_smoothed``,
    ``alpha``, ``theta``), as kept in ``ClassicalFit.state``; ``values`` starts at the
    fit's first point; row k is ``forward(values[: origins[k] + 1], steps)`` of a model
    with those parameters. Rows of prefixes too short to forecast are NaN.
    """
    values = np.asarray(values, dtype=float)
    origins = np.asarray(origins, dtype=np.int64)
    m, model = int(state["m"]), str(state["modeltype"])
    par = state["par"]
    level0, alpha, theta = (
        np.nan if par.get(k) is None else float(par[k])  # JSON keeps NaN as null
        for k in ("initial_smoothed", "alpha", "theta")
    )
    out = np.full((len(origins), steps), np.nan)
    if not len(origins):
        return out
    trend = _centred_average(values[: origins.max() + 1], m) if m >= 4 else None
    running_min = np.minimum.accumulate(values[: origins.max() + 1])
    powers = (1 - alpha) ** np.arange(origins.max() + 2, dtype=float)
    last = np.zeros((len(origins), 4))  # level, mean, A, B per origin
    season = np.ones((len(origins), steps))  # the indexes the forecast is reseasonalised by
    additive = np.zeros(len(origins), dtype=bool)
    usable = np.zeros(len(origins), dtype=bool)
    for row, origin in enumerate(origins):
        n = int(origin) + 1
        if n < MIN_POINTS:
            continue
        x = values[:n]
        y = x
        if trend is not None and n >= 2 * m and _seasonal(x, m):
            prefix_trend = trend[:n].copy()
            prefix_trend[n - m // 2 :] = np.nan  # the prefix's own average stops here
            multiplicative = bool(running_min[origin] > 0)
            indexes = _indexes(x, prefix_trend, m, multiplicative) if multiplicative else None
            if indexes is None or (indexes < 0.01).any():
                multiplicative = False
                indexes = _indexes(x, prefix_trend, m, False)
            phase = np.arange(n) % m
            y = x / indexes[phase] if multiplicative else x - indexes[phase]
            season[row] = indexes[(n + np.arange(steps)) % m]
            additive[row] = not multiplicative
        last[row] = _last_state(y, model, level0, alpha, powers)
        usable[row] = True
    # the forecast recursion (statsforecast's update_step with its own output as input),
    # for every origin at once: time index i = n + j at step j
    level, mean, a, b = (last[:, c].copy() for c in range(4))
    time = origins.astype(float) + 1.0
    blend = 1 - 1 / theta
    path = np.empty((len(origins), steps))
    for j in range(steps):
        mu = level + blend * (a * (1 - alpha) ** time + b * (1 - (1 - alpha) ** (time + 1)) / alpha)
        path[:, j] = mu
        level = alpha * mu + (1 - alpha) * level
        previous_mean = mean
        mean = (time * mean + mu) / (time + 1)
        if model in _DYNAMIC:
            b = ((time - 1) * b + 6 * (mu - previous_mean) / (time + 1)) / (time + 2)
            a = mean - b * (time + 2) / 2
        time = time + 1
    path = np.where(additive[:, None], path + season, path * season)
    out[usable] = path[usable]
    return out
