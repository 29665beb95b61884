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
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from seriesflow.ops.secrets import has_credentials
from seriesflow.workspace.files import RunDir, Workspace, read_json, write_json

CHAMPION_ALIAS = "champion"
EXPERIMENT_KIND, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
SCALER_ARTIFACT = "scaler.json"
CONFIG_ARTIFACT = "config.json"

# Tags that tie MLflow to the workspace and to the commit protocol (seriesflow/workspace/commit.py).
TAG_RUN_ID = "seriesflow.run_id"  # the run folder's name
TAG_RUN_DIR = "seriesflow.run_dir"
TAG_WORKSPACE = "seriesflow.workspace"  # the workspace's path, as the run saw it
TAG_WORKSPACE_ID = "seriesflow.workspace_id"  # on runs, versions and the registered model
TAG_SHARED = "seriesflow.shared"  # on the registered model: register.shared_model of its owner
TAG_INPUT_KEY = "seriesflow.input_key"  # the data + settings a version was trained on
TAG_COMMIT = "seriesflow.commit"  # pending | done: is the version's data in history?
TAG_HISTORY_VERSION = "seriesflow.history_version"  # the history table version it trained on
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


class RegistryUnavailable(RuntimeError):
    """The registry did not answer (a 503, a refused connection): not the same as "no champion"."""


class ModelOwned(RuntimeError):
    """The model name belongs to another workspace, and neither said they share it."""


def _not_found(exc: Exception) -> bool:
    """MLflow's answer for a model that does not exist, or has no such alias: a fact about the
    registry, not a failure to reach it (SQLite and REST stores raise the same codes)."""
    code = getattr(exc, "error_code", "")
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    text = str(exc).lower()
    return code == "INVALID_PARAMETER_VALUE" and "alias" in text and "not found" in text


def champion_version(model_name: str) -> Any | None:
    """The registered version holding the ``champion`` alias; None when there is none (no such
    model yet, or no alias on it). Raises ``RegistryUnavailable`` when the registry cannot say:
    a caller that took that for "no champion" would promote over it, or prune its run folder."""
    mlflow = mlflow_module()
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise RegistryUnavailable(
            f"could not look up the champion of '{model_name}': {str(exc)[:500]}"
        ) from exc


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
    """What ``mlflow models serve`` installs: every third-party package the model's bundled
    code imports, and Keras' backend, at the versions installed here (the lock's); derived
    from the code by ``seriesflow/tracking/bundle.py``."""
    from seriesflow.tracking.bundle import requirements

    return requirements()


# --------------------------------------------------------------------------- the commit protocol


def champion_run_folder(model_name: str) -> str | None:
    """The run folder name (run id) of the champion, if there is one."""
    version = champion_version(model_name)
    if version is None:
        return None
    tags = version.tags or {}
    if TAG_RUN_ID in tags:
        return tags[TAG_RUN_ID]
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow_module().MlflowClient().get_run(version.run_id)
    except MlflowException as exc:
        raise RegistryUnavailable(
            f"could not look up the champion of '{model_name}' (its run): {str(exc)[:500]}"
        ) from exc
    return run.data.tags.get(TAG_RUN_ID)


def history_version_of(model_name: str, version: str | None = None) -> int | None:
    """The history table version a model version (default: the champion) trained on, from
    its ``seriesflow.history_version`` tag; None when there is no such version or tag (one
    registered before the history was a Delta table)."""
    if version is None:
        found = champion_version(model_name)
    else:
        found = mlflow_module().MlflowClient().get_model_version(model_name, str(version))
    if found is None:
        return None
    tag = (found.tags or {}).get(TAG_HISTORY_VERSION)
    return None if tag is None else int(tag)


def set_champion(model_name: str, version: str, workspace: Workspace | None = None) -> None:
    """Move the alias to ``version``; with ``workspace``, only to one of that workspace's own
    versions (a registry shared by workspaces: one never promotes another's version)."""
    client = mlflow_module().MlflowClient()
    if workspace is not None:
        found = client.get_model_version(model_name, version)
        if not belongs_to(found, workspace):
            owner = _run_workspace(found) or (found.tags or {}).get(TAG_WORKSPACE_ID, "?")
            raise ModelOwned(
                f"will not move the champion alias: v{version} of '{model_name}' belongs to "
                f"workspace {owner}, not to {workspace.root}"
            )
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)


