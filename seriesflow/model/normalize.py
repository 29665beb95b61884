"""Normalize's pure part: fill short gaps, split each series in time, scale per series.

Vectorized over every series at once. The scaler (``seriesflow/model/scaler.py``) is fit
on each series' *training part only* and saved as JSON next to the model (by the
``normalize`` task in ``tasks/normalize.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from seriesflow.config.pipeline import PipelineConfig, SplitConfig
from seriesflow.data.frequency import Frequency, steps_found
from seriesflow.data.grid import SeriesRows, fill_grids, fit_grids, string_column
from seriesflow.data.schema import (
    FILLED,
    LABEL,
    SERIES_ID,
    SPLIT,
    SPLITS,
    TIMESTAMP,
    VALUE,
    VALUE_ORIGINAL,
)
from seriesflow.model.features import FeatureSpec, fit_feature_spec
from seriesflow.model.scaler import EPOCH, MINMAX, SEASONAL_LOG, Scaler, seasonal_log_fit
from seriesflow.model.windows import (
    SeriesArrays,
    resolve_horizon,
    series_order,
    sorted_codes,
    utc_stamps,
)
from seriesflow.workspace.files import drop_mapped_pages, handed_back


def split_sizes(n: int, cfg: SplitConfig, horizon: int = 1) -> tuple[int, int, int]:
    """(train, val, test) point counts of a series of ``n`` points, in that order.

    The fractions of ``cfg``, with at least one ``horizon`` in each of val and test when
    the series has room for that and a training point (else the fractions alone: such a
    series has no full-horizon test window, and is served by what validation chose).
    """
    n_train, n_val, n_test = (int(v[0]) for v in split_sizes_of(np.array([n]), cfg, horizon))
    if n_train < 1:
        raise ValueError(f"a series of {n} points cannot be split into train/val/test")
    return n_train, n_val, n_test


def split_sizes_of(
    n: np.ndarray, cfg: SplitConfig, horizon: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``split_sizes`` for many series at once: (train, val, test) [series] point counts."""
    n = np.asarray(n, dtype=np.int64)
    n_test = np.maximum(1, np.floor(n * cfg.test_fraction).astype(np.int64))
    n_val = np.maximum(1, np.floor(n * cfg.val_fraction).astype(np.int64))
    room = n - 2 * horizon >= 1  # a full horizon in val and test, and a point to train on
    n_test = np.where(room, np.maximum(n_test, horizon), n_test)
    n_val = np.where(room, np.maximum(n_val, horizon), n_val)
    return n - n_val - n_test, n_val, n_test


