"""The commit protocol: the registry is never ahead of the data.

A run that trained a model ends in three steps, recorded in a journal
(``<workspace>/commit.json``, written durably: fsync, atomic rename):

1. **register** the model version *without* the ``champion`` alias, tagged
   ``seriesflow.commit=pending`` (journal: ``registering`` with the MLflow run id and the
   gate's decision, then ``registered`` with the version);
2. **commit** the data: ``history.parquet`` becomes the run's validated rows, then the
   ledger records the run's files (each durable and atomic; journal: ``committed``);
3. **move the alias** if the gate said so, tag the version ``seriesflow.commit=done``,
   delete the journal.

A crash anywhere leaves either nothing (before 1: the next run trains on the same files)
or a journal. The next run, holding the workspace lock, reads it first (``recover``):

- ``prepared`` / ``registering`` with no version in the registry: **rolled back** -- the
  MLflow run is marked FAILED (tag ``seriesflow.orphan``), history and ledger were never
  touched, the files are still new;
- a version exists (``registering`` or later): **finished** -- its validated rows are in
  the run folder, so the commit is replayed (history rewritten only if it differs, ledger
  rows added only for files it lacks), then the alias moves as the gate decided.

So the alias only ever points at a version whose data is in history, and a crash never
costs a second version for the same data. The same inputs and settings also never make
a second version by design: ``input_key`` (the validated rows' content + the settings that
shape the model) is tagged on each version, and a run that finds it reuses that version's
decision (``run.force`` trains anyway).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import SERIES_ID, TIMESTAMP
from seriesflow.ops.faults import fault_point
from seriesflow.ops.secrets import redact_url
from seriesflow.tracking.registry import (
    DONE,
    PENDING,
    TAG_COMMIT,
    TAG_INPUT_KEY,
    TAG_ORPHAN,
    TAG_RUN_ID,
    all_versions,
    end_run,
    run_status,
    running_runs,
    set_champion,
    tag_version,
    versions_of_run,
)
from seriesflow.workspace.files import (
    RunDir,
    Workspace,
    atomic_path,
    crashed_temporary,
    fsync_dir,
    read_json,
    sha256_file,
    utcnow,
)
from seriesflow.workspace.files import write_json as _write_json
from seriesflow.workspace.ledger import INGESTED, LandedFile, append_ledger, ledger_rows

PREPARED, REGISTERING, REGISTERED, COMMITTED = "prepared", "registering", "registered", "committed"

Log = Callable[[str], None]


class JournalMismatch(RuntimeError):
    """The journal belongs to another registry than this run's: recovery will not guess."""


# --------------------------------------------------------------------------- identity


