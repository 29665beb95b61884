"""Sampling steps and seasons: what the regular grid of a series is.

Pure helpers (no Prefect): validate checks the grid with them, normalize fills
gaps on it, and scoring takes the season length from it.
"""

from __future__ import annotations

import math

import pandas as pd


def step_of(timestamps: pd.Series, frequency: str | None) -> pd.Timedelta | None:
    """The sampling step: the configured frequency, else the most common positive step."""
    if frequency:
        return pd.Timedelta(pd.tseries.frequencies.to_offset(frequency))
    diffs = timestamps.sort_values().diff().dropna()
    diffs = diffs[diffs > pd.Timedelta(0)]
    return None if diffs.empty else diffs.mode().iloc[0]


def infer_season_length(step_seconds: float) -> int:
    """Hourly -> 24 (a day), daily -> 7 (a week), weekly -> 52, monthly-ish -> 12."""
    if not step_seconds or math.isnan(step_seconds) or step_seconds <= 0:
        return 1
    day = 86_400
    if step_seconds < day and day % step_seconds == 0:
        return int(day // step_seconds)
    if step_seconds == day:
        return 7
    if step_seconds == 7 * day:
        return 52
    if 28 * day <= step_seconds <= 31 * day:
        return 12
    return 1
