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

Evaluation asks for 2 x 64 origins per series. Here every origin is done at once, in
O(points x m) for the whole series instead of per prefix: the trend is computed once (a
prefix's centred average is the series' own, its last half-season missing); the test's
autocorrelations at the ``m`` lags it reads are cumulative sums of lagged products; the
per-phase means of the detrended values are per-phase cumulative sums; and the recursion's
last state is a closed form in sums of the deseasonalised prefix (the level an exponentially
weighted sum, the mean a mean, the slope a weighted sum), each a per-phase sum of the raw
values weighed by that prefix's indexes. The forecast recursion then runs for all origins
together, one numpy step per horizon step (4 ms for 64 origins of a 10,000-point hourly
series, against 15 ms for a pass over each prefix). ``tests/seriesflow/model/test_theta.py``
checks the result against ``forward`` per origin (every model type, multiplicative,
additive and no decomposition, short prefixes).
"""

from __future__ import annotations

import numpy as np

# statsforecast's test: |r_m| / sqrt((1 + 2 sum_{k<m} r_k^2) / n) > norm.ppf(0.95)
_Z95 = 1.6448536269514722
_DYNAMIC = ("DSTM", "DOTM")
MIN_POINTS = 4  # statsforecast refuses 3 points or fewer ("tiny datasets")


def _lagged_sums(z: np.ndarray, m: int) -> np.ndarray:
    """[m, len(z) + 1]: row k-1, column j holds sum_{i < j} z_i z_{i+k} (zero past the end)."""
    out = np.zeros((m, len(z) + 1))
    for k in range(1, m + 1):
        if k < len(z):
            np.cumsum(z[:-k] * z[k:], out=out[k - 1, 1 : len(z) - k + 1])
            out[k - 1, len(z) - k + 1 :] = out[k - 1, len(z) - k]
    return out


def _seasonal(values: np.ndarray, n: np.ndarray, m: int) -> np.ndarray:
    """statsforecast's seasonality test on each prefix ``values[:n]`` [origins], lags 1..m
    only, from prefix sums (values centred on their overall mean first: the test centres
    each prefix on its own, so a constant shift changes nothing but the rounding)."""
    z = values - values.mean()
    p1 = np.concatenate([[0.0], np.cumsum(z)])
    p2 = np.concatenate([[0.0], np.cumsum(z * z)])
    lagged = _lagged_sums(z, m)
    mu = p1[n] / n
    denominator = p2[n] - n * mu * mu  # sum of the prefix's squared deviations
    k = np.arange(1, m + 1)[:, None]  # [m, 1]
    head = n[None, :] - k  # [m, origins]: the lag-k products run over i < n - k
    covariance = (
        lagged[k - 1, head] - mu * (p1[head] + p1[n][None, :] - p1[k]) + head * mu * mu
    )  # [m, origins]
    flat = denominator <= 1e-12 * np.maximum(p2[n], 1e-300)  # a constant prefix
    r = covariance / np.where(flat, 1.0, denominator)
    stat = np.sqrt((1 + 2 * np.sum(r[:-1] ** 2, axis=0)) / n)
    return ~flat & (np.abs(r[-1]) / stat > _Z95)


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


class _PhaseSums:
    """``at(j)`` [len(j), m]: per phase p, the sum of ``d_i`` over i < j with i % m == p,
    from one cumulative sum over whole seasons (O(points) to build, O(m) per lookup)."""

    def __init__(self, d: np.ndarray, m: int) -> None:
        self.m = m
        rows = -(-len(d) // m)
        table = np.zeros((rows + 1, m))
        padded = np.zeros(rows * m)
        padded[: len(d)] = d
        table[1:] = np.cumsum(padded.reshape(rows, m), axis=0)
        self.table, self.padded = table, padded

    def at(self, j: np.ndarray) -> np.ndarray:
        whole, part = np.divmod(j, self.m)  # whole seasons below j, then part of the next
        phases = np.arange(self.m)[None, :]
        partial = phases < part[:, None]
        at = np.minimum(whole[:, None] * self.m + phases, len(self.padded) - 1)
        return self.table[whole] + np.where(partial, self.padded[at], 0.0)


def _exponential_sums(
    x: np.ndarray, n: np.ndarray, m: int, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per phase [origins, m]: sum over i < n of beta^(n-1-i) x_i, and of beta^(n-1-i),
    carried from one origin to the next (origins in increasing order): O(points) in all."""
    order = np.argsort(n, kind="stable")
    sums, weights = np.zeros((len(n), m)), np.zeros((len(n), m))
    carried, carried_w, at = np.zeros(m), np.zeros(m), 0
    for row in order:
        end = int(n[row])
        gap = end - at
        decay = beta**gap if gap else 1.0
        w = beta ** np.arange(gap - 1, -1, -1, dtype=float)  # i = at .. end-1
        phase = np.arange(at, end) % m
        carried = decay * carried + np.bincount(phase, weights=w * x[at:end], minlength=m)
        carried_w = decay * carried_w + np.bincount(phase, weights=w, minlength=m)
        sums[row], weights[row], at = carried, carried_w, end
    return sums, weights


