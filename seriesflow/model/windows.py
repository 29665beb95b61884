"""Windows by index: what the window stage writes and train, evaluate and tune read.

A window is identified, not copied: ``04_windows.parquet`` holds one row per window
(``series_id``, ``origin_index`` = position of its last input step in the series,
``target_time``, ``split``, + ``label`` for classification) and the schema metadata
(``WINDOWS_META``: timesteps, horizon, feature names, classes). The values live once,
in ``03_normalized.parquet``, loaded as contiguous arrays (``SeriesArrays``); a
window's inputs and targets are gathered from them when a batch needs them:

    x = values[row - timesteps + 1 : row + 1]       # [timesteps, features]
    y = values[row + 1 : row + 1 + horizon, 0]      # [horizon]  (feature 0 is the target)

where ``row`` is the origin's row in the arrays. Memory and disk grow with rows x
features, not rows x timesteps. ``INPUT_OFFSETS``/``TARGET_OFFSETS`` are the one
definition of these offsets (``make_windows`` below uses them too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from seriesflow.config.pipeline import AUTO, PipelineConfig
from seriesflow.data.grid import keys_in_order, whole_series_chunks
from seriesflow.data.schema import (
    CLASSIFICATION,
    FILLED,
    LABEL,
    ORIGIN_INDEX,
    REGRESSION,
    SERIES_ID,
    SPLIT,
    SPLITS,
    TIMESTAMP,
    TRAIN,
    VALUE_ORIGINAL,
    windows_schema,
)
from seriesflow.model.scaler import Scaler
from seriesflow.workspace.files import (
    atomic_path,
    drop_mapped_pages,
    map_array,
    release_arrow_memory,
)

WINDOWS_META = b"seriesflow.windows"
DIRECTION_CLASSES = ("down", "up")
# The shortest input auto picks: a season-based input is lengthened to it (a yearly
# series has a season of 1).
AUTO_FLOOR = 12


def input_offsets(timesteps: int) -> np.ndarray:
    """Rows of a window's inputs relative to its origin: -timesteps+1 .. 0."""
    return np.arange(-timesteps + 1, 1)


def target_offsets(horizon: int) -> np.ndarray:
    """Rows of a window's targets relative to its origin: 1 .. horizon."""
    return np.arange(1, horizon + 1)


INPUT_HORIZONS = 2  # auto input length: this many of the longer of horizon and season


def auto_timesteps(seasons: list[int], horizon: int) -> int:
    """Input length for ``window.timesteps: auto``: ``INPUT_HORIZONS`` times the longer of the
    horizon and the longest season, at least ``AUTO_FLOOR`` (N-BEATS looked back 2-7
    horizons; 2 measured best on M3 monthly). Shorter series are padded, not cut out."""
    return int(max(AUTO_FLOOR, INPUT_HORIZONS * max(horizon, max(seasons, default=1))))


def auto_min_inputs(seasons: list[int], horizon: int, timesteps: int) -> int:
    """Observed inputs a window needs for ``window.min_inputs: auto``: the longer of the
    horizon and the longest season, at most ``timesteps``."""
    return int(min(timesteps, max(horizon, max(seasons, default=1))))


def resolve_horizon(horizon: int | str, frequencies: list) -> int:
    """``window.horizon``, or for ``auto`` the largest default horizon of the series'
    frequencies (``Frequency.default_horizon``; 1 without any)."""
    if horizon != AUTO:
        return int(horizon)
    found = [f.default_horizon() for f in frequencies if f is not None]
    return int(max(found, default=1))


