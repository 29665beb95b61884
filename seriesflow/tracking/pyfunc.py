"""The registered model, self-contained: an MLflow pyfunc that forecasts from recent history.

``mlflow.pyfunc.load_model("models:/seriesflow-lstm@champion").predict(history)`` and
``mlflow models serve -m models:/seriesflow-lstm@champion`` take a long frame of recent
history -- ``series_id``, ``timestamp``, ``value`` [, past, future and static covariates] -- and
return the forecast
frame: ``series_id, timestamp, step, forecast, lower, upper, level, model_version,
created_at`` (one row per series, step and interval level). Timestamps may be UTC-aware
(``data/work/history.parquet`` as it is), naive (read as UTC) or ISO strings (JSON): the
signature types the column ``any`` (MLflow's ``datetime`` refuses a zone) and ``predict``
parses it. Params (in the signature, so the scoring server passes them): ``steps`` (0: the
model's own, one season) and ``levels`` (a subset of the calibrated interval levels).

Everything it needs travels inside the model: the Keras file (loaded in safe mode), the
scaler with each series' calendar, the spec, the prediction intervals, the forecast
settings and the router (which series the LSTM serves, and which classical model serves the
others: those are fit on the history given, so pass a few seasons of it); the code is the
part of this package the model imports, bundled with ``code_paths``, and its
``pip_requirements`` are what that code imports (``seriesflow/tracking/bundle.py``).

A model with future covariates (``columns.future``) needs their values for the forecast
steps: rows after each series' last observation with ``value`` (and past covariates) empty
and the future covariates filled; the signature's input example has such rows. A missing
one is refused naming the series and the first missing timestamp.

Bad input -- a missing column, NaN, an unknown series, too few points, timestamps off
the series' calendar, a level that was not calibrated -- raises
``MlflowException(INVALID_PARAMETER_VALUE)``: HTTP 400 from the scoring server, with a
message that says what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from seriesflow.data.schema import SERIES_ID, TIMESTAMP, VALUE
from seriesflow.evaluation.router import Router
from seriesflow.model.forecasting import FORECAST_COLUMNS, ForecastSettings, forecast_frame
from seriesflow.model.intervals import Intervals
from seriesflow.model.saved_model import ModelSpec, SavedKeras, load_model
from seriesflow.model.scaler import Scaler
from seriesflow.workspace.files import read_json

# artifact keys inside the logged model
KERAS, SCALER, SPEC, INTERVALS, SETTINGS = "keras_model", "scaler", "spec", "intervals", "settings"
ROUTER = "router"  # which model serves each series (seriesflow/evaluation/router.py)


def bad_input(message: str) -> MlflowException:
    """An error the scoring server answers with HTTP 400 and this message."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def input_columns(scaler: Scaler) -> list[str]:
    """The columns a caller's frame carries: value, past, future and static covariates."""
    spec = scaler.feature_spec
    return [*spec.raw, *spec.static]


def history_frame(
    model_input: pd.DataFrame, features: list[str], future: tuple[list[str], list[str]] = ([], [])
) -> pd.DataFrame:
    """The caller's frame checked and typed: timestamps in UTC, numbers finite.

    ``future`` = (future covariates, columns empty in future rows): with future covariates,
    rows after a series' last observed value are future rows, where the value and past
    covariates may be empty (the future covariates are checked in ``tail_arrays``).
    """
    if not isinstance(model_input, pd.DataFrame):
        raise bad_input("input must be a table of rows: series_id, timestamp, value")
    missing = [c for c in (SERIES_ID, TIMESTAMP, *features) if c not in model_input.columns]
    if missing:
        raise bad_input(
            f"missing column(s) {missing}; the model needs {[SERIES_ID, TIMESTAMP, *features]}"
        )
    frame = model_input[[SERIES_ID, TIMESTAMP, *features]].copy()
    frame[SERIES_ID] = frame[SERIES_ID].astype(str)
    try:
        stamps = pd.to_datetime(frame[TIMESTAMP], utc=True)
    except (ValueError, TypeError) as exc:
        raise bad_input(f"timestamp: not a date/time ({exc})") from exc
    frame[TIMESTAMP] = stamps.dt.as_unit("us")
    ahead = pd.Series(False, index=frame.index)  # future rows: after the last observed value
    if future[0]:
        seen = stamps.where(pd.to_numeric(frame[VALUE], errors="coerce").notna())
        ahead = stamps > seen.groupby(frame[SERIES_ID]).transform("max")
    for column in features:
        values = pd.to_numeric(frame[column], errors="coerce").astype(float)
        bad = ~np.isfinite(values.to_numpy())
        if column in future[1] or column in future[0]:  # empty in future rows / checked later
            bad &= ~ahead.to_numpy()
        if column in future[0]:
            bad &= ~values.isna().to_numpy()
        if bad.any():
            row = frame[bad].iloc[0]
            raise bad_input(
                f"{column}: {int(bad.sum())} missing or non-finite value(s), e.g. series "
                f"'{row[SERIES_ID]}' at {row[TIMESTAMP]}"
            )
        frame[column] = values
    duplicated = frame.duplicated([SERIES_ID, TIMESTAMP])
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise bad_input(f"series '{row[SERIES_ID]}' has {row[TIMESTAMP]} more than once")
    return frame


