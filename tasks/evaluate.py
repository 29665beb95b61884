"""Evaluate: score the model, the baselines and the current champion on the test windows.

All scores are in original units (``seriesflow/evaluation/scoring.py`` says how). The champion
is re-scored on the *same* windows through its own scaler (``seriesflow/evaluation/champion.py``);
series it has never seen are left out of that comparison. With
``evaluate.backtest_folds`` = K > 0 the test period is also cut into K
rolling-origin folds, each scored on its own (the model is re-scored, not refit).
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import (
    CHAMPION_WINDOWS,
    CLASSIFICATION,
    ETS,
    MAJORITY,
    MODEL,
    NAIVE,
    ROUTED,
    SEASONAL_NAIVE,
    SERIES_ID,
    TEST,
    THETA,
)
from seriesflow.evaluation.backtest import backtest_summary
from seriesflow.evaluation.champion import rescore_champion
from seriesflow.evaluation.plots import (
    MAX_PLOTTED_SERIES,
    plot_backtest,
    plot_classes,
    plot_forecasts,
    plot_loss,
)
from seriesflow.evaluation.report import evaluation_markdown
from seriesflow.evaluation.routed import evaluate_regression
from seriesflow.evaluation.router import Router
from seriesflow.evaluation.scoring import (
    Scored,
    classical_baselines,
    fits_from_json,
    score_split,
    scorer_for,
)
from seriesflow.model.saved_model import forecast_windows, load_model_dir
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import Windows, load_windows
from seriesflow.ops.artifacts import plots_markdown
from seriesflow.workspace.context import RunContext
from seriesflow.workspace.files import (
    RunDir,
    read_json,
    read_parquet,
    read_parquet_where,
    write_json,
    write_parquet,
)
from seriesflow.workspace.results import EvaluationResult
from tasks.stage import stage_logger


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(
    windows_path: Path,
    normalized: Path,
    scaler_path: Path,
    model_dir: Path,
    config: PipelineConfig,
    context: RunContext,
) -> EvaluationResult:
    """Score the model, the baselines and ``context``'s champion on the test windows."""
    logger = stage_logger()
    run = context.run
    scaler = Scaler.load(scaler_path)
    windows = load_windows(windows_path, normalized)
    test = windows.subset(TEST)
    model, spec = load_model_dir(model_dir, scaler.columns)
    champion = context.champion

    classical = classical_baselines(config, len(windows.present_series()))
    if set(config.evaluate.baselines) - set(classical):
        logger.info(
            "Classical baselines %s not fit: %d series > evaluate.baseline_max_series (%d)",
            sorted(set(config.evaluate.baselines) - set(classical)),
            len(windows.present_series()),
            config.evaluate.baseline_max_series,
        )
    scorer = scorer_for(windows, scaler, config.evaluate, classical=classical)
    router_path, lstm_share, origins = None, None, {}
    if spec.task == CLASSIFICATION:
        champion_out, note = None, None
        if champion is not None:
            champion_out, note = rescore_champion(champion, test, scaler, spec)
        outputs = forecast_windows(model, spec, scaler, test)  # [windows, classes]
        scored = score_split(test, outputs, scorer, champion_out, config.evaluate.backtest_folds)
        tested = len(test)
    else:  # the LSTM, the router and the candidates, the champion, intervals: a chunk of
        # series at a time (evaluate.chunk_windows)
        fits = None
        if run.classical_fits.exists():  # fit beside training (tasks/train.py)
            fits = fits_from_json(read_json(run.classical_fits))
        found = evaluate_regression(
            model,
            spec,
            scaler,
            windows,
            config,
            scorer,
            classical,
            champion,
            fits,
            run.predictions,  # written a chunk at a time
            logger.info,  # a line per chunk
        )
        scored, note, tested = found.scored, found.champion_note, found.test_windows
        origins = found.origins
        logger.info(
            "Origins scored: %d of %d test windows, %d of %d validation windows (%s), "
            "in %d chunk(s) of at most %d windows (evaluate.chunk_windows)",
            origins["test_windows"],
            origins["test_windows_total"],
            origins["val_windows"],
            origins["val_windows_total"],
            origins["how"],
            origins["chunks"],
            config.evaluate.chunk_windows,
        )
        logger.info(
            "Evaluation parts (s): %s",
            ", ".join(f"{part} {value:.1f}" for part, value in found.seconds.items()),
        )
        write_json(found.router.to_json(), run.router)
        write_json(found.intervals.to_json(), run.intervals)
        router_path, lstm_share = run.router, found.router.lstm_share
        logger.info("Router (chosen on validation windows): %s", found.router.describe())
        logger.info(
            "Prediction intervals of the routed model (split conformal on val): test coverage %s",
            ", ".join(f"{k}% -> {v:.1%}" for k, v in found.intervals.coverage.items()),
        )
    if note:
        logger.info("%s", note)
    write_parquet(scored.metrics, run.evaluation)
    if scored.predictions is not None:  # else written already, a chunk at a time
        write_parquet(scored.predictions, run.predictions)
    gate_metric = (
        config.register.classification_metric
        if spec.task == CLASSIFICATION
        else config.register.metric
    )
    backtest_path = None
    if scored.backtest is not None:
        backtest_path = write_parquet(scored.backtest, run.backtest)
        logger.info(
            "Backtest %s per fold:\n%s",
            gate_metric,
            backtest_summary(scored.backtest, gate_metric).to_string(),
        )
    plots = _plots(run, scored, windows, gate_metric) if config.evaluate.make_plots else []
    scores, head_to_head = scored.overall(), scored.overall(CHAMPION_WINDOWS)
    routing = None if router_path is None else Router.load(router_path).describe()
    _report(
        run, scored, tested, scorer.seasons, spec.task, gate_metric, note, plots, routing, origins
    )
    _log_scores(logger, scores, spec.task, gate_metric)
    return EvaluationResult(
        run.evaluation,
        run.predictions,
        scorer.seasons,
        plots,
        champion.version if champion else None,
        note,
        spec.task,
        backtest_path,
        scores,
        head_to_head,
        router_path,
        lstm_share,
        origins,
    )