def direction_labels(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """``up`` where ``values[o + horizon] > values[o]``, else ``down``: [windows] strings.

    ``values`` [steps] should be in original units: scaling keeps the order of
    values, but float32 rounding of scaled values could turn a tiny rise flat.
    """
    values = np.asarray(values, dtype=float)
    rise = values[origins + horizon] > values[origins]  # [windows]
    return np.where(rise, DIRECTION_CLASSES[1], DIRECTION_CLASSES[0]).astype(object)


SLICE_ROWS = 1 << 22  # rows a pass over whole-table arrays handles at once


def series_order(codes: np.ndarray, stamps: np.ndarray) -> tuple:
    """(order or None when already sorted, codes and stamps in that order, start [series],
    length [series]) of rows with series ``codes`` and ``stamps``: by series, then time
    (stable). Sortedness and the series' starts are found a slice of rows at a time: no
    temporary the size of the table when the rows are in order already (normalize writes
    them so)."""
    order = None
    if not _in_order(codes, stamps):
        order = np.lexsort((stamps, codes))
        codes, stamps = codes[order], stamps[order]
    starts = [np.zeros(min(len(codes), 1), dtype=np.int64)]
    for at in range(1, len(codes), SLICE_ROWS):
        part = slice(at, min(at + SLICE_ROWS, len(codes)))
        before = slice(at - 1, part.stop - 1)
        starts.append(np.flatnonzero(codes[part] != codes[before]).astype(np.int64) + at)
    start = np.concatenate(starts)
    length = np.diff(np.r_[start, len(codes)]).astype(np.int64)
    return order, codes, stamps, start, length


def _in_order(codes: np.ndarray, stamps: np.ndarray) -> bool:
    """Whether rows are sorted by series code, then time, checked a slice at a time."""
    for at in range(0, len(codes), SLICE_ROWS):
        part = slice(max(at - 1, 0), min(at + SLICE_ROWS, len(codes)))  # + the row before
        if not keys_in_order(codes[part], stamps[part]):
            return False
    return True


BATCH_ROWS = 1 << 20  # rows of a normalized table converted at once


class _Filling:
    """The arrays of ``SeriesArrays``, allocated once for ``rows`` and filled a record
    batch at a time (``add``), so that no column of the whole table exists twice. Series
    ids become int32 codes in order of first appearance, ranked by id at the end."""

    def __init__(
        self, rows: int, features: list[str], names: list[str], values: np.ndarray | None
    ) -> None:
        self.features = list(features)
        self.read_values = values is None
        self.values = np.empty((rows, len(features)), np.float32) if values is None else values
        self.codes = np.empty(rows, dtype=np.int32)
        self.stamps = np.empty(rows, dtype="datetime64[us]")
        self.original = np.empty(rows, dtype=np.float64)
        self.split = np.empty(rows, dtype=np.int8)
        self.labels = np.empty(rows, dtype=object) if LABEL in names else None
        self.filled = np.empty(rows, dtype=bool) if FILLED in names else None
        self.ids: dict[str, int] = {}
        self.split_of = {name: k for k, name in enumerate(SPLITS)}
        self.at = 0

    def add(self, batch: pa.RecordBatch) -> None:
        rows = slice(self.at, self.at + batch.num_rows)
        self.codes[rows] = self.codes_of(batch.column(SERIES_ID), self.ids)
        self.stamps[rows] = _naive_utc(batch.column(TIMESTAMP))
        if self.read_values:
            for j, name in enumerate(self.features):
                self.values[rows, j] = batch.column(name).to_numpy(zero_copy_only=False)
        self.original[rows] = batch.column(VALUE_ORIGINAL).to_numpy(zero_copy_only=False)
        self.split[rows] = self.codes_of(batch.column(SPLIT), self.split_of, grow=False)
        if self.labels is not None:
            self.labels[rows] = batch.column(LABEL).to_numpy(zero_copy_only=False)
        if self.filled is not None:
            self.filled[rows] = batch.column(FILLED).to_numpy(zero_copy_only=False)
        self.at = rows.stop

    @staticmethod
    def codes_of(column: pa.Array, known: dict[str, int], grow: bool = True) -> np.ndarray:
        """Each row's code in ``known`` (names added in order of appearance)."""
        if not pa.types.is_dictionary(column.type):
            column = column.dictionary_encode()
        names = column.dictionary.to_pylist()
        if grow:
            lookup = [known.setdefault(name, len(known)) for name in names]
        else:
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise ValueError(f"unknown split names {unknown}: expected {list(known)}")
            lookup = [known[name] for name in names]
        return np.asarray(lookup, dtype=np.int32)[column.indices.to_numpy(zero_copy_only=False)]

    def arrays(self, sort_values: bool) -> SeriesArrays:
        if self.at != len(self.codes):
            raise ValueError(f"read {self.at} rows of {len(self.codes)}")
        names = _ranked(self.codes, self.ids)
        order, codes, stamps, start, length = series_order(self.codes, self.stamps)
        self.codes = self.stamps = None

        def column(array: np.ndarray | None) -> np.ndarray | None:
            return array if order is None or array is None else array[order]

        return SeriesArrays(
            series=[str(names[codes[i]]) for i in start],
            start=start,
            length=length,
            values=column(self.values) if sort_values else self.values,
            original=column(self.original),
            times=stamps,
            split=column(self.split),
            features=self.features,
            labels=column(self.labels),
            filled=column(self.filled),
        )


@dataclass(frozen=True)
class SeriesArrays:
    """Every series of a normalized table as contiguous arrays, one row per step."""

    series: list[str]  # series ids, in row order
    start: np.ndarray  # [series] first row of each series
    length: np.ndarray  # [series]
    values: np.ndarray  # [rows, features] float32, scaled (the run's scaler)
    original: np.ndarray  # [rows] float64, the target in original units
    times: np.ndarray  # [rows] datetime64[us], UTC without a timezone
    split: np.ndarray  # [rows] int8 index into SPLITS
    features: list[str]
    labels: np.ndarray | None = None  # [rows] class names (a label column), else None
    filled: np.ndarray | None = None  # [rows] True where normalize interpolated a gap

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, features: list[str], values: np.ndarray | None = None
    ) -> SeriesArrays:
        """From a normalized frame (rows of a series together, in time order).

        At scale (10M rows) no per-row Python object is made: series ids become integer
        codes (``factorize``, sorted ids), splits int8 codes, and the frame is reordered
        only when it is not already sorted by (series, time). ``values``: the features'
        values already in that order (a memory map, ``open_window_arrays``), not read from
        ``frame``.
        """
        ids = frame[SERIES_ID]
        if isinstance(ids.dtype, pd.CategoricalDtype):  # factorized already; ids in text order
            ids = ids.cat.reorder_categories(sorted(ids.cat.categories))
        else:
            ids = ids.astype(str)
        codes, uniques = pd.factorize(ids, sort=True)  # [rows]
        times = frame[TIMESTAMP]
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            times = times.dt.tz_convert("UTC").dt.tz_localize(None)
        stamps = times.to_numpy().astype("datetime64[us]")  # [rows]
        order, codes, stamps, start, length = series_order(codes, stamps)

        def column(values: np.ndarray) -> np.ndarray:
            return values if order is None else values[order]

        split = pd.Categorical(frame[SPLIT], categories=list(SPLITS)).codes
        return cls(
            series=[str(uniques[codes[i]]) for i in start],
            start=start,
            length=length,
            values=column(frame[features].to_numpy(dtype=np.float32)) if values is None else values,
            original=column(frame[VALUE_ORIGINAL].to_numpy(dtype=float)),
            times=stamps,
            split=column(np.asarray(split, dtype=np.int8)),
            features=list(features),
            labels=column(frame[LABEL].astype(object).to_numpy()) if LABEL in frame else None,
            filled=column(frame[FILLED].to_numpy(dtype=bool)) if FILLED in frame else None,
        )

    @classmethod
    def load(
        cls, path: str | Path, features: list[str], values: np.ndarray | None = None
    ) -> SeriesArrays:
        """From ``03_normalized.parquet``, reading only the columns windows need (not the
        features when their ``values`` come from a memory map).

        Read a batch of rows at a time straight into the arrays: at 100M rows, the keys
        read whole in Arrow and then converted took 7 GiB more than the arrays they
        became."""
        source = pq.ParquetFile(path, read_dictionary=[SERIES_ID, SPLIT])
        names = source.schema_arrow.names
        wanted = [SERIES_ID, TIMESTAMP, *(features if values is None else []), VALUE_ORIGINAL]
        wanted += [SPLIT, *(name for name in (LABEL, FILLED) if name in names)]
        filling = _Filling(source.metadata.num_rows, features, names, values)
        for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
            filling.add(batch)
        arrays = filling.arrays(sort_values=values is None)
        release_arrow_memory()
        return arrays

    @classmethod
    def from_table(
        cls,
        table: pa.Table,
        features: list[str],
        values: np.ndarray | None = None,
        sort_values: bool = False,
    ) -> SeriesArrays:
        """``from_frame`` of a normalized Arrow table, a batch of rows at a time into the
        arrays (no pandas frame of every row on the way). Rows of a series together in
        time order, as normalize writes them; another order is sorted like ``from_frame``
        does. ``values``: the features' values already in sorted order, or with
        ``sort_values`` in the table's row order."""
        filling = _Filling(table.num_rows, features, table.column_names, values)
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            filling.add(batch)
        return filling.arrays(sort_values=values is None or sort_values)

    def code_of(self) -> dict[str, int]:
        return {sid: k for k, sid in enumerate(self.series)}

    def rows_of(self, code: int) -> slice:
        return slice(int(self.start[code]), int(self.start[code] + self.length[code]))

    def with_values(self, values: np.ndarray) -> SeriesArrays:
        """The same series with other feature values (e.g. through another scaler)."""
        return replace(self, values=np.asarray(values, dtype=np.float32))


