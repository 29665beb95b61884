"""Hyperparameter search, the library part: the search space, the Optuna study, the ranking.

``flows/tune.py`` runs the trials (one Prefect task each, asked of and told to an Optuna
study); the search space, the sampler (TPE, random or grid, seeded by ``tune.seed``), the
median pruner, the Keras callback that reports ``val_loss`` to a trial each epoch, and how
trials are ranked live here, with no Prefect and no stage imports.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution
from pydantic import Field

from seriesflow.config.pipeline import FrozenModel, PipelineConfig
from seriesflow.data.schema import CLASSIFICATION, MODEL
from seriesflow.evaluation.metrics import HIGHER_IS_BETTER

# Searched setting -> (config section, field).
SEARCHED = {
    "units": ("train", "units"),
    "layers": ("train", "layers"),
    "dropout": ("train", "dropout"),
    "learning_rate": ("train", "learning_rate"),
    "batch_size": ("train", "batch_size"),
    "timesteps": ("window", "timesteps"),
}


class SearchSpace(FrozenModel):
    """Candidate values per searched setting (a one-value list pins a setting)."""

    units: list[int] = Field(default_factory=lambda: [16, 32, 64], min_length=1)
    layers: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    dropout: list[float] = Field(default_factory=lambda: [0.0, 0.2], min_length=1)
    learning_rate: list[float] = Field(default_factory=lambda: [1e-3, 3e-3], min_length=1)
    batch_size: list[int] = Field(default_factory=lambda: [32, 64], min_length=1)
    timesteps: list[int] = Field(default_factory=lambda: [24, 48], min_length=1)

    def grid(self) -> list[dict[str, Any]]:
        names = list(SEARCHED)
        values = [getattr(self, name) for name in names]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


class TuneConfig(FrozenModel):
    strategy: Literal["tpe", "random", "grid"] = Field(
        "tpe",
        description="Optuna's sampler: tpe (TPESampler, random for the first "
        "`startup_trials`), random (RandomSampler) or grid (GridSampler: every combination).",
    )
    trials: int = Field(
        8,
        ge=1,
        le=500,
        description="tpe/random: trials to run; grid: the most combinations allowed "
        "(a bigger grid is refused rather than left running for hours).",
    )
    seed: int = Field(0, description="Seed of the sampler (same seed, same suggestions).")
    startup_trials: int = Field(
        4, ge=1, description="tpe: random trials before TPE models the results."
    )
    pruning: bool = Field(
        True, description="Stop a trial whose val_loss is above the median (MedianPruner)."
    )
    prune_after_trials: int = Field(
        2, ge=0, description="Trials that finish before any is pruned (n_startup_trials)."
    )
    prune_after_epochs: int = Field(
        1, ge=0, description="Epochs a trial trains before it can be pruned (n_warmup_steps)."
    )
    max_workers: int = Field(
        2,
        ge=1,
        description="Trials at once: asked together, run in parallel (threads, or Dask), "
        "told together before the next are asked.",
    )
    space: SearchSpace = Field(default_factory=SearchSpace)


def distributions(search: TuneConfig) -> dict[str, CategoricalDistribution]:
    """The search space as Optuna distributions: each setting's listed values."""
    return {name: CategoricalDistribution(getattr(search.space, name)) for name in SEARCHED}


def check_grid(search: TuneConfig) -> int:
    """The number of trials the search runs; a grid bigger than ``tune.trials`` is refused."""
    if search.strategy != "grid":
        return search.trials
    size = len(search.space.grid())
    if size > search.trials:
        raise ValueError(
            f"tune.space makes a grid of {size} combinations, more than "
            f"tune.trials={search.trials}; shrink tune.space, raise tune.trials or "
            "use tune.strategy=tpe"
        )
    return size


class _AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler for ask-and-tell: its ``after_trial`` calls ``study.stop()``, which only
    works inside ``optimize``; the flow asks exactly one trial per grid point instead."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


def make_sampler(search: TuneConfig) -> optuna.samplers.BaseSampler:
    """The seeded sampler of ``tune.strategy``."""
    if search.strategy == "grid":
        space = {name: list(getattr(search.space, name)) for name in SEARCHED}
        return _AskTellGridSampler(space, seed=search.seed)
    if search.strategy == "random":
        return optuna.samplers.RandomSampler(seed=search.seed)
    return optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=search.startup_trials)


