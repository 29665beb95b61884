"""Forecasting the future: recursive paths by hand, calendar timestamps, skipped series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.data.schema import SERIES_ID, TIMESTAMP, VALUE
from seriesflow.model.forecasting import (
    ForecastSettings,
    forecast_frame,
    forecast_paths,
    tail_arrays,
)
from seriesflow.model.intervals import Intervals
from seriesflow.model.saved_model import ModelSpec
from seriesflow.model.scaler import Scaler


def linear_model(weights: list[list[float]]):
    """A model whose output is a fixed linear map of the (flattened) input window."""
    import keras

    kernel = np.array(weights, dtype="float32")  # [timesteps, horizon]
    model = keras.Sequential(
        [
            keras.Input((kernel.shape[0], 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(kernel.shape[1]),
        ]
    )
    model.set_weights([kernel, np.zeros(kernel.shape[1], "float32")])
    return model


def identity_scaler(series=("a",), frequency="h", method="minmax") -> Scaler:
    def each(value):
        return {s: value for s in series}

    return Scaler(
        ["value"], each([0.0]), each([1.0]), each(frequency), each(""), each(""), method=method
    )


def history(values: dict[str, list[float]], freq: str = "h", start="2026-01-01") -> pd.DataFrame:
    parts = [
        pd.DataFrame(
            {
                SERIES_ID: sid,
                TIMESTAMP: pd.date_range(start, periods=len(v), freq=freq, tz="UTC"),
                VALUE: v,
            }
        )
        for sid, v in values.items()
    ]
    return pd.concat(parts, ignore_index=True)


def test_recursive_forecasts_feed_each_forecast_back_by_hand():
    # y[t+1] = 0.5 * y[t-1] + 0.25 * y[t]; from (4, 8): 4, then (8, 4) -> 5, then (4, 5) -> 3.25
    model = linear_model([[0.5], [0.25]])
    spec = ModelSpec("regression", 2, ["value"], 1)
    tails = tail_arrays(history({"a": [1.0, 4.0, 8.0]}), identity_scaler(), spec)
    paths = forecast_paths(model, spec, identity_scaler(), tails.windows, steps=3)
    np.testing.assert_allclose(paths, [[4.0, 5.0, 3.25]], rtol=1e-6)


def test_direct_blocks_of_the_horizon_then_recursion_by_hand():
    # horizon 2: (y1, y2) = (x[-1] + 1, x[-2] + x[-1]); from (2, 3): (4, 5); then from (4, 5):
    # (6, 9); steps=3 keeps 4, 5, 6
    model = linear_model([[0.0, 1.0], [1.0, 1.0]])
    model.set_weights([np.array([[0.0, 1.0], [1.0, 1.0]], "float32"), np.array([1.0, 0.0], "f")])
    spec = ModelSpec("regression", 2, ["value"], 2)
    tails = tail_arrays(history({"a": [2.0, 3.0]}), identity_scaler(), spec)
    paths = forecast_paths(model, spec, identity_scaler(), tails.windows, steps=3)
    np.testing.assert_allclose(paths, [[4.0, 5.0, 6.0]], rtol=1e-6)


def test_last_value_windows_forecast_changes_from_the_last_value():
    # relative to the last input: inputs (x[-2] - x[-1], 0); output = last change, so the
    # recursion continues the last step: 10, 13 -> 16, 19, 22 (scale 2, center 5: units cancel)
    model = linear_model([[-1.0], [0.0]])
    spec = ModelSpec("regression", 2, ["value"], 1, normalization="last_value")
    scaler = Scaler(["value"], {"a": [5.0]}, {"a": [2.0]}, {"a": "h"}, {"a": ""}, {"a": ""},
                    method="last_value")  # fmt: skip
    tails = tail_arrays(history({"a": [10.0, 13.0]}), scaler, spec)
    np.testing.assert_allclose(
        forecast_paths(model, spec, scaler, tails.windows, 3), [[16, 19, 22]]
    )


def test_forecast_frame_continues_each_calendar_with_interval_rows():
    model = linear_model([[0.0], [1.0]])  # the last value
    spec = ModelSpec("regression", 2, ["value"], 1)
    scaler = identity_scaler(("m", "q"), "MS")
    scaler = Scaler(["value"], scaler.center, scaler.scale, {"m": "MS", "q": "QS-JAN"},
                    scaler.val_start, scaler.test_start)  # fmt: skip
    frame = pd.concat(
        [history({"m": [1.0, 2.0, 3.0]}, "MS", "2024-01-01"), history({"q": [5.0, 6.0]}, "QS")]
    )
    intervals = Intervals([80, 95], 2, {}, {"80": [1.0, 2.0], "95": [2.0, 3.0]},
                          {"m": 1.0, "q": 0.5})  # fmt: skip
    settings = ForecastSettings(steps=None, levels=[80, 95])
    out, skipped = forecast_frame(model, spec, scaler, intervals, frame, settings, "7")
    assert not skipped
    m = out[(out[SERIES_ID] == "m") & (out["level"] == 80)]
    # monthly: auto steps = 12 months, from April 2024, on month starts
    assert len(m) == 12 and m[TIMESTAMP].iloc[0] == pd.Timestamp("2024-04-01", tz="UTC")
    assert m[TIMESTAMP].iloc[-1] == pd.Timestamp("2025-03-01", tz="UTC")
    assert (m["forecast"] == 3.0).all() and (m["last_value"] == 3.0).all()
    # pooled half-widths x the series' scale, then sqrt growth beyond the calibrated 2 steps
    np.testing.assert_allclose(m["upper"].iloc[:3] - 3.0, [1.0, 2.0, 2.0 * np.sqrt(3 / 2)])
    q = out[(out[SERIES_ID] == "q") & (out["level"] == 95)]
    assert q[TIMESTAMP].tolist() == list(
        pd.date_range("2026-07-01", periods=4, freq="QS", tz="UTC")
    )
    np.testing.assert_allclose(q["upper"].iloc[:2] - 6.0, [1.0, 1.5])
    assert set(out["model_version"]) == {"7"} and set(out["level"]) == {80, 95}


def test_series_the_model_cannot_forecast_are_skipped_with_the_reason():
    model = linear_model([[0.0], [0.0], [1.0]])
    spec = ModelSpec("regression", 3, ["value"], 1)
    scaler = identity_scaler(("a", "short", "odd"))
    frame = history({"a": [1.0, 2.0, 3.0], "short": [1.0, 2.0], "new": [1.0, 2.0, 3.0]})
    odd = history({"odd": [1.0, 2.0, 3.0]})
    odd.loc[1, TIMESTAMP] += pd.Timedelta("30min")
    tails = tail_arrays(pd.concat([frame, odd], ignore_index=True), scaler, spec)
    assert tails.arrays.series == ["a"]
    assert "unknown to the model" in tails.skipped["new"]
    assert "too short: 2 points" in tails.skipped["short"] and "needs 3" in tails.skipped["short"]
    assert "off the series' h" in tails.skipped["odd"]
    with pytest.raises(ValueError, match="at least 1"):
        forecast_paths(model, spec, scaler, tails.windows, 0)


# --------------------------------------------------------------------------- batched = per series

BATCH_LENGTHS = {"a": 150, "b": 120, "c": 96}  # different lengths, so different tails


def covariate_frame() -> pd.DataFrame:
    """Hourly series of different lengths with a past (temp) and a future (promo) covariate,
    and future rows (promo known, value empty) for the forecast steps."""
    parts = []
    for k, (sid, n) in enumerate(BATCH_LENGTHS.items()):
        rng = np.random.default_rng([11, k])
        total = n + 6  # six future rows
        i = np.arange(total)
        promo = rng.standard_normal(total)
        temp = 10 + 5 * np.sin(2 * np.pi * i / 24 + k)
        value = 30 + 4 * k + 6 * np.sin(2 * np.pi * i / 24) + 2 * promo + 0.1 * temp
        value = value + rng.normal(0, 0.3, total)
        start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(hours=7 * k)
        frame = pd.DataFrame(
            {
                SERIES_ID: sid,
                TIMESTAMP: pd.date_range(start, periods=total, freq="h"),
                VALUE: value,
                "temp": temp,
                "promo": promo,
            }
        )
        frame.loc[frame.index[n:], [VALUE, "temp"]] = np.nan  # the future: promo only
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def covariate_model():
    """A tiny LSTM with a past and a future covariate and calendar features (one epoch)."""
    from seriesflow.config.pipeline import PipelineConfig
    from seriesflow.model.lstm import seed_everything
    from seriesflow.model.normalize import normalize_series
    from seriesflow.model.training import fit_windows
    from seriesflow.model.windows import SeriesArrays, windows_from_table, windows_table

    cfg = PipelineConfig.model_validate(
        {
            "columns": {"past": ["temp"], "future": ["promo"]},
            "normalize": {"method": "minmax"},
            "window": {"timesteps": 8, "horizon": 2},
            "train": {"units": 8, "epochs": 1, "batch_size": 64, "jit_compile": False},
        }
    )
    observed = covariate_frame().dropna(subset=[VALUE])
    normalized, scaler = normalize_series(observed, cfg)
    arrays = SeriesArrays.from_frame(normalized, list(scaler.columns))
    data = windows_from_table(windows_table(arrays, 8, 2), arrays)
    seed_everything(0)
    fitted = fit_windows(data, cfg.train, scaler)
    return fitted, scaler


def test_all_series_at_once_equal_each_series_alone(covariate_model):
    """The batched forecast (one model call per block of horizon steps for every series) is
    the per-series forecast: series of different lengths, past and future covariates,
    calendar features, recursive steps beyond the horizon, and through a router with kept
    classical fits."""
    from seriesflow.data.frequency import Frequency
    from seriesflow.data.schema import COMBINATION, ETS, LSTM, THETA
    from seriesflow.evaluation.router import Router
    from seriesflow.model.classical import fit_classical

    fitted, scaler = covariate_model
    assert "future:promo" in fitted.spec.features and "temp" in fitted.spec.features
    assert len(fitted.spec.features) > 3  # value, temp, promo + calendar columns
    frame = covariate_frame()
    fits = {}
    for sid, n in BATCH_LENGTHS.items():  # fit on each series' first 80 points, kept
        values = frame[frame[SERIES_ID] == sid][VALUE].to_numpy()[:n]
        first = frame[frame[SERIES_ID] == sid][TIMESTAMP].iloc[0]
        fits[sid] = {}
        for name in (ETS, THETA):
            fit = fit_classical(name, values, 80, 24, max_points=72)
            start_time = (first + pd.Timedelta(hours=fit.start)).isoformat()
            fits[sid][name] = type(fit)(fit.name, fit.form, 24, fit.start, fit.state, start_time)
    choice = {"a": LSTM, "b": ETS, "c": COMBINATION}
    seasons = dict.fromkeys(choice, 24)
    router = Router(choice, {}, (LSTM, COMBINATION, ETS, THETA), seasons, COMBINATION)
    router = router.with_fits(fits)
    assert set(router.fits) == {"b", "c"} and set(router.fits["b"]) == {ETS}
    intervals = Intervals([80], 2, {}, {"80": [1.0, 1.0]}, dict.fromkeys(choice, 1.0))
    settings = ForecastSettings(steps=5, levels=[80])
    for served in (None, router):
        together, skipped = forecast_frame(
            fitted.model, fitted.spec, scaler, intervals, frame, settings, router=served
        )
        assert skipped == {} and set(together[SERIES_ID]) == set(BATCH_LENGTHS)
        for sid in BATCH_LENGTHS:
            alone, _ = forecast_frame(
                fitted.model,
                fitted.spec,
                scaler,
                intervals,
                frame[frame[SERIES_ID] == sid],
                settings,
                router=served,
            )
            mine = together[together[SERIES_ID] == sid].reset_index(drop=True)
            assert len(mine) == len(alone) == 5
            np.testing.assert_allclose(mine["forecast"], alone["forecast"], rtol=0, atol=1e-5)
            assert (mine[TIMESTAMP] == alone[TIMESTAMP]).all()
    # the kept fit, not a refit: series b's forecast is the fit run forward from its start
    from seriesflow.model.classical import forecast_from_fit

    b = frame[frame[SERIES_ID] == "b"][VALUE].to_numpy()[: BATCH_LENGTHS["b"]]
    kept = router.fits["b"][ETS]
    routed_b = together[together[SERIES_ID] == "b"]["forecast"].to_numpy()
    np.testing.assert_allclose(routed_b, forecast_from_fit(kept, b[kept.start :], 5), atol=1e-9)
    assert Frequency("h").season_length() == 24


# ------------------------------------------------------------- tail arrays: all series = reference


def reference_tails(history, scaler, spec, max_gap_steps=None, steps=None):
    """The per-series loop ``tail_arrays`` was before it worked on all series at once (one
    groupby, sort, gap fill and frame per series), kept as the reference: (rows per series
    [timesteps, features] scaled, original values, last time, rows after, skipped)."""
    from seriesflow.data.frequency import fill_gaps
    from seriesflow.data.schema import VALUE_ORIGINAL
    from seriesflow.model.features import (
        first_missing,
        is_known_ahead,
        missing_future_error,
        static_values,
    )

    TEST = "test"
    features = list(spec.features)
    fs = scaler.feature_spec
    raw_columns = fs.raw  # value, past, future: what the frame's rows carry
    known = any(is_known_ahead(c) for c in features)
    wanted = max(int(steps or spec.horizon), 1)  # forecast steps that need future values
    need = -(-wanted // spec.horizon) * spec.horizon if known else 0  # rows after the last
    skipped: dict[str, str] = {}
    parts, last_time, ahead = [], {}, {}
    for sid, group in history.groupby(SERIES_ID, sort=True):
        sid = str(sid)
        if sid not in scaler.series or (spec.per_series and sid not in spec.series):
            skipped[sid] = "unknown to the model (not in its training data)"
            continue
        absent = [c for c in [*fs.future, *fs.static] if c not in group.columns]
        if absent:
            raise ValueError(
                f"series '{sid}': the input has no column(s) {absent} (the model's "
                f"columns.future {fs.future} and columns.static {fs.static})"
            )
        missing = [c for c in raw_columns if c not in group.columns]
        if missing:
            skipped[sid] = f"missing column(s) {missing}"
            continue
        frequency = scaler.frequency_of(sid)
        group = group.sort_values(TIMESTAMP)
        statics = fs.static_row(sid, static_values(group, sid, fs.static))
        observed = group[VALUE].notna().to_numpy()
        if not observed.any():
            skipped[sid] = "no observed value"
            continue
        end = int(np.flatnonzero(observed)[-1]) + 1
        future_rows, group = group.iloc[end:], group.iloc[:end]
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
        keep = keep[[TIMESTAMP, *raw_columns]]
        filled = fill_gaps(keep, frequency, raw_columns)
        if filled[raw_columns].isna().to_numpy().any():
            skipped[sid] = "missing values that cannot be interpolated"
            continue
        tail = filled.iloc[-spec.timesteps :]
        needed = spec.min_inputs or spec.timesteps  # fewer: the first value is repeated
        if len(tail) < needed:
            skipped[sid] = (
                f"too short: {len(tail)} points on its calendar, the model needs "
                f"{needed} (its input length {spec.timesteps}, at least {needed} observed)"
            )
            continue
        if scaler.logged.get(sid) and (tail[VALUE].to_numpy(dtype=float) <= 0).any():
            skipped[sid] = "a value <= 0: the model works on logs of positive values; retrain"
            continue
        raw = tail[raw_columns].to_numpy(dtype=float)
        stamps = pd.to_datetime(tail[TIMESTAMP], utc=True).dt.tz_localize(None).to_numpy()
        last = pd.Timestamp(tail[TIMESTAMP].iloc[-1])
        if fs.columns() != raw_columns:  # lead columns, calendar, holidays, statics
            after = frequency.future(last, need)  # [need] grid times after the last observation
            later = np.full((need, len(raw_columns)), np.nan)
            if fs.future:
                given = future_rows.assign(**{TIMESTAMP: pd.to_datetime(future_rows[TIMESTAMP])})
                given = given.drop_duplicates(TIMESTAMP, keep="last").set_index(TIMESTAMP)
                values = given[fs.future].reindex(after).to_numpy(dtype=float)  # [need, future]
                gap = first_missing(sid, after[:wanted], values[:wanted], fs.future)
                if gap is not None:
                    raise ValueError(missing_future_error(sid, gap[0], gap[1], last))
                later[:, 1 + len(fs.past) :] = pd.DataFrame(values).ffill().to_numpy()
            utc = after.tz_convert("UTC") if after.tz is not None else after
            stamps_after = utc.tz_localize(None).to_numpy()
            times = np.concatenate([stamps, stamps_after])  # [rows + need]
            matrix = fs.series_matrix(times, np.vstack([raw, later]), statics, frequency)
            known_rows = pd.DataFrame(matrix).ffill().to_numpy()  # lead columns past the end
            matrix[:, fs.known_ahead()] = known_rows[:, fs.known_ahead()]
            scaled = scaler.to_model(sid, matrix, times)
            ahead[sid] = scaled[len(raw) :]  # [need, features]
            scaled = scaled[: len(raw)]
        else:
            scaled = scaler.to_model(sid, raw, stamps)
        frame = pd.DataFrame(scaled, columns=features)
        frame.insert(0, TIMESTAMP, tail[TIMESTAMP].to_numpy())
        frame.insert(0, SERIES_ID, sid)
        frame[VALUE_ORIGINAL] = raw[:, 0]
        frame["split"] = TEST
        parts.append(frame)
        last_time[sid] = pd.Timestamp(tail[TIMESTAMP].iloc[-1])
    found = dict(zip(last_time, parts, strict=True))
    return found, last_time, ahead, skipped


def test_tail_arrays_of_all_series_equal_the_per_series_reference(covariate_model):
    """Series of different lengths, one with a gap (interpolated), one with too long a gap,
    one too short, one unknown, with a past and a future covariate and calendar columns: the
    tail arrays built for all series at once are the per-series reference's, value for value."""
    from seriesflow.data.schema import VALUE_ORIGINAL

    fitted, scaler = covariate_model
    spec = fitted.spec
    frame = covariate_frame()
    frame = frame.drop(frame.index[(frame[SERIES_ID] == "a") & frame.index.isin([145, 147])])
    frame = frame.drop(frame.index[(frame[SERIES_ID] == "b") & frame.index.isin(range(270, 275))])
    short = frame[frame[SERIES_ID] == "c"].iloc[-11:].assign(**{SERIES_ID: "c"})
    frame = pd.concat([frame[frame[SERIES_ID] != "c"], short], ignore_index=True)
    unknown = frame[frame[SERIES_ID] == "a"].assign(**{SERIES_ID: "z"})
    frame = pd.concat([frame, unknown], ignore_index=True).sample(frac=1, random_state=3)
    # "a": two one-step gaps in its last rows; "b": a five-step gap; "c": 5 observed points
    tails = tail_arrays(frame, scaler, spec, max_gap_steps=3, steps=5)
    parts, last_time, ahead, skipped = reference_tails(frame, scaler, spec, 3, 5)
    assert tails.skipped == skipped
    assert set(skipped) == {"b", "c", "z"} and "a gap of 5 steps" in skipped["b"]
    assert "too short: 5 points" in skipped["c"] and "unknown" in skipped["z"]
    assert tails.arrays.series == ["a"] == list(parts)
    a = tails.arrays
    rows = slice(int(a.start[0]), int(a.start[0] + a.length[0]))
    assert a.length[0] == spec.timesteps == len(parts["a"])
    expected = parts["a"][list(spec.features)].to_numpy(dtype=float)
    np.testing.assert_allclose(a.values[rows], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.original[rows], parts["a"][VALUE_ORIGINAL], rtol=0, atol=1e-9)
    times = pd.to_datetime(parts["a"][TIMESTAMP], utc=True).dt.tz_localize(None).to_numpy()
    assert (a.times[rows] == times.astype("datetime64[us]")).all()
    assert tails.last_time == last_time
    assert last_time["a"] == pd.Timestamp("2026-01-07 05:00", tz="UTC")
    np.testing.assert_allclose(tails.ahead[0], ahead["a"], rtol=0, atol=1e-6)
    # the gap was filled: the interpolated rows sit halfway between their neighbours
    values = a.original[rows]
    assert np.isclose(values[-5], (values[-6] + values[-4]) / 2)
