"""Train: the seed's LSTM family, fit on train windows, validated on val windows.

Defaults are the seed's model (LSTM(50) -> Dense(horizon), Adam, MSE) at batch
256 with XLA and a sqrt-scaled learning rate (``step_plan``: a small training set keeps the
seed's batch 32 at 1e-3), with EarlyStopping(restore_best_weights) and a
ReduceLROnPlateau that can actually fire (``seriesflow/model/lstm.py``). An epoch samples at
most ``max_windows_per_epoch`` windows from each series' last ``history_points``
training points. Validation data is the chronological val split, never a shuffled
slice of the training windows. Seeds are fixed; TensorFlow op determinism is an
option (``train.deterministic``) that excludes XLA.

Options (``TrainConfig``):

- ``task: classification``: a softmax head over the window classes (see
  ``tasks/window.py``) trained with sparse categorical cross-entropy.
- ``per_series``: one LSTM per series, each fit on its own windows with its own
  early stop and learning-rate schedule, then saved as ONE Keras model that
  routes each window to its series' branch (inputs ``{"x", "series"}``), so
  the registry, the champion re-score and a forecast still load one artifact.
- ``groups``: one global model per group of series (a stable hash of series_id into
  ``k`` groups, or a column's value), saved as one routed model whose series all go
  to their group's branch (one branch object per group: shared weights).
- Fan-out: for ``per_series`` and ``groups`` the flow trains each branch as its own
  task (``plan_training`` -> ``train_branch`` per branch -> ``combine_branches``,
  wired in ``flows/fanout.py``), on threads or a Dask cluster (``train.dask_address``).
- ``warm_start``: copy the champion's weights into the new model before fitting
  when the architecture matches (same spec and layer shapes); else train from
  scratch and say why.

``model_spec.json`` beside ``model.keras`` says which of these a model is
(``seriesflow/model/saved_model.py``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import PipelineConfig, TrainConfig
from seriesflow.data.schema import CLASSIFICATION, GROUP, SERIES_ID, TRAIN, VAL, branch_column
from seriesflow.evaluation.champion import Champion, champion_of
from seriesflow.model.branches import (
    Branch,
    build_branch,
    group_of_series,
    groups_for,
    plan_branches,
    route_branches,
)
from seriesflow.model.lstm import (
    build_model,
    fit_model,
    seed_everything,
    warm_start,
    window_batches,
)
from seriesflow.model.saved_model import ModelSpec, load_model
from seriesflow.model.scaler import LAST_VALUE, Scaler
from seriesflow.model.windows import Windows, load_windows
from seriesflow.tracking.registry import epoch_steps, log_values, metric_key
from seriesflow.workspace.files import (
    MODEL_FILE,
    RunDir,
    atomic_path,
    read_json,
    read_parquet,
    write_json,
    write_parquet,
)
from tasks.stage import stage_logger


@dataclass(frozen=True)
class WarmSource:
    """A model to warm-start from (the champion) and what it is."""

    model: Any
    spec: ModelSpec
    version: str

    @classmethod
    def of(cls, champion: Champion) -> WarmSource:
        return cls(champion.model, champion.spec, champion.version)


@dataclass(frozen=True)
class Fitted:
    model: Any
    spec: ModelSpec
    epochs: pd.DataFrame  # per epoch (and per series, for per-series models)


def training_windows(data: Windows, cfg: TrainConfig) -> tuple[Windows, Windows]:
    """The train windows an epoch samples from (``history_points``) and the val windows."""
    tr, va = data.subset(TRAIN), data.subset(VAL)
    if cfg.history_points is not None:
        tr = recent_training_windows(tr, cfg.history_points)
    return tr, va


def branch_windows(
    data: Windows, cfg: TrainConfig, branch: Branch
) -> tuple[Windows, Windows, TrainConfig]:
    """One branch's train and val windows, and the batch/rate plan its training set gets."""
    tr, va = training_windows(data, cfg)
    mine_tr = tr.select(np.isin(tr.series_id, branch.series))
    mine_va = va.select(np.isin(va.series_id, branch.series))
    if len(mine_tr) == 0 or len(mine_va) == 0:
        option = "train.per_series" if branch.kind == "series" else "train.groups"
        raise ValueError(
            f"{option}: {branch.kind} '{branch.name}' has {len(mine_tr)} train and "
            f"{len(mine_va)} val windows; each {branch.kind} needs both"
        )
    return mine_tr, mine_va, step_plan(cfg, len(mine_tr))


def fit_prepared(
    model: Any,
    tr: Windows,
    va: Windows,
    plan: TrainConfig,
    scaler: Scaler,
    report: Callable[[int, dict[str, float]], None] | None = None,
    callbacks: list[Any] | None = None,
) -> pd.DataFrame:
    """Fit ``model`` with ``plan``'s batch: an epoch samples at most ``max_windows_per_epoch``
    training windows (at least ``min_windows_per_epoch``); val is every window once."""
    return fit_model(
        model,
        window_batches(
            tr,
            scaler,
            plan.batch_size,
            True,
            plan.seed,
            plan.max_windows_per_epoch,
            plan.min_windows_per_epoch,
        ),
        window_batches(va, scaler, plan.batch_size, False, plan.seed),
        plan,
        report,
        callbacks,
    )