def registered_version(artifact: str) -> str:
    """The registry version of the model holding ``artifact`` ('' when it cannot be told).

    The model's run is in its MLmodel file; the version is the one registered from it.
    """
    try:
        model_dir = Path(artifact).resolve().parents[1]
        info = mlflow.models.Model.load(str(model_dir))
        found = mlflow.MlflowClient().search_model_versions(f"run_id='{info.run_id}'")
        return str(found[0].version) if len(found) == 1 else ""
    except Exception:  # noqa: BLE001 - no registry reachable: the version stays unknown
        return ""


@dataclass(frozen=True)
class ForecasterParts:
    """What a registered version holds, read from its artifact files: the Keras file in safe
    mode and JSON. Both the pyfunc and the pipeline's own loader (``tracking/plain.py``,
    which never unpickles) build the model from here, so they forecast the same."""

    model: Any
    spec: ModelSpec
    scaler: Scaler
    intervals: Intervals | None  # a classifier has none (and forecasts nothing)
    settings: ForecastSettings | None  # None: registered before forecast settings
    router: Router | None  # None: registered before per-series routing

    @classmethod
    def load(cls, files: Mapping[str, str | Path], defer_model: bool = False) -> ForecasterParts:
        """``defer_model``: ``model`` is the Keras file's bytes (``SavedKeras``), built
        when first used."""
        intervals, settings, router = files.get(INTERVALS), files.get(SETTINGS), files.get(ROUTER)
        return cls(
            SavedKeras.read(files[KERAS]) if defer_model else load_model(files[KERAS]),
            ModelSpec.load(files[SPEC]),
            Scaler.load(files[SCALER]),
            Intervals.from_json(read_json(intervals)) if intervals else None,
            ForecastSettings.from_json(read_json(settings)) if settings else None,
            Router.load(router) if router else None,
        )