def _plots(run: RunDir, scored: Scored, windows: Windows, metric: str) -> list[Path]:
    plots = [plot_loss(read_parquet(run.epochs), run.plots / "loss_curve.png")]
    if windows.task == CLASSIFICATION:
        plots.append(
            plot_classes(scored.predictions, list(windows.classes), run.plots / "classes.png")
        )
    else:
        predictions = scored.predictions
        if predictions is None:  # on disk: the rows of the series plotted only
            shown = sorted({str(s) for s in windows.subset(TEST).series_id})[:MAX_PLOTTED_SERIES]
            predictions = read_parquet_where(run.predictions, SERIES_ID, shown)
        plots.append(plot_forecasts(predictions, run.plots / "forecast_vs_actual.png"))
    if scored.backtest is not None:
        summary = backtest_summary(scored.backtest, metric)
        plots.append(plot_backtest(summary, metric, run.plots / "backtest_errors.png"))
    return plots


def _report(
    run: RunDir,
    scored: Scored,
    windows: int,
    seasons: list[int],
    task_kind: str,
    metric: str,
    note: str | None,
    plots: list[Path],
    routing: str | None = None,
    origins: dict | None = None,
) -> None:
    """The evaluation table and report as Prefect artifacts."""
    scores, head_to_head = scored.overall(), scored.overall(CHAMPION_WINDOWS)
    create_table_artifact(
        key="evaluation-metrics",
        table=[
            {"model": name, **{m: round(v, 6) for m, v in values.items()}}
            for name, values in scores.items()
        ],
        description=f"Test metrics ({task_kind}), {windows} windows, season lengths {seasons}",
    )
    summary = None if scored.backtest is None else backtest_summary(scored.backtest, metric)
    text = evaluation_markdown(
        run.run_id,
        scores,
        head_to_head,
        windows,
        seasons,
        task_kind,
        note,
        summary,
        metric,
        plots_markdown(plots),  # inline PNGs: no file:// in a browser
        routing,
        origins,
    )
    create_markdown_artifact(key="evaluation-report", markdown=text)


def _log_scores(logger, scores: dict[str, dict[str, float]], task_kind: str, metric: str) -> None:
    if task_kind == CLASSIFICATION:
        logger.info(
            "Test %s: model %.4f, majority %.4f, naive %.4f",
            metric,
            scores[MODEL][metric],
            scores[MAJORITY][metric],
            scores[NAIVE][metric],
        )
    else:
        logger.info(
            "Test MASE (pooled): routed %.3f, LSTM %.3f, naive %.3f, seasonal naive %.3f%s",
            scores.get(ROUTED, scores[MODEL])["mase"],
            scores[MODEL]["mase"],
            scores[NAIVE]["mase"],
            scores[SEASONAL_NAIVE]["mase"],
            "".join(f", {k} {scores[k]['mase']:.3f}" for k in (ETS, THETA) if k in scores),
        )
