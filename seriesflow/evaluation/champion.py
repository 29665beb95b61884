"""The champion: loading it from the registry and adapting it to a run's data.

One place for everything a stage needs of the current champion: the model with
its scaler and spec (``load_champion``), its training statistics for drift
checks (``champion_reference``), its predictions on this run's windows mapped
through both scalers (``rescore_champion``), and it as a warm-start source.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.evaluation.scoring import Fits, fits_from_json
from seriesflow.model.intervals import Intervals
from seriesflow.model.saved_model import (
    SPEC_FILE,
    ModelSpec,
    SavedKeras,
    forecast_windows,
    spec_or_infer,
)
from seriesflow.model.scaler import Scaler
from seriesflow.model.windows import Windows
from seriesflow.tracking.plain import download_plain, temporary_folder
from seriesflow.tracking.pyfunc import ForecasterParts
from seriesflow.tracking.registry import (
    CONFIG_ARTIFACT,
    SCALER_ARTIFACT,
    TAG_RUN_DIR,
    champion_version,
    mlflow_module,
    run_json,
    use_tracking,
)
from seriesflow.workspace.files import RunDir, read_json


@dataclass(frozen=True)
class Champion:
    version: str
    run_id: str
    model_source: Any  # the Keras model, or its file's bytes (``SavedKeras``) built when used
    scaler: dict[str, Any]
    config: dict[str, Any]
    spec_json: dict[str, Any] | None = None  # None: logged before specs existed
    intervals: Intervals | None = None  # None: registered before forecasts existed
    router: Any = None  # the per-series router (None: registered before routing existed)
    run_dir: str | None = None  # the run folder it was trained in (its MLflow run's tag)

    @cached_property
    def model(self) -> Any:
        """The Keras model (built from its bytes on first use: the data stages that run
        before training need only the champion's scaler and config)."""
        source = self.model_source
        return source.load() if isinstance(source, SavedKeras) else source

    @property
    def spec(self) -> ModelSpec:
        """The saved spec, or the one inferred for a model logged without one."""
        return spec_or_infer(self.spec_json, self.model, list(self.scaler["columns"]))

    @property
    def scaler_object(self) -> Scaler:
        return Scaler.from_json(self.scaler)


def load_champion(model_name: str) -> Champion | None:
    """The champion's model, scaler, config, spec and intervals (tracking URI set first).

    A version is a self-contained pyfunc model (``seriesflow/tracking/pyfunc.py``), but the
    pipeline never loads it as one: that would unpickle its ``python_model.pkl``. Its
    artifact files are downloaded and read as data -- the Keras file in safe mode, JSON for
    the rest -- after checking them against the hashes recorded at registration
    (``seriesflow/tracking/plain.py``; a changed file raises ``ArtifactRefused`` naming
    it). Versions registered as bare Keras models (before forecasts existed) are read
    the old way: the model, and the scaler and spec from their run.
    """
    version = champion_version(model_name)
    if version is None:
        return None
    mlflow = mlflow_module()
    uri = f"models:/{model_name}/{version.version}"
    config = run_json(version.run_id, CONFIG_ARTIFACT)
    flavors = mlflow.models.get_model_info(uri).flavors
    if "keras" in flavors:
        model = mlflow.keras.load_model(uri)
        scaler = run_json(version.run_id, SCALER_ARTIFACT)
        logged = {a.path for a in mlflow.MlflowClient().list_artifacts(version.run_id)}
        spec = run_json(version.run_id, SPEC_FILE) if SPEC_FILE in logged else None
        return Champion(str(version.version), version.run_id, model, scaler, config, spec)
    with temporary_folder() as tmp:
        parts = ForecasterParts.load(download_plain(model_name, version, tmp).files, True)
    run_dir = mlflow.MlflowClient().get_run(version.run_id).data.tags.get(TAG_RUN_DIR)
    return Champion(
        str(version.version),
        version.run_id,
        parts.model,
        parts.scaler.to_json(),
        config,
        parts.spec.to_json(),
        parts.intervals,
        parts.router,
        run_dir,
    )


def champion_fits(champion: Champion | None) -> tuple[Fits, str]:
    """Every series' statsforecast fits of the champion's run (its
    ``05_model/classical_fits.json``, kept in its run folder), and where they came from; an
    empty dict and why when there are none (no champion, the folder removed by retention,
    a run that fit none)."""
    if champion is None:
        return {}, "no champion"
    if not champion.run_dir:
        return {}, f"champion v{champion.version} has no run folder recorded"
    path = RunDir(Path(champion.run_dir)).classical_fits
    if not path.exists():
        return {}, f"champion v{champion.version}'s fits are gone ({path})"
    return fits_from_json(read_json(path)), f"champion v{champion.version}"


def champion_of(config: PipelineConfig, tracking_uri: str | None) -> tuple[Champion | None, str]:
    """The configured model's champion, or None and why there is none."""
    if tracking_uri is None:
        return None, "no MLflow tracking URI given"
    use_tracking(tracking_uri, config.register.experiment, config.paths.workspace_path())
    champion = load_champion(config.register.model_name)
    if champion is None:
        return None, f"'{config.register.model_name}' has no champion yet"
    return champion, ""


def champion_reference(champion: Champion | None) -> dict[str, dict[str, float]]:
    """Per-series training statistics of the champion ({} when there is none)."""
    if champion is None:
        return {}
    series = champion.scaler["series"]
    return {sid: item["stats"] for sid, item in series.items() if "stats" in item}


@dataclass(frozen=True)
class Rescored:
    """What re-scoring the champion on a set of windows found: the counts its note reports
    (``rescored + other`` sums the counts of two sets of windows, chunk by chunk)."""

    version: str
    scored: int = 0  # windows it forecast
    unknown: tuple[str, ...] = ()  # series it never saw
    trained_on: int = 0  # windows whose targets it was trained on
    too_close: int = 0  # windows too close to a series start for its input length
    timesteps: int = 0
    why: str | None = None  # not comparable at all: why

    def __add__(self, other: Rescored) -> Rescored:
        return replace(
            self,
            scored=self.scored + other.scored,
            unknown=tuple(sorted({*self.unknown, *other.unknown})),
            trained_on=self.trained_on + other.trained_on,
            too_close=self.too_close + other.too_close,
            why=self.why or other.why,
        )

    @property
    def note(self) -> str:
        if self.why is not None:
            return self.why
        note = f"champion v{self.version} re-scored on {self.scored} test windows"
        if self.unknown:
            note += f" (series it never saw, left out of the comparison: {list(self.unknown)})"
        if self.trained_on:
            note += f" ({self.trained_on} windows whose targets it was trained on, left out)"
        if self.too_close:
            note += (
                f" ({self.too_close} windows too close to a series start for its "
                f"{self.timesteps} input steps)"
            )
        return note


def rescore_champion(
    champion: Champion, windows: Windows, scaler: Scaler, spec: ModelSpec | None = None
) -> tuple[np.ndarray, str]:
    """The champion's outputs for ``windows`` (NaN rows where it cannot score) + a note."""
    out, found = rescore_champion_counted(champion, windows, scaler, spec)
    return out, found.note


def rescore_champion_counted(
    champion: Champion, windows: Windows, scaler: Scaler, spec: ModelSpec | None = None
) -> tuple[np.ndarray, Rescored]:
    """The champion's outputs for ``windows`` (NaN rows where it cannot score) + the counts.

    ``windows`` are scaled with this run's ``scaler``. The champion gets its *own*
    inputs at the same origins: the values are mapped back to original units and
    through the champion's scaler, and gathered at the champion's input length, so a
    champion trained on older data, or with another input length or normalization,
    is judged fairly on the same targets. Regression: forecasts [windows, horizon] in
    original units. Classification: class probabilities [windows, classes].
    """
    spec = spec or ModelSpec.of_windows(windows, False, scaler.method)
    out = np.full((len(windows), spec.outputs), np.nan)
    theirs = champion.spec
    why = spec.comparable(theirs)
    if why is not None:
        return out, Rescored(
            champion.version, why=f"champion v{champion.version} is not comparable: {why}"
        )
    c_scaler = Scaler.from_json(champion.scaler)
    if c_scaler.columns != windows.features:
        return out, Rescored(
            champion.version,
            why=f"champion v{champion.version} used features {c_scaler.columns}, this run "
            f"{windows.features}: not comparable",
        )
    seen = np.isin(windows.series_id, c_scaler.series)
    if theirs.per_series:
        seen &= np.isin(windows.series_id, theirs.series)
    known = seen.copy()
    if theirs.seen_until:  # trained on everything up to then: only later targets are fair
        until = np.datetime64(pd.Timestamp(theirs.seen_until).tz_convert(None), "us")
        known &= windows.target_time > until
    arrays = windows.arrays
    # only the rows of the series re-scored are filled (and read): the rest of the array is
    # never touched, so it takes no memory, however long the whole history (a chunk of series
    # at a time at scale, not a copy of every value per chunk)
    values = np.empty(arrays.values.shape, dtype=arrays.values.dtype)
    for code in np.unique(windows.code[known]):
        sid, rows = arrays.series[code], arrays.rows_of(code)
        raw = scaler.inverse_all(sid, np.array(arrays.values[rows]))
        if scaler.logged.get(sid):  # logged and deseasonalized: the target as observed
            raw[:, 0] = arrays.original[rows]
        values[rows] = c_scaler.to_model(sid, raw, arrays.times[rows])
    mine = replace(windows, arrays=arrays.with_values(values)).select(known)
    theirs_windows, fits = mine.with_timesteps(theirs.timesteps)
    scored = np.flatnonzero(known)[fits]
    out[scored] = forecast_windows(champion.model, theirs, c_scaler, theirs_windows)
    found = Rescored(
        champion.version,
        scored=len(scored),
        unknown=tuple(sorted(set(windows.series_id[~seen]))),
        trained_on=int((seen & ~known).sum()),
        too_close=int(known.sum()) - len(scored),
        timesteps=theirs.timesteps,
    )
    return out, found
