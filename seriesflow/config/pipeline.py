"""The pipeline configuration: one root model, one frozen sub-model per stage.

``PipelineConfig`` is the ``retrain`` flow's only parameter, so the Prefect UI
renders it as a typed form; the CLI reads the same model from YAML
(``configs/default.yaml`` mirrors the defaults) with ``--set a.b=value``
overrides. Defaults reproduce the seed's model: LSTM(50) -> Dense, Adam, MSE --
trained at batch 256 with a scaled learning rate and XLA (over 2x the seed's batch-32
samples/s, ``benchmarks/train_speed.py``), and with the seed's ReduceLROnPlateau
mistake fixed (its ``min_lr`` equalled Adam's starting rate, so it could never fire).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, field_validator, model_validator

from seriesflow.config.data import (
    ColumnsConfig,
    FeaturesConfig,
    FrozenModel,
    HolidaysConfig,
    IngestConfig,
    NormalizeConfig,
    SplitConfig,
    ValidationConfig,
)
from seriesflow.config.file import add_config_arguments, load_config_tree
from seriesflow.config.model import (
    AUTO,
    MIN_AUTO_TIMESTEPS,
    GroupsConfig,
    TrainConfig,
    WindowConfig,
)
from seriesflow.config.paths import PathsConfig
from seriesflow.ops.secrets import refuse_credentials

# Defined elsewhere, imported from here: the paths, data and model sections, the YAML and
# --set plumbing.
__all__ = [
    "AUTO",
    "MIN_AUTO_TIMESTEPS",
    "ColumnsConfig",
    "FeaturesConfig",
    "FrozenModel",
    "GroupsConfig",
    "HolidaysConfig",
    "IngestConfig",
    "NormalizeConfig",
    "SplitConfig",
    "TrainConfig",
    "ValidationConfig",
    "WindowConfig",
    "PathsConfig",
    "PipelineConfig",
    "add_config_arguments",
    "load_config",
    "load_config_tree",
]


class EvaluateConfig(FrozenModel):
    season_length: int | None = Field(
        None,
        ge=1,
        description="Seasonal period in steps for seasonal-naive and MASE. "
        "Default: inferred from the frequency (hourly -> 24, daily -> 7, ...).",
    )
    make_plots: bool = True
    baselines: list[Literal["ets", "theta"]] = Field(
        default_factory=lambda: ["ets", "theta"],
        description="Classical baselines to fit and report beside naive and seasonal naive "
        "(ets: statsforecast AutoETS, theta: AutoTheta; a fit per series). The routed model's "
        "candidates (register.candidates) are always fit; the gate uses baselines only when "
        "register.baselines names them too.",
    )
    baseline_max_series: int = Field(
        200,
        ge=0,
        description="Report the classical baselines only up to this many series. Above it they "
        "are skipped with a log line; candidates of the routed model and baselines the gate "
        "uses are always fit.",
    )
    max_windows_per_series: int | None = Field(
        64,
        ge=0,
        description="Validation and test windows (origins) scored per series, at most: "
        "spread evenly over each series' part (first and last kept), the same origins for the "
        "LSTM, the classical models, the baselines, the routed model and the champion. "
        "Evaluation then costs a bounded number of forecasts per series, whatever its length. "
        "0 or null = every window (exhaustive). "
        "Recorded in the evaluation report and as MLflow params (evaluation.origins.*).",
    )
    chunk_windows: int = Field(
        16384,
        ge=1,
        description="Evaluate scores this many validation and test windows at a time "
        "(whole series: a series with more is a chunk alone): every model's paths, the "
        "champion's and the long predictions of one chunk are held at once, so memory follows "
        "the chunk, not the number of series. What pools over series (the router's fallback, "
        "the pooled metrics, coverage and interval widths) is pooled over every chunk, so the "
        "results do not depend on it (up to rounding).",
    )
    fit_seasons: int = Field(
        10,
        ge=1,
        description="The statsforecast models (AutoETS, AutoTheta) are fit once per series on "
        "the latest this-many seasons of its training part (at least 200 points, at most "
        "1000), then rolled forward to every origin without refitting; the router keeps the "
        "fitted parameters, so forecasts do not refit either.",
    )
    refit_growth: float = Field(
        0.1,
        ge=0,
        description="Keep the champion's AutoETS and AutoTheta fits of a series whose "
        "training part grew by at most this share since they were fit, with the points fit "
        "unchanged (same times, same values, same season and fit_seasons): their parameters "
        "run forward over the new points instead of being fit again. 0 = fit every series "
        "every run.",
    )
    fit_beside_training: bool = Field(
        True,
        description="Fit the statsforecast models in another process while the LSTM trains "
        "(Keras leaves part of the cores idle), so that evaluate only scores; off: evaluate "
        "fits them. Single-model training only (the fan-out of per_series and groups: "
        "evaluate fits).",
    )
    n_jobs: int = Field(
        1,
        ge=-1,
        description="Processes that fit the statsforecast models (one series each at a "
        "time); -1 = every core. 1 on a shared machine.",
    )
    backtest_folds: int = Field(
        0,
        ge=0,
        le=100,
        description="Rolling-origin backtest: split the test windows into this many "
        "consecutive folds and score each (the fitted model is re-scored, not refit). "
        "0 = off.",
    )


class ForecastConfig(FrozenModel):
    """Forecasts of the future from the champion (flows/forecast.py) and their live accuracy."""

    route: bool = Field(
        True,
        description="Forecast each series with the model the champion's router chose for it "
        "(the LSTM, a classical candidate or their combination). false: every series from "
        "the champion's LSTM alone (to compare; the benchmarks report both).",
    )
    steps: int | Literal["auto"] = Field(
        "auto",
        description="Steps to forecast after each series' last observation: direct within "
        "the model's horizon, recursive beyond. auto: one season of the series' frequency "
        "(hourly 24, daily 7, monthly 12, quarterly 4; at least the horizon).",
    )
    levels: list[int] = Field(
        default_factory=lambda: [80, 95],
        min_length=1,
        description="Prediction interval levels in percent (split conformal, calibrated on "
        "periods the model never trained on).",
    )
    live_mase_alert: float = Field(
        1.0,
        gt=0,
        description="Live accuracy: emit seriesflow.accuracy.degraded when the champion's live "
        "MASE stays above this for forecast.live_alert_after consecutive scorings.",
    )
    live_alert_after: int = Field(3, ge=1, description="Consecutive scorings above the alert.")
    future_path: str | None = Field(
        None,
        description="Where the forecast flow reads future covariate values (columns.future) "
        "for the forecast steps: a CSV or Parquet file, or a folder of them, with the id, "
        "timestamp and future covariate columns (named as in columns.*). Read as is, never "
        "moved. Unset: only the accepted history (enough when no columns.future).",
    )

    @field_validator("steps")
    @classmethod
    def _steps_positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"forecast.steps must be at least 1 or 'auto', got {value}")
        return value

    @field_validator("levels")
    @classmethod
    def _levels_are_percentages(cls, value: list[int]) -> list[int]:
        if any(not 0 < level < 100 for level in value):
            raise ValueError(f"forecast.levels are percentages between 0 and 100, got {value}")
        return sorted(set(value))


class RegisterConfig(FrozenModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    model_name: str = Field("seriesflow-lstm", min_length=1)
    shared_model: bool = Field(
        False,
        description="One workspace per model name: a second workspace that registers under "
        "register.model_name in the same registry is refused. true (in every workspace "
        "that uses the name): workspaces share the model and its champion alias on purpose; "
        "each still recovers, orphans and promotes only its own versions.",
    )
    experiment: str = Field("seriesflow", min_length=1)
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI, without credentials. Default: $MLFLOW_TRACKING_URI, "
        "else sqlite:///<workspace>/mlflow.db.",
    )
    models: Literal["routed", "lstm_only"] = Field(
        "routed",
        description="routed: the registered model serves each series from its own model, "
        "chosen on that series' validation windows among register.candidates (see "
        "register.default_model); a workspace with valid data always gets a champion. "
        "lstm_only: the pure LSTM, which must beat register.baselines.",
    )
    candidates: list[Literal["lstm", "combination", "ets", "theta", "seasonal_naive", "naive"]] = (
        Field(
            default_factory=lambda: [
                "combination",
                "lstm",
                "ets",
                "theta",
                "seasonal_naive",
                "naive",
            ],
            description="The models the router weighs per series: lstm, combination (the mean of "
            "the LSTM's, AutoETS' and AutoTheta's forecasts), ets (statsforecast AutoETS), theta "
            "(AutoTheta), seasonal_naive, naive.",
        )
    )
    default_model: Literal["combination", "lstm"] = Field(
        "combination",
        description="What serves a series unless another candidate clearly won on its "
        "validation windows (register.switch_below). combination measured best on M3 "
        "(docs/benchmarks.md); lstm with switch_below 1: the LSTM wherever it beats every "
        "classical candidate on validation, else the best of them.",
    )
    switch_below: float = Field(
        0.25,
        gt=0,
        le=1,
        description="A series leaves register.default_model only for a candidate whose "
        "validation error is below this fraction of the default's: one validation period "
        "per series is noisy, and choosing the best on it measured worse on the test than "
        "every candidate chosen from (docs/benchmarks.md). 1: the plain best on validation.",
    )
    metric: Literal["mse", "mae", "rmse", "mape", "mase"] = Field(
        "mase", description="Metric the promotion gate compares (lower is better)."
    )
    aggregate: Literal["series_mean", "pooled"] = Field(
        "series_mean",
        description="How the gate aggregates over series: series_mean (each series' own score, "
        "averaged: with metric mase, scale-free, so one large series cannot decide) or pooled "
        "(all windows together in original units; reported either way).",
    )
    baselines: list[Literal["naive", "seasonal_naive", "ets", "theta"]] = Field(
        default_factory=lambda: ["naive", "seasonal_naive"],
        description="Baselines the model must beat on the test windows, in order (binding for "
        "models: lstm_only; reported for the routed model): naive (last value), "
        "seasonal_naive, ets (AutoETS) and theta (AutoTheta), fit on the training part and "
        "rolled over the test windows without refitting.",
    )
    promote_margin: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Relative improvement over the champion required to promote (0.02 = 2%).",
    )
    max_mase: float | None = Field(
        1.0,
        gt=0,
        description="Regression: promote only when the test MASE is below this (1 = the "
        "in-sample seasonal-naive error). None switches the rule off.",
    )
    classification_metric: Literal["accuracy", "precision", "recall", "f1"] = Field(
        "f1",
        description="Classification: metric the gate compares (higher is better; "
        "precision, recall and F1 are macro averages over the classes).",
    )
    concurrency_limit: str | None = Field(
        None,
        description="Prefect global concurrency limit held (strict) around the registry "
        "write; deployments set it, ad-hoc runs without a server leave it empty. Unset, "
        "$SERIESFLOW_REGISTRY_LIMIT applies (make serve sets it for its worker).",
    )

    @model_validator(mode="after")
    def _default_is_a_candidate(self) -> RegisterConfig:
        if self.default_model not in self.candidates:
            raise ValueError(
                f"register.default_model {self.default_model!r} must be one of "
                f"register.candidates {self.candidates}"
            )
        return self

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials_in_tracking_uri(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return refuse_credentials(
            value,
            "register.tracking_uri",
            "MLFLOW_TRACKING_URI, or MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD",
        )

    def resolved_concurrency_limit(self) -> str | None:
        return self.concurrency_limit or os.environ.get("SERIESFLOW_REGISTRY_LIMIT") or None

    def resolved_tracking_uri(self, workspace: Path) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        return f"sqlite:///{workspace / 'mlflow.db'}"


class RetentionConfig(FrozenModel):
    """What the workspace keeps: landed files after ingest, and how many run folders."""

    landed: Literal["archive", "keep", "delete"] = Field(
        "archive",
        description="Files accepted into history (the copies claimed out of landing before they "
        "were read): archive (move to <workspace>/archive/<date>/), keep (leave them in "
        "<workspace>/claimed/<run-id>/; the ledger remembers them) or delete.",
    )
    keep_runs: int = Field(
        20,
        ge=1,
        description="Run folders kept (the newest); the champion's is never deleted.",
    )


class HistoryConfig(FrozenModel):
    """The accepted history's Delta table (<workspace>/history/): layout and vacuum."""

    buckets: int = Field(
        16,
        ge=1,
        le=4096,
        description="Series hash buckets the table is partitioned by (series_bucket = a stable "
        "hash of series_id mod this), so that one series' rows are read alone. Fixed when the "
        "table is created: a table keeps the count it was written with.",
    )
    vacuum_hours: int = Field(
        168,
        ge=0,
        description="Retention vacuums data files that no version newer than this many hours "
        "needs (Delta's vacuum); the files of the champion's training version are always kept.",
    )


