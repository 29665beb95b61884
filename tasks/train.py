"""Train: the model fit (``seriesflow/model/training.py`` says what it trains and how).

``train`` fits the configured model in one task; for ``per_series`` and ``groups`` the
retrain flow fans the branches out instead (``plan_training`` -> ``train_branch`` per
branch -> ``combine_branches``, wired in ``flows/fanout.py``), on threads or a Dask
cluster (``train.dask_address``). Both train a branch with the same library function
(``train_branch_model``) and warm-start branches the same way (``build_branches``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import CLASSIFICATION, TRAIN, VAL, branch_column
from seriesflow.evaluation.champion import champion_fits
from seriesflow.evaluation.routed import models_to_fit
from seriesflow.evaluation.scoring import (
    BackgroundFits,
    classical_baselines,
    fits_to_json,
    reusable_fits,
    scorer_for,
)
from seriesflow.model.branches import Branch, groups_for, plan_branches, route_branches
from seriesflow.model.lstm import seed_everything
from seriesflow.model.normalize import refit_seasons
from seriesflow.model.saved_model import ModelSpec, load_model
from seriesflow.model.scaler import Scaler
from seriesflow.model.training import (
    WarmSource,
    build_branches,
    fit_windows,
    model_spec,
    save_model,
    train_branch_model,
    train_on_everything,
)
from seriesflow.model.windows import load_windows
from seriesflow.ops.faults import fault_point
from seriesflow.tracking.registry import epoch_steps, log_values, metric_key
from seriesflow.workspace.context import RunContext
from seriesflow.workspace.files import (
    MODEL_FILE,
    RunDir,
    read_json,
    read_parquet,
    write_json,
    write_parquet,
)
from tasks.stage import stage_logger


@task(name="train", cache_policy=NO_CACHE)
def train(
    windows: Path,
    normalized: Path,
    scaler_path: Path,
    config: PipelineConfig,
    context: RunContext,
    mlflow_run_id: str | None = None,
    validated: Path | None = None,
) -> Path:
    """Fit the model; with ``mlflow_run_id``, each epoch's metrics go to that run as it ends.

    Branches (per_series, groups) are fit one after the other here; the retrain flow
    fans them out instead (``plan_training`` / ``train_branch`` / ``combine_branches``).
    The champion to warm-start from comes from ``context`` (loaded once per run).
    """
    logger = stage_logger()
    fault_point("train:started")
    cfg = config.train
    run = context.run
    data = load_windows(windows, normalized)
    scaler = Scaler.load(scaler_path)
    group_of = groups_for(config, data, validated)
    seed_everything(cfg.seed, cfg.deterministic)
    warm, why_not = None, ""
    if cfg.warm_start:
        champion, why_not = context.champion, context.no_champion
        warm = None if champion is None else WarmSource.of(champion)
        if why_not:
            why_not = f"warm start skipped: {why_not}"
            logger.info("%s; training from scratch", why_not)
    logger.info(
        "Training %s LSTM(units=%d, layers=%d) for %s on %d windows, validating on %d",
        "one model per series:" if cfg.per_series else "one per group:" if group_of else "a global",
        cfg.units,
        cfg.layers,
        cfg.task,
        len(data.subset(TRAIN)),
        len(data.subset(VAL)),
    )

    def log_epoch(series: str | None, epoch: int, logs: dict[str, float]) -> None:
        if mlflow_run_id:
            suffix = f".{metric_key(series)}" if series else ""
            log_values(mlflow_run_id, {f"{k}{suffix}": v for k, v in logs.items()}, epoch + 1)
        logger.info(
            "%sepoch %d/%d  loss=%.5f  val_loss=%.5f  lr=%.2e",
            f"[{series}] " if series else "",
            epoch + 1,
            cfg.epochs,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("learning_rate", float("nan")),
        )

    background = start_classical_fits(data, scaler, config, context.champion)
    if background is not None:
        logger.info(
            "Classical fits: %d series kept from %s (training part grew <= %.0f%%, points "
            "fit unchanged), %d fit beside training",
            len(background.reused),
            background.reused_from,
            100 * config.evaluate.refit_growth,
            len(background.series),
        )
    try:
        fitted = fit_windows(data, cfg, scaler, warm, on_epoch=log_epoch, group_of=group_of)
        model_dir = _after_training(fitted, data, scaler, config, run, why_not, logger)
    except BaseException:
        if background is not None:
            background.cancel()
        raise
    if background is not None:
        waited = time.perf_counter()
        fits = background.result()
        write_json(fits_to_json(fits), run.classical_fits)
        logger.info(
            "Classical fits beside training: %s for %d series in %.1f s (%.1f s waited for "
            "after training, %d of %d shares fit by this process then)",
            ", ".join(background.names),
            len(fits),
            background.seconds or 0.0,
            time.perf_counter() - waited,
            background.shares_here,
            background.shares,
        )
    return model_dir


def start_classical_fits(
    data, scaler: Scaler, config: PipelineConfig, champion=None
) -> BackgroundFits | None:
    """Start the statsforecast fits evaluate needs in worker processes, to run while the
    LSTM trains (regression only; ``evaluate.fit_beside_training``). The ``champion``'s fits
    that still hold (``reusable_fits``, ``evaluate.refit_growth``) are kept, not fit again."""
    if config.train.task == CLASSIFICATION or not config.evaluate.fit_beside_training:
        return None
    n_series = len(data.present_series())
    reported = classical_baselines(config, n_series)
    names = models_to_fit(config, reported)
    if not names:
        return None
    context = scorer_for(data, scaler, config.evaluate, classical=reported).context
    seasons = config.evaluate.fit_seasons
    previous, source = champion_fits(champion)
    reused = reusable_fits(previous, context, names, config.evaluate.refit_growth, seasons)
    return BackgroundFits(
        context, names, config.evaluate.n_jobs, seasons, reused, reused_from=source
    )


def _after_training(fitted, data, scaler: Scaler, config: PipelineConfig, run, why_not, logger):
    cfg = config.train
    if fitted.spec.warm_start:
        logger.info("%s", fitted.spec.warm_start)
    elif why_not:
        fitted = replace(fitted, spec=replace(fitted.spec, warm_start=why_not))
    epochs = fitted.epochs
    best = epochs["val_loss"].idxmin()
    logger.info(
        "Best epoch %d (val_loss=%.5f); %d epochs run; %d parameters",
        int(epochs.loc[best, "epoch"]),
        epochs.loc[best, "val_loss"],
        len(epochs),
        fitted.model.count_params(),
    )
    run.model_dir.mkdir(parents=True, exist_ok=True)
    save_model(fitted.model, run.model)  # what evaluate scores
    write_parquet(epochs, run.epochs)
    write_json(fitted.spec.to_json(), run.spec)
    if cfg.final_epochs and not fitted.spec.per_series and fitted.spec.task != CLASSIFICATION:
        logger.info(
            "Training %d more epoch(s) on every window, validation and test targets included, "
            "with seasonal indices refit on every point (train.final_epochs): the registered "
            "model; evaluation scores the one above",
            cfg.final_epochs,
        )
        spilled = run.model_dir / "final_values.npy"  # on disk, not in memory; removed below
        try:
            served, values = refit_seasons(
                scaler, data.arrays, config.evaluate.season_length, out=spilled
            )
            everything = replace(data, arrays=data.arrays.with_values(values))
            model = train_on_everything(fitted.model, everything, fitted.spec, cfg, served)
            del everything, values
        finally:
            spilled.unlink(missing_ok=True)
        save_model(model, run.final_model)
        write_json(served.to_json(), run.final_scaler)
        seen = str(np.datetime_as_string(data.arrays.times.max(), unit="s")) + "+00:00"
        write_json(replace(fitted.spec, seen_until=seen).to_json(), run.spec)
    return run.model_dir


# --------------------------------------------------------------------------- fan-out tasks
# plan_training (the flow's process) -> train_branch (one task per branch, on threads or
# Dask workers) -> combine_branches (the flow's process). They meet at files in
# 05_model/branches/<k>/: branch.json, warm.weights.h5 (warm start), model.keras, epochs.


BRANCHES_DIR, BRANCH_FILE, WARM_FILE = "branches", "branch.json", "warm.weights.h5"
PLAN_FILE = "plan.json"  # 05_model/branches/plan.json: the spec and the branches


@task(name="train-plan", cache_policy=NO_CACHE)
def plan_training(
    windows: Path,
    normalized: Path,
    scaler_path: Path,
    validated: Path,
    config: PipelineConfig,
    context: RunContext,
) -> list[Path]:
    """Decide the branches (per series or per group); one folder per branch to train.

    The warm start (``build_branches``, from ``context``'s champion) happens here, once
    for all branches: the weights it copied go to each branch's folder.
    """
    logger = stage_logger()
    cfg = config.train
    run = context.run
    data = load_windows(windows, normalized)
    scaler = Scaler.load(scaler_path)
    spec = model_spec(data, cfg, scaler, groups_for(config, data, validated))
    branches = plan_branches(spec, cfg)
    root = run.model_dir / BRANCHES_DIR
    folders = [root / f"{b.index:03d}" for b in branches]
    for branch, folder in zip(branches, folders, strict=True):
        folder.mkdir(parents=True, exist_ok=True)
        write_json(asdict(branch), folder / BRANCH_FILE)
    note = None
    if cfg.warm_start:
        if context.champion is None:
            note = f"warm start skipped: {context.no_champion}"
        else:
            seed_everything(cfg.seed, cfg.deterministic)
            built = build_branches(
                spec, data, cfg, scaler, branches, WarmSource.of(context.champion)
            )
            note = built.note
            if built.copied:
                for model, folder in zip(built.models, folders, strict=True):
                    model.save_weights(folder / WARM_FILE)
        logger.info("%s", note)
    write_json(replace(spec, warm_start=note).to_json(), root / PLAN_FILE)
    logger.info(
        "Training %d %s branches of LSTM(units=%d, layers=%d): %s",
        len(branches),
        branches[0].kind if branches else "",
        cfg.units,
        cfg.layers,
        {b.label: len(b.series) for b in branches},
    )
    return folders


@task(name="train-branch", cache_policy=NO_CACHE, task_run_name="train-{label}")
def train_branch(
    folder: Path,
    label: str,
    windows: Path,
    normalized: Path,
    scaler_path: Path,
    run: RunDir,
    config: PipelineConfig,
) -> Path:
    """Fit one branch on its series' windows; ``label`` names the task run."""
    logger = stage_logger()
    cfg = config.train
    branch = Branch(**read_json(folder / BRANCH_FILE))
    spec = ModelSpec.load(run.model_dir / BRANCHES_DIR / PLAN_FILE)
    data = load_windows(windows, normalized)
    scaler = Scaler.load(scaler_path)
    started = time.perf_counter()
    seed_everything(cfg.seed, cfg.deterministic)
    warm = folder / WARM_FILE

    def log_epoch(name: str | None, epoch: int, logs: dict[str, float]) -> None:
        logger.info(
            "[%s] epoch %d/%d  loss=%.5f  val_loss=%.5f",
            name,
            epoch + 1,
            cfg.epochs,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
        )

    model, epochs = train_branch_model(
        spec,
        data,
        cfg,
        scaler,
        branch,
        warm_weights=warm if warm.exists() else None,
        on_epoch=log_epoch,
    )
    save_model(model, folder / MODEL_FILE)
    write_parquet(epochs, folder / "epochs.parquet")
    where = _where()
    write_json(
        {"seconds": round(time.perf_counter() - started, 3), "where": where},
        folder / "done.json",
    )
    logger.info("%s (%d series) trained on %s", label, len(branch.series), where)
    return folder


def _where() -> str:
    """The Dask worker this runs on, or the thread's name."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not on a Dask worker
        return threading.current_thread().name


@task(name="train-combine", cache_policy=NO_CACHE)
def combine_branches(
    folders: list[Path], run: RunDir, config: PipelineConfig, mlflow_run_id: str | None = None
) -> Path:
    """Route the trained branches into one saved model (``05_model/``) + its epochs."""
    logger = stage_logger()
    spec = ModelSpec.load(run.model_dir / BRANCHES_DIR / PLAN_FILE)
    branches = [Branch(**read_json(f / BRANCH_FILE)) for f in folders]
    if [b.name for b in branches] != spec.branches:
        raise ValueError(f"branches {[b.name for b in branches]} do not match {spec.branches}")
    model = route_branches(spec, [load_model(f / MODEL_FILE) for f in folders])
    epochs = pd.concat([read_parquet(f / "epochs.parquet") for f in folders], ignore_index=True)
    if mlflow_run_id:  # the branches ran elsewhere: their curves are logged here, at the end
        for step, values in epoch_steps(epochs, branch_column(epochs)):
            log_values(mlflow_run_id, values, step)
    done = {b.label: read_json(f / "done.json") for b, f in zip(branches, folders, strict=True)}
    write_json(done, run.model_dir / BRANCHES_DIR / "runs.json")
    save_model(model, run.model)
    write_parquet(epochs, run.epochs)
    write_json(spec.to_json(), run.spec)
    logger.info(
        "Routed %d series over %d branches (%d parameters); trained on %s",
        len(spec.series),
        len(branches),
        model.count_params(),
        sorted({d["where"] for d in done.values()}),
    )
    return run.model_dir
