"""MLflow plumbing: the tracking URI, the experiment, the champion alias, metric keys.

Everything needed to forecast is reachable from ``models:/<name>@champion``:
the Keras model is the registered version; ``scaler.json``, ``model_spec.json``
and ``config.json`` are artifacts of the run that logged it (``seriesflow/evaluation/champion.py``
loads them).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from seriesflow.ops.secrets import has_credentials
from seriesflow.workspace.files import RunDir, Workspace, read_json

CHAMPION_ALIAS = "champion"
EXPERIMENT_KIND, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
SCALER_ARTIFACT = "scaler.json"
CONFIG_ARTIFACT = "config.json"

# Tags that tie MLflow to the workspace and to the commit protocol (seriesflow/workspace/commit.py).
TAG_RUN_ID = "seriesflow.run_id"  # the run folder's name
TAG_RUN_DIR = "seriesflow.run_dir"
TAG_WORKSPACE = "seriesflow.workspace"
TAG_INPUT_KEY = "seriesflow.input_key"  # the data + settings a version was trained on
TAG_COMMIT = "seriesflow.commit"  # pending | done: is the version's data in history?
TAG_ORPHAN = "seriesflow.orphan"  # why a run or version was left behind by a crash
PENDING, DONE = "pending", "done"


def mlflow_module() -> Any:
    # Imported lazily: MLflow takes ~6 s to import.
    import mlflow

    return mlflow


def use_tracking(uri: str, experiment: str, workspace: Path) -> str:
    """Point MLflow at ``uri`` and make sure ``experiment`` exists; return its id.

    A local SQLite store keeps its artifacts in the workspace too (MLflow's
    default would be ./mlruns in whatever folder the run started from).
    """
    mlflow = mlflow_module()
    if has_credentials(uri):
        # MLflow prints "View run at <uri>/#/..." after each run: the password with it
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = None
        if uri.startswith("sqlite:"):
            location = (workspace / "mlartifacts").resolve().as_uri()
        # the tag says these are model-training runs (MLflow 3 otherwise assumes GenAI)
        experiment_id = mlflow.create_experiment(
            experiment, artifact_location=location, tags={EXPERIMENT_KIND: TRAINING_KIND}
        )
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def start_training_run(experiment_id: str, name: str, tags: dict[str, str], params: dict) -> str:
    """A RUNNING MLflow run for one retrain, with its parameters; returns its id.

    Created through the client, so no stage has to keep it active: train adds the
    per-epoch metrics as it trains, evaluate the test metrics, register the model and
    the gate, and the run ends FINISHED there (or FAILED, see ``end_run``).
    """
    client = mlflow_module().MlflowClient()
    run = client.create_run(experiment_id, tags=tags, run_name=name)
    log_values(run.info.run_id, params={k: str(v)[:500] for k, v in params.items()})
    return run.info.run_id


def log_values(
    mlflow_run_id: str,
    metrics: dict[str, float] | None = None,
    step: int = 0,
    params: dict[str, str] | None = None,
) -> None:
    """Metrics (finite ones) at ``step`` and params, in one call to the tracking store."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    batch_metrics = [Metric(k, v, now, step) for k, v in finite(metrics or {}).items()]
    batch_params = [Param(k, v) for k, v in (params or {}).items()]
    client = mlflow_module().MlflowClient()
    for start in range(0, len(batch_params), 100):  # the store takes 100 params a call
        client.log_batch(mlflow_run_id, params=batch_params[start : start + 100])
    for start in range(0, len(batch_metrics), 1000):  # and 1000 metrics
        client.log_batch(mlflow_run_id, metrics=batch_metrics[start : start + 1000])


def champion_version(model_name: str) -> Any | None:
    """The registered version holding the ``champion`` alias, or None."""
    mlflow = mlflow_module()
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException:
        return None  # no such model yet, or no alias on it


def run_json(run_id: str, artifact: str) -> dict[str, Any]:
    """A JSON artifact of an MLflow run (scaler.json, config.json, ...), parsed."""
    mlflow = mlflow_module()
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=tmp
        )
        return read_json(path)


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    """A nested dict as ``{"a.b.c": value}`` (MLflow params)."""
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(f"{prefix}.{key}" if prefix else key, item, out)
    else:
        out[prefix] = value
    return out


# The tail of a mapped key: "-" and the id's whole SHA-256. An id kept as it is never ends
# like this, so a kept id and a mapped one never meet (``plant_1-<hash of plant/1>`` is an id
# a file may hold too), and two mapped ids meet only if SHA-256 collides.
_MAPPED_TAIL = re.compile(r"-[0-9a-f]{64}\Z")
_READABLE = 55  # characters of the mapped id kept in front of its hash: 55 + 1 + 64 <= 120