class RunConfig(FrozenModel):
    """How this run behaves towards other runs and earlier versions."""

    wait_for_workspace: bool = Field(
        True,
        description="Another run holds the workspace: wait for it (true) or end skipped, "
        "'workspace busy' (false; the CLI's --no-wait).",
    )
    force: bool = Field(
        False,
        description="Train and register even when a version was already trained on the same "
        "data with the same settings (default: reuse that version's decision).",
    )


# The stages are called "register" and "validate"; pydantic notes that BaseModel's metaclass
# (ABCMeta) has a classmethod "register" and BaseModel a deprecated classmethod "validate".
# Instances never use either, so the shadowing is harmless.
warnings.filterwarnings(
    "ignore",
    message=r'Field name "(register|validate)" in "(PipelineConfig|TimeoutsConfig)" shadows',
)


# Measured stage times (docs/benchmarks.md, "Scale": 1,000 hourly series x 10,000 points, every
# window, the shared 2-core machine; seconds): ingest 4.6, validate 30.9 (53.8 with Data Docs
# off at stride 24), normalize 6.9, window 4.5, train 228 per epoch, evaluate 401, register
# 11.6. A limit is such a time times a margin (x10 and at least 10 minutes for the quick stages:
# a busy or slower machine and larger data must not trip them; train: the default 50 + 2 epochs
# at that rate, ~3 h, x2); register also waits up to 30 minutes for the registry lock.
MINUTE, HOUR = 60.0, 3600.0