@dataclass(frozen=True)
class Windows:
    """A set of windows over ``arrays``: indexes only; inputs and targets are gathered."""

    arrays: SeriesArrays
    row: np.ndarray  # [windows] row of each window's origin (its last input step)
    code: np.ndarray  # [windows] series index into arrays.series
    split: np.ndarray  # [windows] int8 split codes into SPLITS (names are turned into codes)
    timesteps: int
    horizon: int
    labels: np.ndarray | None = None  # [windows] class names (classification only)
    classes: tuple[str, ...] = ()  # the label vocabulary, in output-unit order
    min_inputs: int | None = None  # observed inputs a window needs (None: all timesteps)

    def __post_init__(self) -> None:
        # a byte per window, not a pointer to a name (10M windows at scale)
        object.__setattr__(self, "split", split_codes(self.split))

    @property
    def features(self) -> list[str]:
        return self.arrays.features

    @property
    def series_id(self) -> np.ndarray:
        return np.asarray(self.arrays.series, dtype=object)[self.code]

    @property
    def split_names(self) -> np.ndarray:
        """Each window's split name [windows] (``split`` holds codes)."""
        return np.asarray(SPLITS, dtype=object)[self.split]

    def present_series(self) -> list[str]:
        """The ids of the series that have a window here, sorted: from the codes (no Python
        string per window)."""
        if not len(self.code):
            return []
        counts = np.bincount(self.code, minlength=len(self.arrays.series))
        return sorted(str(self.arrays.series[k]) for k in np.flatnonzero(counts))

    @property
    def origin(self) -> np.ndarray:
        """Position of each window's last input step within its series [windows]."""
        return self.row - self.arrays.start[self.code]

    @property
    def target_time(self) -> np.ndarray:
        return self.arrays.times[self.row + 1]

    @property
    def task(self) -> str:
        return CLASSIFICATION if self.labels is not None else REGRESSION

    @property
    def codes(self) -> np.ndarray:
        """Class indexes [windows] (into ``classes``) of a classification window set."""
        if self.labels is None:
            raise ValueError("these windows carry no class labels (train.task is regression)")
        return np.searchsorted(np.asarray(self.classes, dtype=object), self.labels)

    def gather_x(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Inputs [len(index), timesteps, features] (scaled) of the windows at ``index``.

        Inputs before a series' first step repeat its first value (a short series' windows,
        ``window.min_inputs``); they never reach into the series before it in the arrays.
        """
        rows = self.row if index is None else self.row[index]
        codes = self.code if index is None else self.code[index]
        wanted = rows[:, None] + input_offsets(self.timesteps)[None, :]  # [w, timesteps]
        first = self.arrays.start[codes][:, None]  # [w, 1]
        return self.arrays.values[np.maximum(wanted, first)]

    def gather_y(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Targets [len(index), horizon] (scaled) of the windows at ``index``."""
        rows = self.row if index is None else self.row[index]
        return self.arrays.values[rows[:, None] + target_offsets(self.horizon)[None, :], 0]

    @property
    def x(self) -> np.ndarray:
        """Every window's inputs [windows, timesteps, features]: for small sets and tests."""
        return self.gather_x()

    @property
    def y(self) -> np.ndarray:
        """Every window's targets [windows, horizon]."""
        return self.gather_y()

    def by_series(self) -> Iterator[tuple[str, np.ndarray]]:
        """(series id, indexes of its windows) for each series present: one sort, not a
        scan of every window per series (1,000 series x 1M windows at scale)."""
        order = np.argsort(self.code, kind="stable")  # [windows]
        cuts = np.flatnonzero(np.diff(self.code[order])) + 1
        for part in np.split(order, cuts) if len(order) else []:
            yield self.arrays.series[int(self.code[part[0]])], part

    def select(self, mask: np.ndarray) -> Windows:
        return replace(
            self,
            row=self.row[mask],
            code=self.code[mask],
            split=self.split[mask],
            labels=None if self.labels is None else self.labels[mask],
        )

    def subset(self, split: str) -> Windows:
        return self.select(self.split == SPLITS.index(split))

    def recent(self, points: int) -> Windows:
        """The windows that lie wholly within the last ``points`` points of their series
        in this set (the rows from the set's last target row - points + 1 on).

        On a training subset: windows made of only the most recent ``points`` training
        points of each series (``train.history_points``); older windows are dropped.
        """
        if points < 1:
            raise ValueError(f"points must be at least 1, got {points}")
        # a slice of windows at a time (the index may be a memory map of 10M windows), and
        # the same set back when every window is kept: no copy of the index
        last = np.full(len(self.arrays.series), -1, dtype=np.int64)  # [series] last target row
        for at in range(0, len(self), SLICE_ROWS):
            part = slice(at, at + SLICE_ROWS)
            np.maximum.at(last, self.code[part], self.row[part] + self.horizon)
            drop_mapped_pages()  # a mapped index's pages, a slice at a time (78 MB at 10M)
        keep = np.empty(len(self), dtype=bool)
        for at in range(0, len(self), SLICE_ROWS):
            part = slice(at, at + SLICE_ROWS)
            code = self.code[part]
            # a window padded at its series' start (``min_inputs``) reads from that start on:
            # it is recent when the start is (it was dropped, and the final epochs' set of
            # every window at 10M rows became an 88 MB copy of the index for 48 per series)
            first_input = np.maximum(self.row[part] - self.timesteps + 1, self.arrays.start[code])
            keep[part] = first_input >= last[code] - points + 1
            drop_mapped_pages()
        return self if keep.all() else self.select(keep)

    def with_timesteps(self, timesteps: int) -> tuple[Windows, np.ndarray]:
        """The same origins with ``timesteps`` inputs, and which windows still fit [windows]."""
        fits = self.origin >= timesteps - 1
        return replace(self.select(fits), timesteps=timesteps), fits

    def __len__(self) -> int:
        return len(self.row)


