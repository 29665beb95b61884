"""Train: the seed's LSTM family, fit on train windows, validated on val windows.

Defaults are the seed's model (LSTM(50) -> Dense(horizon), Adam, MSE) at batch
256 with XLA and a sqrt-scaled learning rate (``step_plan``: a small training set keeps the
seed's batch 32 at 1e-3), with EarlyStopping(restore_best_weights) and a
ReduceLROnPlateau that can actually fire (``tasks/lstm.py``). An epoch samples at
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
- ``warm_start``: copy the champion's weights into the new model before fitting
  when the architecture matches (same spec and layer shapes); else train from
  scratch and say why.

``model_spec.json`` beside ``model.keras`` says which of these a model is
(``tasks/saved_model.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.champion import Champion, champion_of
from tasks.config import PipelineConfig, TrainConfig
from tasks.io import RunDir, atomic_path, write_json, write_parquet
from tasks.lstm import (
    build_model,
    fit_model,
    route_series,
    seed_everything,
    warm_start,
    window_batches,
)
from tasks.registry import log_values, metric_key
from tasks.runtime import stage_logger
from tasks.saved_model import ModelSpec
from tasks.scaler import LAST_VALUE, Scaler
from tasks.schema import CLASSIFICATION, SERIES_ID, TRAIN, VAL
from tasks.window_table import Windows, load_windows


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


def fit_windows(
    data: Windows,
    cfg: TrainConfig,
    scaler: Scaler,
    warm: WarmSource | None = None,
    on_epoch: Callable[[str | None, int, dict[str, float]], None] | None = None,
    callbacks: list[Any] | None = None,
) -> Fitted:
    """Build and fit the configured model on ``data``'s train windows (val for stopping).

    ``scaler`` maps each window in and out (``normalize.method``); ``warm`` is a model
    to start from (the champion) when its architecture and inputs match.
    ``on_epoch(series_id or None, epoch, logs)`` reports progress. The
    classification/regression choice comes from the windows (they carry labels
    or not) and must agree with ``cfg.task``. ``callbacks``: extra Keras callbacks.
    """
    if data.task != cfg.task:
        raise ValueError(f"train.task is {cfg.task} but the windows were made for {data.task}")
    if data.task == CLASSIFICATION and len(data.classes) < 2:
        raise ValueError(
            f"train.task=classification needs at least 2 classes, found {list(data.classes)}"
        )
    spec = ModelSpec.of_windows(data, cfg.per_series, scaler.method)
    timesteps, features = spec.timesteps, len(spec.features)
    tr, va = data.subset(TRAIN), data.subset(VAL)
    if cfg.history_points is not None:
        tr = recent_training_windows(tr, cfg.history_points)
    # relative to the last value, a zero head is the naive forecast: training learns corrections
    zero_head = data.task != CLASSIFICATION and scaler.method == LAST_VALUE

    if not spec.per_series:
        cfg = step_plan(cfg, len(tr))
        model = build_model(timesteps, features, spec.outputs, cfg, zero_head=zero_head)
        branches = [model]
    else:
        plans = [step_plan(cfg, int(np.sum(tr.series_id == sid))) for sid in spec.series]
        branches = [
            build_model(
                timesteps,
                features,
                spec.outputs,
                plans[k],
                name=f"series_{k}",
                seed=cfg.seed + k + 1,
                zero_head=zero_head,
            )
            for k in range(len(spec.series))
        ]
        model = route_series(branches, timesteps, features)
    note = None
    if warm is not None:
        _, note = warm_start(model, spec, warm.model, warm.spec, warm.version)
    spec = replace(spec, warm_start=note)

    def batches(windows: Windows, shuffle: bool, cfg: TrainConfig = cfg) -> Any:
        if not shuffle:  # validation: every window once, in order
            return window_batches(windows, scaler, cfg.batch_size, False, cfg.seed)
        return window_batches(
            windows,
            scaler,
            cfg.batch_size,
            True,
            cfg.seed,
            cfg.max_windows_per_epoch,
            cfg.min_windows_per_epoch,
        )

    if not spec.per_series:
        report = None if on_epoch is None else (lambda e, logs: on_epoch(None, e, logs))
        epochs = fit_model(model, batches(tr, True), batches(va, False), cfg, report, callbacks)
    else:
        parts = []
        for sid, branch, plan in zip(spec.series, branches, plans, strict=True):
            mine_tr, mine_va = tr.select(tr.series_id == sid), va.select(va.series_id == sid)
            if len(mine_tr) == 0 or len(mine_va) == 0:
                raise ValueError(
                    f"train.per_series: series '{sid}' has {len(mine_tr)} train and "
                    f"{len(mine_va)} val windows; each series needs both"
                )
            report = None if on_epoch is None else (lambda e, logs, s=sid: on_epoch(s, e, logs))
            part = fit_model(
                branch,
                batches(mine_tr, True, plan),
                batches(mine_va, False, plan),
                plan,
                report,
                callbacks,
            )
            part.insert(0, SERIES_ID, sid)
            parts.append(part)
        # The routed model stays uncompiled: it is only ever used to predict (each branch
        # was compiled and fit on its own), and an unbuilt optimizer would not reload.
        epochs = pd.concat(parts, ignore_index=True)
    return Fitted(model, spec, epochs)


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
) -> Path:
    """Fit the model; with ``mlflow_run_id``, each epoch's metrics go to that run as it ends."""
    logger = stage_logger()
    cfg = config.train
    data = load_windows(windows, normalized)
    scaler = Scaler.load(run.scaler)
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
        "one model per series:" if cfg.per_series else "a global",
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

    fitted = fit_windows(data, cfg, scaler, warm, on_epoch=log_epoch)
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
