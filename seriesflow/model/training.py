"""Train: the seed's LSTM family, fit on train windows, validated on val windows.

Defaults are the seed's model (LSTM(50) -> Dense(horizon), Adam; MAE by default) at batch
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
``fit_windows`` fits every kind; ``train_branch_model`` is the one way a branch (a set of
series) is trained, by ``fit_windows`` one after the other and by the fan-out tasks
(``tasks/train.py``) one task each; ``build_branches`` is the one warm start of branches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from seriesflow.config.pipeline import TrainConfig
from seriesflow.data.schema import CLASSIFICATION, GROUP, SERIES_ID, TRAIN, VAL
from seriesflow.model.branches import (
    Branch,
    build_branch,
    group_of_series,
    plan_branches,
    route_branches,
)
from seriesflow.model.lstm import (
    build_ensemble,
    build_model,
    fit_model,
    release_batches,
    warm_start,
    window_batches,
)
from seriesflow.model.saved_model import ModelSpec
from seriesflow.model.scaler import RELATIVE, Scaler
from seriesflow.model.windows import Windows
from seriesflow.workspace.files import atomic_path

if TYPE_CHECKING:  # the champion is loaded in evaluation/; training only reads it
    from seriesflow.evaluation.champion import Champion


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
    members: int = 1,
) -> pd.DataFrame:
    """Fit ``model`` with ``plan``'s batch: an epoch samples at most ``max_windows_per_epoch``
    training windows (at least ``min_windows_per_epoch``); val is every window once.
    ``members``: an ensemble's member count (each member learns the same targets)."""
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
            members=members,
        ),
        window_batches(va, scaler, plan.batch_size, False, plan.seed, members=members),
        plan,
        report,
        callbacks,
    )


def train_on_everything(
    model: Any, data: Windows, spec: ModelSpec, cfg: TrainConfig, scaler: Scaler
) -> Any:
    """``train.final_epochs`` more epochs of ``model`` on every window (val and test targets
    too), after evaluation has its copy: the registered model has seen the latest data, as
    the M4 winners' final models had. Returns the same model, trained further."""
    if cfg.final_epochs < 1 or spec.per_series or data.task == CLASSIFICATION:
        return model
    everything = data
    if cfg.history_points is not None:
        everything = data.recent(cfg.history_points)
    plan = step_plan(cfg, len(everything))
    batches = window_batches(
        everything,
        scaler,
        plan.batch_size,
        True,
        plan.seed + 1,
        plan.max_windows_per_epoch,
        plan.min_windows_per_epoch,
        spec.members,
    )
    try:
        model.fit(batches, epochs=cfg.final_epochs, verbose=0)
    finally:
        release_batches(batches)
    return model


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
    here (``train_branch_model`` each; the retrain flow fans them out as tasks instead).
    ``callbacks``: extra Keras callbacks.
    """
    spec = model_spec(data, cfg, scaler, group_of)
    if spec.per_series:
        built = build_branches(spec, data, cfg, scaler, plan_branches(spec, cfg), warm)
        parts = [
            train_branch_model(
                spec, data, cfg, scaler, b, m, on_epoch=on_epoch, callbacks=callbacks
            )[1]
            for b, m in zip(built.branches, built.models, strict=True)
        ]
        # The routed model stays uncompiled: it is only ever used to predict (each branch
        # was compiled and fit on its own), and an unbuilt optimizer would not reload.
        epochs = pd.concat(parts, ignore_index=True)
        return Fitted(built.routed, replace(spec, warm_start=built.note), epochs)
    tr, va = training_windows(data, cfg)
    plan = step_plan(cfg, len(tr))
    zero_head = _zero_head(data, scaler)
    if spec.task != CLASSIFICATION and cfg.ensemble > 1:
        spec = replace(spec, members=cfg.ensemble)
        model = build_ensemble(
            spec.timesteps, len(spec.features), spec.horizon, plan, zero_head, spec.step_rows
        )
    else:
        model = build_model(
            spec.timesteps,
            len(spec.features),
            spec.outputs,
            plan,
            zero_head=zero_head,
            step_rows=spec.step_rows,
        )
    note = None
    if warm is not None:
        _, note = warm_start(model, spec, warm.model, warm.spec, warm.version)
    spec = replace(spec, warm_start=note)
    report = None if on_epoch is None else (lambda e, logs: on_epoch(None, e, logs))
    epochs = fit_prepared(model, tr, va, plan, scaler, report, callbacks, spec.members)
    return Fitted(model, spec, epochs)


@dataclass(frozen=True)
class BuiltBranches:
    """The branches of a routed model, built, and the one warm start's outcome."""

    branches: list[Branch]
    models: list[Any]  # one per branch, each compiled with its own batch/rate plan
    routed: Any  # the one model over them (shares their layers)
    copied: bool  # the champion's weights were copied into the branches
    note: str | None  # what the warm start did (None: no warm source)


def build_branches(
    spec: ModelSpec,
    data: Windows,
    cfg: TrainConfig,
    scaler: Scaler,
    branches: list[Branch],
    warm: WarmSource | None = None,
) -> BuiltBranches:
    """Build every branch and route them; warm-start them all from ``warm``.

    The one warm start of branches: the whole routed model is compared with the
    champion's (inputs, series, groups, layers) and the matching weights land in the
    branches, which share the routed model's layers.
    """
    zero_head = _zero_head(data, scaler)
    plans = [branch_windows(data, cfg, b)[2] for b in branches]
    models = [build_branch(spec, p, b, zero_head) for b, p in zip(branches, plans, strict=True)]
    routed = route_branches(spec, models)
    copied, note = False, None
    if warm is not None:
        copied, note = warm_start(routed, spec, warm.model, warm.spec, warm.version)
    return BuiltBranches(branches, models, routed, copied, note)


def train_branch_model(
    spec: ModelSpec,
    data: Windows,
    cfg: TrainConfig,
    scaler: Scaler,
    branch: Branch,
    model: Any | None = None,
    warm_weights: Path | None = None,
    on_epoch: Callable[[str | None, int, dict[str, float]], None] | None = None,
    callbacks: list[Any] | None = None,
) -> tuple[Any, pd.DataFrame]:
    """Train one branch (a set of series): its model and its epoch table.

    ``model``: the branch as ``build_branches`` built (and warm-started) it; without one
    it is built here and ``warm_weights`` (the weights ``build_branches`` copied, saved),
    if given, loaded into it.
    """
    if model is None:
        model = build_branch(
            spec, branch_windows(data, cfg, branch)[2], branch, _zero_head(data, scaler)
        )
        if warm_weights is not None:
            model.load_weights(warm_weights)
    return model, fit_branch(model, data, cfg, scaler, branch, on_epoch, callbacks)


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
        group_of = group_of_series(data.present_series(), cfg.groups)
    return ModelSpec.of_windows(data, cfg.per_series, scaler.method, group_of)


def _zero_head(data: Windows, scaler: Scaler) -> bool:
    # relative to the last value, a zero head is the naive forecast: training learns corrections
    return data.task != CLASSIFICATION and scaler.method in RELATIVE


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
    lost = sorted(set(train.present_series()) - set(kept.present_series()))
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
