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
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.config_file import add_config_arguments, load_config_tree
from tasks.paths import PathsConfig
from tasks.secrets import refuse_credentials

# Defined elsewhere, imported from here: the paths section, the YAML and --set plumbing.
__all__ = [
    "PathsConfig",
    "PipelineConfig",
    "add_config_arguments",
    "load_config",
    "load_config_tree",
]


class FrozenModel(BaseModel):
    """A config section: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnsConfig(FrozenModel):
    """Column names in the landed files (renamed to the canonical names on ingest)."""

    series_id: str = "series_id"
    timestamp: str = "timestamp"
    value: str = "value"
    covariates: list[str] = Field(
        default_factory=list,
        description="Extra numeric columns used as input features (scaled like the value).",
    )
    label: str | None = Field(
        None,
        description="Class label column for train.task=classification: a window's class is "
        "the label at its last target step. Unset: the class is the direction of change "
        "over the horizon (up / down).",
    )


class IngestConfig(FrozenModel):
    extensions: list[str] = Field(
        default_factory=lambda: [".csv", ".parquet"],
        description="File types read from the landing folder.",
    )
    settle_seconds: float = Field(
        30.0,
        ge=0,
        description="A file is taken only when two looks at least this far apart see the same "
        "size and modification time (writers should write NAME.part and rename it when done).",
    )
    second_look: bool = Field(
        True,
        description="A run that sees files it has not yet seen settle looks again once, "
        "settle_seconds later, instead of leaving them for the next run.",
    )
    timezone: str = Field(
        "UTC", description="Timezone assumed for timestamps that carry no offset."
    )
    retrain_without_new_data: bool = Field(
        False,
        description="Retrain on the accepted history even when no new file arrived "
        "(e.g. a UI run with a changed config); off: such a run ends as skipped.",
    )


class ValidationConfig(FrozenModel):
    on_bad_file: Literal["skip_file", "reject_arrival"] = Field(
        "skip_file",
        description="skip_file: quarantine a bad file and use the good files of the same "
        "arrival; reject_arrival: quarantine every file of an arrival that holds a bad one.",
    )
    max_value_null_fraction: float = Field(
        0.0, ge=0, le=1, description="Largest share of missing values allowed in a file."
    )
    value_min: float | None = Field(None, description="Optional lower bound for values.")
    value_max: float | None = Field(None, description="Optional upper bound for values.")
    frequency: str | None = Field(
        None,
        description="Calendar of every series as a pandas offset alias: 'h', '30min', 'D', "
        "'B' (business days), 'W-SUN', 'MS'/'ME' (month start/end), 'QS-JAN'/'QE-DEC', "
        "'YS-JAN'/'YE-DEC'. Default: inferred per series (the one that fits every "
        "timestamp with the fewest missing steps).",
    )

    @field_validator("frequency")
    @classmethod
    def _known_frequency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from tasks.frequency import Frequency  # pandas; config itself stays light

        return Frequency.parse(value).code

    max_gap_steps: int = Field(
        3,
        ge=0,
        description="Missing steps in a row that normalize may fill by time interpolation; "
        "a longer gap rejects the file that leaves it.",
    )
    allow_history_revisions: bool = Field(
        False,
        description="Let a new file change values already accepted (later file wins). "
        "Off: such a file is rejected, so accepted data never changes silently.",
    )
    drift: Literal["warn", "reject", "off"] = Field(
        "warn",
        description="Compare each arriving file with the champion's training data per series: "
        "warn (report it), reject (quarantine the file) or off.",
    )
    drift_max_mean_shift: float = Field(
        3.0, gt=0, description="Level shift, in the reference's standard deviations, that is drift."
    )
    drift_max_sd_ratio: float = Field(
        3.0,
        gt=1,
        description="Spread ratio (batch SD / reference SD, or its inverse) that is drift.",
    )
    min_points_per_series: int | None = Field(
        None,
        ge=1,
        description="Minimum rows per series. Default: enough for every split to hold "
        "at least one window (timesteps + horizon per split).",
    )
    outlier_max_robust_z: float | None = Field(
        20.0,
        gt=0,
        description="Reject a file whose values lie further than this many robust standard "
        "deviations (1.4826 x MAD) from the median of the series' accepted history; None: off.",
    )
    outlier_min_history: int = Field(
        30,
        ge=3,
        description="Accepted points a series needs before the outlier check applies "
        "(a new series is not checked).",
    )
    build_data_docs: bool = Field(True, description="Write GX Data Docs HTML into the run folder.")


class NormalizeConfig(FrozenModel):
    method: Literal["minmax", "last_value", "window"] = Field(
        "last_value",
        description="How the model sees a window: last_value (inputs and targets relative to "
        "the last input value, scaled by the training part's one-step changes: the model "
        "learns corrections to the naive forecast, robust to level and trend), window "
        "(each window standardized by its own mean and spread, as RevIN), or minmax "
        "(the seed's per-series MinMax on the training range).",
    )


class SplitConfig(FrozenModel):
    """Chronological split of each series (fractions of its points)."""

    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)


AUTO = "auto"
# The shortest input auto picks (the seed's own timesteps): below it a series is too short.
MIN_AUTO_TIMESTEPS = 3


class WindowConfig(FrozenModel):
    timesteps: int | Literal["auto"] = Field(
        AUTO,
        description="Input steps per window. auto: four seasons of the series' frequency "
        "(hourly 96, daily 28, monthly 48, quarterly 16; at least 12), at most a third of "
        "the shortest training part, so short series still train.",
    )

    @field_validator("timesteps")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"window.timesteps must be at least 1 or 'auto', got {value}")
        return value

    horizon: int = Field(1, ge=1, description="Steps forecast at once (direct multi-output).")
    stride: int = Field(1, ge=1, description="Step between consecutive window origins.")


class GroupsConfig(FrozenModel):
    """One global model per group of series (``train.groups``), routed by series."""

    by: Literal["hash", "column"] = Field(
        "hash",
        description="hash: a stable hash of series_id into train.groups.k groups; column: "
        "the value of train.groups.column (one value per series).",
    )
    k: int | None = Field(
        None, description="by=hash: the number of groups (at least 1); empty groups get no model."
    )
    column: str | None = Field(
        None,
        description="by=column: the column whose value names a series' group; it must be a "
        "column the pipeline keeps (one of columns.covariates) and constant within a series.",
    )

    @model_validator(mode="after")
    def _complete(self) -> GroupsConfig:
        if self.by == "hash":
            if self.k is None or self.k < 1:
                raise ValueError(f"train.groups.by=hash needs train.groups.k >= 1, got {self.k}")
            if self.column is not None:
                raise ValueError("train.groups.column is only for by=column (by is hash)")
        else:
            if not self.column:
                raise ValueError("train.groups.by=column needs train.groups.column")
            if self.k is not None:
                raise ValueError("train.groups.k is only for by=hash (by is column)")
        return self


class TrainConfig(FrozenModel):
    task: Literal["regression", "classification"] = Field(
        "regression",
        description="regression: forecast the next horizon values (MSE); classification: "
        "predict a class (columns.label, or the direction of change) with a softmax head "
        "and cross-entropy.",
    )
    per_series: bool = Field(
        False,
        description="One model per series (trained separately, saved as one routed model) "
        "instead of one global model across all series (each series scaled on its own).",
    )
    groups: GroupsConfig | None = Field(
        None,
        description="One global model per group of series (by a hash of series_id into k "
        "groups, or by a column), trained separately and saved as one routed model; the "
        "series of a group share one branch. Exclusive with per_series.",
    )
    dask_address: str | None = Field(
        None,
        description="Dask scheduler address (tcp://host:8786) for per_series and groups: each "
        "branch trains as its own Prefect task on the cluster. Empty: local threads.",
    )
    warm_start: bool = Field(
        False,
        description="Start from the champion's weights when its architecture matches "
        "(fast retraining on new data); otherwise train from scratch and say why.",
    )
    units: int = Field(50, ge=1, description="LSTM units per layer.")
    linear_skip: bool = Field(
        False,
        description="Regression: add a linear map of the whole input window to the LSTM's "
        "output (LSTNet's autoregressive highway), so linear dynamics such as seasonal "
        "changes are learnt from few windows.",
    )
    layers: int = Field(1, ge=1, le=8, description="Stacked LSTM layers.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after each LSTM layer.")
    recurrent_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout inside the LSTM.")
    l2: float = Field(0.0, ge=0, description="L2 penalty on the LSTM and Dense kernels.")
    activation: Literal["tanh", "relu"] = Field(
        "tanh", description="tanh is what cuDNN kernels need on a GPU; the seed used relu."
    )
    learning_rate: float = Field(
        1e-3 * math.sqrt(256 / 32),
        gt=0,
        description="Adam's starting rate at the full batch_size: the seed's 1e-3 at batch 32, "
        "scaled by sqrt(256 / 32) for batch 256 (square-root scaling). A smaller batch "
        "(see min_steps_per_epoch) gets the rate scaled by sqrt(batch / batch_size).",
    )
    batch_size: int = Field(
        256,
        ge=1,
        description="Windows per optimizer step, at most. 256 trains over 2x the seed's batch 32 "
        "in samples/s on CPU at the same validation loss (benchmarks/train_speed.py).",
    )
    min_batch_size: int = Field(
        32,
        ge=1,
        description="The smallest batch min_steps_per_epoch may shrink to (the seed's 32).",
    )
    jit_compile: bool = Field(
        True,
        description="Compile the training step with XLA: about 1.5x the samples/s on CPU "
        "(benchmarks/train_speed.py; compiling costs a few seconds in epoch 1). Needs "
        "deterministic: false -- Keras silently drops XLA while TensorFlow's op determinism "
        "is on.",
    )
    deterministic: bool = Field(
        False,
        description="TensorFlow op determinism, guaranteed bit-for-bit repeatable training, "
        "at the cost of XLA (set jit_compile: false with it). Off (the default, for XLA): "
        "seeds stay fixed, and XLA training on CPU repeated bit for bit in the tests, "
        "without TensorFlow's guarantee.",
    )
    min_windows_per_epoch: int = Field(
        1024,
        ge=0,
        description="An epoch shows the model at least this many training windows (each "
        "window repeated as needed), so a short series gets enough optimizer steps.",
    )
    max_windows_per_epoch: int | None = Field(
        32768,
        ge=1,
        description="Windows an epoch trains on at most, sampled uniformly without "
        "replacement (a new seeded sample each epoch) when more exist; null = all. 32768 = "
        "128 steps of batch 256: an epoch's cost stops growing with the number of series and "
        "the length of history (about 20 s on 2 cores at timesteps 96), while data below it "
        "(the sample's 3,912 windows, every real series benchmarked) trains exactly as before.",
    )
    history_points: int | None = Field(
        10000,
        ge=1,
        description="Only windows within the most recent this many training points of each "
        "series are trained on; older points are still validated and kept, and val/test are "
        "unchanged. null = all. 10,000 keeps the windows a retrain indexes and samples from "
        "bounded per series (over 100 seasons of hourly data, 27 years of daily data; the "
        "input itself spans 4 seasons), so a growing history does not grow the training set.",
    )
    min_steps_per_epoch: int = Field(
        16,
        ge=0,
        description="A training set of fewer than min_steps_per_epoch x batch_size windows "
        "trains with the smaller batch that gives an epoch this many steps (at least "
        "min_batch_size), its learning rate scaled by sqrt(batch / batch_size): a short series "
        "keeps the seed's recipe (batch 32 at 1e-3, 32 steps per 1024 windows) while a large "
        "data set trains at batch_size. 0 = always batch_size.",
    )
    epochs: int = Field(50, ge=1)
    early_stopping_patience: int = Field(8, ge=1)
    min_delta: float = Field(
        1e-6,
        ge=0,
        description="A drop of val_loss (scaled MSE) larger than this counts as an improvement, "
        "for both EarlyStopping and ReduceLROnPlateau (one yardstick for both).",
    )
    reduce_lr_factor: float = Field(0.5, gt=0, lt=1)
    reduce_lr_patience: int = Field(3, ge=1)
    min_lr: float = Field(1e-5, gt=0)
    seed: int = 42

    @property
    def splits(self) -> bool:
        """Whether training fans out into branches (per series or per group)."""
        return self.per_series or self.groups is not None

    @model_validator(mode="after")
    def _one_way_to_split(self) -> TrainConfig:
        if self.per_series and self.groups is not None:
            raise ValueError(
                "train.per_series and train.groups are exclusive: one model per series, or "
                "one per group of series; unset one of them"
            )
        return self

    @model_validator(mode="after")
    def _lr_schedule_can_fire(self) -> TrainConfig:
        # The seed set min_lr=0.001 == Adam's default rate, so ReduceLROnPlateau
        # could never lower it; and a patience >= EarlyStopping's stops training first.
        if self.min_lr >= self.learning_rate:
            raise ValueError(
                f"train.min_lr ({self.min_lr}) must be below train.learning_rate "
                f"({self.learning_rate}), or ReduceLROnPlateau can never lower the rate"
            )
        if self.reduce_lr_patience >= self.early_stopping_patience:
            raise ValueError(
                f"train.reduce_lr_patience ({self.reduce_lr_patience}) must be below "
                f"train.early_stopping_patience ({self.early_stopping_patience}), or training "
                "stops before the learning rate is ever reduced"
            )
        if self.jit_compile and self.deterministic:
            raise ValueError(
                "train.jit_compile needs train.deterministic: false -- Keras turns XLA off "
                "while TensorFlow's op determinism is on, so the switch would do nothing"
            )
        least = self.min_windows_per_epoch
        if self.max_windows_per_epoch is not None and self.max_windows_per_epoch < least:
            raise ValueError(
                f"train.max_windows_per_epoch ({self.max_windows_per_epoch}) must be at least "
                f"train.min_windows_per_epoch ({least}), or the two bounds contradict each other"
            )
        return self


class EvaluateConfig(FrozenModel):
    season_length: int | None = Field(
        None,
        ge=1,
        description="Seasonal period in steps for seasonal-naive and MASE. "
        "Default: inferred from the frequency (hourly -> 24, daily -> 7, ...).",
    )
    make_plots: bool = True
    baselines: list[Literal["ets"]] = Field(
        default_factory=lambda: ["ets"],
        description="Classical baselines to fit and report beside naive and seasonal naive "
        "(ets: statsmodels ETSModel per series; costs a fit per series). The gate uses them "
        "only when register.baselines names them too.",
    )
    baseline_max_series: int = Field(
        200,
        ge=0,
        description="Report the classical baselines only up to this many series (each costs a "
        "statsmodels fit per series: about 0.1-1 s). Above it they are skipped with a log line; "
        "a baseline that register.baselines gates on is always fit.",
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
    experiment: str = Field("seriesflow", min_length=1)
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI, without credentials. Default: $MLFLOW_TRACKING_URI, "
        "else sqlite:///<workspace>/mlflow.db.",
    )
    metric: Literal["mse", "mae", "rmse", "mape", "mase"] = Field(
        "rmse", description="Metric the promotion gate compares (lower is better)."
    )
    baselines: list[Literal["naive", "seasonal_naive", "ets"]] = Field(
        default_factory=lambda: ["naive", "seasonal_naive"],
        description="Baselines a regression model must beat on the test windows, in order: "
        "naive (last value), seasonal_naive, ets (statsmodels exponential smoothing fit on "
        "the training part, AICc form, rolled over the test windows without refitting). "
        "ets is always reported (evaluate.baselines); add it here to gate on it too.",
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
        description="Files accepted into history: archive (move to <workspace>/archive/<date>/), "
        "keep (leave them in landing; the ledger remembers them) or delete.",
    )
    keep_runs: int = Field(
        20,
        ge=1,
        description="Run folders kept (the newest); the champion's is never deleted.",
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


# The stage is called "register"; pydantic notes that BaseModel's metaclass (ABCMeta) has a
# classmethod of that name. Instances never use ABCMeta.register, so the shadowing is harmless.
warnings.filterwarnings("ignore", message='Field name "register" in "PipelineConfig" shadows')


# The sections (and register settings) that make two runs on the same data the same model.
MODEL_SECTIONS = ("columns", "split", "window", "train", "evaluate", "register")
REGISTRY_LOCATION = ("tracking_uri", "concurrency_limit")
TRAIN_LOCATION = ("dask_address",)  # where training runs, not what it makes


class PipelineConfig(FrozenModel):
    """Everything a retrain run needs; the Prefect UI form and the YAML mirror it."""

    # errors name the setting and the problem, never echo a value (it may be a password)
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    paths: PathsConfig = Field(default_factory=PathsConfig)
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
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
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _group_column_is_kept(self) -> PipelineConfig:
        groups = self.train.groups
        kept = self.columns.covariates
        if groups is not None and groups.by == "column" and groups.column not in kept:
            raise ValueError(
                f"train.groups.column '{groups.column}' is not a column the pipeline keeps: "
                f"list it in columns.covariates (now {kept})"
            )
        return self

    def min_points(self) -> int:
        """Rows a series needs so that train, val and test each hold a window."""
        if self.validation.min_points_per_series is not None:
            return self.validation.min_points_per_series
        # Train must hold a whole window (inputs and targets); val and test must each
        # hold `horizon` targets (their inputs may reach back into the earlier split).
        train_fraction = 1 - self.split.val_fraction - self.split.test_fraction
        timesteps = self.window.timesteps
        if timesteps == AUTO:
            timesteps = MIN_AUTO_TIMESTEPS  # auto shortens the input to what a series holds
        needs = (
            (timesteps + self.window.horizon) / train_fraction,
            self.window.horizon / self.split.val_fraction,
            self.window.horizon / self.split.test_fraction,
        )
        return math.ceil(max(needs)) + 1

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
# seriesflow default configuration: mirrors tasks/config.py:PipelineConfig.
# Copy it, change what you need, run:  python -m flows.retrain --config my.yaml
# Any key can also be set on the command line: --set train.epochs=5
# Regenerate after changing the model:  python -m tasks.config > configs/default.yaml
"""


def default_yaml() -> str:
    return DEFAULT_YAML_HEADER + yaml.safe_dump(PipelineConfig().dump(), sort_keys=False)


if __name__ == "__main__":
    sys.stdout.write(default_yaml())
