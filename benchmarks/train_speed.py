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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import seriesflow  # noqa: F401  (quiet, offline defaults)
from benchmarks.accuracy import sample_frame
from benchmarks.docs_table import measured, variant, write_block  # noqa: E402
from seriesflow.config.pipeline import PipelineConfig, TrainConfig
from seriesflow.data.schema import TRAIN, VAL
from seriesflow.evaluation.tables import records_markdown
from seriesflow.model.lstm import build_model, seed_everything, window_batches
from seriesflow.model.normalize import normalize_series
from seriesflow.model.scaler import Scaler
from seriesflow.model.training import fit_windows, step_plan
from seriesflow.model.windows import (
    SeriesArrays,
    Windows,
    resolve_timesteps,
    windows_from_table,
    windows_table,
)


def sample_windows(cfg: PipelineConfig) -> tuple[Windows, Scaler]:
    normalized, scaler = normalize_series(sample_frame(cfg), cfg)
    arrays = SeriesArrays.from_frame(normalized, list(scaler.columns))
    timesteps = resolve_timesteps(cfg, scaler, arrays)
    table = windows_table(arrays, timesteps, cfg.window.horizon)
    return windows_from_table(table, arrays), scaler


def model_arrays(windows: Windows, scaler: Scaler) -> tuple[np.ndarray, np.ndarray]:
    """What the model sees: inputs [w, timesteps, features] and targets [w, horizon]."""
    x, loc, spread = scaler.window_inputs(windows.gather_x())
    return x, scaler.window_targets(windows.gather_y(), loc, spread)


def set_determinism(on: bool) -> None:
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config  # no public switch back

    if on:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


class Row:
    """One configuration: a compiled model, one epoch of its input, how it trains."""

    def __init__(self, name: str, deterministic: bool) -> None:
        self.name, self.deterministic = name, deterministic
        self.rates: list[float] = []

    def epoch(self) -> None:
        set_determinism(self.deterministic)
        started = time.perf_counter()
        self.run_epoch()
        self.rates.append(self.epoch_samples / (time.perf_counter() - started))

    @property
    def rate(self) -> float:
        return statistics.median(self.rates[1:])  # epoch 1 traces (and compiles with XLA)


class Bare(Row):
    """Bare Keras: LSTM(50) -> Dense on in-memory arrays, ``model.fit`` (or tf.data)."""

    def __init__(self, name, data, scaler, seed, batch, rate, activation, jit, prefetch):
        super().__init__(name, deterministic=False)  # the seed text sets no op determinism
        import keras
        import tensorflow as tf

        self.args = (data, scaler, seed, batch, rate, activation, jit, prefetch)
        keras.utils.set_random_seed(seed)
        set_determinism(False)  # Keras decides on XLA when compiling: not under determinism
        x, y = model_arrays(data.subset(TRAIN), scaler)
        self.val = model_arrays(data.subset(VAL), scaler)
        self.model = keras.Sequential(
            [
                keras.Input(shape=x.shape[1:]),  # [batch, timesteps, features]
                keras.layers.LSTM(50, activation=activation),
                keras.layers.Dense(y.shape[1]),  # [batch, horizon]
            ]
        )
        self.model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse", jit_compile=jit)
        self.batch, self.epoch_samples = batch, len(x)
        if prefetch:
            self.train = (
                tf.data.Dataset.from_tensor_slices((x, y))
                .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
                .batch(batch)
                .prefetch(tf.data.AUTOTUNE)
            )
            self.fit_args = {"x": self.train}
        else:
            self.fit_args = {"x": x, "y": y, "batch_size": batch, "shuffle": True}

    def run_epoch(self) -> None:
        self.model.fit(**self.fit_args, epochs=1, verbose=0)

    def best_val_loss(self, samples: float) -> tuple[float, int]:
        """A fresh model trained on ``samples`` windows (whole epochs, the last one cut)."""
        fresh = Bare(self.name, *self.args)
        epochs = max(1, int(np.ceil(samples / self.epoch_samples)))
        history = fresh.model.fit(
            **fresh.fit_args, validation_data=self.val, epochs=epochs, verbose=0
        )
        return float(np.min(history.history["val_loss"])), epochs