def fit_branch(
    model: Any,
    data: Windows,
    cfg: TrainConfig,
    scaler: Scaler,
    branch: Branch,
    on_epoch: Callable[[str | None, int, dict[str, float]], None] | None = None,
    callbacks: list[Any] | None = None,
) -> pd.DataFrame:
    """Fit one branch (built with ``branch_windows``' plan) on its series' train windows
    (val for stopping); its epoch table."""
    mine_tr, mine_va, plan = branch_windows(data, cfg, branch)
    report = None if on_epoch is None else (lambda e, logs: on_epoch(branch.name, e, logs))
    part = fit_prepared(model, mine_tr, mine_va, plan, scaler, report, callbacks)
    part.insert(0, SERIES_ID if branch.kind == "series" else GROUP, branch.name)
    return part


def fit_windows(
    data: Windows,
    cfg: TrainConfig,
    scaler: Scaler,
    warm: WarmSource | None = None,
    on_epoch: Callable[[str | None, int, dict[str, float]], None] | None = None,
    group_of: dict[str, str] | None = None,
    callbacks: list[Any] | None = None,
) -> Fitted:
    """Build and fit the configured model on ``data``'s train windows (val for stopping).

    ``scaler`` maps each window in and out (``normalize.method``); ``warm`` is a model
    to start from (the champion) when its architecture and inputs match.
    ``on_epoch(series or group or None, epoch, logs)`` reports progress. The
    classification/regression choice comes from the windows (they carry labels
    or not) and must agree with ``cfg.task``. ``group_of`` (series -> group, for
    ``train.groups``) fits one branch per group; the branches run one after the other
    here (the retrain flow fans them out as tasks instead). ``callbacks``: extra Keras
    callbacks.
    """
    spec = model_spec(data, cfg, scaler, group_of)
    zero_head = _zero_head(data, scaler)
    if not spec.per_series:
        tr, va = training_windows(data, cfg)
        plan = step_plan(cfg, len(tr))
        model = build_model(
            spec.timesteps, len(spec.features), spec.outputs, plan, zero_head=zero_head
        )
        branches, models = [], [model]
    else:
        branches = plan_branches(spec, cfg)
        plans = [branch_windows(data, cfg, b)[2] for b in branches]
        models = [build_branch(spec, p, b, zero_head) for b, p in zip(branches, plans, strict=True)]
        model = route_branches(spec, models)
    note = None
    if warm is not None:
        _, note = warm_start(model, spec, warm.model, warm.spec, warm.version)
    spec = replace(spec, warm_start=note)

    if not spec.per_series:
        report = None if on_epoch is None else (lambda e, logs: on_epoch(None, e, logs))
        epochs = fit_prepared(model, tr, va, plan, scaler, report, callbacks)
    else:
        parts = [
            fit_branch(m, data, cfg, scaler, b, on_epoch, callbacks)
            for b, m in zip(branches, models, strict=True)
        ]
        # The routed model stays uncompiled: it is only ever used to predict (each branch
        # was compiled and fit on its own), and an unbuilt optimizer would not reload.
        epochs = pd.concat(parts, ignore_index=True)
    return Fitted(model, spec, epochs)


def model_spec(
    data: Windows, cfg: TrainConfig, scaler: Scaler, group_of: dict[str, str] | None = None
) -> ModelSpec:
    """What the model trained on ``data`` will be; refuses windows that disagree with cfg."""
    if data.task != cfg.task:
        raise ValueError(f"train.task is {cfg.task} but the windows were made for {data.task}")
    if data.task == CLASSIFICATION and len(data.classes) < 2:
        raise ValueError(
            f"train.task=classification needs at least 2 classes, found {list(data.classes)}"
        )
    if cfg.groups is not None and group_of is None:
        if cfg.groups.by != "hash":
            raise ValueError(
                "train.groups.by=column: pass each series' group (group_of_series over the "
                "data's original column values)"
            )
        group_of = group_of_series(sorted(str(s) for s in set(data.series_id)), cfg.groups)
    return ModelSpec.of_windows(data, cfg.per_series, scaler.method, group_of)


def _zero_head(data: Windows, scaler: Scaler) -> bool:
    # relative to the last value, a zero head is the naive forecast: training learns corrections
    return data.task != CLASSIFICATION and scaler.method == LAST_VALUE