def theta_paths(state: dict, values: np.ndarray, origins: np.ndarray, steps: int) -> np.ndarray:
    """AutoTheta's forecasts [windows, steps] after each origin of ``values``.

    ``state``: the fitted model's ``m``, ``modeltype`` and ``par`` (``initial_smoothed``,
    ``alpha``, ``theta``), as kept in ``ClassicalFit.state``; ``values`` starts at the
    fit's first point; row k is ``forward(values[: origins[k] + 1], steps)`` of a model
    with those parameters. Rows of prefixes too short to forecast are NaN.

    Every origin at once: each prefix's seasonality test, seasonal indexes and Theta state
    are sums over the prefix, read from cumulative sums (per phase of the season where the
    indexes weigh them) built once over the series -- not a pass over each prefix.
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
    usable = origins + 1 >= MIN_POINTS
    if not usable.any():
        return out
    x = values[: origins.max() + 1]
    n = origins + 1
    width = max(m, 1)
    # each origin's indexes [origins, width]: 1 (multiplicative) or 0 (additive) for none
    index = np.ones((len(origins), width))
    additive = np.zeros(len(origins), dtype=bool)
    seasonal = np.zeros(len(origins), dtype=bool)
    if m >= 4:
        tested = usable & (n >= 2 * m)
        seasonal[tested] = _seasonal(x, n[tested], m)
    if seasonal.any():
        half = m // 2
        trend = _centred_average(x, m)
        inner = np.zeros(len(x), dtype=bool)
        inner[half : len(x) - half] = True
        ratio = np.where(inner, x / np.where(inner, trend, 1.0), 0.0)
        difference = np.where(inner, x - np.where(inner, trend, 0.0), 0.0)
        counted = _PhaseSums(inner.astype(float), m)
        lo, hi = np.full(seasonal.sum(), half), n[seasonal] - half  # the prefix's inner rows
        count = counted.at(hi) - counted.at(lo)
        ratios, differences = _PhaseSums(ratio, m), _PhaseSums(difference, m)
        means = (ratios.at(hi) - ratios.at(lo)) / count
        multiplicative = np.minimum.accumulate(x)[origins[seasonal]] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            times = means / means.mean(axis=1, keepdims=True)
        multiplicative &= ~(times < 0.01).any(axis=1)
        plus = (differences.at(hi) - differences.at(lo)) / count
        plus = plus - plus.mean(axis=1, keepdims=True)
        index[seasonal] = np.where(multiplicative[:, None], times, plus)
        additive[seasonal] = ~multiplicative
    level, mean, a, b = _last_states(x, n, index, additive, model, level0, alpha)
    # the forecast recursion (statsforecast's update_step with its own output as input),
    # for every origin at once: time index i = n + j at step j
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
    season = index[np.arange(len(origins))[:, None], (n[:, None] + np.arange(steps)) % width]
    path = np.where(additive[:, None], path + season, path * season)
    out[usable] = path[usable]
    return out


def _last_states(
    x: np.ndarray,
    n: np.ndarray,
    index: np.ndarray,
    additive: np.ndarray,
    model: str,
    level0: float,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Theta recursion's last state (level, mean, A, B) [origins] over each prefix
    ``x[:n]`` deseasonalised by its ``index`` (y_i = x_i / index[i % m], or x_i - index
    for ``additive``), in closed form: the level is an exponentially weighted sum, the mean
    a mean, and the slope (``B``) a weighted sum, each a sum of per-phase sums of x."""
    width = index.shape[1]
    ix = np.arange(len(x), dtype=float)
    gain = np.where(additive[:, None], 1.0, 1.0 / index)  # y = gain x - shift per phase
    shift = np.where(additive[:, None], index, 0.0)
    plain, weighted = _PhaseSums(x, width), _PhaseSums(ix * x, width)
    ones, steps_ = _PhaseSums(np.ones(len(x)), width), _PhaseSums(ix, width)

    def total(j: np.ndarray, sums: _PhaseSums, count: _PhaseSums) -> np.ndarray:
        """sum over i < j of y_i (``sums`` of x) or of i y_i (of i x; ``count`` of i)."""
        return (gain * sums.at(j)).sum(axis=1) - (shift * count.at(j)).sum(axis=1)

    beta = 1.0 - alpha
    exp_x, exp_1 = _exponential_sums(x, n, width, beta)
    level = alpha * ((gain * exp_x).sum(axis=1) - (shift * exp_1).sum(axis=1))
    level = level + beta**n * level0
    y_sum = total(n, plain, ones)
    mean = y_sum / n
    iy_sum = total(n, weighted, steps_)  # sum of i y_i, i from 0
    nf = n.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):  # n == 1: unusable, masked later
        if model in _DYNAMIC:
            # 6 (sum_{i>=1} i y_i - sum_{i<=n-2} (n-1-i) y_i), over (n+1) n (n-1)
            before = total(n - 1, plain, ones)
            i_before = total(n - 1, weighted, steps_)
            growth = 6.0 * (iy_sum - ((nf - 1) * before - i_before))
            slope = growth / ((nf + 1.0) * nf * (nf - 1.0))
            return level, mean, mean - slope * (nf + 1) / 2, slope
        weighted_mean = (iy_sum + y_sum) / nf  # sum (i + 1) y_i / n
        slope = 6 * (2 * weighted_mean - (nf + 1) * mean) / (nf * nf - 1)
    return level, mean, mean - (nf + 1) * slope / 2, slope