class TimeoutsConfig(FrozenModel):
    """Time limits in seconds (null: none); past one a stage or flow ends TimedOut.

    A TimedOut run is a failed one: it frees the retrain queue's slot instead of holding it
    forever, and the next run recovers what it left."""

    retrain: float | None = Field(
        8 * HOUR, gt=0, description="The whole retrain flow, waiting for the workspace included."
    )
    ingest: float | None = Field(10 * MINUTE, gt=0, description="Claim and read the new files.")
    validate: float | None = Field(  # type: ignore[assignment] - see the warning filter below
        15 * MINUTE, gt=0, description="Great Expectations checks, drift, Data Docs."
    )
    normalize: float | None = Field(10 * MINUTE, gt=0, description="Fill, split and scale.")
    window: float | None = Field(10 * MINUTE, gt=0, description="The window table.")
    train: float | None = Field(
        6 * HOUR,
        gt=0,
        description="Training (each branch, and the branches' flow, when train.splits is set; "
        "each tune trial).",
    )
    evaluate: float | None = Field(30 * MINUTE, gt=0, description="Scoring and the router.")
    register: float | None = Field(
        45 * MINUTE,
        gt=0,
        description="Logging and the model version, the wait for the registry lock included.",
    )
    forecast: float | None = Field(
        30 * MINUTE, gt=0, description="The forecast flow (champion load and forecasts)."
    )
    watch: float | None = Field(
        10 * MINUTE, gt=0, description="The watch flow (two looks at landing, one event)."
    )
    tune: float | None = Field(24 * HOUR, gt=0, description="The tune flow, all its trials.")

    def of(self, stage: str) -> float | None:
        """The limit of ``stage`` (a stage or flow name, as in the YAML)."""
        if stage not in type(self).model_fields:
            raise ValueError(f"no time limit for {stage!r}; known: {list(type(self).model_fields)}")
        return getattr(self, stage)


