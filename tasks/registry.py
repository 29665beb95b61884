"""MLflow plumbing: the tracking URI, the experiment, and loading the champion.

Everything needed to forecast is reachable from ``models:/<name>@champion``:
the Keras model is the registered version; ``scaler.json`` and ``config.json``
are artifacts of the run that logged it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.io import read_json

CHAMPION_ALIAS = "champion"
SCALER_ARTIFACT = "scaler.json"
CONFIG_ARTIFACT = "config.json"
SPEC_ARTIFACT = "model_spec.json"  # task, features, classes, per-series order (tasks/train.py)


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
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = None
        if uri.startswith("sqlite:"):
            location = (workspace / "mlartifacts").resolve().as_uri()
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@dataclass(frozen=True)
class Champion:
    version: str
    run_id: str
    model: Any
    scaler: dict[str, Any]
    config: dict[str, Any]
    spec: dict[str, Any] | None = None  # None: logged before specs existed (global regression)


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


def load_champion(model_name: str) -> Champion | None:
    """The champion's model, scaler and config (tracking URI must be set first)."""
    version = champion_version(model_name)
    if version is None:
        return None
    mlflow = mlflow_module()
    model = mlflow.keras.load_model(f"models:/{model_name}/{version.version}")
    scaler = run_json(version.run_id, SCALER_ARTIFACT)
    config = run_json(version.run_id, CONFIG_ARTIFACT)
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(version.run_id)}
    spec = run_json(version.run_id, SPEC_ARTIFACT) if SPEC_ARTIFACT in logged else None
    return Champion(str(version.version), version.run_id, model, scaler, config, spec)