def windows_meta(table: pa.Table | pa.Schema) -> dict:
    schema = table if isinstance(table, pa.Schema) else table.schema
    return json.loads(schema.metadata[WINDOWS_META])


def split_codes(split: Any) -> np.ndarray:
    """Split names or codes [windows] as int8 codes into SPLITS."""
    split = np.asarray(split)
    if split.dtype == np.int8:
        return split
    if split.dtype.kind in "iub":
        return split.astype(np.int8)
    known = {name: k for k, name in enumerate(SPLITS)}
    names, inverse = np.unique(split.astype(object).astype(str), return_inverse=True)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown split names {unknown}: expected {list(SPLITS)}")
    lookup = np.asarray([known[name] for name in names], dtype=np.int8)
    return lookup[inverse.reshape(-1)] if len(names) else np.empty(len(split), np.int8)


def windows_from_table(
    table: pa.Table,
    arrays: SeriesArrays,
    row: np.ndarray | None = None,
    code: np.ndarray | None = None,
) -> Windows:
    """The windows of an index table over ``arrays`` (the normalized values); ``row`` and
    ``code``: the index as the window stage saved it (memory maps), not derived again."""
    meta = windows_meta(table)
    if code is None or row is None:
        row, code = window_rows(table, arrays)
    splits = _encoded(table[SPLIT])
    lookup = split_codes(np.asarray(splits.dictionary.to_pylist(), dtype=object))
    split = lookup[splits.indices.to_numpy(zero_copy_only=False)] if len(splits) else []
    labels = None
    if LABEL in table.column_names:
        labels = table[LABEL].to_numpy(zero_copy_only=False).astype(object)
    return _windows(meta, arrays, row, code, np.asarray(split, dtype=np.int8), labels)


