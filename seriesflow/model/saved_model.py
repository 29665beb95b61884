"""What a saved model is and how to call it.

A trained model is ``model.keras`` plus ``model_spec.json`` (``ModelSpec``): the
model file alone cannot say whether it is a regression or a classification
model, which features it takes, or -- for a per-series model -- which branch
serves which series. Train writes both; evaluate, register, the champion
re-score, warm starts and forecasts read them here, and call the model through
``predict`` only.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seriesflow.data.schema import CLASSIFICATION, REGRESSION
from seriesflow.model.features import has_step_features
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import Windows
from seriesflow.workspace.files import MODEL_FILE, SPEC_FILE, read_json

__all__ = [
    "MODEL_FILE",
    "SERIES_INPUT",
    "SPEC_FILE",
    "X_INPUT",
    "forecast_windows",
    "ModelSpec",
    "load_model",
    "load_model_dir",
    "predict",
    "spec_or_infer",
]
# Windows per model call when predicting: large batches amortise the per-call overhead (the
# model keeps the XLA setting it was compiled with in training, ``train.jit_compile``).
PREDICT_BATCH = 4096
# Input names of a per-series (routed) model: the windows and each window's series code.
X_INPUT, SERIES_INPUT = "x", "series"


@dataclass(frozen=True)
class ModelSpec:
    """What a saved model is: its task, inputs, outputs and (per-series) branch order."""

    task: str
    timesteps: int
    features: list[str]
    horizon: int
    classes: list[str] = field(default_factory=list)  # classification: output-unit order
    series: list[str] = field(default_factory=list)  # per-series branch order; [] = global
    # train.groups: each series' group, parallel to ``series`` (the routed model sends a
    # series to its group's branch); [] = one branch per series
    groups: list[str] = field(default_factory=list)
    warm_start: str | None = None  # how the weights were initialised (a note)
    # how windows are normalized for the model (normalize.method; scaler.json has the rest)
    normalization: str = "minmax"
    # an ensemble: the model outputs ``members`` forecasts [batch, members * horizon] (each
    # member an LSTM on its own input length and seed); ``predict`` takes their median
    members: int = 1
    # windows need at least this many observed inputs; earlier ones repeat the first value
    min_inputs: int | None = None
    # train.final_epochs: the latest target time (UTC, ISO) the registered model trained on;
    # a later run re-scores it only on windows after that (it has seen the rest)
    seen_until: str | None = None

    @property
    def outputs(self) -> int:
        return len(self.classes) if self.task == CLASSIFICATION else self.horizon

    @property
    def step_rows(self) -> int:
        """Rows the per-step head reads (the horizon) when the model has known-ahead
        features (``seriesflow/model/features.py``), else 0."""
        if self.task == CLASSIFICATION or not has_step_features(self.features):
            return 0
        return self.horizon

    @property
    def per_series(self) -> bool:
        """A routed model: windows go to their series' branch (its own or its group's)."""
        return bool(self.series)

    @property
    def branches(self) -> list[str]:
        """The branch names in branch order: the series, or the distinct groups (sorted)."""
        return sorted(set(self.groups)) if self.groups else list(self.series)

    def comparable(self, other: ModelSpec) -> str | None:
        """None when ``other`` forecasts the same targets from the same features, else why not.

        The input length and normalization may differ: each model gets its own inputs
        at the same origins (``seriesflow/evaluation/champion.py``).
        """
        for name in ("task", "features", "horizon", "classes"):
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

    def same_inputs(self, other: ModelSpec) -> str | None:
        """None when ``other`` also takes the same inputs (length, normalization), else why not."""
        why = self.comparable(other)
        for name in ("timesteps", "normalization"):
            if why is None and getattr(self, name) != getattr(other, name):
                why = f"{name} {getattr(other, name)} vs {getattr(self, name)} in this run"
        return why

    @classmethod
    def of_windows(
        cls,
        data: Windows,
        per_series: bool,
        normalization: str,
        group_of: dict[str, str] | None = None,
    ) -> ModelSpec:
        """The spec of a model for ``data``; ``group_of`` (series -> group) makes it grouped."""
        routed = per_series or group_of is not None
        series = data.present_series() if routed else []
        return cls(
            task=data.task,
            timesteps=data.timesteps,
            features=list(data.features),
            horizon=data.horizon,
            classes=list(data.classes),
            series=series,
            groups=[group_of[s] for s in series] if group_of is not None else [],
            normalization=normalization,
            min_inputs=data.min_inputs,
        )

    @classmethod
    def infer(cls, model: Any, features: list[str]) -> ModelSpec:
        """The spec of a model saved without one: a global regression model."""
        _, timesteps, n_features = model.input_shape
        if n_features != len(features):
            raise ValueError(f"model takes {n_features} features, scaler names {features}")
        return cls(REGRESSION, int(timesteps), list(features), int(model.output_shape[-1]))


def spec_or_infer(spec: dict[str, Any] | None, model: Any, features: list[str]) -> ModelSpec:
    """The saved spec, or -- for a model logged before specs existed -- the inferred one."""
    return ModelSpec.from_json(spec) if spec is not None else ModelSpec.infer(model, features)


def load_model(path: str | Path) -> Any:
    """A saved Keras model, in safe mode (no arbitrary code from the file)."""
    import keras  # lazily: TensorFlow takes seconds to import

    return keras.models.load_model(path, safe_mode=True)


@dataclass(frozen=True)
class SavedKeras:
    """A Keras file's bytes, read now and built into a model (``load_model``, safe mode)
    only when first used. The retrain flow loads the champion before validate, but only
    training (a warm start) and evaluate (its re-score) use its model: TensorFlow's import
    and a built model are about 450 MB that the data stages then run without."""

    data: bytes

    @classmethod
    def read(cls, path: str | Path) -> SavedKeras:
        return cls(Path(path).read_bytes())

    def load(self) -> Any:
        with tempfile.TemporaryDirectory(prefix="seriesflow-model-") as tmp:
            path = Path(tmp) / MODEL_FILE
            path.write_bytes(self.data)
            return load_model(path)


def load_model_dir(model_dir: str | Path, features: list[str]) -> tuple[Any, ModelSpec]:
    """The model and its spec from a run's ``05_model/`` folder."""
    model_dir = Path(model_dir)
    model = load_model(model_dir / MODEL_FILE)
    path = model_dir / SPEC_FILE
    spec = read_json(path) if path.exists() else None
    return model, spec_or_infer(spec, model, features)


