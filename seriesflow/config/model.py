"""The model sections of the configuration: window, train (and its groups).

How windows are cut and how the LSTM is built and trained. Imported from
``seriesflow.config.pipeline``, which holds the root model.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from seriesflow.config.data import FrozenModel
from seriesflow.ops.secrets import refuse_credentials

AUTO = "auto"
# The shortest input auto picks (the seed's own timesteps): below it a series is too short.
MIN_AUTO_TIMESTEPS = 3


class WindowConfig(FrozenModel):
    timesteps: int | Literal["auto"] = Field(
        AUTO,
        description="Input steps per window. auto: twice the longer of the horizon and the "
        "season (hourly with horizon 48: 96; monthly with 18: 36; quarterly with 8: 16; at "
        "least 12). A series shorter than that still trains and forecasts: its first value "
        "is repeated before its start (window.min_inputs says how many observed inputs a "
        "window needs).",
    )

    horizon: int | Literal["auto"] = Field(
        AUTO,
        description="Steps forecast at once (direct multi-output). auto: the forecasting "
        "competitions' horizon of the series' frequency (hourly 48, daily 14, weekly 13, "
        "monthly 18, quarterly 8, yearly 6; other sub-daily: two days), the largest over the "
        "series of a run. The validation and test parts of a series get at least one "
        "horizon each where the series is long enough.",
    )

    min_inputs: int | Literal["auto"] = Field(
        AUTO,
        description="Observed input steps a window needs (earlier ones repeat the series' "
        "first value). auto: the longer of the horizon and the season, at most timesteps.",
    )
    stride: int = Field(1, ge=1, description="Step between consecutive window origins.")

    @field_validator("timesteps", "horizon", "min_inputs")
    @classmethod
    def _positive(cls, value: int | str, info: ValidationInfo) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"window.{info.field_name} must be at least 1 or 'auto', got {value}")
        return value


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
    # dask_address may hold a password: an invalid value is never echoed in an error
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

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
        "branch trains as its own Prefect task on the cluster. Empty: local threads. No "
        "credentials (TLS settings come from Dask's own config in the environment).",
    )
    warm_start: bool = Field(
        False,
        description="Start from the champion's weights when its architecture matches "
        "(fast retraining on new data); otherwise train from scratch and say why.",
    )
    units: int = Field(50, ge=1, description="LSTM units per layer.")
    loss: Literal["mse", "mae"] = Field(
        "mae",
        description="Regression loss on the model's scale. mae: with normalize.method "
        "seasonal_log, the mean absolute log-ratio, close to the sMAPE the M4 winners trained "
        "on; mse: the seed's.",
    )
    ensemble: int = Field(
        1,
        ge=1,
        le=16,
        description="Members of the ensemble: LSTMs trained side by side on input lengths "
        "from window.timesteps down to half of it, each with its own seed; the forecast is "
        "their median. Each member costs about one model's training time.",
    )
    final_epochs: int = Field(
        2,
        ge=0,
        description="After early stopping, train this many more epochs on every window, "
        "validation and test targets included, before the model is registered (evaluation "
        "scores the model as it was before; a later run re-scores it only on what came after "
        "its data). 2 measured better on M3 monthly than 0 (docs/benchmarks.md). 0: the "
        "registered model is the evaluated one.",
    )
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

    @field_validator("dask_address")
    @classmethod
    def _no_credentials_in_dask_address(cls, value: str | None) -> str | None:
        # the config is the flows' parameter, stored with every Prefect run
        if value is None:
            return value
        return refuse_credentials(
            value,
            "train.dask_address",
            "Dask's own settings: DASK_DISTRIBUTED__COMM__TLS__* or a security file",
        )

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
