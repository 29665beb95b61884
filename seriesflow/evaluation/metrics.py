"""Forecast metrics and baselines as pure functions (one row per series, Nixtla style)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from seriesflow.data.schema import ALL_SERIES, SERIES_ID

METRICS = ("mse", "mae", "rmse", "mape", "mase")
CLASS_METRICS = ("accuracy", "precision", "recall", "f1")
HIGHER_IS_BETTER = frozenset(CLASS_METRICS)
_EPS = np.finfo(np.float64).eps  # as scikit-learn's MAPE


def regression_metrics(
    actual: np.ndarray, predicted: np.ndarray, scale: np.ndarray | float | None = None
) -> dict[str, float]:
    """MSE, MAE, RMSE, MAPE (a fraction, as scikit-learn) and MASE.

    ``actual``/``predicted``: [windows, horizon]; ``scale``: the in-sample
    seasonal-naive MAE, one per window ([windows]) or one number.
    """
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if actual.shape != predicted.shape:
        raise ValueError(f"shape mismatch: actual {actual.shape} vs predicted {predicted.shape}")
    if actual.size == 0:
        return {name: math.nan for name in METRICS}
    error = predicted - actual
    abs_error = np.abs(error)
    mse = float(np.mean(error**2))
    result = {
        "mse": mse,
        "mae": float(np.mean(abs_error)),
        "rmse": math.sqrt(mse),
        "mape": float(np.mean(abs_error / np.maximum(np.abs(actual), _EPS))),
        "mase": math.nan,
    }
    if scale is not None:
        scale = np.asarray(scale, dtype=float)
        if scale.ndim == 1 and abs_error.ndim == 2:
            scale = scale[:, None]  # [windows, 1] broadcasts over the horizon
        result["mase"] = float(np.mean(abs_error / scale))
    return result


def seasonal_naive_scale(train_values: np.ndarray, season_length: int) -> float:
    """In-sample MAE of the seasonal-naive forecast y[t] = y[t - m] (the MASE denominator).

    Falls back to the one-step naive MAE when the training part is shorter than a season.
    """
    values = np.asarray(train_values, dtype=float)
    m = season_length if len(values) > season_length else 1
    if len(values) <= m:
        return math.nan
    scale = float(np.mean(np.abs(values[m:] - values[:-m])))
    return scale if scale > 0 else math.nan


def naive_forecast(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Last observed value repeated: [windows, horizon]."""
    return np.repeat(np.asarray(values, dtype=float)[origins][:, None], horizon, axis=1)


def seasonal_naive_forecast(
    values: np.ndarray, origins: np.ndarray, horizon: int, season_length: int
) -> np.ndarray:
    """y_hat[o + k] = y[o + k - m * ceil(k / m)], k = 1..horizon: [windows, horizon]."""
    k = np.arange(1, horizon + 1)
    back = season_length * np.ceil(k / season_length).astype(int)  # [horizon]
    index = origins[:, None] + k[None, :] - back[None, :]  # [windows, horizon]
    return np.asarray(values, dtype=float)[np.clip(index, 0, None)]


def _per_series(
    series_ids: np.ndarray,
    forecasts: dict[str, np.ndarray],
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]],
) -> pd.DataFrame:
    """``score(mask, predicted)`` per (model, series), plus ``__all__`` pooled over windows."""
    groups = [(ALL_SERIES, np.ones(len(series_ids), dtype=bool))]
    groups += [(sid, series_ids == sid) for sid in sorted(set(series_ids))]
    rows = [
        {"model": name, SERIES_ID: sid, "windows": int(mask.sum()), **score(mask, predicted)}
        for name, predicted in forecasts.items()
        for sid, mask in groups
    ]
    return pd.DataFrame(rows)


