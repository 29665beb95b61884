import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.preprocessing import MinMaxScaler

from seriesflow.config.pipeline import PipelineConfig, SplitConfig
from seriesflow.data.frequency import Frequency, fill_gaps
from seriesflow.data.schema import (
    FILLED,
    SERIES_ID,
    SPLIT,
    TEST,
    TIMESTAMP,
    TRAIN,
    VAL,
    VALUE,
    VALUE_ORIGINAL,
)
from seriesflow.model.normalize import (
    merge_scalers,
    normalize_chunks,
    normalize_series,
    split_sizes,
)
from seriesflow.model.scaler import Scaler
from tests.factories import series_frame, windows_of


def test_split_sizes_are_chronological_fractions():
    assert split_sizes(100, SplitConfig(val_fraction=0.15, test_fraction=0.15)) == (70, 15, 15)
    assert split_sizes(10, SplitConfig(val_fraction=0.1, test_fraction=0.1)) == (8, 1, 1)
    with pytest.raises(ValueError, match="cannot be split"):
        split_sizes(2, SplitConfig())


def test_scaler_is_fit_on_the_training_part_only():
    frame = series_frame(series=("a", "b"), n=200, covariate="temp")
    # make the test part leave the training range: a leak would squash it back into [0, 1]
    frame.loc[frame.groupby(SERIES_ID).cumcount() >= 170, VALUE] += 100
    cfg = PipelineConfig.model_validate(
        {
            "columns": {"covariates": ["temp"]},
            "features": {"calendar": False},  # the value and temp columns only
            "normalize": {"method": "minmax"},
            "window": {"horizon": 1},  # the split by fractions alone
        }
    )
    normalized, scaler = normalize_series(frame, cfg)
    for sid in ("a", "b"):
        part = normalized[normalized[SERIES_ID] == sid]
        raw = frame[frame[SERIES_ID] == sid][[VALUE, "temp"]].to_numpy()
        n_train = (part[SPLIT] == TRAIN).sum()
        reference = MinMaxScaler(feature_range=(0, 1)).fit(raw[:n_train])
        np.testing.assert_allclose(part[[VALUE, "temp"]].to_numpy(), reference.transform(raw))
        np.testing.assert_allclose(scaler.center[sid], reference.data_min_)
        np.testing.assert_allclose(scaler.scale[sid], reference.data_max_ - reference.data_min_)
        assert part.loc[part[SPLIT] == TEST, VALUE].min() > 1.0  # not refit on the test part
        np.testing.assert_allclose(part[VALUE_ORIGINAL], raw[:, 0])
        assert part[SPLIT].tolist() == [TRAIN] * 140 + [VAL] * 30 + [TEST] * 30


def test_last_value_scaling_uses_the_training_changes_and_minmax_covariates():
    frame = series_frame(series=("a",), n=100, covariate="temp")
    frame.loc[frame.index >= 85, VALUE] += 100  # the test part leaves the training range
    cfg = PipelineConfig.model_validate(
        {
            "columns": {"covariates": ["temp"]},
            "normalize": {"method": "last_value"},
            "window": {"horizon": 1},
        }
    )
    normalized, scaler = normalize_series(frame, cfg)
    train = frame[[VALUE, "temp"]].to_numpy()[:70]
    center, scale = scaler.affine("a")
    assert center[0] == pytest.approx(train[:, 0].mean())
    assert scale[0] == pytest.approx(np.diff(train[:, 0]).std())  # one-step changes
    assert (center[1], scale[1]) == pytest.approx((train[:, 1].min(), np.ptp(train[:, 1])))
    np.testing.assert_allclose(normalized[VALUE], (frame[VALUE] - center[0]) / scale[0], rtol=1e-6)
    assert scaler.frequency == {"a": "h"} and scaler.method == "last_value"


def test_scaler_json_round_trip_and_inverse(tmp_path):
    frame = series_frame(n=100)
    cfg = PipelineConfig.model_validate({"normalize": {"method": "last_value"}})
    normalized, scaler = normalize_series(frame, cfg)
    text = json.dumps(scaler.to_json())
    loaded = Scaler.from_json(json.loads(text))
    part = normalized[normalized[SERIES_ID] == "a"]
    back = loaded.inverse("a", part[VALUE].to_numpy())
    np.testing.assert_allclose(back, part[VALUE_ORIGINAL].to_numpy())
    assert loaded.val_start["a"] == part.loc[part[SPLIT] == VAL, TIMESTAMP].iloc[0].isoformat()
    with pytest.raises(KeyError, match="zz"):
        loaded.transform("zz", np.zeros((1, 1)))


