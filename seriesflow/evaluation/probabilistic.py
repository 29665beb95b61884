"""Probabilistic scores of the registered model's intervals, from ``utilsforecast.losses``.

Next to the point scores and the interval coverage: WAPE (the point forecast's absolute
error over the absolute actuals), the pinball (quantile) loss of each interval bound (the
level's lower and upper quantile, averaged), and MSIS, the M4 competition's interval
score: the Winkler score of the level's interval divided by the series' MASE scale (its
in-sample seasonal-naive MAE). The intervals scored are the ones calibrated on the
validation windows only, so the test windows judge them honestly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from utilsforecast.losses import quantile_loss, wape, winkler_score

from seriesflow.data.schema import ALL_SERIES, SERIES_ID
from seriesflow.model.intervals import Intervals

MODEL_COLUMN = "forecast"


def long_frame(
    series_ids: np.ndarray,
    actual: np.ndarray,
    forecast: np.ndarray,
    intervals: Intervals,
    levels: list[int],
) -> pd.DataFrame:
    """utilsforecast's long format: one row per window and step (``cutoff`` = the window)."""
    windows, steps = forecast.shape
    ids = np.repeat(np.asarray(series_ids).astype(str), steps)
    frame = pd.DataFrame(
        {
            "unique_id": ids,
            "cutoff": np.repeat(np.arange(windows), steps),
            "y": actual.ravel(),
            MODEL_COLUMN: forecast.ravel(),
        }
    )
    for level in levels:
        width = intervals.width_rows(series_ids, level, steps)
        frame[f"{MODEL_COLUMN}-lo-{level}"] = (forecast - width).ravel()
        frame[f"{MODEL_COLUMN}-hi-{level}"] = (forecast + width).ravel()
    return frame[np.isfinite(frame["y"].to_numpy())].reset_index(drop=True)


def _per_series(scores: pd.DataFrame) -> pd.Series:
    """utilsforecast's (series, cutoff) rows -> the mean over each series' windows."""
    return scores.groupby("unique_id")[MODEL_COLUMN].mean()


def probabilistic_scores(
    series_ids: np.ndarray,
    actual: np.ndarray,
    forecast: np.ndarray,
    intervals: Intervals,
    levels: list[int],
    scale: dict[str, float],
) -> pd.DataFrame:
    """One row per series (and ``__all__``, the mean over series): ``wape``, and per level
    ``pinball_<level>`` and ``msis_<level>``. ``actual``/``forecast`` [windows, steps]."""
    frame = long_frame(series_ids, actual, forecast, intervals, levels)
    if frame.empty:
        return pd.DataFrame()
    table = pd.DataFrame({"wape": _per_series(wape(frame, [MODEL_COLUMN], cutoff_col="cutoff"))})
    for level in levels:
        tail = (1 - level / 100) / 2
        lower = quantile_loss(
            frame, {MODEL_COLUMN: f"{MODEL_COLUMN}-lo-{level}"}, tail, cutoff_col="cutoff"
        )
        upper = quantile_loss(
            frame, {MODEL_COLUMN: f"{MODEL_COLUMN}-hi-{level}"}, 1 - tail, cutoff_col="cutoff"
        )
        table[f"pinball_{level}"] = (_per_series(lower) + _per_series(upper)) / 2
        winkler = _per_series(winkler_score(frame, [MODEL_COLUMN], level, cutoff_col="cutoff"))
        divisor = winkler.index.map(lambda s: scale.get(str(s), np.nan)).to_numpy(dtype=float)
        table[f"msis_{level}"] = winkler.to_numpy() / np.where(divisor > 0, divisor, np.nan)
    table.index = table.index.astype(str)
    table.loc[ALL_SERIES] = table.mean(axis=0, skipna=True)
    table.index.name = SERIES_ID
    return table
