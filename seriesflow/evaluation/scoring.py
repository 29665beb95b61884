"""Scoring forecasts on windows: baselines, metric tables, the backtest (pure, no Prefect).

All scores are in original units. Regression: MSE, MAE, RMSE, MAPE and MASE
against the naive (last value) and seasonal-naive baselines; MASE divides by
each series' in-sample (training part) seasonal-naive MAE. Classification:
accuracy and macro precision, recall and F1 against the majority class (per
series, from the training windows) and the naive class (the latest class
already known at the window's origin).

The backtest folds are in ``seriesflow/evaluation/backtest.py``.

Used by the evaluate stage, the tune flow and the benchmarks alike.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.config.pipeline import EvaluateConfig, PipelineConfig
from seriesflow.data.schema import (
    ALL_SERIES,
    ALL_WINDOWS,
    CHAMPION,
    CHAMPION_WINDOWS,
    CLASSIFICATION,
    MAJORITY,
    MODEL,
    NAIVE,
    ROUTED,
    SEASONAL_NAIVE,
    SERIES_ID,
    SPLITS,
    TRAIN,
)
from seriesflow.evaluation.backtest import backtest, backtest_folds
from seriesflow.evaluation.metrics import (
    CLASS_METRICS,
    METRICS,
    class_metrics_table,
    majority_classes,
    metrics_table,
    seasonal_naive_scale,
)
from seriesflow.model.classical import (
    FIT_SEASONS,
    FITTED,
    ClassicalFit,
    SeriesJob,
    classical_paths,
    fit_series,
    paths_of,
)
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import SeriesArrays, Windows, direction_labels


@dataclass(frozen=True)
class SeriesContext:
    """What scoring needs of each series besides the windows."""

    values: dict[str, np.ndarray]  # original-unit values, [steps]
    times: dict[str, np.ndarray]  # timestamps, [steps]
    scale: dict[str, float]  # in-sample seasonal-naive MAE on the training part
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # class per step, if labelled
    season: dict[str, int] = field(default_factory=dict)  # season length per series
    train_length: dict[str, int] = field(default_factory=dict)  # points in the training part

    @classmethod
    def from_arrays(cls, arrays: SeriesArrays, seasons: dict[str, int] | int) -> SeriesContext:
        """Per series: values, times, the MASE scale and season (one for all, or per series)."""
        values, times, scale, labels, season, train_length = {}, {}, {}, {}, {}, {}
        train_code = SPLITS.index(TRAIN)
        for code, sid in enumerate(arrays.series):
            rows = arrays.rows_of(code)
            season[sid] = seasons if isinstance(seasons, int) else seasons[sid]
            values[sid] = arrays.original[rows]
            times[sid] = arrays.times[rows]
            train_values = values[sid][arrays.split[rows] == train_code]
            train_length[sid] = len(train_values)
            scale[sid] = seasonal_naive_scale(train_values, season[sid])
            if arrays.labels is not None:
                labels[sid] = arrays.labels[rows].astype(str).astype(object)
        return cls(values, times, scale, labels, season, train_length)


def season_lengths(cfg: EvaluateConfig, scaler: Scaler) -> dict[str, int]:
    """Season length per series: the configured one, else its frequency's (monthly -> 12)."""
    return {
        sid: cfg.season_length or scaler.frequency_of(sid).season_length() for sid in scaler.series
    }


def _per_window(windows: Windows, context: SeriesContext, horizon: int, fn) -> np.ndarray:
    out = np.full((len(windows), horizon), np.nan)
    origin = windows.origin  # [windows], computed once, not per series
    for sid, mask in windows.by_series():  # mask: the series' window indexes
        out[mask] = fn(context.values[sid], origin[mask])
    return out


def actuals(windows: Windows, context: SeriesContext) -> np.ndarray:
    horizon = windows.horizon
    steps = np.arange(1, horizon + 1)
    return _per_window(windows, context, horizon, lambda v, o: v[o[:, None] + steps[None, :]])