def input_key(validated: Path, config: PipelineConfig) -> str:
    """What a version is trained on: the validated rows' content + the model's settings."""
    frame = pq.read_table(validated).to_pandas()
    frame = frame.sort_values([SERIES_ID, TIMESTAMP], kind="stable").reset_index(drop=True)
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    digest = hashlib.sha256(rows)
    digest.update(repr(list(frame.columns)).encode())
    digest.update(config.training_key().encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- the journal


def load(workspace: Workspace) -> dict[str, Any] | None:
    return read_json(workspace.journal) if workspace.journal.exists() else None


def _save(workspace: Workspace, journal: dict[str, Any]) -> dict[str, Any]:
    _write_json(journal, workspace.journal)  # durable: fsync + atomic rename
    return journal


def _file_record(landed: LandedFile) -> dict[str, Any]:
    return {
        "name": landed.name,
        "sha256": landed.sha256,
        "bytes": landed.bytes,
        "mtime_ns": landed.mtime_ns,
        "path": str(landed.path),
        "source": landed.source,
    }


def landed_files(journal: dict[str, Any]) -> list[LandedFile]:
    return [
        LandedFile(
            Path(f["path"]),
            f["sha256"],
            f["bytes"],
            f["mtime_ns"] / 1e9,
            f["mtime_ns"],
            source=f["source"],
        )
        for f in journal["files"]
    ]


def begin(
    workspace: Workspace,
    run: RunDir,
    files: list[LandedFile],
    key: str,
    config: PipelineConfig,
    tracking_uri: str,
) -> dict[str, Any]:
    """Journal a commit before anything is registered (state ``prepared``)."""
    return _save(
        workspace,
        {
            "state": PREPARED,
            "run_id": run.run_id,
            "run_dir": str(run.root),
            "validated": str(run.validated),
            "history_sha256": sha256_file(run.validated),
            "files": [_file_record(f) for f in files],
            "input_key": key,
            "model_name": config.register.model_name,
            "registry": redact_url(tracking_uri),
            "mlflow_run_id": None,
            "version": None,
            "promote": False,
            "rule": None,
            "reason": None,
            "started_at": utcnow().isoformat(),
        },
    )


def update(workspace: Workspace, **fields: Any) -> dict[str, Any]:
    """Record a step of the commit (``state=REGISTERED, version=...``)."""
    journal = load(workspace)
    if journal is None:
        raise RuntimeError(f"no commit in progress in {workspace.root} (journal missing)")
    journal.update(fields)
    return _save(workspace, journal)


def clear(workspace: Workspace) -> None:
    workspace.journal.unlink(missing_ok=True)
    fsync_dir(workspace.root)


# --------------------------------------------------------------------------- commit


def commit(workspace: Workspace, journal: dict[str, Any], log: Log | None = None) -> None:
    """Steps 2 and 3 for a journal in state ``registered`` (or later); safe to replay."""
    log = log or logging.getLogger("seriesflow").info
    if journal["state"] not in (REGISTERED, COMMITTED):
        raise RuntimeError(f"commit of run {journal['run_id']} in state {journal['state']}")
    if journal["state"] == REGISTERED:
        history = workspace.history
        if not history.exists() or sha256_file(history) != journal["history_sha256"]:
            with atomic_path(history) as tmp:
                fault_point("commit:write")
                shutil.copyfile(journal["validated"], tmp)
        fault_point("commit:history")
        rows = ledger_rows(landed_files(journal), INGESTED, journal["run_id"])
        append_ledger(workspace.ledger, rows)  # rows already there are not added twice
        journal = update(workspace, state=COMMITTED)
    model, version = journal["model_name"], journal["version"]
    if journal["promote"]:
        set_champion(model, version)
        log(f"{model} v{version} is champion (its data is committed)")
    tag_version(model, version, {TAG_COMMIT: DONE})
    clear(workspace)


# --------------------------------------------------------------------------- recovery


def sweep_temporary(workspace: Workspace) -> list[Path]:
    """Delete the ``.tmp-*`` files crashed writers left: every retrain's (the caller holds
    the lock, so no other retrain is alive), and others' only once old. A forecast or tune
    writes without the lock and may be mid-write now (``files.crashed_temporary``)."""
    removed = []
    for path in workspace.root.rglob(".tmp-*"):
        if path.is_file() and crashed_temporary(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def recover(
    workspace: Workspace,
    tracking_uri: str,
    model_name: str,
    crashed: str | None,
    log: Log | None = None,
) -> list[str]:
    """Finish or roll back an interrupted commit; mark what a crashed run left in MLflow.

    Called by a run that holds the workspace lock, before it reads anything. ``crashed``
    names the previous holder when it died holding the lock (None: it ended normally, and
    there is nothing to do unless a journal is left). Returns what was done, one line each.
    """
    log = log or logging.getLogger("seriesflow").info
    journal = load(workspace)
    if journal is None and crashed is None:
        return []
    notes = []
    removed = sweep_temporary(workspace)
    if removed:
        notes.append(f"removed {len(removed)} temporary file(s) a killed run left")
    if journal is not None:
        if journal["registry"] != redact_url(tracking_uri):
            raise JournalMismatch(
                f"{workspace.journal} is an interrupted commit into the registry "
                f"{journal['registry']}, but this run uses {redact_url(tracking_uri)}: run once "
                "with the journal's registry to finish it (or delete the journal to drop it)"
            )
        notes.append(_finish_or_roll_back(workspace, journal, log))
    for run_id in running_runs(workspace.root):
        end_run(run_id, "FAILED", {TAG_ORPHAN: "its retrain process died before it ended"})
        notes.append(f"marked MLflow run {run_id} FAILED (left RUNNING by a crashed run)")
    notes += _tag_orphan_versions(model_name)
    for note in notes:
        log(f"Recovery: {note}")
    return notes


def _finish_or_roll_back(workspace: Workspace, journal: dict[str, Any], log: Log) -> str:
    model, run_id = journal["model_name"], journal["run_id"]
    version = journal.get("version")
    if version is None and journal.get("mlflow_run_id"):
        found = versions_of_run(model, journal["mlflow_run_id"])
        version = found[-1] if found else None
    if version is not None and not Path(journal["validated"]).exists():
        tag_version(model, version, {TAG_ORPHAN: f"run folder {journal['run_dir']} is gone"})
        clear(workspace)
        return f"dropped run {run_id}'s commit: v{version} kept no data (tagged orphan)"
    if version is None:
        if journal.get("mlflow_run_id"):
            end_run(
                journal["mlflow_run_id"],
                "FAILED",
                {TAG_ORPHAN: "crashed before its model version was registered"},
            )
        clear(workspace)
        return f"rolled back run {run_id}: no model version was registered; its files stay new"
    tag_version(
        model,
        version,
        {
            TAG_INPUT_KEY: journal["input_key"],
            TAG_RUN_ID: run_id,
            TAG_COMMIT: PENDING,
            "promoted": str(journal["promote"]),
            "gate_rule": str(journal["rule"]),
            "gate_reason": str(journal["reason"])[:5000],
        },
    )
    if journal.get("mlflow_run_id") and run_status(journal["mlflow_run_id"]) == "RUNNING":
        end_run(journal["mlflow_run_id"], "FINISHED", {"seriesflow.recovered": "true"})
    if journal["state"] in (PREPARED, REGISTERING):
        journal = update(workspace, state=REGISTERED, version=version)
    commit(workspace, journal, log)
    verb = "promoted" if journal["promote"] else "not promoted"
    return f"finished run {run_id}'s commit: v{version} committed ({verb})"


def _tag_orphan_versions(model: str) -> list[str]:
    """Versions still ``pending`` once the journal is settled: no data will ever follow."""
    notes = []
    for version in all_versions(model):
        tags = version.tags or {}
        if tags.get(TAG_COMMIT) == PENDING and not tags.get(TAG_ORPHAN):
            tag_version(model, str(version.version), {TAG_ORPHAN: "commit never finished"})
            notes.append(f"tagged v{version.version} orphan (its commit never finished)")
    return notes