def _windows(
    meta: dict,
    arrays: SeriesArrays,
    row: np.ndarray,
    code: np.ndarray,
    split: np.ndarray,
    labels: np.ndarray | None = None,
) -> Windows:
    return Windows(
        arrays=arrays,
        row=row,
        code=code,
        split=split,
        timesteps=int(meta["timesteps"]),
        horizon=int(meta["horizon"]),
        min_inputs=int(meta.get("min_inputs", meta["timesteps"])),
        labels=labels,
        classes=tuple(meta.get("classes", ())),
    )


def _encoded(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """A string column as one dictionary array (read as one already: no hashing again)."""
    if not pa.types.is_dictionary(column.type):
        return column.combine_chunks().dictionary_encode()
    unified = pa.Table.from_arrays([column], ["column"]).unify_dictionaries()["column"]
    return unified.combine_chunks()


def sorted_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct ids, sorted, as an object array; each row's int32 index into them
    [rows]) of an id column, plain or dictionary-encoded: no Python string per row, and a
    chunk of the column converted at a time."""
    codes = np.empty(len(column), dtype=np.int32)
    known: dict[str, int] = {}
    at = 0
    for chunk in column.chunks:
        codes[at : at + len(chunk)] = _Filling.codes_of(chunk, known)
        at += len(chunk)
    return _ranked(codes, known), codes


def utc_stamps(column: pa.ChunkedArray) -> np.ndarray:
    """A timestamp column as datetime64[us] [rows] in UTC wall time (no zone), a chunk at a
    time."""
    out = np.empty(len(column), dtype="datetime64[us]")
    at = 0
    for chunk in column.chunks:
        out[at : at + len(chunk)] = _naive_utc(chunk)
        at += len(chunk)
    return out


def _naive_utc(stamps: pa.Array) -> np.ndarray:
    if pa.types.is_timestamp(stamps.type) and stamps.type.tz is not None:
        stamps = stamps.cast(pa.timestamp(stamps.type.unit))  # UTC wall time, no zone
    return stamps.to_numpy(zero_copy_only=False).astype("datetime64[us]")


def _ranked(codes: np.ndarray, known: dict[str, int]) -> np.ndarray:
    """The ids of ``known`` (name -> code in order of appearance) sorted, with ``codes``
    remapped in place to index them, a slice at a time."""
    names = np.asarray(list(known), dtype=object)
    by_name = np.argsort(names, kind="stable")
    if (by_name != np.arange(len(names))).any():  # ids first seen out of text order
        rank = np.empty(len(names), dtype=np.int32)
        rank[by_name] = np.arange(len(names), dtype=np.int32)
        for at in range(0, len(codes), SLICE_ROWS):
            codes[at : at + SLICE_ROWS] = rank[codes[at : at + SLICE_ROWS]]
    return names[by_name]


@dataclass(frozen=True)
class WrittenWindows:
    """What ``write_windows_table`` wrote: each window's origin row and series code
    [windows] (4-byte integers while the rows fit), the windows per split, and the train
    windows' labels (classification; else None)."""

    row: np.ndarray
    code: np.ndarray
    counts: dict[str, int]
    train_labels: np.ndarray | None


def label_classes(arrays: SeriesArrays) -> list[str]:
    """The classes of a classification: the arrays' labels, or the directions of change."""
    if arrays.labels is not None:
        return sorted({str(v) for v in arrays.labels if not pd.isna(v)})
    return list(DIRECTION_CLASSES)


def write_windows_table(
    arrays: SeriesArrays,
    path: str | Path,
    timesteps: int,
    horizon: int,
    task: str = REGRESSION,
    stride: int = 1,
    min_inputs: int | None = None,
    block_rows: int = 1 << 20,
) -> WrittenWindows:
    """``windows_table`` written to ``path`` (atomically) a block of series at a time, of
    about ``block_rows`` rows each: the stage holds one block's table, not the whole index
    (at 10M windows the table was 370 MB, with as much again while it was built)."""
    narrow = len(arrays.values) < np.iinfo(np.int32).max
    kind = np.int32 if narrow else np.int64
    rows, codes, labels = [], [], []
    counts = dict.fromkeys(SPLITS, 0)
    blocks = whole_series_chunks(arrays.length, block_rows) or [range(0)]
    classes = label_classes(arrays) if task == CLASSIFICATION else None  # once, not a block
    with atomic_path(path) as tmp:
        writer = None
        try:
            for block in blocks:
                table = windows_table(
                    arrays, timesteps, horizon, task, stride, classes, min_inputs, block
                )
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                row, code = window_rows(table, arrays)
                rows.append(row.astype(kind))
                codes.append(code.astype(np.int32))
                for item in pc.value_counts(table[SPLIT]).to_pylist():  # no str per window
                    counts[item["values"]] += item["counts"]
                if task == CLASSIFICATION:
                    train = table[SPLIT].to_numpy(zero_copy_only=False) == TRAIN
                    labels.append(np.asarray(table[LABEL].to_pylist(), dtype=object)[train])
                del table
        finally:
            if writer is not None:
                writer.close()
    return WrittenWindows(
        np.concatenate(rows),
        np.concatenate(codes),
        counts,
        np.concatenate(labels) if task == CLASSIFICATION else None,
    )


