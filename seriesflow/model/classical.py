"""The classical candidates, from a maintained library: statsforecast's AutoETS and AutoTheta,
and the naive and seasonal-naive forecasts (pure, no Prefect).

They are baselines in the evaluation and candidates of the per-series router
(``seriesflow/evaluation/router.py``): a series is served by the LSTM only where the LSTM
beat the best of them on its validation windows.

``classical_paths`` fits a model on a series' first ``n_fit`` points once and then rolls it
over later origins *without refitting* (statsforecast's ``forward``: the fitted parameters
applied to the series up to each origin), so every origin gets the forecast a user of that
model would have had then. AutoETS rolls in one pass of its state recursion (``_ets_paths``),
AutoTheta through ``seriesflow/model/theta.py`` (``forward``'s result at every origin at once,
without its per-call decomposition and recursion). ``classical_forecast`` fits on everything
given and forecasts the future (what the served model does for the series routed to a
classical model).

A model that cannot be fit (statsforecast refuses "tiny datasets", or the fit fails) falls
back: AutoETS and AutoTheta to the seasonal-naive forecast when a whole season is known,
else to the naive one. The fallback is said in the returned form.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from seriesflow.data.schema import ETS, NAIVE, SEASONAL_NAIVE, THETA
from seriesflow.evaluation.metrics import naive_forecast, seasonal_naive_forecast
from seriesflow.model.theta import theta_paths

# The classical candidates, in the order a tie is broken (simplest wins a tie is NOT the
# rule: the order is by how often each wins on the benchmarks, so ties are rare anyway).
CLASSICAL = (ETS, THETA, SEASONAL_NAIVE, NAIVE)
FITTED = (ETS, THETA)  # the ones with parameters (statsforecast models)
# Longer series are fit on their latest points only: the form and parameters of exponential
# smoothing and Theta are about recent behaviour, and fitting time grows with length. The
# latest FIT_SEASONS seasons, within [MIN_FIT_POINTS, MAX_FIT_POINTS] (``fit_points``).
FIT_SEASONS = 10
MIN_FIT_POINTS = 200
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


def fit_points(season: int, seasons: int = FIT_SEASONS) -> int:
    """How many of a series' latest points its statsforecast models are fit on: ``seasons``
    seasons, at least ``MIN_FIT_POINTS`` and at most ``MAX_FIT_POINTS`` (statsforecast's own
    practice for long series: the parameters are about recent behaviour, and a fit's cost
    grows with its length)."""
    return int(min(MAX_FIT_POINTS, max(MIN_FIT_POINTS, seasons * max(int(season), 1))))


@dataclass(frozen=True)
class ClassicalFit:
    """One statsforecast model fit on one series, kept as plain numbers (JSON, no pickle).

    ``start`` is the index (in the series the fit was made on) of the first point fit:
    forecasts run the fitted parameters forward from there (``forward``), so a later caller
    gives the series from that point on (or from a later point one whole season after it).
    ``state`` is None when the model could not be fit; ``form`` then names the fallback.
    """

    name: str  # ets | theta
    form: str  # the name, or the fallback used: "seasonal_naive (no ets fit)"
    season: int  # the season length the model was asked for
    start: int
    state: dict[str, Any] | None = None
    start_time: str | None = None  # the time of point ``start`` (ISO, UTC): where to resume
    points: int | None = None  # how many points were fit, from ``start`` on
    end_time: str | None = None  # the time of the last point fit (ISO, UTC)
    digest: str | None = None  # of the values fit (``values_digest``): were they changed since?

    @property
    def fallback(self) -> str:
        return self.form.split(" ")[0] if self.state is None else self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "form": self.form,
            "season": self.season,
            "start": self.start,
            "state": self.state,
            "start_time": self.start_time,
            "points": self.points,
            "end_time": self.end_time,
            "digest": self.digest,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassicalFit:
        return cls(
            str(data["name"]),
            str(data.get("form", data["name"])),
            int(data.get("season", 1)),
            int(data.get("start", 0)),
            data.get("state"),
            data.get("start_time"),
            None if data.get("points") is None else int(data["points"]),
            data.get("end_time"),
            data.get("digest"),
        )


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None  # JSON has no NaN


def _state_of(name: str, model: Any) -> dict[str, Any]:
    """The fitted parameters ``forward`` needs (statsforecast's ``model_`` keys)."""
    fitted = model.model_
    if name == ETS:  # forward_ets reads m, components, par, n_params
        return {
            "m": int(fitted["m"]),
            "components": str(fitted["components"]),
            "par": [_number(v) for v in fitted["par"]],
            "n_params": int(fitted["n_params"]),
        }
    return {  # forward_theta reads m, modeltype and the three parameters
        "m": int(fitted["m"]),
        "modeltype": str(fitted["modeltype"]),
        "par": {k: _number(v) for k, v in fitted["par"].items()},
    }


def _model_of(fit: ClassicalFit) -> Any:
    """A statsforecast model carrying ``fit``'s parameters, ready to ``forward``."""
    model = _model(fit.name, fit.season)
    state = dict(fit.state or {})
    if fit.name == ETS:
        state["par"] = np.array([np.nan if v is None else v for v in state["par"]], dtype=float)
    else:
        state["par"] = {k: np.nan if v is None else v for k, v in state["par"].items()}
    state["fit"] = None
    model.model_ = state
    return model


def fit_classical(
    name: str, values: np.ndarray, n_fit: int, season: int, max_points: int | None = None
) -> ClassicalFit:
    """Model ``name`` (``ets`` or ``theta``) fit once on ``values[:n_fit]`` (its latest
    ``max_points``, default ``fit_points(season)``)."""
    values = np.asarray(values, dtype=float)
    start = max(0, n_fit - (max_points or fit_points(season)))
    fit = values[start:n_fit]
    model = _fit(name, fit, season)
    seen = {"points": len(fit), "digest": values_digest(fit)}
    if model is None:
        form = f"{_fallback(n_fit, season)} (no {name} fit)"
        return ClassicalFit(name, form, season, start, **seen)
    return ClassicalFit(name, name, season, start, _state_of(name, model), **seen)


def values_digest(values: np.ndarray) -> str:
    """A short digest of values as float64: whether the points a fit saw are still the same."""
    data = np.ascontiguousarray(np.asarray(values, dtype=np.float64)).tobytes()
    return hashlib.sha256(data).hexdigest()[:20]


SeriesJob = tuple[str, np.ndarray, int, int, tuple[str, ...], int]  # sid, values, n_fit, ...


def fit_series(jobs: list[SeriesJob]) -> dict[str, dict[str, ClassicalFit]]:
    """Fit each job's models: ``(sid, values, n_fit, season, names, seasons)`` ->
    ``{sid: {name: fit}}``. A module-level function of this light module (numpy; statsforecast
    when a fit runs), so worker processes that run it import neither TensorFlow nor Prefect."""
    return {
        sid: {
            name: fit_classical(name, values, n_fit, season, fit_points(season, seasons))
            for name in names
        }
        for sid, values, n_fit, season, names, seasons in jobs
    }


def _forward(model, values: np.ndarray, steps: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.forward(y=np.asarray(values, dtype=float), h=steps)["mean"])


def _ets_paths(model: Any, values: np.ndarray, origins: np.ndarray, steps: int) -> np.ndarray:
    """AutoETS' forecasts [windows, steps] after each origin of ``values`` in one pass.

    ETS is a state-space recursion: running it forward to an origin and forecasting (what
    ``forward`` per origin does) is forecasting from the state at that origin, so one run
    over ``values`` up to the last origin gives every origin's state (``states[o + 1]``:
    after observing ``values[: o + 1]``). The same numbers, a pass instead of one per origin.
    """
    from statsforecast.ets import forward_ets, pegelsfcast_C

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = forward_ets(model.model_, y=np.asarray(values, dtype=float))
        states = run["states"]  # [points + 1, states]: states[0] is the initial state
        out = np.empty((len(origins), steps))
        for k, origin in enumerate(origins):
            out[k] = pegelsfcast_C(steps, {**run, "states": states[origin + 1][None, :]})
    return out


def paths_of(fit: ClassicalFit, values: np.ndarray, origins: np.ndarray, steps: int) -> np.ndarray:
    """Forecasts [windows, steps] of a fit model after each origin of ``values`` (the series
    it was fit on, whole), rolled forward without refitting."""
    values = np.asarray(values, dtype=float)
    origins = np.asarray(origins, dtype=np.int64)
    if fit.state is None:
        return _simple(fit.fallback, values, origins, steps, fit.season)
    rolled = len(origins) and origins.min() > fit.start
    if fit.name == THETA and rolled:  # every origin at once (seriesflow/model/theta.py)
        out = theta_paths(
            fit.state, values[fit.start : origins.max() + 1], origins - fit.start, steps
        )
    elif fit.name == ETS and rolled:
        model = _model_of(fit)
        out = _ets_paths(model, values[fit.start : origins.max() + 1], origins - fit.start, steps)
    else:
        model = _model_of(fit)
        out = np.empty((len(origins), steps))
        for k, origin in enumerate(origins):
            out[k] = _forward(model, values[fit.start : origin + 1], steps)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():  # a diverging state: the last value is a forecast, NaN is not
        out[bad] = naive_forecast(values, origins[bad], steps)
    return out


def classical_paths(
    name: str, values: np.ndarray, n_fit: int, origins: np.ndarray, steps: int, season: int
) -> tuple[np.ndarray, str]:
    """Forecasts [windows, steps] of model ``name`` after each origin, and the form used.

    ``values`` [points] is the whole series in original units; AutoETS and AutoTheta are
    fit once on ``values[:n_fit]`` (its latest ``fit_points(season)``) and rolled forward to
    each origin without refitting. Naive and seasonal naive need no fit.
    """
    values = np.asarray(values, dtype=float)
    origins = np.asarray(origins, dtype=np.int64)
    if name not in FITTED:
        return _simple(name, values, origins, steps, season), name
    fit = fit_classical(name, values, n_fit, season)
    return paths_of(fit, values, origins, steps), fit.form


def forecast_from_fit(fit: ClassicalFit, values: np.ndarray, steps: int) -> np.ndarray:
    """The next ``steps`` values [steps] after ``values`` from a kept fit, without refitting.

    ``values`` starts where the fit's ``start`` point was (or a whole number of seasons
    later): the fitted parameters are run forward over it (statsforecast's ``forward``).
    """
    values = np.asarray(values, dtype=float)
    last = np.array([len(values) - 1])
    if fit.state is None:
        return _simple(fit.fallback, values, last, steps, fit.season)[0]
    if fit.name == THETA:
        path = theta_paths(fit.state, values, last, steps)[0]
    else:
        path = _forward(_model_of(fit), values, steps)
    return path if np.isfinite(path).all() else naive_forecast(values, last, steps)[0]


def classical_forecast(name: str, values: np.ndarray, steps: int, season: int) -> np.ndarray:
    """The next ``steps`` values [steps] of model ``name`` fit on all of ``values`` (its
    latest ``fit_points(season)``): a refit, for a model registered without kept fits."""
    values = np.asarray(values, dtype=float)
    last = np.array([len(values) - 1])
    if name not in FITTED:
        return _simple(name, values, last, steps, season)[0]
    fit = fit_classical(name, values, len(values), season)
    if fit.state is None:
        return _simple(_fallback(len(values), season), values, last, steps, season)[0]
    return forecast_from_fit(fit, values[fit.start :], steps)


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