def test_short_gaps_are_filled_by_time_interpolation():
    frame = series_frame(series=("a",), n=10)
    gappy = frame.drop(index=[4, 5]).reset_index(drop=True)  # two missing hours
    filled = fill_gaps(gappy.drop(columns=[SERIES_ID]), Frequency("h"), [VALUE])
    assert len(filled) == 10
    assert filled[FILLED].tolist() == [False] * 4 + [True, True] + [False] * 4
    v3, v6 = frame[VALUE].iloc[3], frame[VALUE].iloc[6]
    np.testing.assert_allclose(
        filled[VALUE].iloc[4:6], [v3 + (v6 - v3) / 3, v3 + 2 * (v6 - v3) / 3]
    )


def test_inputs_are_not_mutated():
    frame = series_frame(n=50)
    before = frame.copy()
    normalize_series(frame, PipelineConfig())
    pd.testing.assert_frame_equal(frame, before)


def test_label_column_is_carried_unscaled_and_labels_windows():
    from seriesflow.data.schema import CLASSIFICATION, LABEL

    frame = series_frame(series=("a",), n=60)
    frame[LABEL] = np.where(np.arange(60) % 3 == 0, "peak", "calm")
    gappy = frame.drop(index=[30])  # the filled step keeps the class before it
    cfg = PipelineConfig.model_validate({"columns": {"label": "state"}})
    normalized, _ = normalize_series(gappy, cfg)
    assert normalized[LABEL].tolist()[:30] == frame[LABEL].tolist()[:30]
    assert normalized[LABEL].iloc[30] == frame[LABEL].iloc[29]
    windows = windows_of(normalized, [VALUE], timesteps=6, task=CLASSIFICATION)
    assert windows.labels.tolist() == normalized[LABEL].to_numpy()[windows.origin + 1].tolist()


def test_calendar_series_are_filled_on_their_own_calendar_all_at_once():
    """Month starts and business days with gaps, normalized together: each series as it
    would be alone (its calendar's timestamps, time interpolation), no leak between them."""
    monthly = pd.date_range("2019-01-01", periods=48, freq="MS", tz="UTC")
    business = pd.date_range("2024-01-01 09:00", periods=60, freq="B", tz="UTC")
    frame = pd.concat(
        [
            pd.DataFrame({SERIES_ID: "m", TIMESTAMP: monthly, VALUE: np.arange(48.0) ** 1.5}),
            pd.DataFrame({SERIES_ID: "b", TIMESTAMP: business, VALUE: np.sin(np.arange(60.0))}),
        ]
    )
    gappy = frame.drop(index=[5, 6, 20]).sample(frac=1, random_state=0)  # m misses 3 months
    normalized, scaler = normalize_series(gappy, PipelineConfig())
    assert scaler.frequency == {"b": "B", "m": "MS"}
    for sid, code in scaler.frequency.items():
        one = gappy[gappy[SERIES_ID] == sid].drop(columns=[SERIES_ID])
        reference = fill_gaps(one, Frequency(code), [VALUE])
        mine = normalized[normalized[SERIES_ID] == sid]
        assert mine[TIMESTAMP].tolist() == reference[TIMESTAMP].tolist()
        np.testing.assert_allclose(mine[VALUE_ORIGINAL], reference[VALUE], rtol=1e-12)
        assert mine[FILLED].tolist() == reference[FILLED].tolist()
    assert normalized.loc[normalized[SERIES_ID] == "m", FILLED].sum() == 3
    assert normalized.loc[normalized[SERIES_ID] == "b", TIMESTAMP].dt.dayofweek.max() == 4


def test_val_and_test_get_a_horizon_each_where_the_series_has_room():
    cfg = SplitConfig()  # 15% each
    assert split_sizes(48, cfg, horizon=18) == (12, 18, 18)  # M3's shortest monthly series
    assert split_sizes(200, cfg, horizon=18) == (140, 30, 30)  # the fractions are larger
    assert split_sizes(16, cfg, horizon=8) == (12, 2, 2)  # no room: the fractions alone


def monthly(values: np.ndarray, sid: str = "m") -> pd.DataFrame:
    times = pd.date_range("2001-01-01", periods=len(values), freq="MS", tz="UTC")
    return pd.DataFrame({"series_id": sid, "timestamp": times, "value": values})