def make_pruner(search: TuneConfig) -> optuna.pruners.BasePruner:
    """MedianPruner on the per-epoch val_loss (or none, ``tune.pruning: false``)."""
    if not search.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=search.prune_after_trials, n_warmup_steps=search.prune_after_epochs
    )


@dataclass(frozen=True)
class StudyRef:
    """Where a study lives (an RDB URL, SQLite in the tune folder): what a trial task needs
    to load its trial in any thread or Dask worker that sees the workspace."""

    storage: str
    name: str
    higher_is_better: bool

    def create(self, search: TuneConfig) -> optuna.Study:
        return optuna.create_study(
            storage=self.storage,
            study_name=self.name,
            sampler=make_sampler(search),
            pruner=make_pruner(search),
            direction="maximize" if self.higher_is_better else "minimize",
        )

    def trial(self, trial_id: int, search: TuneConfig) -> optuna.Trial:
        """The running trial ``trial_id``, with the search's pruner, from the storage."""
        study = optuna.load_study(
            study_name=self.name, storage=self.storage, pruner=make_pruner(search)
        )
        return optuna.Trial(study, trial_id)


def pruning_callback(trial: optuna.Trial, higher_is_better: bool = False) -> Any:
    """A Keras callback: report each epoch's ``val_loss`` to ``trial`` (step = the epoch,
    from 1) and raise ``optuna.TrialPruned`` when the pruner says so.

    A study that maximizes (a classification metric) gets ``-val_loss``, so that for the
    pruner too a better epoch is a higher value. ``reported`` keeps what was reported, for
    the trial's record after it is pruned. (optuna-integration's KerasPruningCallback is
    written for tf.keras 2; this is the same idea for Keras 3.)
    """
    import keras

    sign = -1.0 if higher_is_better else 1.0

    class OptunaPruning(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.reported: dict[int, float] = {}

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            value = (logs or {}).get("val_loss")
            if value is None or not math.isfinite(float(value)):
                return
            step = epoch + 1
            trial.report(sign * float(value), step)
            self.reported[step] = float(value)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val_loss {float(value):.4g} at epoch {step}")

    return OptunaPruning()


def with_params(cfg: PipelineConfig, params: dict[str, Any]) -> PipelineConfig:
    """``cfg`` with the searched settings replaced (validated like any config)."""
    tree = cfg.dump()
    for name, value in params.items():
        section, key = SEARCHED[name]
        tree[section][key] = value
    try:
        return PipelineConfig.model_validate(tree)
    except ValueError as exc:
        raise ValueError(
            f"tune.space: the combination {params} is not a valid config: {exc}"
        ) from exc


def params_of(cfg: PipelineConfig) -> dict[str, Any]:
    return {name: getattr(getattr(cfg, s), k) for name, (s, k) in SEARCHED.items()}


def selection_metric(cfg: PipelineConfig) -> tuple[str, bool]:
    """The metric trials are ranked on and whether higher is better."""
    if cfg.train.task == CLASSIFICATION:
        metric = cfg.register.classification_metric
    else:
        metric = cfg.register.metric
    return metric, metric in HIGHER_IS_BETTER


@dataclass(frozen=True)
class TrialResult:
    number: int
    params: dict[str, Any]
    status: str  # completed | pruned | failed
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    epochs: int = 0
    seconds: float = 0.0
    mlflow_run_id: str | None = None
    error: str | None = None
    runner: str = ""  # where it ran: a Dask worker's address, or a thread's name

    def value(self, metric: str) -> float:
        return self.metrics.get(MODEL, {}).get(metric, math.nan)


def best_trial(results: list[TrialResult], metric: str, higher: bool) -> TrialResult | None:
    done = [r for r in results if r.status == "completed" and math.isfinite(r.value(metric))]
    if not done:
        return None
    return (max if higher else min)(done, key=lambda r: (r.value(metric), -r.number))


def trials_frame(results: list[TrialResult], metric: str, higher: bool) -> pd.DataFrame:
    rows = [
        {
            "trial": r.number,
            **r.params,
            "status": r.status,
            f"val_{metric}": r.value(metric),
            "epochs": r.epochs,
            "seconds": round(r.seconds, 1),
            "mlflow_run_id": r.mlflow_run_id,
        }
        for r in results
    ]
    frame = pd.DataFrame(rows)
    return frame.sort_values(f"val_{metric}", ascending=not higher, na_position="last")