def _block_mean(values: np.ndarray, code: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.bincount(code, weights=values, minlength=len(count)) / np.maximum(count, 1)


def _block_std(values: np.ndarray, code: np.ndarray, count: np.ndarray, ddof: int) -> np.ndarray:
    """Standard deviation per block (two passes: values far from zero keep their precision)."""
    mean = _block_mean(values, code, count)
    squares = np.bincount(code, weights=(values - mean[code]) ** 2, minlength=len(count))
    return np.sqrt(squares / np.maximum(count - ddof, 1))


def fit_affines(
    train: np.ndarray, code: np.ndarray, count: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """``fit_affine`` for every series at once: (center, scale) [series, features].

    ``train`` [rows, features] holds each series' training rows together, in time order,
    ``code`` [rows] their series and ``count`` [series] how many (at least one each).
    """
    first = np.r_[0, np.cumsum(count)[:-1]].astype(np.int64)
    low = np.minimum.reduceat(train, first, axis=0)  # [series, features]
    high = np.maximum.reduceat(train, first, axis=0)
    center, scale = low.copy(), np.where(high - low == 0, 1.0, high - low)
    if method != MINMAX:
        target = train[:, 0]
        changes = np.diff(target, prepend=np.nan)
        inside = np.ones(len(target), dtype=bool)
        inside[first] = False  # a change needs the previous step of the same series
        n_changes = count - 1
        spread = _block_std(changes[inside], code[inside], n_changes, ddof=0)
        spread = np.where(n_changes > 1, spread, 0.0)
        level = _block_std(target, code, count, ddof=0)
        level = np.where(count > 1, level, 0.0)
        usable = np.isfinite(spread) & (spread > 0)
        spread = np.where(usable, spread, level)
        usable = np.isfinite(spread) & (spread > 0)
        center[:, 0] = _block_mean(target, code, count)
        scale[:, 0] = np.where(usable, spread, 1.0)
    return center, scale


@dataclass(frozen=True)
class NormalizePlan:
    """What normalize fits across all series at once: the horizon (the split keeps one in
    val and test) and the feature spec (calendar cycles of every frequency, statics' scale).
    Everything else is per series, so a plan lets the rows be normalized a chunk of series
    at a time (``normalize_chunks``) with the same result as all at once."""

    horizon: int
    spec: FeatureSpec


def _fit_rows(frame: pd.DataFrame, config: PipelineConfig) -> tuple[SeriesRows, Any]:
    """The rows sorted by series and time, and each series' grid; a series whose timestamps
    fit no single frequency is an error that names it."""
    rows = SeriesRows.of(frame[SERIES_ID], frame[TIMESTAMP])
    configured = config.validation.frequency
    fit = fit_grids(rows, Frequency.parse(configured) if configured else None)
    for k, found in enumerate(fit.frequency):
        if found is None or fit.off_grid[k]:
            sid = str(rows.ids[k])
            times = rows.t[rows.start[k] : rows.start[k] + rows.length[k]]
            raise ValueError(
                f"series '{sid}': its timestamps match no single frequency "
                f"(steps found: {steps_found(times)}); set validation.frequency"
            )
    return rows, fit


def plan_normalize(
    frame: pd.DataFrame, config: PipelineConfig, fitted: tuple[SeriesRows, Any] | None = None
) -> NormalizePlan:
    """The plan of ``frame`` (its series ids, timestamps and static columns are enough)."""
    rows, fit = fitted or _fit_rows(frame, config)
    statics = static_table(frame, [str(sid) for sid in rows.ids], config.columns.static)
    return _plan(config, fit.frequency, statics)


def _plan(config: PipelineConfig, frequencies: list, statics: pd.DataFrame) -> NormalizePlan:
    horizon = resolve_horizon(config.window.horizon, frequencies)
    spec = fit_feature_spec(config.columns, config.features, frequencies, horizon, statics)
    return NormalizePlan(int(horizon), spec)


def normalize_series(
    frame: pd.DataFrame, config: PipelineConfig, plan: NormalizePlan | None = None
) -> tuple[pd.DataFrame, Scaler]:
    """Scaled long frame (+ ``value_original``, ``split``, ``filled``) and its scaler.

    Every series at once, in array passes (``seriesflow/data/grid.py`` puts them on their
    calendars): no Python loop over rows or per-series pandas work. ``plan``: fit on a
    larger set of series this frame is a part of (``normalize_chunks``); default: on it.
    """
    base = [VALUE, *config.columns.past, *config.columns.future]
    method = config.normalize.method
    rows, fit = _fit_rows(frame, config)
    if plan is None:
        plan = plan_normalize(frame, config, (rows, fit))
    grid = fill_grids(rows, fit, rows.sort(frame[base].to_numpy(dtype=float)))
    horizon, spec = plan.horizon, plan.spec
    ids = [str(sid) for sid in rows.ids]
    statics = static_table(frame, ids, config.columns.static)
    features = spec.columns()
    n_train, n_val, n_test = split_sizes_of(grid.length, config.split, horizon)
    short = np.flatnonzero(n_train < 1)
    if len(short):
        raise ValueError(
            f"a series of {int(grid.length[short[0]])} points cannot be split into "
            f"train/val/test (series '{rows.ids[short[0]]}')"
        )
    local = np.arange(len(grid.t)) - grid.start[grid.code]  # [rows] step within the series
    split = (local >= n_train[grid.code]).astype(np.int8) + (
        local >= (n_train + n_val)[grid.code]
    ).astype(np.int8)  # [rows] 0 train, 1 val, 2 test
    raw = model_columns(spec, grid, ids, statics, fit.frequency)  # [rows, features]
    train = split == 0
    center, scale = fit_affines(raw[train], grid.code[train], n_train, method)
    fixed = np.asarray(spec.fixed_scale(), dtype=bool)  # calendar, holiday, static: as they are
    center[:, fixed], scale[:, fixed] = 0.0, 1.0
    seasonal, logged = {}, {}
    model_values = raw
    if method == SEASONAL_LOG:  # per series: seasonal indices on the calendar, then logs
        model_values = raw.copy()
        stamps = grid.t.astype("datetime64[us]")
        for k, sid in enumerate(ids):
            rows_k = slice(int(grid.start[k]), int(grid.start[k] + grid.length[k]))
            frequency = fit.frequency[k]
            season = config.evaluate.season_length or frequency.season_length()
            positions, _ = frequency.positions(stamps[rows_k], origin=EPOCH)
            slots = positions % max(season, 1)
            head = slice(rows_k.start, rows_k.start + int(n_train[k]))
            index, log = seasonal_log_fit(method, raw[head, 0], slots[: int(n_train[k])], season)
            if not log or (raw[rows_k, 0] <= 0).any():  # a later value <= 0 cannot be logged
                continue
            factors = np.asarray(index, dtype=float)[slots] if index else 1.0
            model_values[rows_k, 0] = np.log(raw[rows_k, 0] / factors)
            center[k, 0], scale[k, 0] = 0.0, 1.0  # log-ratios need no other scale
            logged[sid] = True
            if index:
                seasonal[sid] = index
    times = pd.DatetimeIndex(grid.t.astype("datetime64[us]")).tz_localize("UTC")
    normalized = pd.DataFrame(
        {
            SERIES_ID: string_column(ids, grid.code),
            TIMESTAMP: times,
        }
    )
    scaled = (model_values - center[grid.code]) / scale[grid.code]
    for j, name in enumerate(features):
        normalized[name] = scaled[:, j]
    normalized[VALUE_ORIGINAL] = raw[:, 0]
    normalized[SPLIT] = string_column(list(SPLITS), split)
    normalized[FILLED] = grid.filled
    if LABEL in frame:  # class names, never scaled; a filled step keeps the class before it
        labels = rows.sort(frame[LABEL].to_numpy(dtype=object))
        carried = pd.Series(np.where(grid.source >= 0, labels[grid.source], None), dtype=object)
        normalized[LABEL] = carried.groupby(grid.code).ffill().to_numpy()

    target = raw[train, 0]
    count = n_train.astype(float)
    mean = _block_mean(target, grid.code[train], n_train)
    sd = np.where(n_train > 1, _block_std(target, grid.code[train], n_train, ddof=1), 0.0)
    val_start = times[grid.start + n_train]
    test_start = times[grid.start + n_train + n_val]
    scaler = Scaler(
        features,
        {sid: center[k].tolist() for k, sid in enumerate(ids)},
        {sid: scale[k].tolist() for k, sid in enumerate(ids)},
        {sid: fit.frequency[k].code for k, sid in enumerate(ids)},
        {sid: val_start[k].isoformat() for k, sid in enumerate(ids)},
        {sid: test_start[k].isoformat() for k, sid in enumerate(ids)},
        {
            sid: {"mean": float(mean[k]), "sd": float(sd[k]), "n": int(count[k])}
            for k, sid in enumerate(ids)
        },
        method,
        seasonal,
        logged,
        covariates=spec.to_json(),
    )
    return normalized, scaler


def normalize_chunks(
    table: pa.Table, config: PipelineConfig, chunk_rows: int
) -> Iterator[tuple[pd.DataFrame, Scaler]]:
    """``normalize_series`` of ``table`` (validated rows, Arrow), a chunk of whole series at
    a time: frames of about ``chunk_rows`` rows (a series longer than that is a chunk of its
    own), in the order of sorted series ids, each with its series' scaler.

    The plan is fit on the ids, timestamps and statics of every row first; the values are
    turned into frames a chunk at a time, so memory holds the Arrow table plus one chunk's
    arrays, not every row's arrays at once. Concatenated, the chunks equal
    ``normalize_series`` of the whole table, and ``merge_scalers`` of their scalers its
    scaler."""
    # the rows' order by series and time from int32 codes and timestamps alone, a slice
    # at a time (at 100M rows, a frame of the keys and SeriesRows of every row held 8 GiB)
    names, codes = sorted_codes(table[SERIES_ID])  # ids sorted; codes index them
    order, codes, _, _, length = series_order(codes, utc_stamps(table[TIMESTAMP]))
    ends = np.cumsum(length)  # [series] row after each series, in sorted order
    bounds = []  # (first row, row after) of each chunk, whole series of about chunk_rows
    start, total = 0, int(ends[-1]) if len(ends) else 0
    while start < total:
        fits = int(np.searchsorted(ends, start + chunk_rows, side="right"))  # series that end
        stop = int(ends[fits - 1]) if fits else 0
        if stop <= start:  # the next series alone is longer than chunk_rows
            stop = int(ends[np.searchsorted(ends, start, side="right")])
        bounds.append((start, stop))
        start = stop

    def rows(data: Any, start: int, stop: int) -> Any:
        """Sorted rows start:stop of ``table`` or of one of its columns."""
        return data.slice(start, stop - start) if order is None else data.take(order[start:stop])

    # the plan: each series' grid and statics, a chunk at a time (the grid fit of every
    # row at once holds several arrays per row), then the horizon and feature spec
    frequencies: list = []
    statics = []
    for start, stop in bounds:
        keys = pd.DataFrame(
            {
                SERIES_ID: pd.Categorical.from_codes(codes[start:stop], categories=names),
                TIMESTAMP: rows(table[TIMESTAMP], start, stop).to_pandas(),
            }
        )
        for name in config.columns.static:
            keys[name] = rows(table[name], start, stop).to_pandas()
        _, fit = _fit_rows(keys, config)
        frequencies += fit.frequency
        present = [str(sid) for sid in names[np.unique(codes[start:stop])]]
        statics.append(static_table(keys, present, config.columns.static))
        del keys
    ids = [str(sid) for sid in names]
    known = pd.concat(statics) if statics else pd.DataFrame(columns=config.columns.static)
    plan = _plan(config, frequencies, known.reindex(ids))
    del codes
    for start, stop in bounds:
        part = rows(table, start, stop)
        if pa.types.is_dictionary(part.schema.field(SERIES_ID).type):
            column = part.schema.get_field_index(SERIES_ID)
            part = part.set_column(column, SERIES_ID, part[SERIES_ID].cast(pa.string()))
        frame = part.to_pandas()
        del part
        yield normalize_series(frame, config, plan)
        del frame


def merge_scalers(parts: list[Scaler]) -> Scaler:
    """One scaler of the chunks' scalers (disjoint series, the same plan)."""
    if not parts:
        raise ValueError("no chunks to merge: the table has no rows")
    head = parts[0]

    def joined(name: str) -> dict:
        out: dict = {}
        for part in parts:
            out.update(getattr(part, name))
        return out

    return replace(
        head,
        **{
            name: joined(name)
            for name in (
                "center",
                "scale",
                "frequency",
                "val_start",
                "test_start",
                "stats",
                "seasonal",
                "logged",
            )
        },
    )


def static_table(frame: pd.DataFrame, ids: list[str], static: list[str]) -> pd.DataFrame:
    """One row per series (``ids``): its static values (the first non-missing of each)."""
    if not static:
        return pd.DataFrame(index=ids)
    firsts = frame.groupby(frame[SERIES_ID].astype(str), sort=False)[static].first()
    return firsts.reindex(ids)


def model_columns(
    spec: FeatureSpec, grid: Any, ids: list[str], statics: pd.DataFrame, frequencies: list
) -> np.ndarray:
    """Every series' model columns [rows, columns] in original units (``FeatureSpec``):
    the grid's value and covariates, lead columns, calendar, holidays, statics.

    A lead column's last ``lead`` rows of a series look past its end: they are carried
    forward from the last known value (no training window reads them: a window's targets
    end at the series' last row, its inputs ``lead`` rows before).
    """
    if spec.columns() == spec.raw:
        return grid.values
    out = np.empty((len(grid.t), len(spec.columns())))
    stamps = grid.t.astype("datetime64[us]")
    for k, sid in enumerate(ids):
        rows_k = slice(int(grid.start[k]), int(grid.start[k] + grid.length[k]))
        row = spec.static_row(sid, statics.loc[sid].to_dict() if len(statics.columns) else {})
        matrix = spec.series_matrix(stamps[rows_k], grid.values[rows_k], row, frequencies[k])
        out[rows_k] = pd.DataFrame(matrix).ffill().fillna(0.0).to_numpy()
    return out


def refit_seasons(
    scaler: Scaler,
    arrays: SeriesArrays,
    season_length: int | None = None,
    out: Path | None = None,
):
    """The registered model's scaler and values: each logged series' seasonal indices refit
    on all its points (evaluation used the training part's), its values re-logged with them.

    Returns (scaler, values [rows, features] float32). Series that are not logged, and
    covariates, keep their map. Used only after evaluation (``train.final_epochs``): the
    test windows have scored the model already, so the served model may learn from every
    point. With ``out`` the values are a memory-mapped .npy file there (4 bytes a value on
    disk, not in memory: 2 GB at 100M rows of five features), else an array in memory.
    """
    if scaler.method != SEASONAL_LOG or not scaler.logged:
        return scaler, arrays.values
    if out is None:
        values = np.array(arrays.values, dtype=np.float32, copy=True)
    else:
        values = handed_back(
            np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=arrays.values.shape)
        )
        step = 1 << 20  # rows copied at a time (40 MB of 5 features read, 40 written)
        for first in range(0, len(values), step):
            values[first : first + step] = arrays.values[first : first + step]
            drop_mapped_pages()  # both maps' pages: faster than the thread hands them back
    seasonal = dict(scaler.seasonal)
    touched = 0  # rows of mapped arrays read or written since their pages were handed back
    for code, sid in enumerate(arrays.series):
        if not scaler.logged.get(sid):
            continue
        rows = arrays.rows_of(code)
        touched += rows.stop - rows.start
        if touched >= 1 << 20:
            drop_mapped_pages()
            touched = 0
        original = arrays.original[rows]
        frequency = scaler.frequency_of(sid)
        season = season_length or frequency.season_length()
        positions, _ = frequency.positions(arrays.times[rows], origin=EPOCH)
        slots = positions % max(season, 1)
        index, _ = seasonal_log_fit(SEASONAL_LOG, original, slots, season)
        if index:
            seasonal[sid] = index
        else:
            seasonal.pop(sid, None)
        factors = np.asarray(index, dtype=float)[slots] if index else 1.0
        values[rows, 0] = np.log(original / factors)  # computed in float64, stored rounded
    return replace(scaler, seasonal=seasonal), values
