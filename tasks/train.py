"""Train: the seed's LSTM family, fit on train windows, validated on val windows.

Defaults are the seed's model (LSTM(50) -> Dense(horizon), Adam, MSE, batch
32), with EarlyStopping(restore_best_weights) and a ReduceLROnPlateau that can
actually fire (``min_lr`` below the starting rate, patience below the early
stop's). Validation data is the chronological val split, never a shuffled
slice of the training windows. Seeds are fixed and ops deterministic.

Options (``TrainConfig``):

- ``task: classification``: a softmax head over the window classes (see
  ``tasks/window.py``) trained with sparse categorical cross-entropy.
- ``per_series``: one LSTM per series, each fit on its own windows with its own
  early stop and learning-rate schedule, then saved as ONE Keras model that
  routes each window to its series' branch (inputs ``{"x", "series"}``), so
  the registry, the champion re-score and a forecast still load one artifact.
- ``warm_start``: copy the champion's weights into the new model before fitting
  when the architecture matches (same spec and layer shapes); else train from
  scratch and say why.

``model_spec.json`` beside ``model.keras`` says which of these a model is (task,
features, classes, series order) -- the model file alone cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from tasks.config import PipelineConfig, TrainConfig
from tasks.io import RunDir, atomic_path, read_json, write_json, write_parquet
from tasks.registry import SPEC_ARTIFACT
from tasks.runtime import stage_logger
from tasks.schema import SERIES_ID, TRAIN, VAL
from tasks.window import CLASSIFICATION, REGRESSION, Windows, load_windows

SPEC_FILE = SPEC_ARTIFACT
X_INPUT, SERIES_INPUT = "x", "series"


def _keras() -> Any:
    # Imported lazily: TensorFlow takes seconds to import and skipped runs never need it.
    import keras

    return keras


@dataclass(frozen=True)
class ModelSpec:
    """What a saved model is: its task, inputs, outputs and (per-series) branch order."""

    task: str
    timesteps: int
    features: list[str]
    horizon: int
    classes: list[str] = field(default_factory=list)  # classification: output-unit order
    series: list[str] = field(default_factory=list)  # per-series branch order; [] = global
    warm_start: str | None = None  # how the weights were initialised (a note)

    @property
    def outputs(self) -> int:
        return len(self.classes) if self.task == CLASSIFICATION else self.horizon

    @property
    def per_series(self) -> bool:
        return bool(self.series)

    def comparable(self, other: ModelSpec) -> str | None:
        """None when ``other`` takes the same inputs to the same outputs, else why not."""
        for name in ("task", "timesteps", "features", "horizon", "classes"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                return f"{name} {theirs} vs {mine} in this run"
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> ModelSpec:
        return cls.from_json(read_json(path))

    @classmethod
    def of_windows(cls, data: Windows, per_series: bool) -> ModelSpec:
        series = sorted(str(s) for s in set(data.series_id)) if per_series else []
        return cls(
            task=data.task,
            timesteps=int(data.x.shape[1]),
            features=list(data.features),
            horizon=int(data.y.shape[1]),
            classes=list(data.classes),
            series=series,
        )

    @classmethod
    def infer(cls, model: Any, features: list[str]) -> ModelSpec:
        """The spec of a model saved without one: a global regression model."""
        _, timesteps, n_features = model.input_shape
        if n_features != len(features):
            raise ValueError(f"model takes {n_features} features, scaler names {features}")
        return cls(REGRESSION, int(timesteps), list(features), int(model.output_shape[-1]))


def build_model(
    timesteps: int,
    features: int,
    outputs: int,
    cfg: TrainConfig,
    name: str = "seriesflow_lstm",
    seed: int | None = None,
) -> Any:
    """LSTM stack -> Dense head. Input [batch, timesteps, features] -> [batch, outputs].

    ``outputs`` is the horizon (regression: linear head, MSE) or the number of
    classes (classification: softmax head, cross-entropy). Initializers and
    dropout masks are seeded from ``seed`` (default ``cfg.seed``), so two models
    built alike start alike whatever else the process did.
    """
    keras = _keras()
    seed = cfg.seed if seed is None else seed
    regularizer = keras.regularizers.L2(cfg.l2) if cfg.l2 > 0 else None
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=(timesteps, features)))  # [batch, timesteps, features]
    for layer in range(cfg.layers):
        last = layer == cfg.layers - 1
        base = seed * 100 + layer * 10
        model.add(
            keras.layers.LSTM(
                units=cfg.units,
                activation=cfg.activation,
                recurrent_dropout=cfg.recurrent_dropout,
                kernel_regularizer=regularizer,
                kernel_initializer=keras.initializers.GlorotUniform(seed=base),
                recurrent_initializer=keras.initializers.Orthogonal(seed=base + 1),
                seed=base + 2,
                return_sequences=not last,  # stacked layers need the whole sequence
                name=f"lstm_{layer + 1}",
            )
        )  # [batch, timesteps, units] between layers, [batch, units] after the last
        if cfg.dropout > 0:
            model.add(keras.layers.Dropout(cfg.dropout, seed=base + 3, name=f"dropout_{layer + 1}"))
    classify = cfg.task == CLASSIFICATION
    model.add(
        keras.layers.Dense(
            outputs,
            activation="softmax" if classify else None,
            kernel_regularizer=regularizer,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 100 + 99),
            name="classes" if classify else "forecast",
        )
    )  # [batch, outputs]
    compile_model(model, cfg)
    return model


def compile_model(model: Any, cfg: TrainConfig) -> None:
    keras = _keras()
    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    if cfg.task == CLASSIFICATION:
        model.compile(
            optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
    else:
        model.compile(optimizer=optimizer, loss="mse")


def route_series(branches: list[Any], timesteps: int, features: int) -> Any:
    """One model over per-series branches: ``{"x", "series"}`` -> branch[series](x).

    Built from stock layers only (no Lambda), so it saves and loads in safe mode.
    Every branch runs on every window and a one-hot mask picks the right output:
    K times the work of one branch, fine for the handful of series this is for.
    """
    keras = _keras()
    x = keras.Input(shape=(timesteps, features), name=X_INPUT)  # [batch, timesteps, features]
    series = keras.Input(shape=(), dtype="int32", name=SERIES_INPUT)  # [batch]
    outputs = branches[0].output_shape[-1]
    stacked = keras.layers.Concatenate(axis=1, name="branches")(
        [keras.layers.Reshape((1, outputs))(branch(x)) for branch in branches]
    )  # [batch, series, outputs]
    one_hot = keras.layers.CategoryEncoding(
        num_tokens=len(branches), output_mode="one_hot", name="series_one_hot"
    )(series)  # [batch, series]
    picked = keras.layers.Dot(axes=(1, 1), name="pick_series")([one_hot, stacked])
    return keras.Model({X_INPUT: x, SERIES_INPUT: series}, picked, name="seriesflow_per_series")


def predict(model: Any, spec: ModelSpec, x: np.ndarray, series_ids: np.ndarray) -> np.ndarray:
    """Model outputs [windows, outputs]; NaN rows for series a per-series model lacks."""
    if len(x) == 0:
        return np.empty((0, spec.outputs))
    if not spec.per_series:
        return np.asarray(model.predict(x, batch_size=1024, verbose=0), dtype=float)
    index = {sid: i for i, sid in enumerate(spec.series)}
    codes = np.array([index.get(str(s), -1) for s in series_ids])  # [windows]
    out = np.full((len(x), spec.outputs), np.nan)
    known = codes >= 0
    if known.any():
        inputs = {X_INPUT: x[known], SERIES_INPUT: codes[known].astype(np.int32)}
        out[known] = model.predict(inputs, batch_size=1024, verbose=0)
    return out


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
    why = spec.comparable(champion_spec)
    if why is None and spec.series != champion_spec.series:
        why = f"per-series branches {champion_spec.series} vs {spec.series} in this run"
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


def targets(data: Windows) -> np.ndarray:
    """What the model learns: [windows, horizon] values, or [windows] class indexes."""
    return data.codes if data.task == CLASSIFICATION else data.y


@dataclass(frozen=True)
class Fitted:
    model: Any
    spec: ModelSpec
    history: pd.DataFrame  # per epoch (and per series, for per-series models)


@dataclass(frozen=True)
class WarmSource:
    """A model to warm-start from (the champion) and what it is."""

    model: Any
    spec: ModelSpec
    version: str


def fit_windows(
    data: Windows,
    cfg: TrainConfig,
    warm: WarmSource | None = None,
    on_epoch: Callable[[str | None, int, dict[str, float]], None] | None = None,
) -> Fitted:
    """Build and fit the configured model on ``data``'s train windows (val for stopping).

    ``on_epoch(series_id or None, epoch, logs)`` reports progress. The
    classification/regression choice comes from the windows (they carry labels
    or not) and must agree with ``cfg.task``.
    """
    if data.task != cfg.task:
        raise ValueError(f"train.task is {cfg.task} but the windows were made for {data.task}")
    if data.task == CLASSIFICATION and len(data.classes) < 2:
        raise ValueError(
            f"train.task=classification needs at least 2 classes, found {list(data.classes)}"
        )
    spec = ModelSpec.of_windows(data, cfg.per_series)
    timesteps, features = spec.timesteps, len(spec.features)
    tr, va = data.subset(TRAIN), data.subset(VAL)

    if not spec.per_series:
        model = build_model(timesteps, features, spec.outputs, cfg)
        branches = [model]
    else:
        branches = [
            build_model(
                timesteps, features, spec.outputs, cfg, name=f"series_{k}", seed=cfg.seed + k + 1
            )
            for k in range(len(spec.series))
        ]
        model = route_series(branches, timesteps, features)
    note = None
    if warm is not None:
        _, note = warm_start(model, spec, warm.model, warm.spec, warm.version)
    spec = replace(spec, warm_start=note)

    if not spec.per_series:
        report = None if on_epoch is None else (lambda e, logs: on_epoch(None, e, logs))
        history = fit_model(model, (tr.x, targets(tr)), (va.x, targets(va)), cfg, report)
    else:
        parts = []
        for sid, branch in zip(spec.series, branches, strict=True):
            mine_tr, mine_va = tr.select(tr.series_id == sid), va.select(va.series_id == sid)
            if len(mine_tr) == 0 or len(mine_va) == 0:
                raise ValueError(
                    f"train.per_series: series '{sid}' has {len(mine_tr)} train and "
                    f"{len(mine_va)} val windows; each series needs both"
                )
            report = None if on_epoch is None else (lambda e, logs, s=sid: on_epoch(s, e, logs))
            part = fit_model(
                branch,
                (mine_tr.x, targets(mine_tr)),
                (mine_va.x, targets(mine_va)),
                cfg,
                report,
            )
            part.insert(0, SERIES_ID, sid)
            parts.append(part)
        # The routed model stays uncompiled: it is only ever used to predict (each branch
        # was compiled and fit on its own), and an unbuilt optimizer would not reload.
        history = pd.concat(parts, ignore_index=True)
    return Fitted(model, spec, history)


def save_model(model: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        # Keras insists on the .keras suffix, which atomic_path keeps.
        model.save(tmp)
    return path


def _champion_source(
    config: PipelineConfig, tracking_uri: str | None
) -> tuple[WarmSource | None, str]:
    """The champion as a warm-start source, or None and why not."""
    from tasks.registry import load_champion, use_tracking

    if tracking_uri is None:
        return None, "warm start skipped: no MLflow tracking URI given"
    use_tracking(tracking_uri, config.register.experiment, config.paths.workspace_path())
    champion = load_champion(config.register.model_name)
    if champion is None:
        return None, f"warm start skipped: '{config.register.model_name}' has no champion yet"
    if champion.spec is not None:
        spec = ModelSpec.from_json(champion.spec)
    else:
        spec = ModelSpec.infer(champion.model, list(champion.scaler["columns"]))
    return WarmSource(champion.model, spec, champion.version), ""


@task(name="train", cache_policy=NONE)
def train(
    windows: Path, run: RunDir, config: PipelineConfig, tracking_uri: str | None = None
) -> Path:
    logger = stage_logger()
    cfg = config.train
    data = load_windows(windows)
    tr, va = data.subset(TRAIN), data.subset(VAL)
    seed_everything(cfg.seed)
    warm, why_not = (None, "")
    if cfg.warm_start:
        warm, why_not = _champion_source(config, tracking_uri)
        if why_not:
            logger.info("%s; training from scratch", why_not)
    logger.info(
        "Training %s LSTM(units=%d, layers=%d) for %s on %d windows, validating on %d",
        "one model per series:" if cfg.per_series else "a global",
        cfg.units,
        cfg.layers,
        cfg.task,
        len(tr),
        len(va),
    )

    def log_epoch(series: str | None, epoch: int, logs: dict[str, float]) -> None:
        logger.info(
            "%sepoch %d/%d  loss=%.5f  val_loss=%.5f  lr=%.2e",
            f"[{series}] " if series else "",
            epoch + 1,
            cfg.epochs,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("learning_rate", float("nan")),
        )

    fitted = fit_windows(data, cfg, warm, on_epoch=log_epoch)
    if fitted.spec.warm_start:
        logger.info("%s", fitted.spec.warm_start)
    elif why_not:
        fitted = Fitted(fitted.model, replace(fitted.spec, warm_start=why_not), fitted.history)
    history = fitted.history
    best = history["val_loss"].idxmin()
    logger.info(
        "Best epoch %d (val_loss=%.5f); %d epochs run; %d parameters",
        int(history.loc[best, "epoch"]),
        history.loc[best, "val_loss"],
        len(history),
        fitted.model.count_params(),
    )
    run.model_dir.mkdir(parents=True, exist_ok=True)
    save_model(fitted.model, run.model)
    write_parquet(history, run.history)
    write_json(fitted.spec.to_json(), run.model_dir / SPEC_FILE)
    return run.model_dir