class LimitsConfig(FrozenModel):
    """Time limits, and retries of the I/O steps (the landing area, MLflow, the Prefect API).

    A transient error (a dropped connection, a timeout, an MLflow server error) is tried again
    after a growing delay; a data error (a rejected file, a failed check) never is, and
    compute stages never retry."""

    retries: int = Field(
        3, ge=0, le=10, description="Retries of an I/O step after its first try (0: none)."
    )
    retry_delay_seconds: float = Field(
        2.0,
        ge=0,
        description="Wait before the first retry; it doubles with each retry (2, 4, 8 s).",
    )
    retry_jitter_factor: float = Field(
        0.5,
        ge=0,
        description="Random extra wait, up to this fraction of the delay, so that workers do "
        "not retry in step.",
    )
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)

    def retry_delays(self) -> list[float]:
        """The wait before each retry: exponential backoff from ``retry_delay_seconds``."""
        return [self.retry_delay_seconds * 2**i for i in range(self.retries)]


# The sections (and register settings) that make two runs on the same data the same model.
MODEL_SECTIONS = ("columns", "features", "split", "window", "train", "evaluate", "register")
REGISTRY_LOCATION = ("tracking_uri", "concurrency_limit")
TRAIN_LOCATION = ("dask_address",)  # where training runs, not what it makes


