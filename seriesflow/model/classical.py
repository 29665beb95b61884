"""A classical baseline from a maintained library: exponential smoothing (statsmodels ETS).

The gate asks whether the LSTM is worth its cost: does it beat what a classical
model does on the same windows? ``ets_forecasts`` fits statsmodels' ``ETSModel``
on each series' training part -- additive error, with no / additive / damped
trend and, when the training part holds at least two seasons, additive
seasonality, the form chosen by AICc as in AutoETS -- and then rolls it over the
whole series *without refitting*: the fitted parameters filter the actual values,
and each window's forecast uses the states at its own origin (one step: the
one-step-ahead prediction; more steps: a dynamic prediction from the origin).
Pure, no Prefect.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

# Longer training parts are fit on their latest points only: the form and parameters of an
# exponential smoothing model are about recent behaviour, and fitting time grows with length.
MAX_FIT_POINTS = 1000
MIN_FIT_POINTS = 4  # fewer cannot initialise a trend and estimate anything


@dataclass(frozen=True)
class EtsFit:
    """The form AICc chose and its parameters (applied, not refit, to the whole series)."""

    form: dict
    params: np.ndarray
    aicc: float

    @property
    def name(self) -> str:
        trend = {None: "N", "add": "A"}[self.form["trend"]]
        if self.form.get("damped_trend"):
            trend += "d"
        season = "A" if self.form.get("seasonal") else "N"
        return f"ETS(A,{trend},{season})"


def _forms(n_train: int, season: int) -> list[dict]:
    forms = [
        {"trend": None},
        {"trend": "add"},
        {"trend": "add", "damped_trend": True},
    ]
    if season > 1 and n_train >= 2 * season + 2:
        forms += [{**f, "seasonal": "add", "seasonal_periods": season} for f in forms]
    return forms


def fit_ets(train: np.ndarray, season: int) -> EtsFit | None:
    """The AICc-best additive ETS form on ``train`` (None if nothing could be fit)."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel  # lazily: ~1 s import

    train = np.asarray(train, dtype=float)[-MAX_FIT_POINTS:]
    if len(train) < MIN_FIT_POINTS:
        return None
    best: EtsFit | None = None
    for form in _forms(len(train), season):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter; a bad fit loses on AICc
                result = ETSModel(train, error="add", **form).fit(disp=False)
        except (ValueError, IndexError, np.linalg.LinAlgError):
            continue
        aicc = float(result.aicc)
        if math.isfinite(aicc) and (best is None or aicc < best.aicc):
            best = EtsFit(form, np.asarray(result.params), aicc)
    return best


def ets_forecasts(
    values: np.ndarray, n_train: int, origins: np.ndarray, horizon: int, season: int
) -> tuple[np.ndarray, str]:
    """ETS forecasts [windows, horizon] from each origin of one series, and the form used.

    ``values`` [steps] are the whole series in original units; the model is fit on
    ``values[:n_train]`` and never refit. NaN rows if no form could be fit.
    """
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    out = np.full((len(origins), horizon), np.nan)
    fit = fit_ets(values[:n_train], season)
    if fit is None or not len(origins):
        return out, "none"
    values = np.asarray(values, dtype=float)
    # Fit on the latest MAX_FIT_POINTS; filter from the same start so the states line up.
    start = max(0, n_train - MAX_FIT_POINTS)
    end = int(origins.max()) + 1  # no value after the last origin is needed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filtered = ETSModel(values[start:end], error="add", **fit.form).smooth(fit.params)
        if horizon == 1:
            one_step = np.asarray(filtered.fittedvalues)  # [steps]: forecast of t from t - 1
            after = origins - start + 1
            inside = after < len(one_step)
            out[inside, 0] = one_step[after[inside]]
            last = ~inside  # origin = the last value given: forecast the next one
            if last.any():
                out[last, 0] = float(np.asarray(filtered.forecast(1))[0])
        else:
            for k, origin in enumerate(origins - start):
                predicted = filtered.predict(start=origin + 1, end=origin + horizon, dynamic=0)
                out[k] = np.asarray(predicted)[:horizon]
    return out, fit.name