def step_plan(cfg: TrainConfig, windows: int) -> TrainConfig:
    """``cfg`` with the batch and learning rate a training set of ``windows`` trains with.

    ``batch_size`` unless that leaves an epoch under ``min_steps_per_epoch`` steps; then
    the batch that gives it that many (at least ``min_batch_size``), with the learning rate
    scaled by sqrt(batch / batch_size). At the defaults a short series trains exactly as the
    seed's recipe (batch 32 at 1e-3) and the sample's 3,912 windows at batch 244.
    """
    shown = min(windows, cfg.max_windows_per_epoch or windows)
    if cfg.min_steps_per_epoch == 0 or cfg.batch_size <= cfg.min_batch_size:
        return cfg
    batch = min(cfg.batch_size, max(cfg.min_batch_size, shown // cfg.min_steps_per_epoch))
    if batch == cfg.batch_size:
        return cfg
    rate = cfg.learning_rate * math.sqrt(batch / cfg.batch_size)
    return cfg.model_copy(update={"batch_size": batch, "learning_rate": rate})


def recent_training_windows(train: Windows, history_points: int) -> Windows:
    """``train.history_points``: only the windows within each series' most recent
    ``history_points`` training points; a series left without any is an error."""
    kept = train.recent(history_points)
    lost = sorted(set(train.series_id) - set(kept.series_id))
    if lost:
        raise ValueError(
            f"train.history_points={history_points} leaves no training window for series "
            f"{lost[:5]}: it must be at least timesteps + horizon "
            f"({train.timesteps} + {train.horizon})"
        )
    return kept


def save_model(model: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        # Keras insists on the .keras suffix, which atomic_path keeps.
        model.save(tmp)
    return path


@task(name="train", cache_policy=NO_CACHE)
def train(
    windows: Path,
    normalized: Path,
    run: RunDir,
    config: PipelineConfig,
    tracking_uri: str | None = None,
    mlflow_run_id: str | None = None,
    validated: Path | None = None,
) -> Path:
    """Fit the model; with ``mlflow_run_id``, each epoch's metrics go to that run as it ends.

    Branches (per_series, groups) are fit one after the other here; the retrain flow
    fans them out instead (``plan_training`` / ``train_branch`` / ``combine_branches``).
    """
    logger = stage_logger()
    cfg = config.train
    data = load_windows(windows, normalized)
    scaler = Scaler.load(run.scaler)
    group_of = groups_for(config, data, validated)
    seed_everything(cfg.seed, cfg.deterministic)
    warm, why_not = None, ""
    if cfg.warm_start:
        champion, why_not = champion_of(config, tracking_uri)
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

    fitted = fit_windows(data, cfg, scaler, warm, on_epoch=log_epoch, group_of=group_of)
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
    save_model(fitted.model, run.model)
    write_parquet(epochs, run.epochs)
    write_json(fitted.spec.to_json(), run.spec)
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
    validated: Path,
    run: RunDir,
    config: PipelineConfig,
    tracking_uri: str | None = None,
) -> list[Path]:
    """Decide the branches (per series or per group); one folder per branch to train."""
    logger = stage_logger()
    cfg = config.train
    data = load_windows(windows, normalized)
    scaler = Scaler.load(run.scaler)
    spec = model_spec(data, cfg, scaler, groups_for(config, data, validated))
    branches = plan_branches(spec, cfg)
    root = run.model_dir / BRANCHES_DIR
    folders = [root / f"{b.index:03d}" for b in branches]
    for branch, folder in zip(branches, folders, strict=True):
        folder.mkdir(parents=True, exist_ok=True)
        write_json(asdict(branch), folder / BRANCH_FILE)
    note = None
    if cfg.warm_start:
        champion, why_not = champion_of(config, tracking_uri)
        if champion is None:
            note = f"warm start skipped: {why_not}"
        else:
            # the whole routed model is compared with the champion's, as fit_windows does;
            # matching weights go to each branch's folder
            seed_everything(cfg.seed, cfg.deterministic)
            zero_head = _zero_head(data, scaler)
            models = [
                build_branch(spec, branch_windows(data, cfg, b)[2], b, zero_head) for b in branches
            ]
            copied, note = warm_start(
                route_branches(spec, models),
                spec,
                champion.model,
                champion.spec,
                champion.version,
            )
            if copied:
                for model, folder in zip(models, folders, strict=True):
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
    folder: Path, label: str, windows: Path, normalized: Path, run: RunDir, config: PipelineConfig
) -> Path:
    """Fit one branch on its series' windows; ``label`` names the task run."""
    logger = stage_logger()
    cfg = config.train
    branch = Branch(**read_json(folder / BRANCH_FILE))
    spec = ModelSpec.load(run.model_dir / BRANCHES_DIR / PLAN_FILE)
    data = load_windows(windows, normalized)
    scaler = Scaler.load(run.scaler)
    started = time.perf_counter()
    seed_everything(cfg.seed, cfg.deterministic)
    model = build_branch(
        spec, branch_windows(data, cfg, branch)[2], branch, _zero_head(data, scaler)
    )
    if (folder / WARM_FILE).exists():
        model.load_weights(folder / WARM_FILE)

    def log_epoch(name: str | None, epoch: int, logs: dict[str, float]) -> None:
        logger.info(
            "[%s] epoch %d/%d  loss=%.5f  val_loss=%.5f",
            name,
            epoch + 1,
            cfg.epochs,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
        )

    epochs = fit_branch(model, data, cfg, scaler, branch, on_epoch=log_epoch)
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
