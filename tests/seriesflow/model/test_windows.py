"""Window: offsets against a hand-computed example, splits, covariates, class labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.data.schema import (
    CLASSIFICATION,
    FILLED,
    LABEL,
    SERIES_ID,
    SPLIT,
    TIMESTAMP,
    VALUE,
    VALUE_ORIGINAL,
)
from seriesflow.model.windows import (
    DIRECTION_CLASSES,
    direction_labels,
    make_windows,
    window_origins,
)
from tests.factories import START, windows_of

TRAIN, VAL, TEST = 0, 1, 2


def hand_series() -> tuple[np.ndarray, np.ndarray]:
    """v[i] = (i, 10 i): 10 steps; train 0..5, val 6..7, test 8..9."""
    steps = np.arange(10, dtype=float)
    values = np.stack([steps, 10 * steps], axis=1)  # [10, 2]
    codes = np.array([TRAIN] * 6 + [VAL] * 2 + [TEST] * 2)
    return values, codes


def test_make_windows_matches_hand_computed_offsets():
    values, codes = hand_series()
    x, y, w = make_windows(values, codes, timesteps=3, horizon=2)
    # origins 2..7; targets (o+1, o+2). Origins 4 (targets 5|6) and 6 (7|8) straddle a
    # split boundary and are dropped.
    assert w.origin.tolist() == [2, 3, 5, 7]
    assert w.split.tolist() == [TRAIN, TRAIN, VAL, TEST]
    assert x.shape == (4, 3, 2)  # [windows, timesteps, features]
    assert x[0].tolist() == [[0, 0], [1, 10], [2, 20]]
    assert x[3].tolist() == [[5, 50], [6, 60], [7, 70]]
    assert y.tolist() == [[3, 4], [4, 5], [6, 7], [8, 9]]  # the target is feature 0


def test_make_windows_stride_and_short_series():
    values, codes = hand_series()
    _, _, strided = make_windows(values, codes, timesteps=3, horizon=2, stride=2)
    assert strided.origin.tolist() == [2]  # origins 2, 4, 6; 4 and 6 straddle splits
    x, y, _ = make_windows(values[:4], codes[:4], timesteps=3, horizon=2)
    assert x.shape == (0, 3, 2) and y.shape == (0, 2)


def test_make_windows_rejects_flat_values():
    with pytest.raises(ValueError, match="steps, features"):
        make_windows(np.arange(10.0), np.zeros(10, int), timesteps=3, horizon=1)


def normalized_frame(n: int = 20, series: tuple[str, ...] = ("a", "b")) -> pd.DataFrame:
    parts = []
    for k, sid in enumerate(series):
        i = np.arange(n)
        parts.append(
            pd.DataFrame(
                {
                    SERIES_ID: sid,
                    TIMESTAMP: START + pd.to_timedelta(i, unit="h"),
                    VALUE: (i + 100 * k) / 1000,
                    "temp": -i.astype(float),
                    VALUE_ORIGINAL: np.sin(i) + k,
                    SPLIT: ["train"] * 12 + ["val"] * 4 + ["test"] * 4,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_windows_table_carries_covariates_and_target_times():
    data = windows_of(normalized_frame(), [VALUE, "temp"], timesteps=4, horizon=3)
    assert data.x.shape[1:] == (4, 2) and data.y.shape[1] == 3
    assert data.features == [VALUE, "temp"]
    first_b = np.flatnonzero(data.series_id == "b")[0]
    o = data.origin[first_b]
    assert data.x[first_b, :, 1].tolist() == [-(o - 3.0), -(o - 2.0), -(o - 1.0), -float(o)]
    assert np.allclose(
        data.y[first_b], [(o + 1 + 100) / 1000, (o + 2 + 100) / 1000, 0.103 + o / 1000]
    )
    expected = (START + pd.to_timedelta(o + 1, unit="h")).tz_localize(None)
    assert pd.Timestamp(data.target_time[first_b]).tz_localize(None) == expected
    assert data.labels is None and data.task == "regression"
    assert {"train", "val", "test"} == set(data.split_names)


def test_direction_labels_by_hand():
    values = np.array([1.0, 2.0, 2.0, 1.0, 3.0])
    # horizon 1 from origins 0..3: up (1->2), flat (2->2 counts as down), down, up
    assert direction_labels(values, np.arange(4), 1).tolist() == ["up", "down", "down", "up"]
    assert direction_labels(values, np.array([0, 2]), 2).tolist() == ["up", "up"]


def test_classification_windows_label_the_direction_over_the_horizon():
    frame = normalized_frame()
    data = windows_of(frame, [VALUE], timesteps=3, horizon=2, task=CLASSIFICATION)
    assert data.task == CLASSIFICATION and data.classes == DIRECTION_CLASSES
    original = frame.loc[frame[SERIES_ID] == "a", VALUE_ORIGINAL].to_numpy()
    mask = data.series_id == "a"
    rises = original[data.origin[mask] + 2] > original[data.origin[mask]]
    assert data.labels[mask].tolist() == ["up" if r else "down" for r in rises]
    assert data.codes[mask].tolist() == rises.astype(int).tolist()


def test_classification_windows_take_the_label_column_at_the_last_target():
    frame = normalized_frame(series=("a",))
    frame[LABEL] = np.where(np.arange(20) % 3 == 0, "calm", "busy")
    data = windows_of(frame, [VALUE], timesteps=3, horizon=2, task=CLASSIFICATION)
    assert data.classes == ("busy", "calm")
    assert data.labels.tolist() == [
        "calm" if (o + 2) % 3 == 0 else "busy" for o in data.origin.tolist()
    ]
    frame.loc[10, LABEL] = None
    with pytest.raises(ValueError, match="columns.label"):
        windows_of(frame, [VALUE], timesteps=3, horizon=2, task=CLASSIFICATION)


def test_windows_table_rejects_an_unknown_task():
    with pytest.raises(ValueError, match="train.task"):
        windows_of(normalized_frame(), [VALUE], timesteps=3, task="ranking")


def test_val_and_test_windows_never_target_a_filled_step():
    values, codes = hand_series()
    filled = np.zeros(10, dtype=bool)
    filled[[3, 7]] = True  # one interpolated step in train, one in val
    w = window_origins(codes, 3, 1, filled=filled)
    # origins 2..8 target steps 3..9: the filled train target 3 stays (training may use
    # it), the window targeting the filled val step 7 (origin 6) is dropped
    assert w.origin.tolist() == [2, 3, 4, 5, 7, 8]
    assert 6 not in w.origin.tolist() and 2 in w.origin.tolist()


def test_windows_gather_exactly_what_make_windows_cuts():
    frame = normalized_frame()
    data = windows_of(frame, [VALUE, "temp"], timesteps=4, horizon=3)
    part = frame[frame[SERIES_ID] == "b"]
    x, y, w = make_windows(
        part[[VALUE, "temp"]].to_numpy(np.float32),
        part[SPLIT].map({"train": 0, "val": 1, "test": 2}).to_numpy(),
        timesteps=4,
        horizon=3,
    )
    mine = data.select(data.series_id == "b")
    assert mine.origin.tolist() == w.origin.tolist()
    np.testing.assert_array_equal(mine.x, x)
    np.testing.assert_array_equal(mine.y, y)
    shorter, fits = mine.with_timesteps(2)
    assert fits.all() and shorter.x.shape[1] == 2
    np.testing.assert_array_equal(shorter.x, x[:, 2:])  # the same origins, the last 2 inputs


def test_series_arrays_from_a_shuffled_categorical_frame_match_the_sorted_one(tmp_path):
    from seriesflow.model.windows import SeriesArrays

    frame = normalized_frame(series=("b", "a", "c"))
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    # as load() reads it: a categorical whose categories come in the file's order
    shuffled[SERIES_ID] = pd.Categorical(shuffled[SERIES_ID], categories=["c", "b", "a"])
    mine = SeriesArrays.from_frame(shuffled, [VALUE, "temp"])
    ordered = frame.sort_values([SERIES_ID, TIMESTAMP], ignore_index=True)
    assert mine.series == ["a", "b", "c"]
    assert mine.start.tolist() == [0, 20, 40] and mine.length.tolist() == [20, 20, 20]
    np.testing.assert_array_equal(mine.values[:, 0], ordered[VALUE].to_numpy(np.float32))
    np.testing.assert_array_equal(mine.original, ordered[VALUE_ORIGINAL].to_numpy())
    # splits as int8 codes into SPLITS: 12 train, 4 val, 4 test per series
    assert mine.split.dtype == np.int8
    assert mine.split[:20].tolist() == [0] * 12 + [1] * 4 + [2] * 4


def test_by_series_yields_each_series_window_indexes_once():
    data = windows_of(normalized_frame(series=("a", "b", "c")), [VALUE], timesteps=4)
    mixed = data.select(np.random.default_rng(0).permutation(len(data)))  # series interleaved
    groups = dict(mixed.by_series())
    assert sorted(groups) == ["a", "b", "c"]
    for sid, where in groups.items():
        assert (mixed.series_id[where] == sid).all()
        assert where.tolist() == sorted(where.tolist())  # in window order within a series
    assert sorted(np.concatenate(list(groups.values())).tolist()) == list(range(len(mixed)))
    assert list(mixed.select(np.zeros(len(mixed), dtype=bool)).by_series()) == []


def test_a_short_series_windows_repeat_its_first_value_never_the_series_before():
    from seriesflow.model.windows import SeriesArrays, windows_from_table, windows_table

    splits = np.array([0] * 8 + [1] * 2 + [2] * 2)
    full = window_origins(splits, timesteps=6, horizon=2)
    padded = window_origins(splits, timesteps=6, horizon=2, min_inputs=3)
    assert full.origin[0] == 5 and padded.origin[0] == 2  # 3 observed inputs are enough
    rows = []
    for sid, values in (("a", np.arange(10.0) + 100), ("b", np.arange(10.0))):
        for k, v in enumerate(values):
            split = "train" if k < 6 else "val" if k < 8 else "test"
            rows.append((sid, START + pd.Timedelta(hours=k), v, v, split))
    frame = pd.DataFrame(
        rows, columns=["series_id", "timestamp", "value", "value_original", "split"]
    )
    arrays = SeriesArrays.from_frame(frame, ["value"])
    table = windows_table(arrays, 6, 1, min_inputs=2)
    windows = windows_from_table(table, arrays)
    assert windows.min_inputs == 2
    b = windows.select(windows.series_id == "b")
    first = b.gather_x(np.array([0]))[0, :, 0]  # origin 1: inputs b[0], b[1], padded before
    np.testing.assert_array_equal(first, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # never a's 100+


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_the_index_written_a_block_of_series_at_a_time_is_the_whole_table(tmp_path, task):
    """``write_windows_table`` with blocks of a series or two writes what ``windows_table``
    gives for every series at once: the same rows in the same order, schema and metadata,
    and the rows, codes, counts and train labels the stage goes on with."""
    import pyarrow.parquet as pq

    from seriesflow.model.windows import (
        SeriesArrays,
        window_rows,
        windows_meta,
        windows_table,
        write_windows_table,
    )

    frame = normalized_frame(series=("b", "a", "c", "d"))
    arrays = SeriesArrays.from_frame(frame, [VALUE, "temp"])
    whole = windows_table(arrays, 4, 2, task, min_inputs=2)
    path = tmp_path / "04_windows.parquet"
    length = int(arrays.length.max())
    written = write_windows_table(arrays, path, 4, 2, task, min_inputs=2, block_rows=length + 1)
    read = pq.read_table(path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 4  # one series a block
    assert read.equals(whole) and windows_meta(read) == windows_meta(whole)
    row, code = window_rows(whole, arrays)
    np.testing.assert_array_equal(written.row, row)
    np.testing.assert_array_equal(written.code, code)
    assert written.row.dtype == written.code.dtype == np.int32
    splits = whole[SPLIT].to_pylist()
    assert written.counts == {s: splits.count(s) for s in ("train", "val", "test")}
    if task == "classification":
        train = [
            lab for lab, s in zip(whole["label"].to_pylist(), splits, strict=True) if s == "train"
        ]
        assert written.train_labels.tolist() == train
    else:
        assert written.train_labels is None
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left beside


def test_memory_mapped_windows_yield_exactly_the_batches_held_in_memory(tmp_path):
    """The window stage's .npy arrays, opened as memory maps by load_windows, give the
    PyDataset the same batches (values) as the in-memory arrays; stale arrays are unused."""
    from seriesflow.config.pipeline import TrainConfig
    from seriesflow.model.lstm import window_batches
    from seriesflow.model.training import training_windows
    from seriesflow.model.windows import (
        SeriesArrays,
        load_windows,
        window_arrays_dir,
        windows_from_table,
        windows_table,
        write_window_arrays,
    )
    from seriesflow.workspace.files import drop_mapped_pages, write_parquet, write_table
    from tests.factories import identity_scaler

    frame = normalized_frame(series=("b", "a", "c", "d"))
    frame[FILLED] = np.arange(len(frame)) % 5 == 0
    normalized, index = tmp_path / "03_normalized.parquet", tmp_path / "04_windows.parquet"
    write_parquet(frame, normalized)
    arrays = SeriesArrays.load(normalized, [VALUE, "temp"])
    table = windows_table(arrays, 4, 1, "regression")
    write_table(table, index)
    in_memory = windows_from_table(table, arrays)

    assert not isinstance(load_windows(index, normalized).arrays.values, np.memmap)
    write_window_arrays(in_memory, index, normalized)
    mapped = load_windows(index, normalized)
    assert isinstance(mapped.arrays.values, np.memmap) and isinstance(mapped.row, np.memmap)
    assert isinstance(mapped.code, np.memmap)
    assert mapped.row.dtype == mapped.code.dtype == np.int32  # 4 bytes while rows < 2^31
    np.testing.assert_array_equal(mapped.row, in_memory.row)
    np.testing.assert_array_equal(mapped.code, in_memory.code)
    # every row array mapped too (nothing read again from the normalized table), equal
    for name in ("times", "original", "split", "filled"):
        got, want = getattr(mapped.arrays, name), getattr(arrays, name)
        assert isinstance(got, np.memmap) and got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert mapped.arrays.series == arrays.series == ["a", "b", "c", "d"]
    assert mapped.arrays.start.tolist() == arrays.start.tolist()
    assert mapped.arrays.length.tolist() == arrays.length.tolist()

    scaler = identity_scaler(in_memory)
    for windows in (in_memory, mapped):
        assert len(windows) == len(in_memory)
    cfg = TrainConfig()
    both = zip(training_windows(in_memory, cfg), training_windows(mapped, cfg), strict=True)
    for one, two in both:  # the train and the val windows
        first = window_batches(one, scaler, 4, True, 7)
        second = window_batches(two, scaler, 4, True, 7)
        assert len(first) == len(second) > 1
        for i in range(len(first)):
            (x1, y1), (x2, y2) = first[i], second[i]
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(mapped.target_time, in_memory.target_time)
    np.testing.assert_array_equal(mapped.split, in_memory.split)

    # the pages read leave the process's RSS; the arrays read the same after
    drop_mapped_pages()
    np.testing.assert_array_equal(mapped.arrays.values, arrays.values)

    write_parquet(frame.assign(value=frame["value"] + 1), normalized)  # normalized again
    assert not isinstance(load_windows(index, normalized).arrays.values, np.memmap)
    assert (window_arrays_dir(index) / "values.npy").exists()


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_rows", [None, 7])
def test_series_arrays_read_from_arrow_equal_those_from_a_frame(
    tmp_path, monkeypatch, shuffle, batch_rows
):
    """load() builds the arrays from the Parquet file's Arrow columns (no frame of every
    row); the result is field for field what from_frame gives, sorted or not, with the
    ids and splits dictionary-encoded as load reads them. Read 7 rows at a time (and
    checked 5 at a time), the batches' and slices' edges fall inside series and between
    them, and the ids appear out of text order ("b" first)."""
    import pyarrow.parquet as pq

    from seriesflow.data.schema import FILLED, LABEL, SPLIT
    from seriesflow.model import windows
    from seriesflow.model.windows import SeriesArrays
    from seriesflow.workspace.files import write_parquet

    if batch_rows:
        monkeypatch.setattr(windows, "BATCH_ROWS", batch_rows)
        monkeypatch.setattr(windows, "SLICE_ROWS", 5)

    frame = normalized_frame(series=("b", "a", "c"))
    frame[FILLED] = np.arange(len(frame)) % 7 == 0
    frame[LABEL] = np.where(np.arange(len(frame)) % 3 == 0, "up", "down")
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    path = write_parquet(frame, tmp_path / "03_normalized.parquet")
    table = pq.read_table(path, read_dictionary=[SERIES_ID, SPLIT])
    mine = SeriesArrays.from_table(table, [VALUE, "temp"])
    loaded = SeriesArrays.load(path, [VALUE, "temp"])
    theirs = SeriesArrays.from_frame(frame, [VALUE, "temp"])
    for arrays in (mine, loaded):
        assert arrays.series == theirs.series == ["a", "b", "c"]
        assert arrays.features == theirs.features
        for name in ("start", "length", "values", "original", "times", "split", "filled"):
            got, want = getattr(arrays, name), getattr(theirs, name)
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)
        assert arrays.labels.tolist() == theirs.labels.tolist()


@pytest.mark.parametrize("slice_rows", [1, 3, 64])
def test_series_order_found_a_slice_at_a_time_equals_one_pass(monkeypatch, slice_rows):
    """Sortedness and series starts checked a slice of rows at a time: the same order,
    starts and lengths as a sort of the whole table, for rows in order, rows out of
    order only across a slice's edge, and shuffled rows."""
    from seriesflow.model import windows

    monkeypatch.setattr(windows, "SLICE_ROWS", slice_rows)
    rng = np.random.default_rng(3)
    codes = np.repeat(np.arange(5, dtype=np.int32), [4, 1, 7, 3, 5])
    stamps = np.concatenate([np.arange(n) for n in (4, 1, 7, 3, 5)]).astype("datetime64[us]")
    swapped = stamps.copy()
    swapped[[2, 3]] = swapped[[3, 2]]  # one series' times out of order
    shuffled = rng.permutation(len(codes))
    for c, t in ((codes, stamps), (codes, swapped), (codes[shuffled], stamps[shuffled])):
        order, got_codes, got_stamps, start, length = windows.series_order(c, t)
        want = np.lexsort((t, c))
        is_sorted = (want == np.arange(len(c))).all()
        assert (order is None) == is_sorted
        np.testing.assert_array_equal(got_codes, c[want])
        np.testing.assert_array_equal(got_stamps, t[want])
        assert start.tolist() == [0, 4, 5, 12, 15] and length.tolist() == [4, 1, 7, 3, 5]