def tag_version(model_name: str, version: str, tags: dict[str, str]) -> None:
    client = mlflow_module().MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def versions_of_run(model_name: str, mlflow_run_id: str) -> list[str]:
    """The versions of ``model_name`` that MLflow run logged (a crash may have left one)."""
    client = mlflow_module().MlflowClient()
    query = f"name={filter_value(model_name)} and run_id={filter_value(mlflow_run_id)}"
    return sorted((str(v.version) for v in client.search_model_versions(query)), key=int)


def all_versions(model_name: str) -> list[Any]:
    """Every version of ``model_name`` ([] when the model does not exist yet; a registry that
    does not answer raises, so no caller mistakes an outage for "no versions")."""
    from mlflow.exceptions import MlflowException

    query = f"name={filter_value(model_name)}"
    try:
        found = mlflow_module().MlflowClient().search_model_versions(query)
    except MlflowException as exc:
        if _not_found(exc):
            return []
        raise RegistryUnavailable(f"could not list the versions of '{model_name}': {exc}") from exc
    return sorted(found, key=lambda v: int(v.version))


def version_for_inputs(model_name: str, input_key: str, workspace: Workspace) -> Any | None:
    """This workspace's committed version trained on exactly these inputs and settings, if
    any (another workspace's version is not reused: its data is not in this history)."""
    for version in all_versions(model_name):
        if not belongs_to(version, workspace):
            continue
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


def running_runs(workspace: Workspace) -> list[str]:
    """Runs this workspace's retrains started that are still RUNNING (under the workspace
    lock, none of them can still be alive: each is a crashed run's). Found by the workspace
    id; runs from before the id existed by their path tag (compared here, not in the
    filter: a path may hold any character), and only if they carry no other id."""
    client = mlflow_module().MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    own = workspace_id(workspace)
    found = client.search_runs(
        experiments,
        f"attributes.status = 'RUNNING' and tags.`{TAG_WORKSPACE_ID}` = {filter_value(own)}",
    )
    ids = [r.info.run_id for r in found]
    for run in client.search_runs(experiments, "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        legacy = TAG_WORKSPACE_ID not in tags and tags.get(TAG_WORKSPACE) == str(workspace.root)
        if legacy and run.info.run_id not in ids:
            ids.append(run.info.run_id)
    return ids


def run_tags(run: RunDir, workspace: Workspace) -> dict[str, str]:
    """Tags of a retrain's MLflow run (recovery finds a crashed run's by the workspace id)."""
    return {
        TAG_RUN_ID: run.run_id,
        TAG_RUN_DIR: str(run.root),
        TAG_WORKSPACE: str(workspace.root),
        TAG_WORKSPACE_ID: workspace_id(workspace),
    }


def filter_value(value: str) -> str:
    """``value`` as a string literal of MLflow's search grammar. The grammar has no escape
    (``\\'`` and ``''`` are kept as they are, and match nothing): a value is wrapped in the
    quote it does not hold; one that holds both cannot be written, and is refused."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(
        f"{value!r} holds both quote characters, which MLflow's search filters cannot express: "
        "rename it (a model name: register.model_name)"
    )


# ----------------------------------------------------------------------- one workspace per model
# Every workspace has an id: a UUID made once, in <workspace>/workspace.json. It travels with
# the workspace when the folder is moved or restored elsewhere (a hash of the path would not),
# and two folders on two machines with the same path are still two workspaces.

WORKSPACE_FILE = "workspace.json"


def workspace_id(workspace: Workspace) -> str:
    """The workspace's id, made on first use (``<workspace>/workspace.json``)."""
    path = workspace.root / WORKSPACE_FILE
    if not path.exists():
        workspace.root.mkdir(parents=True, exist_ok=True)
        write_json({"id": uuid.uuid4().hex, "created_at": time.time()}, path)  # atomic
    try:
        found = read_json(path)["id"]
        if not isinstance(found, str) or not found:
            raise TypeError("not a non-empty string")
        return found
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(
            f"{path} is damaged ({type(exc).__name__}: {exc}): it names this workspace to the "
            f"registry. Restore it from a backup, or, if this workspace never registered a "
            f"version, delete it (a new id is made)"
        ) from exc


def _run_tags(version: Any) -> dict[str, str]:
    """The tags of the MLflow run that logged ``version`` ({} if it is gone)."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(mlflow_module().MlflowClient().get_run(version.run_id).data.tags)
    except MlflowException as exc:
        if _not_found(exc):
            return {}
        raise RegistryUnavailable(
            f"could not look up the run of v{version.version}: {exc}"
        ) from exc


def _run_workspace(version: Any) -> str | None:
    """The workspace path tag of the run that logged ``version`` (None if unknown)."""
    return _run_tags(version).get(TAG_WORKSPACE)


def belongs_to(version: Any, workspace: Workspace) -> bool:
    """Whether ``version`` is this workspace's: by its workspace id tag; else (a crash between
    registering and tagging it, or a version from before ids) by its MLflow run's id tag, else
    its run's workspace path."""
    tags = version.tags or {}
    if TAG_WORKSPACE_ID in tags:
        return tags[TAG_WORKSPACE_ID] == workspace_id(workspace)
    run = _run_tags(version)
    if TAG_WORKSPACE_ID in run:
        return run[TAG_WORKSPACE_ID] == workspace_id(workspace)
    return run.get(TAG_WORKSPACE) == str(workspace.root)