class SeriesForecaster(mlflow.pyfunc.PythonModel):
    """The champion as a forecaster of the next ``steps`` values of every given series."""

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        parts = ForecasterParts.load(artifacts)
        self.model, self.spec, self.scaler = parts.model, parts.spec, parts.scaler
        self.intervals, self.router = parts.intervals, parts.router
        self.settings = parts.settings or ForecastSettings()
        config = getattr(context, "model_config", None) or {}
        self.version = str(config.get("model_version") or registered_version(artifacts[SPEC]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if self.intervals is None:
            raise bad_input("this model is a classifier: it forecasts no values")
        covariates = self.scaler.feature_spec
        empty_ahead = [VALUE, *covariates.past, *covariates.static]
        history = history_frame(
            model_input, input_columns(self.scaler), (list(covariates.future), empty_ahead)
        )
        steps, levels = forecast_params(params, self.intervals.levels)
        try:
            forecasts, skipped = forecast_frame(
                self.model,
                self.spec,
                self.scaler,
                self.intervals,
                history,
                replace(self.settings, levels=levels or self.settings.levels),
                model_version=self.version,
                steps=steps,
                router=self.router,
            )
        except ValueError as exc:  # a missing future or static covariate value
            raise bad_input(str(exc)) from exc
        if skipped:
            problems = "; ".join(f"series '{sid}': {why}" for sid, why in sorted(skipped.items()))
            raise bad_input(f"cannot forecast {problems}")
        return naive_times(forecasts[FORECAST_COLUMNS])


def naive_times(frame: pd.DataFrame) -> pd.DataFrame:
    """MLflow's datetime type has no timezone: UTC timestamps without one."""
    out = frame.copy()
    for column in (TIMESTAMP, "created_at"):
        out[column] = pd.to_datetime(out[column], utc=True).dt.tz_localize(None)
    return out


def forecast_params(
    params: Mapping[str, Any] | None, calibrated: list[int]
) -> tuple[int | None, list[int]]:
    """``steps`` (None: the model's own) and ``levels`` ([]: every calibrated one) from the
    request's params, checked: a level must be one the intervals were calibrated at."""
    params = params or {}
    try:
        steps = int(params.get("steps") or 0)
        levels = [int(v) for v in (params.get("levels") or [])]
    except (TypeError, ValueError) as exc:
        raise bad_input(
            f"params: steps must be an integer, levels a list of integers ({exc})"
        ) from exc
    if steps < 0:
        raise bad_input(f"params: steps must be 0 (the model's own) or more, not {steps}")
    unknown = sorted(set(levels) - set(calibrated))
    if unknown:
        raise bad_input(
            f"params: level(s) {unknown} not calibrated; this model has intervals at {calibrated}"
        )
    return steps or None, sorted(set(levels))


# The forecast frame's columns and their MLflow types (declared, not inferred: inference
# prints MLflow's integer-column hint for ``step`` and ``level`` at every registration).
OUTPUT_TYPES = {
    SERIES_ID: "string",
    TIMESTAMP: "datetime",
    "step": "long",
    "forecast": "double",
    "lower": "double",
    "upper": "double",
    "level": "long",
    "model_version": "string",
    "created_at": "datetime",
}


def forecaster_signature(features: list[str], levels: list[int]) -> Any:
    """The model's signature: its input, output and params.

    ``timestamp`` is typed ``any``: MLflow's ``datetime`` refuses timezone-aware values
    (the history's), and ``string`` refuses datetimes; ``history_frame`` parses whatever
    comes (aware, naive as UTC, ISO strings). Params must be in the signature, or the
    scoring server drops them with a warning.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    inputs = [ColSpec("string", SERIES_ID), ColSpec(AnyType(), TIMESTAMP)]
    inputs += [ColSpec("double", column) for column in features]
    outputs = [ColSpec(OUTPUT_TYPES[column], column) for column in FORECAST_COLUMNS]
    params = [
        ParamSpec("steps", "long", 0),  # 0: the model's own (one season, at least the horizon)
        ParamSpec("levels", "long", [int(v) for v in levels], shape=(-1,)),
    ]
    return ModelSignature(Schema(inputs), Schema(outputs), ParamSchema(params))


def signature_example(history: pd.DataFrame, features: list[str], rows: int) -> pd.DataFrame:
    """An input example: the latest ``rows`` rows of one series, as the history holds them."""
    first = str(history[SERIES_ID].iloc[0])
    part = history[history[SERIES_ID].astype(str) == first].sort_values(TIMESTAMP).tail(rows)
    return part[[SERIES_ID, TIMESTAMP, *features]].reset_index(drop=True)


def with_future_rows(history: pd.DataFrame, scaler: Scaler, steps: int) -> pd.DataFrame:
    """``history`` and, for a model with future covariates, ``steps`` future rows per series
    (value and past covariates empty, each future covariate at its last value): the shape
    of input such a model takes (the signature's example)."""
    spec = scaler.feature_spec
    if not spec.future:
        return history
    parts = [history]
    for sid, group in history.groupby(SERIES_ID, sort=True):
        if str(sid) not in scaler.series:
            continue
        last = group.sort_values(TIMESTAMP).iloc[-1]
        times = scaler.frequency_of(str(sid)).future(pd.Timestamp(last[TIMESTAMP]), steps)
        rows = pd.DataFrame({SERIES_ID: sid, TIMESTAMP: times})
        for column in history.columns.drop([SERIES_ID, TIMESTAMP]):
            rows[column] = last[column] if column in (*spec.future, *spec.static) else np.nan
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


__all__ = [
    "VALUE",
    "SeriesForecaster",
    "bad_input",
    "forecaster_signature",
    "history_frame",
    "input_columns",
    "with_future_rows",
]
