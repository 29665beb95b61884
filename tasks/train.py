"""Train: the seed's LSTM family, fit on train windows, validated on val windows.

Defaults are the seed's model (LSTM(50) -> Dense(horizon), Adam, MSE, batch
32), with EarlyStopping(restore_best_weights) and a ReduceLROnPlateau that can
actually fire (``min_lr`` below the starting rate, patience below the early
stop's). Validation data is the chronological val split, never a shuffled
slice of the training windows. Seeds are fixed and ops deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from tasks.config import TrainConfig
from tasks.io import RunDir, atomic_path, write_parquet
from tasks.runtime import stage_logger
from tasks.schema import TRAIN, VAL
from tasks.window import load_windows


def _keras() -> Any:
    # Imported lazily: TensorFlow takes seconds to import and skipped runs never need it.
    import keras

    return keras


def build_model(timesteps: int, features: int, horizon: int, cfg: TrainConfig) -> Any:
    """LSTM stack -> Dense(horizon). Input [batch, timesteps, features] -> [batch, horizon]."""
    keras = _keras()
    regularizer = keras.regularizers.L2(cfg.l2) if cfg.l2 > 0 else None
    model = keras.Sequential(name="seriesflow_lstm")
    model.add(keras.Input(shape=(timesteps, features)))
    for layer in range(cfg.layers):
        last = layer == cfg.layers - 1
        model.add(
            keras.layers.LSTM(
                units=cfg.units,
                activation=cfg.activation,
                recurrent_dropout=cfg.recurrent_dropout,
                kernel_regularizer=regularizer,
                return_sequences=not last,  # stacked layers need the whole sequence
                name=f"lstm_{layer + 1}",
            )
        )
        if cfg.dropout > 0:
            model.add(keras.layers.Dropout(cfg.dropout, name=f"dropout_{layer + 1}"))
    model.add(keras.layers.Dense(horizon, kernel_regularizer=regularizer, name="forecast"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.learning_rate), loss="mse")
    return model


def seed_everything(seed: int) -> None:
    keras = _keras()
    keras.utils.set_random_seed(seed)
    import tensorflow as tf

    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):  # already enabled in this process
        pass


def fit_model(
    model: Any,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: TrainConfig,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> pd.DataFrame:
    """Fit ``model``; return the per-epoch history (loss, val_loss, learning_rate)."""
    keras = _keras()
    if len(train[0]) == 0 or len(val[0]) == 0:
        raise ValueError("train and val windows are both required to fit the model")

    class _Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs if logs is not None else {}
            # The rate this epoch trained with (ReduceLROnPlateau acts after us).
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )
            if on_epoch is not None:
                on_epoch(epoch, dict(logs))

    callbacks = [
        _Record(),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.early_stopping_patience, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=cfg.reduce_lr_factor,
            patience=cfg.reduce_lr_patience,
            min_lr=cfg.min_lr,
        ),
    ]
    fitted = model.fit(
        train[0],
        train[1],
        validation_data=val,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        shuffle=True,  # shuffles training windows only; val stays the later period
        callbacks=callbacks,
        verbose=0,
    )
    history = pd.DataFrame(fitted.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    return history


def save_model(model: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        # Keras insists on the .keras suffix, which atomic_path keeps.
        model.save(tmp)
    return path


@task(name="train", cache_policy=NONE)
def train(windows: Path, run: RunDir, cfg: TrainConfig) -> Path:
    logger = stage_logger()
    data = load_windows(windows)
    tr, va = data.subset(TRAIN), data.subset(VAL)
    seed_everything(cfg.seed)
    timesteps, features = data.x.shape[1], data.x.shape[2]
    model = build_model(timesteps, features, data.y.shape[1], cfg)
    logger.info(
        "Training LSTM(units=%d, layers=%d) on %d windows, validating on %d; %d parameters",
        cfg.units,
        cfg.layers,
        len(tr),
        len(va),
        model.count_params(),
    )

    def log_epoch(epoch: int, logs: dict[str, float]) -> None:
        logger.info(
            "epoch %d/%d  loss=%.5f  val_loss=%.5f  lr=%.2e",
            epoch + 1,
            cfg.epochs,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("learning_rate", float("nan")),
        )

    history = fit_model(model, (tr.x, tr.y), (va.x, va.y), cfg, on_epoch=log_epoch)
    best = history["val_loss"].idxmin()
    logger.info(
        "Best epoch %d (val_loss=%.5f) of %d run",
        int(history.loc[best, "epoch"]),
        history.loc[best, "val_loss"],
        len(history),
    )
    run.model_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, run.model)
    write_parquet(history, run.history)
    return run.model_dir