def window_rows(table: pa.Table, arrays: SeriesArrays) -> tuple[np.ndarray, np.ndarray]:
    """(origin row, series code) [windows] of an index table over ``arrays``: dictionary
    codes, not a Python string per window (10M windows at scale)."""
    ids = _encoded(table[SERIES_ID])
    names = ids.dictionary.to_pylist()
    code_of = arrays.code_of()
    unknown = sorted(set(names) - set(code_of))
    if unknown:
        raise ValueError(f"windows name series that the normalized table lacks: {unknown[:5]}")
    lookup = np.array([code_of.get(name, -1) for name in names], dtype=np.int64)
    code = lookup[ids.indices.to_numpy(zero_copy_only=False)] if len(ids) else np.empty(0, int)
    row = (arrays.start[code] + table[ORIGIN_INDEX].to_numpy()).astype(np.int64)
    return row, code


def load_windows(path: str | Path, normalized: str | Path) -> Windows:
    """The window index at ``path`` over the values of ``normalized``.

    Where the window stage left the arrays on disk (``write_window_arrays``) and they are
    of these files, the values and the index are memory maps: batches are read from disk,
    and what stays in memory does not grow with the number of rows."""
    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    meta = windows_meta(schema)
    features = list(meta["features"])
    mapped = open_window_arrays(path, normalized, source.metadata.num_rows)
    arrays = None if mapped is None else mapped.get(SERIES_FILE)
    if arrays is not None and arrays.features == features and LABEL not in schema.names:
        # the index, the series and their splits are all on disk already: the table is not
        # read (at 10M windows its columns took 350 MB on the way). A window's split is
        # its targets' (``window_origins``), the first target's row's.
        row = mapped[ROW_FILE]
        return _windows(meta, arrays, row, mapped[CODE_FILE], _target_splits(arrays, row))
    wanted = [SERIES_ID, ORIGIN_INDEX, SPLIT] + ([LABEL] if LABEL in schema.names else [])
    # target_time is recomputed from the arrays; ids and splits read as dictionaries
    table = pq.read_table(path, columns=wanted, read_dictionary=[SERIES_ID, SPLIT])
    if mapped is None:
        arrays = SeriesArrays.load(normalized, features)
        windows = windows_from_table(table, arrays)
    else:
        arrays = mapped.get(SERIES_FILE)
        if arrays is None or arrays.features != features:
            arrays = SeriesArrays.load(normalized, features, values=mapped[VALUES_FILE])
        windows = windows_from_table(table, arrays, mapped[ROW_FILE], mapped[CODE_FILE])
    del table
    release_arrow_memory()
    return windows


def _target_splits(arrays: SeriesArrays, row: np.ndarray) -> np.ndarray:
    """The split code [windows] of the row after each window's origin, a slice at a time
    (``row`` is a memory map)."""
    split = np.empty(len(row), dtype=np.int8)
    for at in range(0, len(row), SLICE_ROWS):
        split[at : at + SLICE_ROWS] = arrays.split[row[at : at + SLICE_ROWS] + 1]
    return split


# --------------------------------------------------------------------------- arrays on disk
# The window stage writes the scaled values [rows, features] and the window index (origin
# row, series code) as .npy files beside the index table; training and evaluation open them
# with np.load(mmap_mode="r"), so a PyDataset gathers each batch from the page cache.

VALUES_FILE, ROW_FILE, CODE_FILE, STAMP_FILE = "values.npy", "row.npy", "code.npy", "stamp.json"
# the rest of the series' arrays, so that train and evaluate hold none of them in memory
# (at 100M rows they were 1.8 GB read from the normalized table again by each stage)
ROW_ARRAYS = {"times": "times.npy", "original": "original.npy", "split": "split.npy"}
FILLED_FILE, SERIES_FILE = "filled.npy", "series.json"


def window_arrays_dir(windows_path: str | Path) -> Path:
    """``04_windows.arrays/`` beside ``04_windows.parquet``."""
    windows_path = Path(windows_path)
    return windows_path.with_name(f"{windows_path.stem}.arrays")


def _stamp(windows_path: Path, normalized: Path, windows: int) -> dict:
    """Which files the arrays were made from: another index or normalized table, and
    they are not used."""
    table, values = os.stat(windows_path), os.stat(normalized)
    return {
        "windows": windows,
        "windows_table": [table.st_size, table.st_mtime_ns],
        "normalized": [values.st_size, values.st_mtime_ns],
    }