def metrics_table(
    series_ids: np.ndarray, actual: np.ndarray, forecasts: dict[str, np.ndarray], scale: np.ndarray
) -> pd.DataFrame:
    """One row per (model, series) plus ``__all__`` rows pooled over every window."""
    return _per_series(
        series_ids,
        forecasts,
        lambda mask, predicted: regression_metrics(actual[mask], predicted[mask], scale[mask]),
    )


MEAN_METRICS = ("mse", "mae", "mape", "mase")  # means over every (window, step): they pool


def pooled_again(parts: list[pd.DataFrame], by: list[str]) -> pd.DataFrame:
    """Metric tables made on disjoint sets of series (chunks of a run), as one table.

    Each part has per-series rows and ``__all__`` rows per ``by`` group (model, scope, and
    fold in a backtest). The per-series rows are kept as they are; each group's ``__all__``
    row is pooled again over every window of every part: the mean metrics (MSE, MAE, MAPE,
    MASE) as the windows-weighted mean of the series' means (every window has the same
    steps), RMSE as the root of the pooled MSE -- what one table over all the windows gives,
    up to rounding. One part is returned as it is.
    """
    if len(parts) == 1:
        return parts[0]
    table = pd.concat(parts, ignore_index=True)
    rows = table[table[SERIES_ID] != ALL_SERIES]
    out = []
    for _, group in rows.groupby(by, sort=False):  # the groups in the order first seen
        weight = group["windows"].to_numpy(dtype=float)
        pooled = {column: group[column].iloc[0] for column in table.columns}
        pooled[SERIES_ID] = ALL_SERIES
        pooled["windows"] = int(weight.sum())
        for metric in MEAN_METRICS:
            if metric in table.columns:
                values = group[metric].to_numpy(dtype=float)
                pooled[metric] = float(np.sum(weight * values) / weight.sum())
        if "rmse" in table.columns and "mse" in table.columns:
            pooled["rmse"] = math.sqrt(pooled["mse"]) if math.isfinite(pooled["mse"]) else math.nan
        out += [pd.DataFrame([pooled]), group]
    return pd.concat(out, ignore_index=True)[list(table.columns)].astype(table.dtypes.to_dict())


def classification_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1 of class indexes [windows].

    As scikit-learn's ``average="macro", zero_division=0``: the mean over the
    classes that occur in ``actual`` or ``predicted``; a class never predicted
    has precision 0, one that never occurs has recall 0.
    """
    actual = np.asarray(actual)
    predicted = np.asarray(predicted)
    if actual.shape != predicted.shape:
        raise ValueError(f"shape mismatch: actual {actual.shape} vs predicted {predicted.shape}")
    if actual.size == 0:
        return {name: math.nan for name in CLASS_METRICS}
    precision, recall, f1 = [], [], []
    for label in np.union1d(actual, predicted):
        true_pos = float(np.sum((predicted == label) & (actual == label)))
        said, real = float(np.sum(predicted == label)), float(np.sum(actual == label))
        p = true_pos / said if said else 0.0
        r = true_pos / real if real else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return {
        "accuracy": float(np.mean(actual == predicted)),
        "precision": float(np.mean(precision)),
        "recall": float(np.mean(recall)),
        "f1": float(np.mean(f1)),
    }


def class_metrics_table(
    series_ids: np.ndarray, actual: np.ndarray, forecasts: dict[str, np.ndarray]
) -> pd.DataFrame:
    """As ``metrics_table`` for class indexes: one row per (model, series) plus ``__all__``."""
    return _per_series(
        series_ids,
        forecasts,
        lambda mask, predicted: classification_metrics(actual[mask], predicted[mask]),
    )


def majority_classes(series_ids: np.ndarray, codes: np.ndarray, n_classes: int) -> dict[str, int]:
    """Each series' most common class index in ``codes`` (ties: the lower index)."""
    return {
        str(sid): int(np.argmax(np.bincount(codes[series_ids == sid], minlength=n_classes)))
        for sid in sorted(set(series_ids))
    }
