"""MLflow plumbing: the tracking URI, the experiment, the champion alias, metric keys.

Everything needed to forecast is reachable from ``models:/<name>@champion``:
the Keras model is the registered version; ``scaler.json``, ``model_spec.json``
and ``config.json`` are artifacts of the run that logged it (``tasks/champion.py``
loads them).
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.io import read_json

CHAMPION_ALIAS = "champion"
SCALER_ARTIFACT = "scaler.json"
CONFIG_ARTIFACT = "config.json"


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


def metric_key(text: str) -> str:
    """MLflow keys take letters, digits and ``_-. /``: anything else becomes ``_``."""
    return re.sub(r"[^\w\-. /]", "_", text)


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
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("tensorflow-cpu", "keras", "numpy")]