def test_seasonal_log_divides_by_calendar_indices_fit_on_train_and_logs():
    t = np.arange(120)
    values = (100 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12))  # multiplicative season
    frame = pd.concat([monthly(values), monthly(values - 200, "neg")], ignore_index=True)
    cfg = PipelineConfig.model_validate({"window": {"horizon": 6}})
    normalized, scaler = normalize_series(frame, cfg)
    assert scaler.method == "seasonal_log" and scaler.logged == {"m": True}
    index = np.asarray(scaler.seasonal["m"])
    assert index.mean() == pytest.approx(1.0) and index.max() > 1.2 and index.min() < 0.8
    mine = normalized[normalized["series_id"] == "m"]
    times = mine["timestamp"].dt.tz_localize(None).to_numpy()
    expected = np.log(values / scaler.factors("m", times))
    np.testing.assert_allclose(mine["value"].to_numpy(), expected, rtol=1e-9)
    # the indices come from the training part only: a changed test part changes nothing
    later = values.copy()
    later[-18:] *= 3
    _, again = normalize_series(monthly(later), cfg)
    np.testing.assert_allclose(again.seasonal["m"], scaler.seasonal["m"])
    # a series with values <= 0 cannot be logged: scaled as last_value instead
    assert "neg" not in scaler.logged and "neg" not in scaler.seasonal
    # and back: restore continues the calendar after each origin
    origin = np.array([times[59]])
    back = scaler.restore(np.array(["m"]), expected[None, 60:66], origin)
    np.testing.assert_allclose(back[0], values[60:66], rtol=1e-9)


def test_the_served_scaler_refits_the_seasons_on_every_point(tmp_path):
    from seriesflow.model.normalize import refit_seasons
    from seriesflow.model.windows import SeriesArrays

    t = np.arange(60)  # 60 months: the training part (42) holds under three seasons
    values = (100 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12))
    cfg = PipelineConfig.model_validate({"window": {"horizon": 6}})
    normalized, scaler = normalize_series(monthly(values), cfg)
    assert scaler.logged == {"m": True} and "m" not in scaler.seasonal  # too short on train
    arrays = SeriesArrays.from_frame(normalized, ["value"])
    served, refit = refit_seasons(scaler, arrays)
    assert len(served.seasonal["m"]) == 12  # five seasons in all: now seasonal
    times = arrays.times
    np.testing.assert_allclose(refit[:, 0], np.log(values / served.factors("m", times)), rtol=1e-5)
    assert scaler.seasonal == {}  # the evaluated model's scaler is left as it was
    # the train task's way: the values in a memory-mapped file, equal to the bit
    again, mapped = refit_seasons(scaler, arrays, out=tmp_path / "final_values.npy")
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.float32
    np.testing.assert_array_equal(mapped, refit)
    np.testing.assert_array_equal(np.load(tmp_path / "final_values.npy"), refit)
    assert again.seasonal == served.seasonal


@pytest.mark.parametrize("in_order", [False, True])
@pytest.mark.parametrize("chunk_rows", [1, 250, 700, 10**9])
def test_normalizing_a_chunk_of_series_at_a_time_equals_all_at_once(chunk_rows, in_order):
    """The normalize task's path: whole series a chunk at a time from an Arrow table (ids
    dictionary-encoded, rows shuffled, or in order as a table of several record batches),
    with the plan (horizon, calendar cycles, statics' scale) fit across every chunk.
    Hourly and daily series together, so a chunk holding only one of them would pick
    another horizon and other calendar columns on its own."""
    hourly = series_frame(series=("h1", "h2", "h3"), n=300, freq="h")
    daily = series_frame(series=("d1", "d2"), n=200, freq="D", seed=3)
    frame = pd.concat([hourly, daily], ignore_index=True)
    frame["size"] = frame[SERIES_ID].map({"h1": 1.0, "h2": 2.0, "h3": 4.0, "d1": 8.0, "d2": 3.0})
    frame = frame.drop(index=[10, 11, 12, 650]).sample(frac=1.0, random_state=0)  # gaps
    cfg = PipelineConfig.model_validate({"columns": {"static": ["size"]}})
    if in_order:
        frame = frame.sort_values([SERIES_ID, TIMESTAMP])
    whole, scaler = normalize_series(frame, cfg)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(0, SERIES_ID, table[SERIES_ID].dictionary_encode())
    if in_order:  # record batches of 97 rows: chunk edges inside series
        table = pa.Table.from_batches(table.to_batches(max_chunksize=97))
        assert table[SERIES_ID].num_chunks > 10
    parts = list(normalize_chunks(table, cfg, chunk_rows))
    for part, part_scaler in parts:  # whole series, and no more rows than asked unless one
        assert set(part[SERIES_ID]) == set(part_scaler.series)
        assert len(part) <= chunk_rows or part[SERIES_ID].nunique() == 1
    assert len(parts) == {1: 5, 250: 5, 700: 2, 10**9: 1}[chunk_rows]
    chunked = pd.concat([part for part, _ in parts], ignore_index=True)
    pd.testing.assert_frame_equal(chunked, whole)
    assert merge_scalers([s for _, s in parts]).to_json() == scaler.to_json()
    assert {"value", "static:size", "calendar:hour_sin", "calendar:dow_sin"} <= set(scaler.columns)