def metric_key(text: str) -> str:
    """A series id as a safe part of an MLflow key, one key per id.

    An id of letters, digits and ``_-. `` only (no ``/``, so no path tricks), at most 120
    characters and not ending like a mapped key, stays as it is. Any other id becomes a
    readable prefix (unsafe characters as ``_``) and ``-`` + the SHA-256 of the id itself.
    """
    safe = re.sub(r"[^\w\-. ]", "_", text).strip() or "_"
    kept = safe == text and len(text) <= 120 and text not in (".", "..")
    if kept and not _MAPPED_TAIL.search(text):
        return text
    return f"{safe[:_READABLE]}-{hashlib.sha256(text.encode()).hexdigest()}"


def epoch_steps(epochs: pd.DataFrame, series_column: str) -> list[tuple[int, dict[str, float]]]:
    """Per-epoch metrics to log; a per-series table gets ``<metric>.<series>`` keys."""
    per_series = series_column in epochs
    steps: dict[int, dict[str, float]] = {}
    for _, row in epochs.iterrows():
        suffix = "." + metric_key(str(row[series_column])) if per_series else ""
        values = steps.setdefault(int(row["epoch"]), {})
        for key in epochs.columns:
            if key in ("epoch", series_column):
                continue
            value = float(row[key])
            if math.isfinite(value):
                values[f"{key}{suffix}"] = value
    return sorted(steps.items())


def finite(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of ``values`` (MLflow refuses NaN and inf)."""
    return {k: float(v) for k, v in values.items() if math.isfinite(float(v))}


def pip_requirements() -> list[str]:
    """What ``mlflow models serve`` installs: the framework and what the bundled code imports
    (the classical candidates included), at the versions installed here."""
    from importlib.metadata import PackageNotFoundError, version

    packages = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "pandas", "pyarrow")
    packages += ("pydantic", "pyyaml", "statsforecast")
    found = []
    for pkg in packages:
        try:
            found.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:  # tensorflow-cpu or tensorflow: whichever is installed
            continue
    return found


# --------------------------------------------------------------------------- the commit protocol


def champion_run_folder(model_name: str) -> str | None:
    """The run folder name (run id) of the champion, if there is one."""
    version = champion_version(model_name)
    if version is None:
        return None
    tags = version.tags or {}
    if TAG_RUN_ID in tags:
        return tags[TAG_RUN_ID]
    return mlflow_module().MlflowClient().get_run(version.run_id).data.tags.get(TAG_RUN_ID)


def set_champion(model_name: str, version: str) -> None:
    mlflow_module().MlflowClient().set_registered_model_alias(model_name, CHAMPION_ALIAS, version)


def tag_version(model_name: str, version: str, tags: dict[str, str]) -> None:
    client = mlflow_module().MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def versions_of_run(model_name: str, mlflow_run_id: str) -> list[str]:
    """The versions of ``model_name`` that MLflow run logged (a crash may have left one)."""
    client = mlflow_module().MlflowClient()
    found = client.search_model_versions(f"name='{model_name}' and run_id='{mlflow_run_id}'")
    return sorted((str(v.version) for v in found), key=int)


def all_versions(model_name: str) -> list[Any]:
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow_module().MlflowClient().search_model_versions(f"name='{model_name}'")
    except MlflowException:
        return []
    return sorted(found, key=lambda v: int(v.version))


def version_for_inputs(model_name: str, input_key: str) -> Any | None:
    """The committed version trained on exactly these inputs and settings, if any."""
    for version in all_versions(model_name):
        tags = version.tags or {}
        same = tags.get(TAG_INPUT_KEY) == input_key and not tags.get(TAG_ORPHAN)
        if same and tags.get(TAG_COMMIT, DONE) == DONE:
            return version
    return None


def end_run(mlflow_run_id: str, status: str, tags: dict[str, str] | None = None) -> None:
    """Set a run's final status (FINISHED / FAILED), with tags saying why."""
    client = mlflow_module().MlflowClient()
    for key, value in (tags or {}).items():
        client.set_tag(mlflow_run_id, key, value)
    client.set_terminated(mlflow_run_id, status)


def run_status(mlflow_run_id: str) -> str:
    return mlflow_module().MlflowClient().get_run(mlflow_run_id).info.status


def running_runs(workspace: Path) -> list[str]:
    """Runs this workspace's retrains started that are still RUNNING (under the workspace
    lock, none of them can still be alive: each is a crashed run's)."""
    client = mlflow_module().MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    found = client.search_runs(
        experiments,
        f"attributes.status = 'RUNNING' and tags.`{TAG_WORKSPACE}` = '{workspace}'",
    )
    return [r.info.run_id for r in found]


def run_tags(run: RunDir, workspace: Workspace) -> dict[str, str]:
    """Tags of a retrain's MLflow run (recovery finds a crashed run's by the workspace)."""
    return {TAG_RUN_ID: run.run_id, TAG_RUN_DIR: str(run.root), TAG_WORKSPACE: str(workspace.root)}
