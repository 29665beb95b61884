"""A registered version read as plain files: the pipeline never unpickles a model.

The registered model is an MLflow pyfunc (``seriesflow/tracking/pyfunc.py``) so that
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work. Loading a pyfunc unpickles
its ``python_model.pkl`` with cloudpickle: whoever can write to the artifact store, or
register a version and move the ``champion`` alias, would run code in every worker that
forecasts or re-scores the champion. Keras' ``safe_mode`` does not help there.

So the pipeline reads a version the way it would read any untrusted upload: it downloads
the ``MLmodel`` file (YAML, parsed with ``safe_load``) to find where each artifact sits,
downloads only those artifacts -- the ``.keras`` file (loaded in safe mode) and JSON
(scaler, spec, intervals, settings, router) -- and checks each against the SHA-256 that
registration recorded in the version's ``seriesflow.sha256`` tag. A changed file is
refused by name. Versions registered before the tag existed are read the same way,
unverified, with a warning: plain data either way, never code.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from seriesflow.tracking.pyfunc import INTERVALS, KERAS, ROUTER, SCALER, SETTINGS, SPEC
from seriesflow.tracking.registry import mlflow_module
from seriesflow.workspace.files import sha256_file

log = logging.getLogger(__name__)

TAG_SHA256 = "seriesflow.sha256"  # version tag: {artifact key: sha256 of its file}
KEYS = (KERAS, SCALER, SPEC, INTERVALS, SETTINGS, ROUTER)
REQUIRED = (KERAS, SCALER, SPEC)  # the others: a classifier, or versions before them


class ArtifactRefused(RuntimeError):
    """A registered version's file does not match what was registered (or cannot be read)."""


def hashes_of(files: dict[str, str | Path]) -> str:
    """The ``seriesflow.sha256`` tag value for the artifacts about to be logged."""
    return json.dumps({key: sha256_file(path) for key, path in sorted(files.items())})


@dataclass(frozen=True)
class PlainVersion:
    """A version's artifacts as local files, checked; ``verified``: hashes were compared."""

    files: dict[str, Path]
    verified: bool


def _artifact_paths(mlmodel: Any, name: str, version: str) -> dict[str, str]:
    """{key: path inside the model folder} from the MLmodel file's pyfunc flavor."""
    flavor = (mlmodel.flavors or {}).get("python_function") or {}
    listed = flavor.get("artifacts") or {}
    paths: dict[str, str] = {}
    for key in KEYS:
        entry = listed.get(key)
        if entry is None:
            continue
        path = PurePosixPath(str(entry.get("path", "") if isinstance(entry, dict) else ""))
        if not path.parts or path.is_absolute() or ".." in path.parts:
            raise ArtifactRefused(
                f"{name} v{version}: artifact '{key}' has an unsafe path {str(path)!r} in its "
                "MLmodel file; register the model again from a run"
            )
        paths[key] = str(path)
    missing = [key for key in REQUIRED if key not in paths]
    if missing:
        raise ArtifactRefused(
            f"{name} v{version}: the MLmodel file lists no {missing} artifact(s); it was not "
            "registered by seriesflow"
        )
    return paths


def _recorded(version: Any) -> dict[str, str] | None:
    text = (getattr(version, "tags", None) or {}).get(TAG_SHA256)
    if not text:
        return None
    try:
        recorded = json.loads(text)
    except ValueError:
        recorded = None
    if not isinstance(recorded, dict):
        raise ArtifactRefused(
            f"v{version.version}: its {TAG_SHA256} tag is not a JSON object of hashes"
        )
    return {str(k): str(v) for k, v in recorded.items()}


def download_plain(name: str, version: Any, dst: str | Path) -> PlainVersion:
    """Download ``version``'s artifacts (not its pickle) into ``dst`` and check their hashes."""
    mlflow = mlflow_module()
    number = str(version.version)
    root = mlflow.MlflowClient().get_model_version_download_uri(name, number).rstrip("/")
    dst = Path(dst)
    mlmodel = mlflow.models.Model.load(
        mlflow.artifacts.download_artifacts(artifact_uri=f"{root}/MLmodel", dst_path=str(dst))
    )
    paths = _artifact_paths(mlmodel, name, number)
    recorded = _recorded(version)
    files: dict[str, Path] = {}
    for key, relative in paths.items():
        target = dst / key
        target.mkdir(parents=True, exist_ok=True)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{root}/{relative}", dst_path=str(target)
            )
        )
        if not local.is_file():
            raise ArtifactRefused(f"{name} v{number}: artifact '{relative}' is not a file")
        if recorded is not None:
            expected = recorded.get(key)
            actual = sha256_file(local)
            if expected != actual:
                raise ArtifactRefused(
                    f"{name} v{number}: artifact '{relative}' ({key}) does not match the "
                    f"SHA-256 recorded at registration (recorded {expected or 'none'}, found "
                    f"{actual}); it was changed after registration. Not loaded: re-register "
                    "a trusted run, or move the champion alias to another version"
                )
        files[key] = local
    if recorded is None:
        log.warning(
            "%s v%s was registered before artifact hashes were recorded: its files are read "
            "as plain data (Keras safe mode, JSON), unverified",
            name,
            number,
        )
    return PlainVersion(files, recorded is not None)


def temporary_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="seriesflow-champion-")