class Project(Row):
    """The project's training path: ``build_model`` + ``window_batches`` at ``step_plan``."""

    def __init__(self, name: str, data: Windows, scaler: Scaler, cfg: TrainConfig) -> None:
        super().__init__(name, cfg.deterministic)
        self.data, self.scaler, self.cfg = data, scaler, cfg
        train = data.subset(TRAIN)
        self.plan = step_plan(cfg, len(train))  # the batch and rate fit_windows uses
        set_determinism(cfg.deterministic)  # Keras decides on XLA when compiling
        self.model = build_model(data.timesteps, len(data.features), data.horizon, self.plan)
        self.batches = window_batches(
            train, scaler, self.plan.batch_size, True, cfg.seed,
            cfg.max_windows_per_epoch, cfg.min_windows_per_epoch,
        )  # fmt: skip
        self.epoch_samples = len(self.batches.order)

    def run_epoch(self) -> None:
        self.model.fit(self.batches, epochs=1, verbose=0)

    def best_val_loss(self, samples: float) -> tuple[float, int]:
        """``fit_windows`` (early stopping, schedule) on at most ``samples`` windows."""
        epochs = max(1, int(np.ceil(samples / self.epoch_samples)))
        cfg = self.cfg.model_copy(update={"epochs": epochs})
        seed_everything(cfg.seed, cfg.deterministic)
        fitted = fit_windows(self.data, cfg, self.scaler)
        return float(fitted.epochs["val_loss"].min()), len(fitted.epochs)


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
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per row")
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
    rows: list[Row] = [
        Bare("seed recipe (bare Keras, relu, batch 32, lr 1e-3)", data, scaler, seed,
             32, 1e-3, "relu", False, False),
        Project("project default", data, scaler, cfg.train),
    ]  # fmt: skip
    for text in args.tries:
        name, pairs = parse_try(text)
        tried = TrainConfig.model_validate({**cfg.train.model_dump(), **pairs})
        rows.append(Project(name, data, scaler, tried))
    rows.append(
        Bare("bare best (batch 256, lr 3e-3, XLA, tf.data prefetch)", data, scaler, seed,
             256, 3e-3, "tanh", True, True)
    )  # fmt: skip
    # Throughput: one epoch of each row in turn, --rounds times (load on a shared machine
    # changes by the minute; interleaving spreads it over all rows alike).
    for _ in range(args.rounds + 1):
        for row in rows:
            row.epoch()
    table = []
    for row in rows:
        # The val_loss reached in --budget seconds at the measured rate (whole epochs).
        loss, epochs = row.best_val_loss(row.rate * args.budget)
        label = row.name
        if isinstance(row, Project):
            p = row.plan
            label += f" (batch {p.batch_size}, lr {p.learning_rate:.3g}, jit {p.jit_compile})"
        table.append(
            {"config": label, "samples/s": row.rate, "x seed": row.rate / rows[0].rate,
             "epochs in budget": epochs, "best val_loss": loss}
        )  # fmt: skip
        print(table[-1], flush=True)
    markdown = records_markdown(table, digits=".4g")
    print()
    print(markdown)
    settings = (
        f"--budget {args.budget:g} --rounds {args.rounds}; {len(data.subset(TRAIN))} training "
        f"windows, timesteps {data.timesteps}"
    )
    defaults = (args.budget, args.rounds) == (60.0, 3)
    extra = [] if defaults else [f"budget{args.budget:g}-rounds{args.rounds}"]
    write_block(
        variant("train_speed", *extra, *(t.split("=", 1)[0] for t in args.tries)),
        measured(settings + "".join(f", --try {t}" for t in args.tries)) + "\n\n" + markdown,
    )


if __name__ == "__main__":
    main()
