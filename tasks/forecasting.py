"""Forecasting the future from a saved model: direct within its horizon, recursive beyond.

Pure (no Prefect): the forecast flow, the evaluate stage (to calibrate and check
prediction intervals on multi-step paths) and the self-contained MLflow model use
the same functions.

``forecast_paths`` forecasts ``steps`` values after each window's origin. Up to
the model's horizon it is one call (direct multi-output). Beyond it, each block
of ``horizon`` forecasts is appended to the window as if observed and the model
is called again (recursive); covariates have no future values, so the last
known ones are carried forward (documented; calendar-like covariates should be
made part of the data, not forecast).

``tail_arrays`` turns recent history (the accepted rows, or a caller's frame)
into the arrays a model reads: each series put on its calendar grid (short gaps
interpolated), scaled by the model's own scaler, with one window ending at the
last observation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tasks.frequency import Frequency, fill_gaps
from tasks.saved_model import ModelSpec, predict
from tasks.scaler import Scaler
from tasks.schema import SERIES_ID, SPLITS, TEST, TIMESTAMP, VALUE, VALUE_ORIGINAL
from tasks.window_table import SeriesArrays, Windows


def forecast_paths(
    model: Any, spec: ModelSpec, scaler: Scaler, windows: Windows, steps: int
) -> np.ndarray:
    """Forecasts [windows, steps] in original units after each window's origin."""
    if steps < 1:
        raise ValueError(f"forecast steps must be at least 1, got {steps}")
    count = len(windows)
    if not count:
        return np.empty((0, steps))
    arrays = windows.arrays
    center = np.array([scaler.affine(arrays.series[c])[0][0] for c in windows.code])  # [w]
    scale = np.array([scaler.affine(arrays.series[c])[1][0] for c in windows.code])  # [w]
    x = windows.gather_x().astype(np.float32)  # [w, timesteps, features], scaled
    series_ids = windows.series_id
    blocks, done = [], 0
    while done < steps:
        inputs, loc, spread = scaler.window_inputs(x)
        block = scaler.window_outputs(predict(model, spec, inputs, series_ids), loc, spread)
        blocks.append(block)  # [w, horizon], scaled
        done += spec.horizon
        if done < steps:  # slide: the forecasts become the latest inputs
            new = np.repeat(x[:, -1:, :], spec.horizon, axis=1)  # covariates carried forward
            new[:, :, 0] = block
            x = np.concatenate([x, new], axis=1)[:, -spec.timesteps :, :]
    scaled = np.concatenate(blocks, axis=1)[:, :steps]  # [w, steps]
    return scaled * scale[:, None] + center[:, None]


@dataclass(frozen=True)
class Tails:
    """Recent history ready for a model, and what could not be used, per series."""

    arrays: SeriesArrays
    windows: Windows  # one window per usable series, ending at its last observation
    last_time: dict[str, pd.Timestamp]
    skipped: dict[str, str] = field(default_factory=dict)  # series_id -> why


def tail_arrays(
    history: pd.DataFrame,
    scaler: Scaler,
    spec: ModelSpec,
    max_gap_steps: int | None = None,
) -> Tails:
    """The last observations of each series as model input (one window per series).

    Series the model does not know (not in its scaler, or not one of a per-series
    model's branches), with fewer observations than its input length, or whose
    timestamps fall off its calendar, are skipped with the reason.
    """
    features = list(spec.features)
    skipped: dict[str, str] = {}
    parts, last_time = [], {}
    for sid, group in history.groupby(SERIES_ID, sort=True):
        sid = str(sid)
        if sid not in scaler.series or (spec.per_series and sid not in spec.series):
            skipped[sid] = "unknown to the model (not in its training data)"
            continue
        missing = [c for c in features if c not in group.columns]
        if missing:
            skipped[sid] = f"missing column(s) {missing}"
            continue
        frequency = scaler.frequency_of(sid)
        group = group.sort_values(TIMESTAMP)
        times = group[TIMESTAMP]
        position, on_grid = frequency.positions(times.to_numpy())
        if not on_grid.all():
            bad = times[~on_grid].iloc[0]
            skipped[sid] = f"timestamp {bad} is off the series' {frequency.describe()} calendar"
            continue
        steps = np.diff(position)
        if (steps <= 0).any():
            skipped[sid] = "timestamps repeat or go back in time"
            continue
        if max_gap_steps is not None and len(steps) and steps.max() - 1 > max_gap_steps:
            skipped[sid] = f"a gap of {int(steps.max() - 1)} steps (at most {max_gap_steps})"
            continue
        # enough of the latest rows to fill the input window after gaps are interpolated
        keep = group.iloc[-(spec.timesteps + 1) * 2 :] if len(group) > 2 * spec.timesteps else group
        filled = fill_gaps(keep.drop(columns=[SERIES_ID]), frequency, features)
        if filled[features].isna().to_numpy().any():
            skipped[sid] = "missing values that cannot be interpolated"
            continue
        tail = filled.iloc[-spec.timesteps :]
        if len(tail) < spec.timesteps:
            skipped[sid] = (
                f"too short: {len(tail)} points on its calendar, the model needs "
                f"{spec.timesteps} (its input length)"
            )
            continue
        raw = tail[features].to_numpy(dtype=float)
        frame = pd.DataFrame(scaler.transform(sid, raw), columns=features)
        frame.insert(0, TIMESTAMP, tail[TIMESTAMP].to_numpy())
        frame.insert(0, SERIES_ID, sid)
        frame[VALUE_ORIGINAL] = raw[:, 0]
        frame["split"] = TEST
        parts.append(frame)
        last_time[sid] = pd.Timestamp(tail[TIMESTAMP].iloc[-1])
    columns = [SERIES_ID, TIMESTAMP, *features, VALUE_ORIGINAL, "split"]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    if not parts:
        frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    arrays = SeriesArrays.from_frame(frame, features)
    rows = arrays.start + arrays.length - 1  # the last observation of each series
    windows = Windows(
        arrays=arrays,
        row=rows.astype(np.int64),
        code=np.arange(len(arrays.series)),
        split=np.full(len(arrays.series), TEST, dtype=object),
        timesteps=spec.timesteps,
        horizon=spec.horizon,
    )
    return Tails(arrays, windows, last_time, skipped)


def future_times(frequency: Frequency, last: pd.Timestamp, steps: int) -> pd.DatetimeIndex:
    """The ``steps`` timestamps after ``last`` on the series' calendar."""
    return frequency.future(last, steps)


__all__ = ["SPLITS", "VALUE", "Tails", "forecast_paths", "future_times", "tail_arrays"]
