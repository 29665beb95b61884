"""Forecasting the future from a saved model: direct within its horizon, recursive beyond.

Pure (no Prefect): the forecast flow, the evaluate stage (to calibrate and check
prediction intervals on multi-step paths) and the self-contained MLflow model use
the same functions.

``forecast_paths`` forecasts ``steps`` values after each window's origin. Up to
the model's horizon it is one call (direct multi-output). Beyond it, each block
of ``horizon`` forecasts is appended to the window as if observed and the model
is called again (recursive); past covariates have no future values, so the last
known ones are carried forward, while known-ahead columns (future covariates, calendar,
holidays) take their values for the new rows (``seriesflow/model/features.py``).

``tail_arrays`` turns recent history (the accepted rows, or a caller's frame)
into the arrays a model reads: each series put on its calendar grid (short gaps
interpolated), scaled by the model's own scaler, with one window ending at the
last observation. All series at once: one sort of every row by (series, time), then
numpy slices per series (a gap fill only where the tail is not complete) and one frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.config.pipeline import AUTO, PipelineConfig
from seriesflow.data.frequency import Frequency, fill_gaps
from seriesflow.data.schema import (
    ALL_SERIES,
    COMBINATION,
    ETS,
    LSTM,
    SERIES_ID,
    TEST,
    THETA,
    TIMESTAMP,
    VAL,
    VALUE,
    VALUE_ORIGINAL,
)
from seriesflow.model.classical import ClassicalFit, classical_forecast, forecast_from_fit
from seriesflow.model.features import (
    first_missing,
    is_known_ahead,
    missing_future_error,
    static_values,
)
from seriesflow.model.intervals import Intervals, calibrate, series_codes
from seriesflow.model.saved_model import ModelSpec, predict
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import SeriesArrays, Windows


def forecast_paths(
    model: Any,
    spec: ModelSpec,
    scaler: Scaler,
    windows: Windows,
    steps: int,
    ahead: np.ndarray | None = None,
) -> np.ndarray:
    """Forecasts [windows, steps] in original units after each window's origin.

    Recursive steps slide the window on: the new rows' value is the forecast, their past
    covariates are carried forward, and their known-ahead (lead) columns come from ``ahead``
    [windows, >= steps rounded up to horizons, features] (scaled rows after each origin: a
    forecast's future covariates and calendar), or without it from the arrays' own rows
    after the origin (evaluation: the future covariates and calendar that were known),
    the last row repeated past a series' end.
    """
    if steps < 1:
        raise ValueError(f"forecast steps must be at least 1, got {steps}")
    count = len(windows)
    if not count:
        return np.empty((0, steps))
    arrays = windows.arrays
    x = windows.gather_x().astype(np.float32)  # [w, timesteps, features], scaled
    series_ids = windows.series_id
    known = np.array([is_known_ahead(c) for c in spec.features], dtype=bool)  # [features]
    if known.any() and steps > spec.horizon and ahead is None:
        ahead = rows_after(windows, -(-steps // spec.horizon) * spec.horizon)
    blocks, done = [], 0
    while done < steps:
        inputs, loc, spread = scaler.window_inputs(x)
        block = scaler.window_outputs(predict(model, spec, inputs, series_ids), loc, spread)
        blocks.append(block)  # [w, horizon], scaled
        done += spec.horizon
        if done < steps:  # slide: the forecasts become the latest inputs
            new = np.repeat(x[:, -1:, :], spec.horizon, axis=1)  # covariates carried forward
            new[:, :, 0] = block
            if known.any():  # [w, horizon, known]: lead columns of the rows now appended
                new[:, :, known] = ahead[:, done - spec.horizon : done][:, :, known]
            x = np.concatenate([x, new], axis=1)[:, -spec.timesteps :, :]
    scaled = np.concatenate(blocks, axis=1)[:, :steps]  # [w, steps]
    return scaler.restore(series_ids, scaled, arrays.times[windows.row])


def rows_after(windows: Windows, count: int) -> np.ndarray:
    """The arrays' ``count`` rows after each window's origin [w, count, features] (scaled),
    the series' last row repeated past its end."""
    arrays = windows.arrays
    rows = windows.row[:, None] + np.arange(1, count + 1)[None, :]  # [w, count]
    last = (arrays.start + arrays.length - 1)[windows.code]  # [w]
    return arrays.values[np.minimum(rows, last[:, None])].astype(np.float32)


@dataclass(frozen=True)
class Tails:
    """Recent history ready for a model, and what could not be used, per series."""

    arrays: SeriesArrays
    windows: Windows  # one window per usable series, ending at its last observation
    last_time: dict[str, pd.Timestamp]
    skipped: dict[str, str] = field(default_factory=dict)  # series_id -> why
    # [series, rows, features] scaled rows after each last observation (known-ahead columns:
    # future covariates, calendar, holidays); None for a model without them
    ahead: np.ndarray | None = None


def observed_rows(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` without each series' future rows (those after its last observed value:
    they carry future covariate values for forecast steps, not observations)."""
    if history.empty or not history[VALUE].isna().any():
        return history
    times = pd.to_datetime(history[TIMESTAMP], utc=True)
    seen = times.where(history[VALUE].notna())
    last = seen.groupby(history[SERIES_ID].astype(str)).transform("max")
    return history[times <= last]


def tail_arrays(
    history: pd.DataFrame,
    scaler: Scaler,
    spec: ModelSpec,
    max_gap_steps: int | None = None,
    steps: int | None = None,
) -> Tails:
    """The last observations of each series as model input (one window per series).

    Series the model does not know (not in its scaler, or not one of a per-series
    model's branches), with fewer observations than its input length, or whose
    timestamps fall off its calendar, are skipped with the reason.

    A model with known-ahead features (``seriesflow/model/features.py``) also gets each
    series' rows after its last observation (``Tails.ahead``, ``steps`` forecast steps
    rounded up to horizons): calendar and holidays computed, future covariates from
    ``history``'s rows after the last observed value (the value empty). A missing future
    value for a forecast step raises ``ValueError`` naming the series and the first missing
    timestamp; so does a missing static value.
    """
    features = list(spec.features)
    fs = scaler.feature_spec
    raw_columns = fs.raw  # value, past, future: what the frame's rows carry
    known = any(is_known_ahead(c) for c in features)
    wanted = max(int(steps or spec.horizon), 1)  # forecast steps that need future values
    need = -(-wanted // spec.horizon) * spec.horizon if known else 0  # rows after the last
    skipped: dict[str, str] = {}
    last_time: dict[str, pd.Timestamp] = {}
    ahead: dict[str, np.ndarray] = {}
    # one stable sort of every row by (series, time); each series is then a slice of numpy
    # arrays (no per-series groupby, sort or frame)
    ids = history[SERIES_ID].astype(str).to_numpy()
    stamps_in = history[TIMESTAMP]
    if not pd.api.types.is_datetime64_any_dtype(stamps_in):
        stamps_in = pd.to_datetime(stamps_in)
    index = pd.DatetimeIndex(stamps_in)
    tz = index.tz
    utc = (index.tz_convert(None) if tz is not None else index).to_numpy()  # UTC, naive
    order = np.lexsort((utc, ids)) if len(ids) else np.empty(0, np.int64)
    ids, utc = ids[order], utc[order]
    ordered = history.iloc[order]
    absent = [c for c in [*fs.future, *fs.static] if c not in history.columns]
    missing = [c for c in raw_columns if c not in history.columns]
    raw_all = None if missing else ordered[raw_columns].to_numpy(dtype=float)  # [rows, raw]
    bounds = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1], True]) if len(ids) else [0]
    tail_ids, tail_times, tail_scaled, tail_values = [], [], [], []

    def stamp(value: np.datetime64) -> pd.Timestamp:  # a UTC instant in the input's zone
        found = pd.Timestamp(value)
        return found.tz_localize("UTC").tz_convert(tz) if tz is not None else found

    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        sid = str(ids[a])
        if sid not in scaler.series or (spec.per_series and sid not in spec.series):
            skipped[sid] = "unknown to the model (not in its training data)"
            continue
        if absent:
            raise ValueError(
                f"series '{sid}': the input has no column(s) {absent} (the model's "
                f"columns.future {fs.future} and columns.static {fs.static})"
            )
        if missing:
            skipped[sid] = f"missing column(s) {missing}"
            continue
        frequency = scaler.frequency_of(sid)
        statics = (
            fs.static_row(sid, static_values(ordered.iloc[a:b], sid, fs.static))
            if fs.static
            else fs.static_row(sid, {})
        )
        observed = np.flatnonzero(~np.isnan(raw_all[a:b, 0]))
        if not len(observed):
            skipped[sid] = "no observed value"
            continue
        end = a + int(observed[-1]) + 1  # after the last observed row: future rows
        times = utc[a:end]
        position, on_grid = frequency.positions(times)
        if not on_grid.all():
            skipped[sid] = (
                f"timestamp {stamp(times[~on_grid][0])} is off the series' "
                f"{frequency.describe()} calendar"
            )
            continue
        steps = np.diff(position)
        if (steps <= 0).any():
            skipped[sid] = "timestamps repeat or go back in time"
            continue
        if max_gap_steps is not None and len(steps) and steps.max() - 1 > max_gap_steps:
            skipped[sid] = f"a gap of {int(steps.max() - 1)} steps (at most {max_gap_steps})"
            continue
        # enough of the latest rows to fill the input window after gaps are interpolated
        n = end - a
        first = end - (spec.timesteps + 1) * 2 if n > 2 * spec.timesteps else a
        raw = raw_all[first:end]
        if (steps[first - a :] == 1).all() and not np.isnan(raw).any():
            stamps = utc[first:end]  # already on every step of its calendar, nothing to fill
        else:
            keep = pd.DataFrame(raw, columns=raw_columns)
            when = pd.DatetimeIndex(utc[first:end])  # in the input's zone: its calendar
            keep.insert(0, TIMESTAMP, when.tz_localize("UTC").tz_convert(tz) if tz else when)
            filled = fill_gaps(keep, frequency, raw_columns)
            raw = filled[raw_columns].to_numpy(dtype=float)
            if np.isnan(raw).any():
                skipped[sid] = "missing values that cannot be interpolated"
                continue
            filled_at = pd.DatetimeIndex(filled[TIMESTAMP])
            filled_at = filled_at.tz_convert(None) if filled_at.tz is not None else filled_at
            stamps = filled_at.to_numpy()
        raw, stamps = raw[-spec.timesteps :], stamps[-spec.timesteps :]
        needed = spec.min_inputs or spec.timesteps  # fewer: the first value is repeated
        if len(raw) < needed:
            skipped[sid] = (
                f"too short: {len(raw)} points on its calendar, the model needs "
                f"{needed} (its input length {spec.timesteps}, at least {needed} observed)"
            )
            continue
        if scaler.logged.get(sid) and (raw[:, 0] <= 0).any():
            skipped[sid] = "a value <= 0: the model works on logs of positive values; retrain"
            continue
        last = stamp(stamps[-1])
        if fs.columns() != raw_columns:  # lead columns, calendar, holidays, statics
            after = frequency.future(last, need)  # [need] grid times after the last observation
            later = np.full((need, len(raw_columns)), np.nan)
            if fs.future:
                future_rows = ordered.iloc[end:b]
                given = future_rows.assign(**{TIMESTAMP: pd.to_datetime(future_rows[TIMESTAMP])})
                given = given.drop_duplicates(TIMESTAMP, keep="last").set_index(TIMESTAMP)
                values = given[fs.future].reindex(after).to_numpy(dtype=float)  # [need, future]
                gap = first_missing(sid, after[:wanted], values[:wanted], fs.future)
                if gap is not None:
                    raise ValueError(missing_future_error(sid, gap[0], gap[1], last))
                later[:, 1 + len(fs.past) :] = pd.DataFrame(values).ffill().to_numpy()
            utc_after = after.tz_convert("UTC") if after.tz is not None else after
            stamps_after = utc_after.tz_localize(None).to_numpy()
            times = np.concatenate([stamps, stamps_after])  # [rows + need]
            matrix = fs.series_matrix(times, np.vstack([raw, later]), statics, frequency)
            known_rows = pd.DataFrame(matrix).ffill().to_numpy()  # lead columns past the end
            matrix[:, fs.known_ahead()] = known_rows[:, fs.known_ahead()]
            scaled = scaler.to_model(sid, matrix, times)
            ahead[sid] = scaled[len(raw) :]  # [need, features]
            scaled = scaled[: len(raw)]
        else:
            scaled = scaler.to_model(sid, raw, stamps)
        tail_ids.append(np.full(len(raw), sid, dtype=object))
        tail_times.append(np.asarray(stamps, dtype="datetime64[ns]"))
        tail_scaled.append(scaled)
        tail_values.append(raw[:, 0])
        last_time[sid] = last
    columns = [SERIES_ID, TIMESTAMP, *features, VALUE_ORIGINAL, "split"]
    if tail_ids:  # one frame of every series' tail rows (built once, not per series)
        frame = pd.DataFrame(np.concatenate(tail_scaled), columns=features)
        when = pd.DatetimeIndex(np.concatenate(tail_times))
        frame.insert(0, TIMESTAMP, when.tz_localize("UTC") if tz is not None else when)
        frame.insert(0, SERIES_ID, np.concatenate(tail_ids))
        frame[VALUE_ORIGINAL] = np.concatenate(tail_values)
        frame["split"] = TEST
    else:
        frame = pd.DataFrame(columns=columns)
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
    stacked = None
    if known:  # [series, need, features]; no series at all (every one routed elsewhere): empty
        found = [ahead[sid] for sid in arrays.series]
        stacked = np.stack(found).astype(np.float32) if found else np.empty((0, need, 0))
        stacked = stacked.reshape(len(arrays.series), need, len(features))
    return Tails(arrays, windows, last_time, skipped, stacked)


def future_times(frequency: Frequency, last: pd.Timestamp, steps: int) -> pd.DatetimeIndex:
    """The ``steps`` timestamps after ``last`` on the series' calendar."""
    return frequency.future(last, steps)


@dataclass(frozen=True)
class ForecastSettings:
    """How far and how wide to forecast; saved with the model (``forecast.json``)."""

    steps: int | None = None  # None: one season of each series' frequency (at least the horizon)
    levels: list[int] = field(default_factory=lambda: [80, 95])
    max_gap_steps: int = 3
    model_name: str = ""
    model_version: str = ""

    def steps_for(self, frequency: Frequency, horizon: int) -> int:
        return self.steps or max(horizon, frequency.season_length())

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "levels": list(self.levels),
            "max_gap_steps": self.max_gap_steps,
            "model_name": self.model_name,
            "model_version": self.model_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ForecastSettings:
        return cls(
            steps=data.get("steps"),
            levels=[int(v) for v in data.get("levels", [80, 95])],
            max_gap_steps=int(data.get("max_gap_steps", 3)),
            model_name=data.get("model_name", ""),
            model_version=str(data.get("model_version", "")),
        )


def settings_of(config: PipelineConfig, model_version: str = "") -> ForecastSettings:
    """The forecast settings of a pipeline config (``forecast.*``)."""
    steps = None if config.forecast.steps == AUTO else int(config.forecast.steps)
    return ForecastSettings(
        steps,
        list(config.forecast.levels),
        config.validation.max_gap_steps,
        config.register.model_name,
        model_version,
    )


def longest_steps(settings: ForecastSettings, scaler: Scaler, horizon: int) -> int:
    """The most steps any series of ``scaler`` is forecast (what intervals must cover)."""
    return max(
        (settings.steps_for(scaler.frequency_of(s), horizon) for s in scaler.series), default=1
    )


FORECAST_COLUMNS = [
    SERIES_ID,
    TIMESTAMP,
    "step",
    "forecast",
    "lower",
    "upper",
    "level",
    "model_version",
    "created_at",
]
# kept beside each forecast to score it later (live accuracy): the naive forecast issued at
# the same origin, and the series' MASE scale
LIVE_COLUMNS = ["last_value", "scale"]


def forecast_frame(
    model: Any,
    spec: ModelSpec,
    scaler: Scaler,
    intervals: Intervals,
    history: pd.DataFrame,
    settings: ForecastSettings,
    model_version: str = "",
    steps: int | None = None,
    created_at: pd.Timestamp | None = None,
    router: Any | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The forecast frame of every usable series in ``history``, and the skipped ones (why).

    One row per series, future step and interval level: ``FORECAST_COLUMNS`` plus
    ``LIVE_COLUMNS``. Timestamps continue each series' calendar. With a ``router``
    (``seriesflow/evaluation/router.py``) each series is forecast by its own model: the LSTM,
    or a classical candidate fit on the series' history in ``history`` (all of it that was
    given, on its calendar); without one, every series by the LSTM.
    """
    created_at = created_at or pd.Timestamp.now(tz="UTC").floor("s")
    known = history[SERIES_ID].astype(str)
    classical_ids, mixed_ids = set(), set()
    if router is not None:
        ids = set(known.unique())  # not set(known): a Python loop over every row
        classical_ids = {s for s in ids if router.model_of(s) not in (LSTM, COMBINATION)}
        mixed_ids = {s for s in ids if router.model_of(s) == COMBINATION}
    lstm_history = history[~known.isin(classical_ids)] if classical_ids else history
    longest = steps or longest_steps(settings, scaler, spec.horizon)
    tails = tail_arrays(lstm_history, scaler, spec, settings.max_gap_steps, longest)
    history = observed_rows(history)  # the classical candidates fit on observations only
    # each classical series' rows, found in one pass (not a scan of the history per series)
    rows_of = (
        dict(tuple(history.groupby(history[SERIES_ID].astype(str), sort=False)))
        if classical_ids or mixed_ids
        else {}
    )
    empty = history.iloc[:0]
    prepared = {  # each classical series on its calendar once (the combination uses it twice)
        sid: classical_series(rows_of.get(sid, empty), sid, scaler)
        for sid in sorted(classical_ids | mixed_ids)
    }
    series = tails.arrays.series
    wanted = {
        sid: steps or settings.steps_for(scaler.frequency_of(sid), spec.horizon) for sid in series
    }
    horizon = max(wanted.values(), default=0)
    paths = None
    if series:
        paths = forecast_paths(model, spec, scaler, tails.windows, horizon, tails.ahead)
    made: dict[str, tuple[np.ndarray, pd.Timestamp, float]] = {}
    for k, sid in enumerate(series):
        last = float(tails.arrays.original[tails.windows.row[k]])
        made[sid] = (paths[k, : wanted[sid]], tails.last_time[sid], last)
    skipped = dict(tails.skipped)
    for sid in sorted(classical_ids):  # as far ahead as the LSTM's series go
        count = steps or settings.steps_for(scaler.frequency_of(sid), spec.horizon)
        found = classical_path(prepared[sid], sid, scaler, router, settings, count)
        if isinstance(found, str):
            skipped[sid] = found
        else:
            made[sid] = found
    for sid in sorted(mixed_ids & set(made)):  # the combination: the LSTM's path + classical
        lstm_path, last_time, last = made[sid]
        paths = [lstm_path]
        for name in (ETS, THETA):
            found = classical_path(
                prepared[sid], sid, scaler, router, settings, len(lstm_path), name
            )
            if isinstance(found, str):  # keep the LSTM's own path: a forecast, not a gap
                break
            paths.append(found[0])
        else:
            made[sid] = (np.mean(np.stack(paths), axis=0), last_time, last)
    # the table: one array per column over every series and level (no frame per series)
    columns = FORECAST_COLUMNS + LIVE_COLUMNS
    if not made:
        return pd.DataFrame(columns=columns), skipped
    ids, stamps, step, point, width, level_of, last_of, scale_of = ([] for _ in range(8))
    calendars: dict[tuple[str, pd.Timestamp, str, int], pd.DatetimeIndex] = {}
    for sid in sorted(made):
        forecast, last_time, last = made[sid]
        count = len(forecast)
        code = scaler.frequency[sid]
        # series ending together share their future calendar
        key = (code, last_time, str(last_time.tz), count)
        if key not in calendars:
            calendars[key] = future_times(scaler.frequency_of(sid), last_time, count)
        times = calendars[key]
        for level in settings.levels:
            ids.append(np.full(count, sid, dtype=object))
            stamps.append(times)
            step.append(np.arange(1, count + 1))
            point.append(np.asarray(forecast, dtype=float))
            width.append(intervals.widths(sid, level, count))
            level_of.append(np.full(count, level))
            last_of.append(np.full(count, last))
            scale_of.append(np.full(count, intervals.scale.get(sid, np.nan)))
    forecast, spread = np.concatenate(point), np.concatenate(width)
    frame = pd.DataFrame(
        {
            SERIES_ID: np.concatenate(ids),
            TIMESTAMP: stamps[0].append(stamps[1:]) if len(stamps) > 1 else stamps[0],
            "step": np.concatenate(step),
            "forecast": forecast,
            "lower": forecast - spread,
            "upper": forecast + spread,
            "level": np.concatenate(level_of),
            "model_version": model_version,
            "created_at": created_at,
            "last_value": np.concatenate(last_of),
            "scale": np.concatenate(scale_of),
        }
    )
    return frame[columns], skipped


def classical_series(
    group: pd.DataFrame, sid: str, scaler: Scaler
) -> tuple[np.ndarray, pd.Series] | str:
    """A series' observed values on its calendar [points] (short gaps filled) and their
    times, for its classical models; or why it cannot have them."""
    if sid not in scaler.series:
        return "unknown to the model (not in its training data)"
    frequency = scaler.frequency_of(sid)
    # the column itself: a zoned column's to_numpy() is an object array of Timestamps,
    # ~45 s for 1,000 series of 10,000 points (measured), where the index view is free
    position, on_grid = frequency.positions(group[TIMESTAMP])
    if not on_grid.all():
        bad = group[TIMESTAMP][~on_grid].iloc[0]
        return f"timestamp {bad} is off the series' {frequency.describe()} calendar"
    if len(np.unique(position)) != len(position):
        return "timestamps repeat"
    order = np.argsort(position, kind="stable")
    values = group[VALUE].to_numpy(dtype=float)[order]
    if len(values) and (np.diff(position[order]) == 1).all() and np.isfinite(values).all():
        # every step of its calendar, every value there (the usual case): nothing to fill
        return values, group[TIMESTAMP].iloc[order].reset_index(drop=True)
    filled = fill_gaps(group[[TIMESTAMP, VALUE]], frequency, [VALUE])
    values = filled[VALUE].to_numpy(dtype=float)
    if not len(values) or not np.isfinite(values).all():
        return "missing values that cannot be interpolated"
    return values, filled[TIMESTAMP]


def classical_path(
    group: pd.DataFrame | tuple[np.ndarray, pd.Series] | str,
    sid: str,
    scaler: Scaler,
    router: Any,
    settings: ForecastSettings,
    steps: int | None,
    name: str | None = None,
) -> tuple[np.ndarray, pd.Timestamp, float] | str:
    """(forecast [steps], last time, last value) of a series its router serves by a classical
    model (``name``, default its router's): from the fit its router kept, run forward over
    ``group`` (the series' rows, or ``classical_series`` of them), else fit on all of it on
    its calendar; or why it cannot."""
    found = classical_series(group, sid, scaler) if isinstance(group, pd.DataFrame) else group
    if isinstance(found, str):
        return found
    values, times = found
    frequency = scaler.frequency_of(sid)
    count = steps or settings.steps_for(frequency, 1)
    name = name or router.model_of(sid)
    season = router.seasons.get(sid) or frequency.season_length()
    kept = router.fit_of(sid, name) if hasattr(router, "fit_of") else None
    since = resume_index(times, kept, frequency) if kept is not None else None
    if since is None:  # no kept fit (or the history does not reach it): fit on the history
        path = classical_forecast(name, values, count, season)
    else:  # the parameters fit at registration, run forward over the history: no refit
        path = forecast_from_fit(kept, values[since:], count)
    return path, pd.Timestamp(times.iloc[-1]), float(values[-1])


def resume_index(times: pd.Series, fit: ClassicalFit, frequency: Frequency) -> int | None:
    """Where in a series' gap-filled ``times`` a kept fit resumes: the point it was fit from
    (its initial state belongs there); None when the history given does not reach back to it
    (a caller's short frame: the model is refit on what was given)."""
    if fit.start_time is None:
        return None
    stamps = pd.to_datetime(times, utc=True)  # a Series: no object array (classical_series)
    position, on_grid = frequency.positions(stamps, pd.Timestamp(fit.start_time))
    found = np.flatnonzero(on_grid & (position == 0))
    if not len(found) or len(times) - found[0] < 2:
        return None
    return int(found[0])


# Calibration forecasts from at most this many origins per split: a few thousand residuals per
# step pin a quantile down; more only costs time on big data.
MAX_CALIBRATION_ORIGINS = 4000


def path_residuals(
    model: Any,
    spec: ModelSpec,
    scaler: Scaler,
    windows: Windows,
    steps: int,
    max_origins: int = MAX_CALIBRATION_ORIGINS,
    seed: int = 0,
) -> pd.DataFrame:
    """Forecast ``steps`` ahead from each window's origin and compare with what followed.

    Rows (``series_id``, ``step``, ``forecast``, ``actual``, ``residual`` = actual - forecast)
    for every step whose actual exists in the same series and was observed (not filled).
    """
    if len(windows) > max_origins:
        pick = np.random.default_rng(seed).choice(len(windows), max_origins, replace=False)
        mask = np.zeros(len(windows), dtype=bool)
        mask[pick] = True
        windows = windows.select(mask)
    columns = [SERIES_ID, "step", "forecast", "actual", "residual"]
    if not len(windows):
        return pd.DataFrame(columns=columns)
    paths = forecast_paths(model, spec, scaler, windows, steps)  # [w, steps]
    return residuals_of(windows, paths)


def residuals_of(windows: Windows, paths: np.ndarray) -> pd.DataFrame:
    """``path_residuals`` for forecasts already made: ``paths`` [windows, steps] from each
    window's origin (any model's: the LSTM's, a classical candidate's, the routed ones)."""
    columns = [SERIES_ID, "step", "forecast", "actual", "residual"]
    steps = paths.shape[1] if paths.ndim == 2 else 0
    if not len(windows) or not steps:
        return pd.DataFrame(columns=columns)
    arrays = windows.arrays
    rows = windows.row[:, None] + np.arange(1, steps + 1)[None, :]  # [w, steps]
    end = (arrays.start + arrays.length)[windows.code]  # exclusive end of each window's series
    valid = rows < end[:, None]
    safe = np.where(valid, rows, 0)
    if arrays.filled is not None:
        valid &= ~arrays.filled[safe]
    actual = np.where(valid, arrays.original[safe], np.nan)
    # the ids as a categorical over the arrays' series: codes, not an object per row
    ids = pd.Categorical.from_codes(np.repeat(windows.code, steps), categories=arrays.series)
    table = pd.DataFrame(
        {
            SERIES_ID: ids,
            "step": np.tile(np.arange(1, steps + 1), len(windows)),
            "forecast": paths.ravel(),
            "actual": actual.ravel(),
        }
    )
    table = table[valid.ravel()].reset_index(drop=True)
    table["residual"] = table["actual"] - table["forecast"]
    return table[columns]


def interval_coverage(residuals: pd.DataFrame, intervals: Intervals, level: int) -> pd.Series:
    """Share of residual rows within the level's half-width, per series (+ ``__all__``)."""
    steps = int(residuals["step"].max()) if len(residuals) else 0
    series, code = series_codes(residuals[SERIES_ID])
    table = intervals.width_rows(series, level, steps)  # [series, steps]
    width = table[code, residuals["step"].to_numpy(dtype=np.int64) - 1] if len(code) else []
    inside = np.abs(residuals["residual"].to_numpy()) <= width  # [rows]
    counts = np.bincount(code, minlength=len(series))
    per = pd.Series(
        np.bincount(code, weights=inside, minlength=len(series)) / np.maximum(counts, 1),
        index=pd.Index(series, dtype=object, name=SERIES_ID),
    )
    per.loc[ALL_SERIES] = inside.mean() if len(inside) else np.nan
    return per


def intervals_from_paths(
    val: Windows,
    val_paths: np.ndarray,
    test: Windows,
    test_paths: np.ndarray,
    levels: list[int],
    scale: dict[str, float],
) -> tuple[Intervals, pd.DataFrame, Intervals]:
    """``fit_intervals`` for paths already made (the registered model's: per series, the
    model that serves it): calibrated on val, coverage measured on test, shipped on both.
    Returns (shipped, coverage table, the intervals calibrated on val alone)."""
    steps = val_paths.shape[1]
    on_val_residuals = residuals_of(val, val_paths)
    on_test_residuals = residuals_of(test, test_paths)
    on_val = calibrate(on_val_residuals, scale, levels, steps, "val")
    columns = {
        f"coverage_{level}": interval_coverage(on_test_residuals, on_val, level) for level in levels
    }
    table = pd.DataFrame(columns)
    both = pd.concat([on_val_residuals, on_test_residuals], ignore_index=True)
    shipped = calibrate(both, scale, levels, steps, "val+test")
    pooled = table.loc[ALL_SERIES] if ALL_SERIES in table.index else pd.Series(dtype=float)
    measured = {str(level): float(pooled.get(f"coverage_{level}", np.nan)) for level in levels}
    return replace(shipped, coverage=measured), table, on_val


def fit_intervals(
    model: Any,
    spec: ModelSpec,
    scaler: Scaler,
    windows: Windows,
    steps: int,
    levels: list[int],
    scale: dict[str, float],
) -> tuple[Intervals, pd.DataFrame]:
    """Intervals for the registered model, and their coverage measured honestly.

    Calibrated on the validation windows, the intervals' coverage is measured on the
    test windows (per level, per series and pooled). The intervals shipped with the
    model are then calibrated on validation and test residuals together (both periods
    the model never fit), and carry the measured coverage.
    """
    val = path_residuals(model, spec, scaler, windows.subset(VAL), steps)
    test = path_residuals(model, spec, scaler, windows.subset(TEST), steps)
    on_val = calibrate(val, scale, levels, steps, "val")
    columns = {f"coverage_{level}": interval_coverage(test, on_val, level) for level in levels}
    table = pd.DataFrame(columns)
    shipped = calibrate(pd.concat([val, test], ignore_index=True), scale, levels, steps, "val+test")
    pooled = table.loc[ALL_SERIES] if ALL_SERIES in table.index else pd.Series(dtype=float)
    measured = {str(level): float(pooled.get(f"coverage_{level}", np.nan)) for level in levels}
    return replace(shipped, coverage=measured), table