def write_window_arrays(windows: Windows, windows_path: str | Path, normalized: str | Path) -> Path:
    """Write ``windows``' arrays and index as .npy files (after the index table)."""
    return save_window_arrays(windows.arrays, windows.row, windows.code, windows_path, normalized)


def save_window_arrays(
    arrays: SeriesArrays,
    row: np.ndarray,
    code: np.ndarray,
    windows_path: str | Path,
    normalized: str | Path,
) -> Path:
    """``write_window_arrays`` of the series' ``arrays`` and the index (origin row and
    series code [windows]) themselves. Series with class labels (object arrays) keep
    their keys in the normalized table: only the values and the index are written."""
    folder = window_arrays_dir(windows_path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAMP_FILE).unlink(missing_ok=True)  # arrays being replaced are not used
    (folder / SERIES_FILE).unlink(missing_ok=True)
    # the index in 4-byte integers while the rows fit (up to 2^31 rows, 200M at 10 features):
    # half the disk, and half the copies a subset of the windows makes (train, val)
    narrow = len(arrays.values) < np.iinfo(np.int32).max
    files = [
        (VALUES_FILE, np.ascontiguousarray(arrays.values, dtype=np.float32)),
        (ROW_FILE, np.asarray(row, dtype=np.int32 if narrow else np.int64)),
        (CODE_FILE, np.asarray(code, dtype=np.int32)),
    ]
    if arrays.labels is None:
        files += [(ROW_ARRAYS[name], getattr(arrays, name)) for name in ROW_ARRAYS]
        files += [(FILLED_FILE, arrays.filled)] if arrays.filled is not None else []
    for name, array in files:
        np.save(folder / name, array)
    if arrays.labels is None:
        series = {
            "series": list(arrays.series),
            "start": arrays.start.tolist(),
            "length": arrays.length.tolist(),
            "features": list(arrays.features),
            "filled": arrays.filled is not None,
        }
        (folder / SERIES_FILE).write_text(json.dumps(series), encoding="utf-8")
    stamp = _stamp(Path(windows_path), Path(normalized), len(row))
    (folder / STAMP_FILE).write_text(json.dumps(stamp), encoding="utf-8")  # written last
    return folder