class PipelineConfig(FrozenModel):
    """Everything a retrain run needs; the Prefect UI form and the YAML mirror it."""

    # errors name the setting and the problem, never echo a value (it may be a password)
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    paths: PathsConfig = Field(default_factory=PathsConfig)
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    register: RegisterConfig = Field(default_factory=RegisterConfig)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @model_validator(mode="after")
    def _group_column_is_kept(self) -> PipelineConfig:
        groups = self.train.groups
        kept = self.columns.kept
        if groups is not None and groups.by == "column" and groups.column not in kept:
            raise ValueError(
                f"train.groups.column '{groups.column}' is not a column the pipeline keeps: "
                f"list it in columns.past, future or static (now {kept})"
            )
        return self

    @model_validator(mode="after")
    def _categorical_statics_are_static(self) -> PipelineConfig:
        stray = sorted(set(self.features.static_categorical) - set(self.columns.static))
        if stray:
            raise ValueError(
                f"features.static_categorical {stray} are not static columns: list them in "
                f"columns.static (now {self.columns.static})"
            )
        return self

    def min_points(self) -> int:
        """Rows a series needs: the model's observed inputs (``window.min_inputs``, else
        ``window.timesteps``, when set as numbers) and a horizon, and a point for each of
        train, val and test. A short training part is fine: the model is global (a short
        series' windows repeat its first value) and the classical candidates fit on the
        whole series. With ``auto`` settings (known per series only later): 3."""
        if self.validation.min_points_per_series is not None:
            return self.validation.min_points_per_series
        window = self.window
        horizon = window.horizon if isinstance(window.horizon, int) else 1
        inputs = window.min_inputs if isinstance(window.min_inputs, int) else None
        if inputs is None:
            inputs = window.timesteps if isinstance(window.timesteps, int) else 1
        return max(3, horizon + 2, inputs + horizon)

    def dump(self) -> dict[str, Any]:
        """Plain JSON-able dict, keyed like the YAML file."""
        return self.model_dump(mode="json")

    def training_key(self) -> str:
        """A hash of the settings that shape a model and its gate, given the data: not where
        files are, how they are read or checked, what is kept, nor where the registry is."""
        tree = self.dump()
        kept = {name: tree[name] for name in MODEL_SECTIONS}
        kept["register"] = {k: v for k, v in kept["register"].items() if k not in REGISTRY_LOCATION}
        kept["train"] = {k: v for k, v in kept["train"].items() if k not in TRAIN_LOCATION}
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> PipelineConfig:
    """Read a YAML config (optional) and apply ``key.sub=value`` overrides."""
    return PipelineConfig.model_validate(load_config_tree(path, overrides))


DEFAULT_YAML_HEADER = """\
# seriesflow default configuration: mirrors seriesflow/config/pipeline.py:PipelineConfig.
# Copy it, change what you need, run:  python -m flows.retrain --config my.yaml
# Any key can also be set on the command line: --set train.epochs=5
# Regenerate after changing the model:  python -m seriesflow.config.pipeline > configs/default.yaml
"""


def default_yaml() -> str:
    return DEFAULT_YAML_HEADER + yaml.safe_dump(PipelineConfig().dump(), sort_keys=False)


if __name__ == "__main__":
    sys.stdout.write(default_yaml())