def claim_model(model_name: str, workspace: Workspace, shared: bool) -> None:
    """Make sure ``model_name`` is this workspace's to write (or shared, as both said).

    The registered model carries the id and path of the workspace that first used it, and
    whether it is shared. A model from before the tag existed is claimed by the first
    workspace that runs (its older versions stay told apart by their runs' paths,
    ``belongs_to``). A second workspace is refused unless both set
    ``register.shared_model``; then each still touches only its own versions.
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_module().MlflowClient()
    own, here = workspace_id(workspace), str(workspace.root)
    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if not _not_found(exc):
            raise RegistryUnavailable(f"could not look up '{model_name}': {exc}") from exc
        tags = {TAG_WORKSPACE_ID: own, TAG_WORKSPACE: here, TAG_SHARED: str(shared)}
        try:
            client.create_registered_model(model_name, tags=tags)
            return
        except MlflowException:  # another workspace created it meanwhile: check as below
            model = client.get_registered_model(model_name)
    tags = model.tags or {}
    owner = tags.get(TAG_WORKSPACE_ID)
    if owner is None:  # registered before workspace ids: the first workspace to run claims it
        client.set_registered_model_tag(model_name, TAG_WORKSPACE_ID, own)
        client.set_registered_model_tag(model_name, TAG_WORKSPACE, here)
        client.set_registered_model_tag(model_name, TAG_SHARED, str(shared))
        return
    if owner == own:
        if tags.get(TAG_WORKSPACE) != here:  # the workspace was moved: say where it is now
            client.set_registered_model_tag(model_name, TAG_WORKSPACE, here)
        if tags.get(TAG_SHARED) != str(shared):  # the owner opened (or closed) it
            client.set_registered_model_tag(model_name, TAG_SHARED, str(shared))
        return
    if shared and tags.get(TAG_SHARED) == "True":
        return
    raise ModelOwned(
        f"the model '{model_name}' in this registry belongs to the workspace "
        f"{tags.get(TAG_WORKSPACE, '?')} (id {owner}); this workspace, {here} (id {own}), would "
        "write into it too. Give this workspace its own register.model_name, or, to share "
        "one model (one champion alias) between workspaces on purpose, set "
        "register.shared_model: true in the config of every workspace that uses it"
        + ("" if tags.get(TAG_SHARED) == "True" else " (the first one included)")
    )