def open_window_arrays(
    windows_path: str | Path, normalized: str | Path, windows: int
) -> dict[str, Any] | None:
    """The arrays ``write_window_arrays`` left, memory-mapped read-only (``map_array``),
    and under ``SERIES_FILE`` the series' arrays all mapped, where they were written; None
    when there are none or they were made from other files."""
    folder = window_arrays_dir(windows_path)
    try:
        stamp = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
        if stamp != json.loads(json.dumps(_stamp(Path(windows_path), Path(normalized), windows))):
            return None
        mapped: dict[str, Any] = {
            name: map_array(folder / name) for name in (VALUES_FILE, ROW_FILE, CODE_FILE)
        }
        if (folder / SERIES_FILE).exists():
            series = json.loads((folder / SERIES_FILE).read_text(encoding="utf-8"))
            mapped[SERIES_FILE] = SeriesArrays(
                series=list(series["series"]),
                start=np.asarray(series["start"], dtype=np.int64),
                length=np.asarray(series["length"], dtype=np.int64),
                values=mapped[VALUES_FILE],
                features=list(series["features"]),
                filled=map_array(folder / FILLED_FILE) if series["filled"] else None,
                **{name: map_array(folder / file) for name, file in ROW_ARRAYS.items()},
            )
        return mapped
    except (OSError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------- the window index
# What the window stage (``tasks/window.py``) writes: which windows each series holds,
# labelled by the split of their targets (its docstring has the rules).


@dataclass(frozen=True)
class SeriesWindows:
    origin: np.ndarray  # [windows] index of the last input step
    split: np.ndarray  # [windows] split code (index into SPLITS)


def window_origins(
    split_codes: np.ndarray,
    timesteps: int,
    horizon: int,
    stride: int = 1,
    filled: np.ndarray | None = None,
    min_inputs: int | None = None,
) -> SeriesWindows:
    """Origins of one series' windows and their split codes (``split_codes`` [n] ints).

    The first origin has ``min_inputs`` observed inputs (default: all ``timesteps``; fewer:
    the rest repeat the first value, ``Windows.gather_x``). With ``filled`` [n] (steps
    normalize interpolated), val and test windows whose targets include a filled step are
    dropped: a model is scored on observations only.
    """
    n = len(split_codes)
    needed = timesteps if min_inputs is None else max(1, min(min_inputs, timesteps))
    count = n - needed - horizon + 1
    if count <= 0:
        empty = np.empty((0,), dtype=np.int64)
        return SeriesWindows(empty, empty)
    origins = np.arange(needed - 1, needed - 1 + count, stride)  # [windows]
    first = split_codes[origins + 1]
    last = split_codes[origins + horizon]
    keep = first == last  # all targets in one split
    if filled is not None and filled.any():
        targets = origins[:, None] + target_offsets(horizon)[None, :]  # [windows, horizon]
        scored = first != SPLITS.index(TRAIN)
        keep &= ~(scored & filled[targets].any(axis=1))
    return SeriesWindows(origins[keep], first[keep])


def make_windows(
    values: np.ndarray, split_codes: np.ndarray, timesteps: int, horizon: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, SeriesWindows]:
    """All windows of one series, materialized: (x [w, timesteps, features], y [w, horizon],
    origins and splits). The pipeline gathers instead; this is the hand-checkable form."""
    if values.ndim != 2:
        raise ValueError(f"values must be [steps, features], got shape {values.shape}")
    w = window_origins(split_codes, timesteps, horizon, stride)
    x = values[w.origin[:, None] + input_offsets(timesteps)[None, :]]  # [w, timesteps, features]
    y = values[w.origin[:, None] + target_offsets(horizon)[None, :], 0]  # [w, horizon]
    return x.reshape(len(w.origin), timesteps, values.shape[1]), y, w


def resolve_timesteps(config: PipelineConfig, scaler: Scaler, arrays: SeriesArrays) -> int:
    """``window.timesteps``, or for ``auto`` two horizons or seasons (``auto_timesteps``)."""
    if config.window.timesteps != AUTO:
        return int(config.window.timesteps)
    return auto_timesteps(seasons_of(scaler, arrays), resolve_window_horizon(config, scaler))


def seasons_of(scaler: Scaler, arrays: SeriesArrays) -> list[int]:
    return [scaler.frequency_of(sid).season_length() for sid in arrays.series]


def resolve_window_horizon(config: PipelineConfig, scaler: Scaler) -> int:
    """``window.horizon`` resolved on the series' frequencies (as normalize did)."""
    return resolve_horizon(config.window.horizon, [scaler.frequency_of(s) for s in scaler.series])


def resolve_min_inputs(
    config: PipelineConfig, scaler: Scaler, arrays: SeriesArrays, timesteps: int
) -> int:
    """``window.min_inputs``, or for ``auto`` the longer of horizon and season (at most
    ``timesteps``)."""
    if config.window.min_inputs != AUTO:
        return int(min(config.window.min_inputs, timesteps))
    horizon = resolve_window_horizon(config, scaler)
    return auto_min_inputs(seasons_of(scaler, arrays), horizon, timesteps)


def windows_table(
    arrays: SeriesArrays,
    timesteps: int,
    horizon: int,
    task: str = REGRESSION,
    stride: int = 1,
    classes: list[str] | None = None,
    min_inputs: int | None = None,
    codes: range | None = None,
) -> pa.Table:
    """The window index of every series as one Arrow table (no values: see window_table).

    ``task="classification"`` adds a ``label`` column: the arrays' label at the last
    target step when they have one, else the direction of change. ``codes``: only these
    series (by code), with the same schema (``write_windows_table`` writes a block of
    series at a time).
    """
    if task not in (REGRESSION, CLASSIFICATION):
        raise ValueError(f"train.task must be regression or classification, got {task!r}")
    classify = task == CLASSIFICATION
    ids, origins, times, splits, labels = [], [], [], [], []
    for code in codes if codes is not None else range(len(arrays.series)):
        sid = arrays.series[code]
        rows = arrays.rows_of(code)
        filled = None if arrays.filled is None else arrays.filled[rows]
        w = window_origins(arrays.split[rows], timesteps, horizon, stride, filled, min_inputs)
        ids.append(np.full(len(w.origin), code, dtype=np.int32))
        origins.append(w.origin)
        times.append(arrays.times[rows][w.origin + 1])
        splits.append(np.asarray(w.split, dtype=np.int8))
        if classify and arrays.labels is not None:
            found = arrays.labels[rows][w.origin + horizon]  # [windows]
            missing = pd.isna(found)
            if missing.any():
                at = arrays.times[rows][int(w.origin[missing][0] + horizon)]
                raise ValueError(
                    f"columns.label: series '{sid}' has no label at {at} (the target of a "
                    "window); every row needs a class"
                )
            labels.append(np.array([str(v) for v in found], dtype=object))
        elif classify:
            labels.append(direction_labels(arrays.original[rows], w.origin, horizon))

    def joined(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype)

    schema = windows_schema()

    def named(codes: np.ndarray, names: list[str]) -> pa.Array:
        """``names[codes]`` as a string column, built in Arrow (no Python str per window)."""
        return pa.DictionaryArray.from_arrays(codes, pa.array(names, pa.string())).cast(pa.string())

    stamps = joined(times, "datetime64[us]").astype("datetime64[us]")
    columns = [
        named(joined(ids, np.int32), list(arrays.series)),
        pa.array(joined(origins, np.int64), pa.int64()),
        pa.array(stamps, pa.timestamp("us")).cast(schema.field(2).type),
        named(joined(splits, np.int8), list(SPLITS)),
    ]
    meta = {"timesteps": timesteps, "horizon": horizon, "features": arrays.features}
    meta["min_inputs"] = timesteps if min_inputs is None else min_inputs
    if classify:
        columns.append(pa.array(joined(labels, object), pa.string()))
        schema = schema.append(pa.field(LABEL, pa.string(), nullable=False))
        meta["classes"] = classes if classes is not None else label_classes(arrays)
    schema = schema.with_metadata({WINDOWS_META: json.dumps(meta).encode()})
    return pa.Table.from_arrays(columns, schema=schema)