def baselines(
    windows: Windows, context: SeriesContext, classical: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """Naive (last value) and seasonal-naive forecasts [windows, horizon], per series' season;
    with ``classical=("ets", "theta")`` also statsforecast's AutoETS / AutoTheta, fit on each
    series' training part and rolled over the windows without refitting."""
    return classical_forecasts(windows, context, windows.horizon, classical)


Fits = dict[str, dict[str, ClassicalFit]]  # series -> model (ets, theta) -> its fit


def _jobs(
    context: SeriesContext, names: tuple[str, ...], series: list[str], seasons: int
) -> list[SeriesJob]:
    """One fit job per series: its training part only (a fit never reads past it)."""
    jobs = []
    for sid in series:
        n_train = context.train_length.get(sid, len(context.values[sid]))
        values = np.asarray(context.values[sid][:n_train])
        jobs.append((sid, values, n_train, context.season.get(sid, 1), names, seasons))
    return jobs


def _timed_fits(context: SeriesContext, found: Fits) -> Fits:
    """Where each fit starts, in time (a forecast resumes from there), and where it ends
    (``reusable_fits``: the next run knows the points it saw)."""

    def timed(sid: str, fit: ClassicalFit) -> ClassicalFit:
        times = context.times[sid]
        end = None if fit.points is None else _iso(times[fit.start + fit.points - 1])
        return replace(fit, start_time=_iso(times[fit.start]), end_time=end)

    return {
        sid: {name: timed(sid, fit) for name, fit in models.items()}
        for sid, models in found.items()
    }


def reusable_fits(
    previous: Fits,
    context: SeriesContext,
    names: tuple[str, ...],
    growth: float,
    seasons: int = FIT_SEASONS,
) -> Fits:
    """The fits of an earlier run (the champion's) that still hold for this run's series.

    A series keeps its fits of every model in ``names`` when, for each: it was fit on the
    points this run has at the same times, with the same values (``ClassicalFit.digest``),
    the same season and the same ``seasons`` rule (``fit_points``); those points lie within
    this run's training part; and the training part grew by at most ``growth`` (a share of
    the points up to the fit's last) since. Its parameters then run forward over the new
    points as they do across origins, and ``start`` moves to where those times are now (a
    series extended backwards). Any doubt (a fit from before fits recorded their points, a
    changed value, a series that grew more): the series is fit again.
    """
    kept: Fits = {}
    if growth <= 0 or not names:
        return kept
    for sid, models in previous.items():
        if sid not in context.values or any(name not in models for name in names):
            continue
        moved = {}
        for name in names:
            fit = _moved(models[name], context, sid, growth, seasons)
            if fit is None:
                break
            moved[name] = fit
        else:
            kept[sid] = moved
    return kept


def _moved(
    fit: ClassicalFit, context: SeriesContext, sid: str, growth: float, seasons: int
) -> ClassicalFit | None:
    """``fit`` with ``start`` where its first point is in this run's series, if it holds."""
    from seriesflow.model.classical import fit_points, values_digest

    season = context.season.get(sid, 1)
    if None in (fit.points, fit.start_time, fit.end_time, fit.digest) or fit.season != season:
        return None
    times = context.times[sid]
    start = int(np.searchsorted(times, _stamp(fit.start_time, times.dtype)))
    end = start + int(fit.points)  # exclusive
    n_train = context.train_length.get(sid, 0)
    if start >= len(times) or end > n_train or end < 1:
        return None
    if times[start] != _stamp(fit.start_time, times.dtype):
        return None
    if times[end - 1] != _stamp(fit.end_time, times.dtype):
        return None
    if fit.points != min(end, fit_points(season, seasons)):  # another fit_seasons rule
        return None
    if n_train - end > growth * end:
        return None
    if values_digest(context.values[sid][start:end]) != fit.digest:
        return None
    return replace(fit, start=start)


def _stamp(iso: str, dtype: np.dtype) -> np.datetime64:
    stamp = pd.Timestamp(iso)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return np.datetime64(stamp.to_datetime64()).astype(dtype)


def fit_classical_models(
    context: SeriesContext,
    classical: tuple[str, ...],
    series: list[str] | None = None,
    n_jobs: int = 1,
    seasons: int = FIT_SEASONS,
) -> Fits:
    """Each series' statsforecast models (those of ``classical`` that are fit: ets, theta),
    fit once on its training part (its latest ``seasons`` seasons, ``fit_points``), for
    every origin of every split to roll forward from. ``n_jobs`` > 1 (or -1: every core)
    fits series in that many processes."""
    names = tuple(c for c in FITTED if c in classical)
    wanted = sorted(str(s) for s in (context.values if series is None else series))
    if not names or not wanted:
        return {sid: {} for sid in wanted}
    jobs = _jobs(context, names, wanted, seasons)
    if n_jobs == 1 or len(jobs) < 2:
        found = fit_series(jobs)
    else:
        from joblib import Parallel, delayed  # lazily: only a parallel fit needs it

        parts = Parallel(n_jobs=n_jobs)(delayed(fit_series)([job]) for job in jobs)
        found = {sid: fits for part in parts for sid, fits in part.items()}
    return _timed_fits(context, found)


class BackgroundFits:
    """``fit_classical_models`` in worker processes, started now and collected later.

    The retrain's train task starts it before the LSTM trains: Keras keeps about 1.2 of 2
    cores busy (measured on the 10M-row run), and the statsforecast fits take the rest in
    other processes, never this process's GIL. The series are cut into shares (up to
    ``SHARES_PER_WORKER`` a worker); each of ``n_jobs`` workers (-1: every core) is a fresh
    interpreter running ``seriesflow/model/fit_worker.py``, taking one share after another
    (files in, files out). ``result()`` (training is over) takes the shares no worker has
    yet in this process, whose core training has handed back, then waits for the workers:
    at 10,000 series the fits outlast training, and a worker alone would leave a core idle.
    ``cancel()`` stops them (a failed training). ``reused``: fits kept from an earlier run
    (``reusable_fits``): those series are not fit again, and ``result()`` returns them too.
    """

    SHARES_PER_WORKER = 32

    def __init__(
        self,
        context: SeriesContext,
        classical: tuple[str, ...],
        n_jobs: int = 1,
        seasons: int = FIT_SEASONS,
        reused: Fits | None = None,
        reused_from: str = "",
    ) -> None:
        import subprocess
        import sys
        import tempfile

        from seriesflow.model.fit_worker import write_jobs

        self.context = context
        self.names = tuple(c for c in FITTED if c in classical)
        self.reused = dict(reused or {})  # kept from an earlier run (``reusable_fits``)
        self.reused_from = reused_from  # which run (for the log)
        every = sorted(str(s) for s in context.values) if self.names else []
        self.series = [sid for sid in every if sid not in self.reused]  # those fit now
        jobs = _jobs(context, self.names, self.series, seasons)
        workers = (os.cpu_count() or 1) if n_jobs == -1 else max(1, n_jobs)
        workers = min(workers, len(jobs))
        self.started = time.perf_counter()
        self.seconds: float | None = None  # from the start to the last fit collected
        self.shares = min(len(jobs), self.SHARES_PER_WORKER * workers)
        self.shares_here = 0  # shares result() fit in this process
        self._folder = Path(tempfile.mkdtemp(prefix="seriesflow-fits-"))
        for k in range(self.shares):
            write_jobs(self._folder / f"{k:05d}", jobs[k :: self.shares])
        self._workers: list[tuple[Path, subprocess.Popen]] = []
        for k in range(workers):
            errors_path = self._folder / f"worker-{k}.stderr"
            command = [sys.executable, "-m", "seriesflow.model.fit_worker", str(self._folder)]
            with open(errors_path, "wb") as errors:  # a file: a full pipe would block
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
            self._workers.append((errors_path, process))

    @property
    def pids(self) -> list[int]:
        return [process.pid for _, process in self._workers]

    def result(self) -> Fits:
        from seriesflow.model.fit_worker import FITS, shares, work

        found: Fits = {}
        try:
            if self.shares:
                self.shares_here = work(self._folder)  # what no worker has taken yet
            for errors_path, process in self._workers:
                process.wait()
                if process.returncode != 0:
                    errors = errors_path.read_text(errors="replace")
                    tail = errors.strip().splitlines()[-5:]
                    raise RuntimeError(
                        f"a classical-fit worker failed (exit {process.returncode}): "
                        + " | ".join(tail)
                    )
            for share in shares(self._folder):
                for sid, models in json.loads((share / FITS).read_text()).items():
                    found[sid] = {name: ClassicalFit.from_json(f) for name, f in models.items()}
        finally:
            self.close()
        if self.seconds is None:
            self.seconds = time.perf_counter() - self.started
        return {**self.reused, **_timed_fits(self.context, found)}

    def cancel(self) -> None:
        """Stop: the workers are terminated and their files removed."""
        for _, process in self._workers:
            if process.poll() is None:
                process.terminate()
        self.close()

    def close(self) -> None:
        import shutil

        for _, process in self._workers:
            try:
                process.wait(timeout=30)
            except Exception:  # noqa: BLE001 - a worker that will not stop is killed
                process.kill()
                process.wait()
        self._workers = []
        shutil.rmtree(self._folder, ignore_errors=True)


def fits_to_json(fits: Fits) -> dict[str, dict[str, Any]]:
    return {
        sid: {name: fit.to_json() for name, fit in models.items()} for sid, models in fits.items()
    }


def fits_from_json(data: dict[str, dict[str, Any]]) -> Fits:
    return {
        sid: {name: ClassicalFit.from_json(fit) for name, fit in models.items()}
        for sid, models in data.items()
    }


def _iso(time: Any) -> str:
    stamp = pd.Timestamp(time)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.isoformat()


def classical_forecasts(
    windows: Windows,
    context: SeriesContext,
    steps: int,
    classical: tuple[str, ...] = (),
    fits: Fits | None = None,
) -> dict[str, np.ndarray]:
    """``baselines`` for ``steps`` ahead of each window's origin [windows, steps] (longer
    paths than the horizon: what prediction intervals are calibrated on). ``fits``: the
    statsforecast models already fit (``fit_classical_models``), else fit here."""
    names = (NAIVE, SEASONAL_NAIVE, *[c for c in FITTED if c in classical])
    found = {name: np.full((len(windows), steps), np.nan) for name in names}
    origin = windows.origin  # [windows], computed once, not per series
    missing = [
        str(sid)
        for sid, _ in windows.by_series()
        if any(name not in (fits or {}).get(str(sid), {}) for name in names if name in FITTED)
    ]
    if missing:
        fits = {**(fits or {}), **fit_classical_models(context, classical, missing)}
    for sid, mask in windows.by_series():  # mask: the series' window indexes
        sid = str(sid)
        season = context.season.get(sid, 1)
        values, origins = context.values[sid], origin[mask]
        for name in names:
            if name in FITTED:
                found[name][mask] = paths_of(fits[sid][name], values, origins, steps)
            else:
                found[name][mask] = classical_paths(name, values, 0, origins, steps, season)[0]
    return found


def score(
    windows: Windows,
    model_pred: np.ndarray,
    context: SeriesContext,
    champion_pred: np.ndarray | None = None,
    classical: tuple[str, ...] = (),
    others: dict[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics table and long predictions table for regression forecasts in original units.

    ``others``: forecasts [windows, horizon] already made for these windows (the baselines,
    the routed model); the baselines are fit here only when it lacks them.
    """
    actual = actuals(windows, context)
    others = dict(others or {})
    if NAIVE not in others:
        others = {**baselines(windows, context, classical), **others}
    forecasts = {MODEL: model_pred, **others}
    scale = np.array([context.scale[str(s)] for s in windows.series_id])
    table = metrics_table(windows.series_id, actual, forecasts, scale).assign(scope=ALL_WINDOWS)
    parts = [table]
    if champion_pred is not None:
        mask = ~np.isnan(champion_pred).any(axis=1)
        if mask.any():
            both = {CHAMPION: champion_pred[mask], MODEL: model_pred[mask]}
            if ROUTED in forecasts:
                both[ROUTED] = forecasts[ROUTED][mask]
            parts.append(
                metrics_table(windows.series_id[mask], actual[mask], both, scale[mask]).assign(
                    scope=CHAMPION_WINDOWS
                )
            )
    metrics = pd.concat(parts, ignore_index=True)
    metrics = metrics[["model", "scope", SERIES_ID, "windows", *METRICS]]

    horizon = actual.shape[1]
    steps = np.arange(1, horizon + 1)
    target_times = np.empty((len(windows), horizon), dtype="datetime64[us]")
    origin = windows.origin  # [windows], computed once, not per series
    for sid, mask in windows.by_series():  # mask: the series' window indexes
        t = context.times[str(sid)]
        target_times[mask] = t[origin[mask][:, None] + steps[None, :]]
    columns = {
        SERIES_ID: np.repeat(windows.series_id, horizon),
        "origin_index": np.repeat(windows.origin, horizon),
        "step": np.tile(steps, len(windows)),
        "target_time": pd.to_datetime(target_times.ravel(), utc=True),
        "actual": actual.ravel(),
    }
    for name, predicted in forecasts.items():
        columns[name] = predicted.ravel()
    if champion_pred is not None:
        columns[CHAMPION] = champion_pred.ravel()
    return metrics, pd.DataFrame(columns)


# --------------------------------------------------------------------------- classification


def class_baselines(
    windows: Windows, context: SeriesContext, majority: dict[str, int]
) -> dict[str, np.ndarray]:
    """Majority class per series and the naive class: class indexes [windows] each.

    The naive class is the latest one known at the origin: the label at the
    origin (label column), or the direction over the ``horizon`` steps that end
    at the origin (derived direction); the majority class where neither exists.
    """
    classes = np.asarray(windows.classes, dtype=object)
    horizon = windows.horizon
    fallback = np.array([majority.get(str(s), 0) for s in windows.series_id])  # [windows]
    naive = fallback.copy()
    origin = windows.origin  # [windows], computed once, not per series
    for sid, mask in windows.by_series():  # mask: the series' window indexes
        origins = origin[mask]
        if context.labels:
            known = context.labels[str(sid)][origins]
        else:
            back = np.clip(origins - horizon, 0, None)
            known = direction_labels(context.values[str(sid)], back, horizon)
            known = np.where(origins >= horizon, known, None)
        found = np.array([k is not None and k in set(classes) for k in known], dtype=bool)
        codes = naive[mask]
        codes[found] = np.searchsorted(classes, known[found].astype(object))
        naive[mask] = codes
    return {MAJORITY: fallback, NAIVE: naive}


def score_classification(
    windows: Windows,
    model_prob: np.ndarray,
    context: SeriesContext,
    majority: dict[str, int],
    champion_prob: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics table and predictions table (one row per window) for class forecasts."""
    actual = windows.codes  # [windows]
    predicted = np.argmax(model_prob, axis=1)  # [windows]
    forecasts = {MODEL: predicted, **class_baselines(windows, context, majority)}
    table = class_metrics_table(windows.series_id, actual, forecasts).assign(scope=ALL_WINDOWS)
    parts = [table]
    if champion_prob is not None:
        mask = ~np.isnan(champion_prob).any(axis=1)
        if mask.any():
            both = {CHAMPION: np.argmax(champion_prob[mask], axis=1), MODEL: forecasts[MODEL][mask]}
            parts.append(
                class_metrics_table(windows.series_id[mask], actual[mask], both).assign(
                    scope=CHAMPION_WINDOWS
                )
            )
    metrics = pd.concat(parts, ignore_index=True)
    metrics = metrics[["model", "scope", SERIES_ID, "windows", *CLASS_METRICS]]

    classes = np.asarray(windows.classes, dtype=object)
    horizon = windows.horizon
    target_times = np.empty(len(windows), dtype="datetime64[us]")
    origin = windows.origin  # [windows], computed once, not per series
    for sid, mask in windows.by_series():  # mask: the series' window indexes
        target_times[mask] = context.times[str(sid)][origin[mask] + horizon]
    columns: dict[str, Any] = {
        SERIES_ID: windows.series_id,
        "origin_index": windows.origin,
        "target_time": pd.to_datetime(target_times, utc=True),
        "actual": classes[actual],
    }
    for name, codes in forecasts.items():
        columns[name] = classes[codes]
    for k, name in enumerate(classes):
        columns[f"p_{name}"] = model_prob[:, k]
    if champion_prob is not None:
        known = ~np.isnan(champion_prob).any(axis=1)
        picked = np.where(known, np.argmax(np.nan_to_num(champion_prob), axis=1), 0)
        columns[CHAMPION] = np.where(known, classes[picked], None)
    return metrics, pd.DataFrame(columns)


# --------------------------------------------------------------------------- one scorer


@dataclass(frozen=True)
class Scorer:
    """Scores forecasts on windows of one split, in original units.

    ``outputs`` and ``champion`` are what ``saved_model.forecast_windows`` returns:
    forecasts in original units, or class probabilities. Returns (metrics table,
    predictions table).
    """

    context: SeriesContext
    majority: dict[str, int] | None = None  # classification: each series' majority class
    classical: tuple[str, ...] = ()  # classical baselines to fit as well (``ets``)

    @property
    def seasons(self) -> list[int]:
        """The distinct season lengths in use (for reports)."""
        return sorted(set(self.context.season.values()))

    def __call__(
        self,
        windows: Windows,
        outputs: np.ndarray,
        champion: np.ndarray | None = None,
        others: dict[str, np.ndarray] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        if windows.task == CLASSIFICATION:
            if self.majority is None:
                raise ValueError("a classification scorer needs the majority classes")
            return score_classification(windows, outputs, self.context, self.majority, champion)
        return score(windows, outputs, self.context, champion, self.classical, others)


def scorer_for(
    windows: Windows,
    scaler: Scaler,
    cfg: EvaluateConfig,
    season_length: int | None = None,
    classical: tuple[str, ...] = (),
) -> Scorer:
    """The scorer of one run: seasons, per-series context, majority classes of train."""
    seasons = season_length or season_lengths(cfg, scaler)
    context = SeriesContext.from_arrays(windows.arrays, seasons)
    majority = None
    if windows.task == CLASSIFICATION:
        train = windows.subset(TRAIN)
        majority = majority_classes(train.series_id, train.codes, len(windows.classes))
    return Scorer(context, majority, tuple(classical))


COVERAGE = "coverage_"  # prefix of the interval coverage columns: coverage_80, coverage_95
# the registered model's probabilistic scores (seriesflow/evaluation/probabilistic.py)
PROBABILISTIC = (COVERAGE, "pinball_", "msis_", "wape")


def overall(metrics: pd.DataFrame, scope: str = ALL_WINDOWS) -> dict[str, dict[str, float]]:
    """{model: {metric: value}} for the pooled ``__all__`` rows of one scope.

    Interval coverage (``coverage_<level>``, the model's only) is included where measured.
    """
    rows = metrics[(metrics[SERIES_ID] == ALL_SERIES) & (metrics["scope"] == scope)]
    names = [m for m in (*METRICS, *CLASS_METRICS) if m in metrics.columns]
    extra = [c for c in metrics.columns if c.startswith(PROBABILISTIC)]
    found = {}
    for _, r in rows.iterrows():
        values = {m: float(r[m]) for m in names}
        values |= {c: float(r[c]) for c in extra if pd.notna(r[c])}
        found[r["model"]] = values
    return found


def with_coverage(
    metrics: pd.DataFrame, coverage: pd.DataFrame, model: str = MODEL
) -> pd.DataFrame:
    """The metrics table with ``model``'s interval coverage per series (and pooled) added.

    ``coverage``: one row per series id (and ``__all__``), one ``coverage_<level>`` column
    per level; only ``model``'s rows on all windows get values (the registered model's).
    """
    out = metrics.copy()
    mine = (out["model"] == model) & (out["scope"] == ALL_WINDOWS)
    for column in coverage.columns:
        out[column] = np.nan
        out.loc[mine, column] = out.loc[mine, SERIES_ID].map(coverage[column]).to_numpy()
    return out


# --------------------------------------------------------------------------- a split, scored


@dataclass(frozen=True)
class Scored:
    """A model scored on one split: metrics, predictions and (optionally) the backtest."""

    metrics: pd.DataFrame
    predictions: pd.DataFrame | None  # None: written to a file a chunk at a time
    backtest: pd.DataFrame | None = None

    def overall(self, scope: str = ALL_WINDOWS) -> dict[str, dict[str, float]]:
        return overall(self.metrics, scope)


def score_split(
    windows: Windows,
    outputs: np.ndarray,
    scorer: Scorer,
    champion: np.ndarray | None = None,
    folds: int = 0,
    others: dict[str, np.ndarray] | None = None,
) -> Scored:
    """Score ``outputs`` (and the champion's, and ``others``' forecasts) on ``windows``;
    backtest over ``folds`` if > 0."""
    metrics, predictions = scorer(windows, outputs, champion, others)
    table = None
    if folds > 0:

        def fold_metrics(mask: np.ndarray) -> pd.DataFrame:
            theirs = None if champion is None else champion[mask]
            mine = None if others is None else {k: v[mask] for k, v in others.items()}
            return scorer(windows.select(mask), outputs[mask], theirs, mine)[0]

        table = backtest(windows, backtest_folds(windows, folds), fold_metrics)
    return Scored(metrics, predictions, table)


def spread_windows(windows: Windows, per_series: int | None) -> Windows:
    """At most ``per_series`` windows of each series, spread evenly over its windows in time
    order (first and last kept); all of them when ``per_series`` is None or enough."""
    if per_series is None or not len(windows):
        return windows
    keep = np.zeros(len(windows), dtype=bool)
    origin = windows.origin
    for _, mask in windows.by_series():
        if len(mask) <= per_series:
            keep[mask] = True
            continue
        ordered = mask[np.argsort(origin[mask], kind="stable")]
        picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, per_series)).astype(int))
        keep[ordered[picks]] = True
    return windows.select(keep)


def classical_baselines(config: PipelineConfig, n_series: int) -> tuple[str, ...]:
    """The statsforecast models to fit (``ets``, ``theta``): the routed model's candidates and
    those the gate uses, always; those only reported, up to ``evaluate.baseline_max_series``
    series (a fit per series each)."""
    always = set(config.register.baselines) & set(FITTED)
    if config.register.models == "routed":
        wanted = {*config.register.candidates, config.register.default_model}
        always |= wanted & set(FITTED)
        if "combination" in wanted:  # the mean of the LSTM, AutoETS and AutoTheta
            always |= set(FITTED)
    reported = set(config.evaluate.baselines) & set(FITTED)
    if n_series > config.evaluate.baseline_max_series:
        reported = set()
    return tuple(sorted(always | reported))