def predict(model: Any, spec: ModelSpec, x: np.ndarray, series_ids: np.ndarray) -> np.ndarray:
    """Model outputs [windows, outputs]; NaN rows for series a per-series model lacks."""
    if len(x) == 0:
        return np.empty((0, spec.outputs))
    if not spec.per_series:
        out = np.asarray(_predict_padded(model, {X_INPUT: x})[: len(x)], dtype=float)
        return combine_members(out, spec)
    index = {sid: i for i, sid in enumerate(spec.series)}
    codes = np.array([index.get(str(s), -1) for s in series_ids])  # [windows]
    out = np.full((len(x), spec.outputs), np.nan)
    known = codes >= 0
    if known.any():
        inputs = {X_INPUT: x[known], SERIES_INPUT: codes[known].astype(np.int32)}
        out[known] = _predict_padded(model, inputs)[: int(known.sum())]
    return out


def padded_rows(rows: int) -> int:
    """The rows a prediction of ``rows`` windows is padded to: the next power of two up to
    ``PREDICT_BATCH``, else the next multiple of it. Keras traces (and with XLA compiles) its
    predict function once per batch shape; unpadded, every call with another count -- each
    chunk of evaluate, each forecast -- traced it again, and each trace stayed in memory.
    Padded, a process traces at most 13 shapes."""
    if rows <= PREDICT_BATCH:
        return 1 << max(0, rows - 1).bit_length()
    return -(-rows // PREDICT_BATCH) * PREDICT_BATCH


def _predict_padded(model: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """``model.predict`` on ``inputs`` padded to ``padded_rows`` (zeros, whose outputs are
    dropped by the caller: the rows of a batch do not affect one another in inference)."""
    rows = len(next(iter(inputs.values())))
    size = padded_rows(rows)
    if size > rows:
        inputs = {
            name: np.concatenate([part, np.zeros((size - rows, *part.shape[1:]), part.dtype)])
            for name, part in inputs.items()
        }
    if set(inputs) == {X_INPUT}:  # a global model's single input
        inputs = inputs[X_INPUT]
    return model.predict(inputs, batch_size=min(size, PREDICT_BATCH), verbose=0)


def combine_members(outputs: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """[windows, members * horizon] -> the members' median [windows, horizon] (an ensemble)."""
    if spec.members <= 1 or spec.task == CLASSIFICATION:
        return outputs
    stacked = outputs.reshape(len(outputs), spec.members, spec.horizon)  # [w, members, h]
    return np.median(stacked, axis=1)


def forecast_windows(
    model: Any, spec: ModelSpec, scaler: Scaler, windows: Windows, batch_size: int = 8192
) -> np.ndarray:
    """The model on ``windows``, in batches gathered from the arrays (never all at once).

    Regression: forecasts [windows, horizon] in original units (``scaler`` maps the
    window inputs in and the outputs back). Classification: probabilities
    [windows, classes]. NaN rows for series a per-series model lacks.
    """
    out = np.full((len(windows), spec.outputs), np.nan)
    if not len(windows):
        return out
    regression = spec.task != CLASSIFICATION
    series_ids = windows.series_id
    origin_times = windows.arrays.times[windows.row]  # [windows]
    for start in range(0, len(windows), batch_size):
        index = slice(start, start + batch_size)
        x, loc, spread = scaler.window_inputs(windows.gather_x(index))
        outputs = predict(model, spec, x, series_ids[index])  # [batch, outputs]
        if regression:  # back through the window map, then the series' own map
            scaled = scaler.window_outputs(outputs, loc, spread)
            outputs = scaler.restore(series_ids[index], scaled, origin_times[index])
        out[index] = outputs
    return out
