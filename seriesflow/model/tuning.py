"""Hyperparameter search, the pure part: the search space, the trials, the ranking.

``flows/tune.py`` runs the trials (one Prefect task each); what a trial is and
how trials are ranked lives here, with no Prefect and no stage imports.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
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
    strategy: Literal["grid", "random"] = Field(
        "random", description="grid: every combination; random: `trials` distinct draws."
    )
    trials: int = Field(
        8,
        ge=1,
        le=500,
        description="random: configurations to draw; grid: the most combinations allowed "
        "(a bigger grid is refused rather than left running for hours).",
    )
    seed: int = Field(0, description="Seed of the random draw.")
    max_workers: int = Field(
        2, ge=1, description="Trials at once on the default thread pool (not used with Dask)."
    )
    space: SearchSpace = Field(default_factory=SearchSpace)


def trial_params(search: TuneConfig) -> list[dict[str, Any]]:
    """The searched settings of every trial, in trial order (seeded by ``tune.seed``)."""
    grid = search.space.grid()
    if search.strategy == "grid":
        if len(grid) > search.trials:
            raise ValueError(
                f"tune.space makes a grid of {len(grid)} combinations, more than "
                f"tune.trials={search.trials}; shrink tune.space, raise tune.trials or "
                "use tune.strategy=random"
            )
        return grid
    rng = np.random.default_rng(search.seed)
    picks = rng.choice(len(grid), size=min(search.trials, len(grid)), replace=False)
    return [grid[int(i)] for i in picks]


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
    status: str  # completed | failed
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
