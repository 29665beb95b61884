"""A regression run's evaluation: the LSTM, the classical candidates, the router, the
champion and the prediction intervals, on the same windows (pure, no Prefect).

1. The validation and test windows of each series, at most
   ``evaluate.max_windows_per_series`` of each, spread evenly in time (the same windows
   for every model).
2. The LSTM's paths from each origin (direct within its horizon, recursive beyond) and
   the classical candidates' (fit on each series' training part, rolled forward without
   refitting), as far ahead as forecasts go.
3. The router chooses each series' model on the validation windows
   (``seriesflow/evaluation/router.py``); the routed model is scored on the test windows
   beside the LSTM alone, the baselines and the champion (its own LSTM through its own
   scaler, routed by its own router among the same classical forecasts).
4. Prediction intervals of the routed model: split conformal on its validation residuals,
   coverage measured on the test windows, shipped calibrated on both.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.grid import whole_series_chunks
from seriesflow.data.schema import (
    ALL_SERIES,
    COMBINATION,
    ETS,
    FOLD,
    LSTM,
    NAIVE,
    ROUTED,
    SEASONAL_NAIVE,
    SERIES_ID,
    TEST,
    THETA,
    VAL,
)
from seriesflow.evaluation.champion import Rescored, rescore_champion_counted
from seriesflow.evaluation.metrics import pooled_again
from seriesflow.evaluation.probabilistic import probabilistic_scores
from seriesflow.evaluation.router import Router, choose, combination_of, route, route_run
from seriesflow.evaluation.scoring import (
    Fits,
    Scored,
    Scorer,
    actuals,
    classical_forecasts,
    fit_classical_models,
    score_split,
    spread_windows,
    with_coverage,
)
from seriesflow.model.classical import FITTED
from seriesflow.model.forecasting import (
    forecast_paths,
    interval_coverage,
    longest_steps,
    residuals_of,
    settings_of,
)
from seriesflow.model.intervals import (
    Intervals,
    pooled_half_widths,
    residual_codes,
    scaled_residuals,
    series_half_widths,
)
from seriesflow.model.saved_model import ModelSpec
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import Windows
from seriesflow.workspace.files import parquet_parts, release_memory


@dataclass(frozen=True)
class RoutedEvaluation:
    scored: Scored
    router: Router
    intervals: Intervals
    test_windows: int
    champion_note: str | None
    origins: dict[str, Any] = field(default_factory=dict)  # which origins were scored, how
    seconds: dict[str, float] = field(default_factory=dict)  # where the time went, by part


def evaluate_regression(
    model: Any,
    spec: ModelSpec,
    scaler: Scaler,
    windows: Windows,
    config: PipelineConfig,
    scorer: Scorer,
    reported: tuple[str, ...],
    champion: Any | None = None,
    fits: Fits | None = None,
    predictions_path: Path | None = None,
    progress: Any = None,
) -> RoutedEvaluation:
    """Score the run's models on its test windows (see the module docstring).

    ``reported``: the classical baselines to show beside naive and seasonal naive; the
    router's candidates are fit whatever it says. ``fits``: statsforecast fits already made
    (``BackgroundFits``, beside training); a series or model they lack is fit here.

    The windows are scored a chunk of series at a time (``evaluate.chunk_windows``
    validation and test windows each, whole series): every model's paths, the champion's,
    the routed model's residuals and the long predictions of one chunk at a time, so memory
    follows the chunk, not the run. What pools over every series is pooled again: the
    router is chosen on every chunk's validation errors (the chunks are routed again by it
    in the rare case it chooses otherwise for a series), the pooled metrics and coverage
    are re-weighted over every window, the pooled interval widths are quantiles of every
    chunk's scaled residuals. ``predictions_path``: the long predictions are written there
    a chunk at a time (``Scored.predictions`` is then None), else returned. ``progress``:
    called with a line after each chunk (the stage's log).
    """
    clock, seconds = time.perf_counter(), {}

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[part] = round(seconds.get(part, 0.0) + now - clock, 3)
        clock = now

    per_series = config.evaluate.max_windows_per_series or None  # 0 / None: every window
    all_val, all_test = windows.subset(VAL), windows.subset(TEST)
    val = spread_windows(all_val, per_series)
    test = spread_windows(all_test, per_series)
    origins = origins_record(per_series, val, all_val, test, all_test)
    steps = longest_steps(settings_of(config), scaler, spec.horizon)
    # every statsforecast model once per series (on its training part), for the val and test
    # origins, the reported baselines and the router's kept fits alike: those fit beside
    # training (``fits``), the rest here
    names = models_to_fit(config, reported)
    given = fits or {}
    missing = [
        str(s) for s in scorer.context.values if any(n not in given.get(str(s), {}) for n in names)
    ]
    fits = dict(given)
    if missing:
        fits.update(
            fit_classical_models(
                scorer.context,
                names,
                missing,
                n_jobs=config.evaluate.n_jobs,
                seasons=config.evaluate.fit_seasons,
            )
        )
    lap("classical_fits")
    # no validation or test window at all: one empty chunk, scored as one pass would (NaN)
    chunks = series_chunks(val, test, config.evaluate.chunk_windows) or [np.empty(0, np.int64)]
    origins["chunks"] = len(chunks)
    every = sorted(str(s) for s in scorer.context.values)
    seasons = {sid: int(scorer.context.season.get(sid, 1)) for sid in every}
    cfg = config.register
    with tempfile.TemporaryDirectory(prefix="seriesflow-evaluate-") as folder:
        scoring = _Chunks(
            model, spec, scaler, config, scorer, reported, champion, fits, steps, progress
        )
        found = scoring.run(val, test, chunks, Path(folder), predictions_path, None, lap)
        if cfg.models == "lstm_only":
            router = Router.lstm_only(every, seasons)
        else:
            candidates = tuple(dict.fromkeys((cfg.default_model, *cfg.candidates)))
            router = choose(
                found.errors, every, seasons, candidates, cfg.default_model, cfg.switch_below
            )
        router = router.with_fits(fits)
        if any(router.model_of(sid) != chosen for sid, chosen in found.choice.items()):
            # a series the chunk's router served otherwise (one with no validation score,
            # whose fallback pools over every series): every chunk again, by this router
            found = scoring.run(val, test, chunks, Path(folder), predictions_path, router, lap)
        levels = list(config.forecast.levels)
        scale = scorer.context.scale
        on_val = replace(found.on_val, pooled=pooled_half_widths(*found.scaled_val, levels, steps))
        shipped = replace(
            found.shipped, pooled=pooled_half_widths(*found.scaled_both, levels, steps)
        )
        # coverage, pinball, MSIS and WAPE of the intervals calibrated on validation only, on
        # test: the routed test paths of each chunk again, now that the pooled widths are known
        coverage, probabilistic = [], []
        for k, codes in enumerate(chunks):
            part = test.select(np.isin(test.code, codes))
            paths = found.test_paths(k)
            coverage.append(_coverage(part, paths, on_val, levels))
            forecast = paths[:, : spec.horizon]
            probabilistic.append(
                probabilistic_scores(
                    part.series_id, actuals(part, scorer.context), forecast, on_val, levels, scale
                )
            )
        lap("scores_and_intervals")
    table = _pooled_coverage(coverage, levels)
    measured = {str(level): float(table.at[ALL_SERIES, f"coverage_{level}"]) for level in levels}
    intervals = replace(shipped, coverage=measured)
    scores = _pooled_probabilistic(probabilistic)
    metrics = with_coverage(found.metrics, table.drop(columns="rows"), ROUTED)
    if not scores.empty:
        metrics = with_coverage(metrics, scores, ROUTED)
    scored = Scored(metrics, found.predictions, found.backtest)
    note = None if found.champion is None else found.champion.note
    return RoutedEvaluation(scored, router, intervals, len(test), note, origins, seconds)


def series_chunks(val: Windows, test: Windows, most: int) -> list[np.ndarray]:
    """The series with windows, in id order, cut into consecutive chunks of at most ``most``
    validation and test windows together (whole series: one with more is a chunk alone);
    each chunk as the series' codes (``Windows.code``)."""
    names = val.arrays.series
    count = np.bincount(val.code, minlength=len(names)) + np.bincount(
        test.code, minlength=len(names)
    )
    present = [code for code in np.flatnonzero(count)]
    present.sort(key=lambda code: str(names[code]))
    codes = np.asarray(present, dtype=np.int64)
    return [codes[part.start : part.stop] for part in whole_series_chunks(count[codes], most)]


@dataclass
class _Found:
    """What one pass over the chunks found (``_Chunks.run``)."""

    metrics: pd.DataFrame
    predictions: pd.DataFrame | None
    backtest: pd.DataFrame | None
    champion: Rescored | None
    errors: dict[str, dict[str, float]]  # series -> candidate -> validation MASE
    choice: dict[str, str]  # series -> the model its chunk's router chose
    on_val: Intervals  # each series' own widths calibrated on val (pooled: set after)
    shipped: Intervals  # on val and test
    scaled_val: tuple[np.ndarray, np.ndarray]  # (step, scaled |residual|), every chunk
    scaled_both: tuple[np.ndarray, np.ndarray]
    paths: list[Any]  # each chunk's routed test paths, or the file they were saved to

    def test_paths(self, chunk: int) -> np.ndarray:
        found = self.paths[chunk]
        return found if isinstance(found, np.ndarray) else np.load(found, mmap_mode="r")


@dataclass(frozen=True)
class _Chunks:
    """Scores the chunks of a run, one after another (``evaluate_regression``)."""

    model: Any
    spec: ModelSpec
    scaler: Scaler
    config: PipelineConfig
    scorer: Scorer
    reported: tuple[str, ...]
    champion: Any | None
    fits: Fits
    steps: int
    progress: Any = None  # called with a line after each chunk

    def run(
        self,
        val: Windows,
        test: Windows,
        chunks: list[np.ndarray],
        folder: Path,
        predictions_path: Path | None,
        router: Router | None,
        lap: Any,
    ) -> _Found:
        metrics, backtests, predictions, paths = [], [], [], []
        errors: dict[str, dict[str, float]] = {}
        choice: dict[str, str] = {}
        half_val: dict[str, dict[str, list[float]]] = {}
        half_both: dict[str, dict[str, list[float]]] = {}
        scaled_val: list[tuple[np.ndarray, np.ndarray]] = []
        scaled_test: list[tuple[np.ndarray, np.ndarray]] = []
        rescored: Rescored | None = None
        started = time.perf_counter()
        levels = list(self.config.forecast.levels)
        scale = self.scorer.context.scale
        with contextlib.ExitStack() as stack:
            write = None
            if predictions_path is not None:
                write = stack.enter_context(parquet_parts(predictions_path, lambda t: t.schema))
            for k, codes in enumerate(chunks):
                v = val.select(np.isin(val.code, codes))
                t = test.select(np.isin(test.code, codes))
                part = self._chunk(v, t, router, lap)
                metrics.append(part.scored.metrics)
                if part.scored.backtest is not None:
                    backtests.append(part.scored.backtest)
                if write is None:
                    predictions.append(part.scored.predictions)
                else:
                    write(part.scored.predictions)
                if part.champion is not None:
                    rescored = part.champion if rescored is None else rescored + part.champion
                errors.update(part.router.val_mase)
                choice.update({str(s): part.router.model_of(s) for s in set(v.series_id)})
                choice.update({str(s): part.router.model_of(s) for s in set(t.series_id)})
                on_val_residuals = residuals_of(v, part.val_paths)
                on_test_residuals = residuals_of(t, part.test_paths)
                both = pd.concat([on_val_residuals, on_test_residuals], ignore_index=True)
                codes_val = residual_codes(on_val_residuals, self.steps)
                half_val.update(series_half_widths(codes_val, levels, self.steps))
                half_both.update(
                    series_half_widths(residual_codes(both, self.steps), levels, self.steps)
                )
                scaled_val.append(scaled_residuals(codes_val, scale))
                scaled_test.append(
                    scaled_residuals(residual_codes(on_test_residuals, self.steps), scale)
                )
                if len(chunks) == 1:
                    paths.append(part.test_paths)
                else:  # on disk until the pooled widths are known: memory for one chunk
                    path = folder / f"test-paths-{k:05d}.npy"
                    np.save(path, part.test_paths)
                    paths.append(path)
                del part, both, codes_val, on_val_residuals, on_test_residuals
                release_memory()  # the chunk's arrays, handed back before the next one's
                lap("scores_and_intervals")
                if self.progress is not None and len(chunks) > 1:
                    self.progress(
                        f"Evaluated chunk {k + 1}/{len(chunks)}: {len(codes)} series, "
                        f"{len(v) + len(t)} windows ({time.perf_counter() - started:.0f} s "
                        "so far)"
                    )
        by = ["scope", "model"]
        backtest = None
        if backtests:
            backtest = pooled_again(backtests, [FOLD, *by])
            if len(backtests) > 1:  # each fold's span over every chunk's windows
                for edge, how in (("start", "min"), ("end", "max")):
                    backtest[edge] = backtest.groupby(FOLD)[edge].transform(how)
        every_val = _joined(scaled_val)
        every_both = _joined([*scaled_val, *scaled_test])
        return _Found(
            pooled_again(metrics, by),
            None if predictions_path is not None else pd.concat(predictions, ignore_index=True),
            backtest,
            rescored,
            errors,
            choice,
            Intervals(levels, self.steps, half_val, {}, dict(scale), "val"),
            Intervals(levels, self.steps, half_both, {}, dict(scale), "val+test"),
            every_val,
            every_both,
            paths,
        )

    def _chunk(self, val: Windows, test: Windows, router: Router | None, lap: Any) -> _Part:
        model, spec, scaler, config = self.model, self.spec, self.scaler, self.config
        context, cfg = self.scorer.context, config.register
        lstm_val = forecast_paths(model, spec, scaler, val, self.steps)  # [val windows, steps]
        lstm_test = forecast_paths(model, spec, scaler, test, self.steps)  # [test windows, steps]
        lap("lstm")
        candidates = tuple(dict.fromkeys((cfg.default_model, *cfg.candidates)))
        series = sorted({str(s) for s in (*val.series_id, *test.series_id)})
        run = route_run(
            val,
            test,
            lstm_val,
            lstm_test,
            context,
            candidates,
            cfg.models == "lstm_only",
            cfg.default_model,
            cfg.switch_below,
            self.fits,
            series,
            router,
        )
        # classical forecasts this run made but the router may not weigh (reported baselines)
        extra = tuple(c for c in self.reported if c not in run.test)
        if extra:
            run.test.update(classical_forecasts(test, context, self.steps, extra, self.fits))
        lap("classical_paths_and_routing")
        horizon = spec.horizon
        shown = (NAIVE, SEASONAL_NAIVE, *[c for c in self.reported if c in run.test], ROUTED)
        others = {name: run.test[name][:, :horizon] for name in dict.fromkeys(shown)}

        champion_out, rescored = None, None
        if self.champion is not None:
            theirs, rescored = rescore_champion_counted(self.champion, test, scaler, spec)
            champion_out = route_champion(self.champion, test, theirs, run.test, horizon)
        lap("champion")
        scored = score_split(
            test,
            lstm_test[:, :horizon],
            self.scorer,
            champion_out,
            config.evaluate.backtest_folds,
            others,
        )
        return _Part(scored, run.router, rescored, run.val[ROUTED], run.test[ROUTED])


@dataclass(frozen=True)
class _Part:
    """One chunk, scored: its tables, its router, the routed model's paths."""

    scored: Scored
    router: Router
    champion: Rescored | None
    val_paths: np.ndarray
    test_paths: np.ndarray


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.empty(0, dtype=np.int32), np.empty(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _coverage(test: Windows, paths: np.ndarray, on_val: Intervals, levels: list[int]):
    """One chunk's coverage per series and pooled, with the residual rows it pools over."""
    residuals = residuals_of(test, np.asarray(paths))
    table = pd.DataFrame(
        {f"coverage_{level}": interval_coverage(residuals, on_val, level) for level in levels}
    )
    return table, len(residuals)


def _pooled_coverage(parts: list[tuple[pd.DataFrame, int]], levels: list[int]) -> pd.DataFrame:
    """The chunks' coverage tables as one: each series' own, ``__all__`` over every residual
    row (the chunks' pooled shares weighted by their rows); ``rows``: the rows weighed."""
    columns = [f"coverage_{level}" for level in levels]
    series = [table.drop(index=ALL_SERIES, errors="ignore") for table, _ in parts]
    out = pd.concat(series) if series else pd.DataFrame(columns=columns)
    rows = sum(n for _, n in parts)
    pooled = {c: math.nan for c in columns}
    if rows:
        for c in columns:
            pooled[c] = float(sum(table.at[ALL_SERIES, c] * n for table, n in parts if n) / rows)
    if len(parts) == 1:  # as computed: no rounding of its own
        pooled = {c: float(parts[0][0].at[ALL_SERIES, c]) for c in columns}
    out.loc[ALL_SERIES] = pooled
    out.index.name = SERIES_ID
    out["rows"] = rows
    return out


def _pooled_probabilistic(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The chunks' probabilistic scores as one table: ``__all__`` is the mean over series."""
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame()
    if len(parts) == 1:
        return parts[0]
    table = pd.concat([p.drop(index=ALL_SERIES, errors="ignore") for p in parts])
    table.loc[ALL_SERIES] = table.mean(axis=0, skipna=True)
    table.index.name = SERIES_ID
    return table


def models_to_fit(config: PipelineConfig, reported: tuple[str, ...]) -> tuple[str, ...]:
    """The statsforecast models a regression run fits per series: the reported baselines,
    the router's candidates, and AutoETS and AutoTheta for the combination."""
    cfg = config.register
    candidates = {cfg.default_model, *cfg.candidates}
    fitted = set(reported) | candidates
    if COMBINATION in candidates:
        fitted |= {ETS, THETA}
    return tuple(c for c in FITTED if c in fitted)


def origins_record(
    per_series: int | None, val: Windows, all_val: Windows, test: Windows, all_test: Windows
) -> dict[str, Any]:
    """How the scored origins were chosen, and how many (the report's and MLflow's record)."""
    return {
        "max_windows_per_series": per_series or "all",
        "how": (
            "every window"
            if per_series is None
            else f"at most {per_series} per series, evenly spaced in time over each series' "
            "part (first and last kept)"
        )
        + "; the same origins for the LSTM, the routed model, the classical models, the "
        "baselines and the champion",
        "val_windows": len(val),
        "val_windows_total": len(all_val),
        "test_windows": len(test),
        "test_windows_total": len(all_test),
    }


def route_champion(
    champion: Any,
    test: Windows,
    lstm: np.ndarray,
    classical: dict[str, np.ndarray],
    horizon: int,
) -> np.ndarray:
    """The champion's forecasts on the test windows: its own LSTM's (``lstm``, NaN rows where
    it cannot score), routed by its own router among this run's classical forecasts."""
    router = getattr(champion, "router", None)
    if router is None:
        return lstm
    forecasts = {LSTM: lstm, **{k: v[:, :horizon] for k, v in classical.items() if k != ROUTED}}
    mixed = combination_of({k: v for k, v in forecasts.items() if k != COMBINATION})
    if mixed is not None:  # the champion's combination holds the champion's LSTM
        forecasts[COMBINATION] = mixed
    names = {router.model_of(s) for s in test.series_id}
    if not names <= set(forecasts):  # a candidate this run did not fit: score its LSTM only
        return lstm
    return route(router, test.series_id, forecasts)
