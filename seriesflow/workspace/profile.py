"""The accepted history's profile on disk: ``profile.parquet`` beside ``history.parquet``.

Validate checks new rows against it (``seriesflow/data/profile.py`` says what it holds)
and writes the profile of the rows it validated beside them in the run folder; the
commit's data step copies that into the workspace right after the history, recording
which history it describes (rows, bytes, modification time and the history's sha256).
A profile that does not describe the history that is there now (a crash between the two
writes, a history restored from a backup, an older workspace without one, other
validation settings) is not used: validate rebuilds it once from the history.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.profile import PROFILE_VERSION
from seriesflow.workspace.files import Workspace, atomic_path, sha256_file

META_KEY = b"seriesflow.profile"
RUN_PROFILE = "02_validated_profile.parquet"


def profile_path(workspace: Workspace) -> Path:
    return workspace.root / "profile.parquet"


def run_profile_path(validated: str | Path) -> Path:
    """Where validate keeps the profile of a run's validated rows (beside them)."""
    return Path(validated).with_name(RUN_PROFILE)


def settings_of(config: PipelineConfig) -> dict[str, Any]:
    """The validation settings a profile depends on: another value rebuilds it."""
    return {
        "version": PROFILE_VERSION,
        "frequency": config.validation.frequency,
        "static": list(config.columns.static),
    }


def write_profile(profile: pd.DataFrame, path: Path, meta: dict[str, Any]) -> Path:
    table = pa.Table.from_pandas(profile, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_meta(path: Path) -> dict[str, Any] | None:
    try:
        metadata = pq.read_schema(path).metadata or {}
        return json.loads(metadata[META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowInvalid):
        return None


def read_profile(path: Path) -> pd.DataFrame:
    frame = pq.read_table(path).to_pandas()
    frame.index = pd.Index(frame["series_id"].to_numpy(dtype=object))
    return frame


def _identity(history: Path) -> dict[str, int]:
    stat = os.stat(history)
    return {"history_bytes": stat.st_size, "history_mtime_ns": stat.st_mtime_ns}


def describes(meta: dict[str, Any], history: Path, rows: int) -> bool:
    """Whether a profile's ``meta`` is that of the history file there now."""
    if meta.get("history_rows") != rows:
        return False
    if rows == 0 and not history.exists():
        return True
    if not history.exists() or "history_sha256" not in meta:
        return False
    now = _identity(history)
    if now == {k: meta.get(k) for k in now}:
        return True
    # same size, another time (a copy, a restore): the content decides
    return now["history_bytes"] == meta.get("history_bytes") and sha256_file(history) == meta.get(
        "history_sha256"
    )


def load_profile(
    workspace: Workspace, history_rows: int, config: PipelineConfig
) -> tuple[pd.DataFrame | None, str]:
    """(the workspace's profile, '') when it describes the history there now with these
    settings; (None, why not) otherwise -- validate then rebuilds it from the history."""
    path = profile_path(workspace)
    if not path.exists():
        return None, f"no {path.name}"
    meta = read_meta(path)
    if meta is None:
        return None, f"{path.name} is unreadable"
    if meta.get("settings") != settings_of(config):
        return None, f"{path.name} was built with other validation settings"
    if not describes(meta, workspace.history, history_rows):
        return None, f"{path.name} does not describe {workspace.history.name} as it is now"
    try:
        return read_profile(path), ""
    except (OSError, pa.ArrowInvalid) as exc:
        return None, f"{path.name} is unreadable ({exc})"


def commit_profile(workspace: Workspace, validated: str | Path, history_sha256: str) -> None:
    """The commit's data step, after the history: the run's profile becomes the
    workspace's, stamped with the history it describes. Without one (a run folder from
    before profiles), the workspace's is removed: it would describe the old history."""
    source = run_profile_path(validated)
    target = profile_path(workspace)
    meta = read_meta(source) if source.exists() else None
    if meta is None:
        target.unlink(missing_ok=True)
        return
    meta.update(_identity(workspace.history), history_sha256=history_sha256)
    write_profile(read_profile(source), target, meta)
