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

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import (
    COMBINATION,
    ETS,
    LSTM,
    NAIVE,
    ROUTED,
    SEASONAL_NAIVE,
    TEST,
    THETA,
    VAL,
)
from seriesflow.evaluation.champion import rescore_champion
from seriesflow.evaluation.probabilistic import probabilistic_scores
from seriesflow.evaluation.router import Router, combination_of, route, route_run
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
    intervals_from_paths,
    longest_steps,
    settings_of,
)
from seriesflow.model.intervals import Intervals
from seriesflow.model.saved_model import ModelSpec
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import Windows


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
) -> RoutedEvaluation:
    """Score the run's models on its test windows (see the module docstring).

    ``reported``: the classical baselines to show beside naive and seasonal naive; the
    router's candidates are fit whatever it says. ``fits``: statsforecast fits already made
    (``BackgroundFits``, beside training); a series or model they lack is fit here.
    """
    clock, seconds = time.perf_counter(), {}

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[part] = round(now - clock, 3)
        clock = now

    per_series = config.evaluate.max_windows_per_series or None  # 0 / None: every window
    all_val, all_test = windows.subset(VAL), windows.subset(TEST)
    val = spread_windows(all_val, per_series)
    test = spread_windows(all_test, per_series)
    origins = origins_record(per_series, val, all_val, test, all_test)
    steps = longest_steps(settings_of(config), scaler, spec.horizon)
    lstm_val = forecast_paths(model, spec, scaler, val, steps)  # [val windows, steps]
    lstm_test = forecast_paths(model, spec, scaler, test, steps)  # [test windows, steps]
    lap("lstm")
    cfg = config.register
    lstm_only = cfg.models == "lstm_only"
    candidates = tuple(dict.fromkeys((cfg.default_model, *cfg.candidates)))
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
    run = route_run(
        val,
        test,
        lstm_val,
        lstm_test,
        scorer.context,
        candidates,
        lstm_only,
        cfg.default_model,
        cfg.switch_below,
        fits,
    )
    # classical forecasts this run made but the router may not weigh (reported baselines)
    extra = tuple(c for c in reported if c not in run.test)
    if extra:
        run.test.update(classical_forecasts(test, scorer.context, steps, extra, fits))
    lap("classical_paths_and_routing")
    horizon = spec.horizon
    shown = (NAIVE, SEASONAL_NAIVE, *[c for c in reported if c in run.test], ROUTED)
    others = {name: run.test[name][:, :horizon] for name in dict.fromkeys(shown)}

    champion_out, note = None, None
    if champion is not None:
        theirs, note = rescore_champion(champion, test, scaler, spec)
        champion_out = route_champion(champion, test, theirs, run.test, horizon)
    lap("champion")

    scored = score_split(
        test, lstm_test[:, :horizon], scorer, champion_out, config.evaluate.backtest_folds, others
    )
    levels = list(config.forecast.levels)
    scale = scorer.context.scale
    intervals, coverage, on_val = intervals_from_paths(
        val, run.val[ROUTED], test, run.test[ROUTED], levels, scale
    )
    # pinball, MSIS and WAPE of the intervals calibrated on validation only, on test
    forecast = run.test[ROUTED][:, :horizon]
    scores = probabilistic_scores(
        test.series_id, actuals(test, scorer.context), forecast, on_val, levels, scale
    )
    scored = replace(scored, metrics=with_coverage(scored.metrics, coverage, ROUTED))
    if not scores.empty:
        scored = replace(scored, metrics=with_coverage(scored.metrics, scores, ROUTED))
    lap("scores_and_intervals")
    return RoutedEvaluation(scored, run.router, intervals, len(test), note, origins, seconds)


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
