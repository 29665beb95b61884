"""Training speed: the seed's recipe vs the project's default vs the best bare Keras found.

    .venv/bin/python benchmarks/train_speed.py [--budget 60] [--try NAME=batch_size=256,...]

All on the same windows: the shipped sample (``data/sample/``) through the project's
own stage functions (read -> normalize -> window index, default config), the
training part for fitting and the validation part for the loss. Every row trains
from the same seed until ``--budget`` seconds of wall time have passed (the cut
epoch still validates), then reports:

- samples/s: training windows per second of training (validation excluded), the
  median over epochs 2+ (epoch 1 pays for tracing and XLA compilation);
- best val_loss reached within the budget (MSE on the project's scaled targets,
  the same for every row).

Rows: ``seed`` = the seed text's recipe in bare Keras (LSTM(50, relu) -> Dense, Adam
1e-3, MSE, batch 32, ``model.fit`` on in-memory arrays); ``project default`` =
``TrainConfig()`` through ``tasks.train.fit_windows`` (its PyDataset, early stopping
and learning-rate schedule; epochs uncapped so the budget binds); ``bare best`` =
bare Keras with batch 256, learning rate 3e-3, XLA and a ``tf.data`` pipeline with
prefetch; ``--try`` adds project rows with other ``train.*`` settings. Timings on a
shared machine vary: compare the rows of one run, not runs.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tasks  # noqa: F401  (quiet, offline defaults)
from benchmarks.accuracy import sample_frame
from tasks.config import PipelineConfig, TrainConfig
from tasks.lstm import seed_everything
from tasks.normalize import normalize_series
from tasks.report import records_markdown
from tasks.scaler import Scaler
from tasks.schema import TRAIN, VAL, VALUE
from tasks.train import fit_windows, step_plan
from tasks.window import resolve_timesteps, windows_table
from tasks.window_table import SeriesArrays, Windows, windows_from_table


def sample_windows(cfg: PipelineConfig) -> tuple[Windows, Scaler]:
    normalized, scaler = normalize_series(sample_frame(cfg), cfg)
    arrays = SeriesArrays.from_frame(normalized, [VALUE, *cfg.columns.covariates])
    timesteps = resolve_timesteps(cfg, scaler, arrays)
    table = windows_table(arrays, timesteps, cfg.window.horizon)
    return windows_from_table(table, arrays), scaler


def model_arrays(windows: Windows, scaler: Scaler) -> tuple[np.ndarray, np.ndarray]:
    """What the model sees: inputs [w, timesteps, features] and targets [w, horizon]."""
    x, loc, spread = scaler.window_inputs(windows.gather_x())
    return x, scaler.window_targets(windows.gather_y(), loc, spread)


def clock(budget: float) -> Any:
    """A callback that times training (not validation) per epoch and stops at ``budget`` s."""
    import keras

    class Clock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.train_seconds: list[float] = []
            self.samples: list[int] = []
            self.val_loss: list[float] = []

        def on_train_begin(self, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch_start, self.steps, self.epoch_samples = time.perf_counter(), 0, 0
            self.train_end = None

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.steps += 1
            if time.perf_counter() - self.start > budget:
                self.model.stop_training = True

        def on_test_begin(self, logs: Any = None) -> None:
            if self.train_end is None:
                self.train_end = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            end = self.train_end or time.perf_counter()
            self.train_seconds.append(end - self.epoch_start)
            self.samples.append(self.steps)  # steps; turned into samples by the caller
            self.val_loss.append(float((logs or {}).get("val_loss", np.nan)))
            if time.perf_counter() - self.start > budget:
                self.model.stop_training = True

    return Clock()


def summary(name: str, timer: Any, samples_of_step: float, epoch_samples: int) -> dict:
    """One table row: median samples/s over epochs 2+ (full epochs only), best val_loss."""
    rates = [
        min(steps * samples_of_step, epoch_samples) / seconds
        for steps, seconds in zip(timer.samples[1:], timer.train_seconds[1:], strict=True)
        if steps * samples_of_step >= epoch_samples
    ]
    return {
        "config": name,
        "epochs": len(timer.val_loss),
        "samples/s": statistics.median(rates) if rates else float("nan"),
        "best val_loss": float(np.nanmin(timer.val_loss)),
        "epoch-1 val_loss": timer.val_loss[0],
    }


def bare_keras(
    name: str,
    data: Windows,
    scaler: Scaler,
    budget: float,
    seed: int,
    batch_size: int,
    learning_rate: float,
    activation: str,
    jit_compile: bool,
    prefetch: bool,
) -> dict:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    x, y = model_arrays(data.subset(TRAIN), scaler)
    val = model_arrays(data.subset(VAL), scaler)
    model = keras.Sequential(
        [
            keras.Input(shape=x.shape[1:]),  # [batch, timesteps, features]
            keras.layers.LSTM(50, activation=activation),
            keras.layers.Dense(y.shape[1]),  # [batch, horizon]
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="mse", jit_compile=jit_compile
    )
    timer = clock(budget)
    if prefetch:
        train = (
            tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
        valid = tf.data.Dataset.from_tensor_slices(val).batch(1024).prefetch(tf.data.AUTOTUNE)
        model.fit(train, validation_data=valid, epochs=10_000, callbacks=[timer], verbose=0)
    else:
        model.fit(
            x,
            y,
            batch_size=batch_size,
            validation_data=val,
            epochs=10_000,
            shuffle=True,
            callbacks=[timer],
            verbose=0,
        )
    return summary(name, timer, batch_size, len(x))


def project(name: str, data: Windows, scaler: Scaler, budget: float, cfg: TrainConfig) -> dict:
    cfg = cfg.model_copy(update={"epochs": 10_000})  # the budget binds, not the epoch cap
    seed_everything(cfg.seed, cfg.deterministic)
    timer = clock(budget)
    fit_windows(data, cfg, scaler, callbacks=[timer])
    windows = len(data.subset(TRAIN))
    plan = step_plan(cfg, windows)  # the batch and rate fit_windows trains this set with
    shown = min(windows, cfg.max_windows_per_epoch or windows)
    per_epoch = max(shown, cfg.min_windows_per_epoch)
    row = summary(name, timer, plan.batch_size, per_epoch)
    row["config"] = (
        f"{name} (batch {plan.batch_size}, lr {plan.learning_rate:.3g}, jit {cfg.jit_compile})"
    )
    return row


def parse_try(text: str) -> tuple[str, dict[str, str]]:
    name, _, settings = text.partition("=")
    pairs = dict(item.split("=", 1) for item in settings.split(",") if item)
    return name, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training per row")
    parser.add_argument(
        "--try",
        dest="tries",
        action="append",
        default=[],
        help="an extra project row: NAME=key=value,key=value (train.* settings)",
    )
    parser.add_argument("--skip-bare", action="store_true", help="project rows only")
    args = parser.parse_args()
    cfg = PipelineConfig()
    data, scaler = sample_windows(cfg)
    print(
        f"sample data: {len(data.subset(TRAIN))} training windows, {len(data.subset(VAL))} "
        f"validation windows, timesteps {data.timesteps}, horizon {data.horizon}; "
        f"budget {args.budget:g} s per row",
        flush=True,
    )
    seed = cfg.train.seed
    rows = []
    if not args.skip_bare:
        rows.append(
            bare_keras("seed recipe (bare Keras, relu, batch 32)", data, scaler, args.budget,
                       seed, 32, 1e-3, "relu", False, False)
        )  # fmt: skip
        print(rows[-1], flush=True)
    rows.append(project("project default", data, scaler, args.budget, cfg.train))
    print(rows[-1], flush=True)
    for text in args.tries:
        name, pairs = parse_try(text)
        tried = TrainConfig.model_validate({**cfg.train.model_dump(), **pairs})
        rows.append(project(name, data, scaler, args.budget, tried))
        print(rows[-1], flush=True)
    if not args.skip_bare:
        rows.append(
            bare_keras("bare best (batch 256, lr 3e-3, XLA, tf.data prefetch)", data, scaler,
                       args.budget, seed, 256, 3e-3, "tanh", True, True)
        )  # fmt: skip
        print(rows[-1], flush=True)
    base = rows[0]["samples/s"]
    for row in rows:
        row["x seed"] = row["samples/s"] / base
    print()
    print(records_markdown(rows, digits=".4g"))


if __name__ == "__main__":
    main()
