"""The accepted history's profile on disk: ``profile.parquet`` beside the history table.

Validate checks new rows against it (``seriesflow/data/profile.py`` says what it holds)
and writes the profile of the rows it validated beside them in the run folder; the
commit's data step installs that in the workspace right after the Delta append, stamped
with the table version it describes (and that version's row count). A profile whose
stamp is not the table's current version and row count -- a crash between the append and
the install, a table restored or rolled back, an older workspace whose profile was stamped
with ``history.parquet``'s hash, other validation settings -- is not used: validate
rebuilds it once from the history. Versions that only vacuumed (retention; no row
changed) do not put a profile out of step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.profile import PROFILE_VERSION
from seriesflow.workspace.files import Workspace, atomic_path
from seriesflow.workspace.history import same_rows

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


def describes(
    meta: dict[str, Any], version: int | None, rows: int, workspace: Workspace | None = None
) -> bool:
    """Whether a profile's ``meta`` is that of the history table at ``version`` (None: no
    table yet) holding ``rows`` rows. With ``workspace``, a profile of an earlier version
    still describes it when every version since only vacuumed (no row changed)."""
    if "history_version" not in meta:  # a run's own profile, or stamped before the table
        return False
    if meta.get("history_rows") != rows:
        return False
    stamped = meta["history_version"]
    if stamped == version:
        return True
    return (
        workspace is not None
        and isinstance(stamped, int)
        and version is not None
        and same_rows(workspace, stamped, version)
    )


def load_profile(
    workspace: Workspace, history_version: int | None, history_rows: int, config: PipelineConfig
) -> tuple[pd.DataFrame | None, str]:
    """(the workspace's profile, '') when it describes the history table at
    ``history_version`` (the version ingest read, ``history_rows`` rows) with these
    settings; (None, why not) otherwise -- validate then rebuilds it from the history."""
    path = profile_path(workspace)
    if not path.exists():
        return None, f"no {path.name}"
    meta = read_meta(path)
    if meta is None:
        return None, f"{path.name} is unreadable"
    if meta.get("settings") != settings_of(config):
        return None, f"{path.name} was built with other validation settings"
    if not describes(meta, history_version, history_rows, workspace):
        return None, (
            f"{path.name} describes history version {meta.get('history_version')} "
            f"({meta.get('history_rows')} rows), not version {history_version} "
            f"({history_rows} rows)"
        )
    try:
        return read_profile(path), ""
    except (OSError, pa.ArrowInvalid) as exc:
        return None, f"{path.name} is unreadable ({exc})"


def commit_profile(workspace: Workspace, validated: str | Path, version: int | None) -> None:
    """The commit's data step, after the Delta append: the run's profile becomes the
    workspace's, stamped with ``version``, the table version that holds the run's validated
    rows. Without one (a run folder from before profiles), the workspace's is removed: it
    would describe an older version (and would be rebuilt anyway)."""
    source = run_profile_path(validated)
    target = profile_path(workspace)
    meta = read_meta(source) if source.exists() else None
    if meta is None:
        target.unlink(missing_ok=True)
        return
    meta["history_version"] = version
    write_profile(read_profile(source), target, meta)
