"""The seed's LSTM family in Keras 3: build, seed, fit, warm-start (no Prefect).

``build_model`` makes LSTM layers -> a Dense head for ``[batch, timesteps,
features] -> [batch, outputs]``; ``route_series`` joins per-series branches
into one model; ``fit_model`` trains with EarlyStopping(restore_best_weights)
and a ReduceLROnPlateau that can actually fire (``min_lr`` below the starting
rate, patience below the early stop's -- the seed's mistakes, refused by the
config); ``warm_start`` copies a champion's weights when the architecture matches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.config.pipeline import TrainConfig
from seriesflow.data.schema import CLASSIFICATION
from seriesflow.model.saved_model import SERIES_INPUT, X_INPUT, ModelSpec
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import Windows
from seriesflow.workspace.files import drop_mapped_pages


def _keras() -> Any:
    # Imported lazily: TensorFlow takes seconds to import and skipped runs never need it.
    import keras

    return keras


def build_model(
    timesteps: int,
    features: int,
    outputs: int,
    cfg: TrainConfig,
    name: str = "seriesflow_lstm",
    seed: int | None = None,
    zero_head: bool = False,
    compiled: bool = True,
    step_rows: int = 0,
) -> Any:
    """LSTM stack -> Dense head. Input [batch, timesteps, features] -> [batch, outputs].

    ``step_rows`` > 0 (known-ahead features, ``seriesflow/model/features.py``; it is the
    horizon) adds a per-step head: for each target step k, the LSTM's state and the window's
    row ``timesteps - step_rows + k`` (whose lead columns hold step k's future covariates,
    calendar and holidays) go through a small shared MLP to one number, added to the Dense
    head's output for that step. Stock layers only (safe-mode loading).

    ``outputs`` is the horizon (regression: linear head, MSE) or the number of
    classes (classification: softmax head, cross-entropy). Initializers and
    dropout masks are seeded from ``seed`` (default ``cfg.seed``), so two models
    built alike start alike whatever else the process did. ``zero_head`` starts the
    head at zero: with windows relative to their last value (``normalize.method:
    last_value``) the untrained model is then exactly the naive forecast.
    """
    keras = _keras()
    seed = cfg.seed if seed is None else seed
    regularizer = keras.regularizers.L2(cfg.l2) if cfg.l2 > 0 else None
    inputs = keras.Input(shape=(timesteps, features), name="window")  # [batch, timesteps, feat]
    hidden = inputs
    for layer in range(cfg.layers):
        last = layer == cfg.layers - 1
        base = seed * 100 + layer * 10
        hidden = keras.layers.LSTM(
            units=cfg.units,
            activation=cfg.activation,
            recurrent_dropout=cfg.recurrent_dropout,
            kernel_regularizer=regularizer,
            kernel_initializer=keras.initializers.GlorotUniform(seed=base),
            recurrent_initializer=keras.initializers.Orthogonal(seed=base + 1),
            seed=base + 2,
            return_sequences=not last,  # stacked layers need the whole sequence
            name=f"lstm_{layer + 1}",
        )(hidden)  # [batch, timesteps, units] between layers, [batch, units] after the last
        if cfg.dropout > 0:
            hidden = keras.layers.Dropout(cfg.dropout, seed=base + 3, name=f"dropout_{layer + 1}")(
                hidden
            )
    classify = cfg.task == CLASSIFICATION
    head = keras.initializers.GlorotUniform(seed=seed * 100 + 99)
    outputs_ = keras.layers.Dense(
        outputs,
        activation="softmax" if classify else None,
        kernel_regularizer=regularizer,
        kernel_initializer="zeros" if zero_head else head,
        name="classes" if classify else "forecast",
    )(hidden)  # [batch, outputs]
    if step_rows and not classify:
        if step_rows != outputs or timesteps < step_rows:
            raise ValueError(
                f"known-ahead features need window.timesteps ({timesteps}) at least the "
                f"horizon ({step_rows}): a window's last horizon rows carry its target steps' "
                "future covariates and calendar"
            )
        rows = inputs
        if timesteps > step_rows:  # [batch, step_rows, features]: the last horizon rows
            rows = keras.layers.Cropping1D((timesteps - step_rows, 0), name="step_rows")(inputs)
        context = keras.layers.RepeatVector(step_rows, name="step_context")(hidden)  # [b, h, u]
        joined = keras.layers.Concatenate(axis=-1, name="step_inputs")([context, rows])
        hidden_steps = keras.layers.Dense(
            max(8, cfg.units // 2),
            activation="tanh",
            kernel_regularizer=regularizer,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 100 + 97),
            name="step_hidden",
        )(joined)  # [batch, horizon, hidden]
        # a linear path beside the small MLP: a covariate's linear effect is learnt at once
        per_step = keras.layers.Concatenate(axis=-1, name="step_features")([joined, hidden_steps])
        per_step = keras.layers.Dense(
            1,
            kernel_regularizer=regularizer,
            kernel_initializer="zeros"
            if zero_head
            else keras.initializers.GlorotUniform(seed=seed * 100 + 98),
            name="step_out",
        )(per_step)  # [batch, horizon, 1]
        per_step = keras.layers.Flatten(name="step_forecast")(per_step)  # [batch, horizon]
        outputs_ = keras.layers.Add(name="forecast_steps")([outputs_, per_step])
    if cfg.linear_skip and not classify:
        # LSTNet's autoregressive highway: a linear map of the whole window added to the
        # LSTM's output, so the linear part of the dynamics is learnt from few windows and
        # the LSTM models what is left.
        flat = keras.layers.Flatten(name="window_flat")(inputs)  # [batch, timesteps * feat]
        linear = keras.layers.Dense(
            outputs,
            kernel_regularizer=regularizer,
            kernel_initializer="zeros" if zero_head else head,
            name="autoregressive",
        )(flat)
        outputs_ = keras.layers.Add(name="forecast_sum")([outputs_, linear])
    model = keras.Model(inputs, outputs_, name=name)
    if compiled:
        compile_model(model, cfg)
    return model


def build_ensemble(
    timesteps: int,
    features: int,
    horizon: int,
    cfg: TrainConfig,
    zero_head: bool = False,
    step_rows: int = 0,
) -> Any:
    """``cfg.ensemble`` LSTMs side by side, one output: [batch, members * horizon].

    Member k reads the last ``lengths[k]`` of the ``timesteps`` inputs (a stock Cropping1D
    layer: saves and loads in safe mode) and has its own seed, so the members differ in
    what they see and where they start; each has its own LSTM and head. Training on the
    targets tiled ``members`` times fits every member at once (the loss is the mean of the
    members' losses, so their gradients do not mix); ``saved_model.predict`` takes the
    median of the members' forecasts, as the M4 ensembles combined theirs.
    """
    keras = _keras()
    # a member with known-ahead features reads at least the horizon rows (its per-step head)
    lengths = [max(length, step_rows) for length in member_lengths(timesteps, cfg.ensemble)]
    inputs = keras.Input(shape=(timesteps, features), name="window")  # [batch, timesteps, feat]
    outputs = []
    for k, length in enumerate(lengths):
        seen = inputs
        if length < timesteps:  # [batch, length, features]: the member's own input length
            seen = keras.layers.Cropping1D((timesteps - length, 0), name=f"member_{k}_input")(
                inputs
            )
        member = build_model(
            length,
            features,
            horizon,
            cfg,
            name=f"member_{k}",
            seed=cfg.seed + 1000 * k,
            zero_head=zero_head,
            compiled=False,
            step_rows=step_rows,
        )
        outputs.append(member(seen))  # [batch, horizon]
    out = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(name="members")(outputs)
    model = keras.Model(inputs, out, name="seriesflow_ensemble")
    compile_model(model, cfg)
    return model


def member_lengths(timesteps: int, members: int) -> list[int]:
    """Input lengths of an ensemble's members: from the full ``timesteps`` down to half of it,
    evenly (one member: the full length)."""
    if members <= 1:
        return [timesteps]
    low = max(1, int(round(timesteps / 2)))
    return [int(round(v)) for v in np.linspace(timesteps, low, members)]


def compile_model(model: Any, cfg: TrainConfig) -> None:
    keras = _keras()
    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    if cfg.task == CLASSIFICATION:
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=cfg.jit_compile,
        )
    else:
        model.compile(optimizer=optimizer, loss=cfg.loss, jit_compile=cfg.jit_compile)


def route_series(
    branches: list[Any], timesteps: int, features: int, branch_of: list[int] | None = None
) -> Any:
    """One model over branches: ``{"x", "series"}`` -> branch[branch_of[series]](x).

    ``branch_of`` maps each series code to its branch (``train.groups``: the series of a
    group share one branch object, so one set of weights); None: one branch per series.
    Built from stock layers only (no Lambda), so it saves and loads in safe mode.
    Every branch runs on every window and a one-hot mask picks the right output:
    K times the work of one branch, fine for the handful of branches this is for.
    """
    keras = _keras()
    x = keras.Input(shape=(timesteps, features), name=X_INPUT)  # [batch, timesteps, features]
    series = keras.Input(shape=(), dtype="int32", name=SERIES_INPUT)  # [batch]
    outputs = branches[0].output_shape[-1]
    stacked = keras.layers.Concatenate(axis=1, name="branches")(
        [keras.layers.Reshape((1, outputs))(branch(x)) for branch in branches]
    )  # [batch, branches, outputs]
    one_hot = keras.layers.CategoryEncoding(
        num_tokens=len(branches) if branch_of is None else len(branch_of),
        output_mode="one_hot",
        name="series_one_hot",
    )(series)  # [batch, series]
    if branch_of is not None:
        # series -> branch as a fixed 0/1 matrix (a frozen Dense, saved with the model)
        to_branch = keras.layers.Dense(
            len(branches), use_bias=False, trainable=False, name="series_to_group"
        )
        one_hot = to_branch(one_hot)  # [batch, branches]
        matrix = np.zeros((len(branch_of), len(branches)), dtype="float32")
        matrix[np.arange(len(branch_of)), branch_of] = 1.0
        to_branch.set_weights([matrix])
    picked = keras.layers.Dot(axes=(1, 1), name="pick_series")([one_hot, stacked])
    name = "seriesflow_per_series" if branch_of is None else "seriesflow_per_group"
    return keras.Model({X_INPUT: x, SERIES_INPUT: series}, picked, name=name)


def _architecture(model: Any) -> list[tuple[Any, ...]]:
    """Layer kinds, sizes and activations, depth first (weights alone miss tanh vs relu)."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found += _architecture(layer)
            continue
        config = layer.get_config()
        found.append((type(layer).__name__, config.get("units"), config.get("activation")))
    return found


def warm_start(
    model: Any, spec: ModelSpec, champion_model: Any, champion_spec: ModelSpec, version: str
) -> tuple[bool, str]:
    """Copy the champion's weights into ``model`` if the architectures match; say what happened."""
    prefix = f"warm start from champion v{version}"
    why = spec.same_inputs(champion_spec)
    if why is None and spec.series != champion_spec.series:
        why = f"per-series branches {champion_spec.series} vs {spec.series} in this run"
    if why is None and spec.groups != champion_spec.groups:
        why = f"series groups {champion_spec.groups} vs {spec.groups} in this run"
    if why is None and _architecture(model) != _architecture(champion_model):
        why = "layers differ: " + f"{_architecture(champion_model)} vs {_architecture(model)}"
    if why is None:
        mine = [tuple(w.shape) for w in model.get_weights()]
        theirs = [tuple(w.shape) for w in champion_model.get_weights()]
        if mine != theirs:
            why = f"weight shapes differ: {theirs} vs {mine}"
    if why is not None:
        return False, f"{prefix} skipped, architecture does not match ({why}); trained from scratch"
    model.set_weights(champion_model.get_weights())
    return True, f"{prefix}: weights copied before fitting"


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; ``deterministic`` turns TF op determinism on/off.

    Off is what ``train.jit_compile`` needs: Keras drops XLA while op determinism is on.
    """
    keras = _keras()
    keras.utils.set_random_seed(seed)
    import tensorflow as tf

    if deterministic:
        try:
            tf.config.experimental.enable_op_determinism()
        except (AttributeError, RuntimeError):  # already enabled in this process
            pass
    else:
        # No public switch back (a process may train both ways, e.g. the benchmarks).
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()


def window_batches(
    windows: Windows,
    scaler: Scaler,
    batch_size: int,
    shuffle: bool,
    seed: int,
    max_windows: int | None = None,
    min_windows: int = 0,
    members: int = 1,
) -> Any:
    """A Keras ``PyDataset`` that gathers (inputs, targets) batches from ``windows``.

    Nothing is materialized beyond one batch: inputs are gathered from the arrays
    and mapped by ``scaler.window_inputs``; targets are the class codes, or the
    window-mapped values. ``shuffle`` draws a new order every epoch (seeded);
    ``max_windows`` samples that many windows (a new sample each epoch when
    shuffling, one fixed sample otherwise).
    """
    keras = _keras()
    classify = windows.task == CLASSIFICATION

    class WindowBatches(keras.utils.PyDataset):
        # The windows are the instance's, not the closure's: Keras and tf.data keep a fitted
        # dataset referenced after ``fit`` returns, and ``release`` must be able to let go of
        # them (at 10M windows their index copies held 350 MB into evaluate and the commit).
        def __init__(self, windows: Windows) -> None:  # an argument: no closure holds it
            super().__init__()
            self.windows: Windows | None = windows
            self.codes = windows.codes if classify else None
            self.rng = np.random.default_rng(seed)
            self.order = self._draw()

        def release(self) -> None:
            """Let go of the windows (after ``fit``): the dataset yields nothing more."""
            self.windows = self.codes = None
            self.order = np.empty(0, dtype=np.int64)

        def _draw(self) -> np.ndarray:
            count = 0 if self.windows is None else len(self.windows)
            if max_windows and count > max_windows:
                order = np.sort(self.rng.choice(count, max_windows, replace=False))
            elif count and count < min_windows:  # few windows: every one, repeated, per epoch
                order = np.resize(np.arange(count), min_windows)
            else:
                order = np.arange(count)
            if shuffle:
                self.rng.shuffle(order)
            return order

        def __len__(self) -> int:
            return max(1, -(-len(self.order) // batch_size))

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            index = self.order[i * batch_size : (i + 1) * batch_size]
            windows = self.windows
            x, loc, spread = scaler.window_inputs(windows.gather_x(index))  # [b, t, f]
            if classify:
                drop_mapped_pages()
                return x, self.codes[index]
            y = scaler.window_targets(windows.gather_y(index), loc, spread)  # [b, h]
            # A random window's read maps the 64 KB around it (the kernel's fault-around),
            # so a batch of 256 leaves 16 MB of the maps resident, and ten batches between
            # two of the thread's hand-backs held 160 MB more at 10M rows. Handing them
            # back after each batch costs microseconds: they stay in the page cache.
            drop_mapped_pages()
            return x, (np.tile(y, (1, members)) if members > 1 else y)  # [b, members * h]

        def on_epoch_end(self) -> None:
            if shuffle and self.windows is not None:
                self.order = self._draw()

    return WindowBatches(windows)


def release_batches(*datasets: Any) -> None:
    """``release`` each ``window_batches`` dataset (arrays pass through): once Keras has fit
    on them it keeps them referenced, with their windows, for the rest of the process."""
    for data in datasets:
        if hasattr(data, "release"):
            data.release()


def fit_model(
    model: Any,
    train: Any,
    val: Any,
    cfg: TrainConfig,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    callbacks: list[Any] | None = None,
) -> pd.DataFrame:
    """Fit ``model``; return the per-epoch history (loss, val_loss, learning_rate).

    ``train`` and ``val`` are ``window_batches`` datasets, or (x, y) arrays.
    ``callbacks`` are extra Keras callbacks (e.g. a benchmark's clock).
    """
    keras = _keras()
    arrays = isinstance(train, tuple)
    if (len(train[0]) if arrays else len(train.order)) == 0 or (
        len(val[0]) if isinstance(val, tuple) else len(val.order)
    ) == 0:
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
        *(callbacks or []),
        _Record(),
        # One min_delta for both: Keras' defaults differ (0 vs 1e-4), so the rate was cut
        # for gains EarlyStopping still counted, and training crawled on at min_lr.
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=cfg.early_stopping_patience,
            min_delta=cfg.min_delta,
            restore_best_weights=True,
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=cfg.reduce_lr_factor,
            patience=cfg.reduce_lr_patience,
            min_lr=cfg.min_lr,
            min_delta=cfg.min_delta,
        ),
    ]
    try:
        fitted = model.fit(
            train[0] if arrays else train,
            train[1] if arrays else None,
            validation_data=val,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size if arrays else None,
            shuffle=arrays,  # training windows only (datasets shuffle themselves); val stays put
            callbacks=callbacks,
            verbose=0,
        )
    finally:
        release_batches(train, val)
    history = pd.DataFrame(fitted.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    return history
