"""The commit protocol: the registry is never ahead of the data.

A run that trained a model ends in three steps, recorded in a journal
(``<workspace>/commit.json``, written durably: fsync, atomic rename):

1. **register** the model version *without* the ``champion`` alias, tagged
   ``seriesflow.commit=pending`` (journal: ``registering`` with the MLflow run id and the
   gate's decision, then ``registered`` with the version);
2. **commit** the data: the run's new rows are appended to the history Delta table in one
   transaction whose commit metadata holds the run id (revisions: one merge), the run's
   per-series profile (``profile.parquet``, ``seriesflow/workspace/profile.py``) is
   installed stamped with that table version, the table version is recorded in the journal
   and tagged on the model version (``seriesflow.history_version``), then the ledger
   records the run's files (durable and atomic; journal: ``committed``);
3. **move the alias** if the gate said so, tag the version ``seriesflow.commit=done``,
   delete the journal.

A crash anywhere leaves either nothing (before 1: the next run trains on the same files)
or a journal. The next run, holding the workspace lock, reads it first (``recover``):

- ``prepared`` / ``registering`` with no version in the registry: **rolled back** -- the
  MLflow run is marked FAILED (tag ``seriesflow.orphan``), history and ledger were never
  touched, the files are still new;
- a version exists (``registering`` or later): **finished** -- its new rows are in the run
  folder, so the commit is replayed (appended only if the Delta log holds no commit with
  the run's id, ledger rows added only for files it lacks), then the alias moves as the
  gate decided.

So the alias only ever points at a version whose data is in history, and a crash never
costs a second version for the same data. Recovery touches only this workspace's versions
and runs (``seriesflow.workspace_id``, ``seriesflow/tracking/registry.py``), and never the
tags of a version a *reuse* run merely pointed at. A journal that cannot be read (torn,
``{}``, keys missing, wrong types) stops the run with ``JournalDamaged``, which names the
file and ``seriesflow repair`` (``repair`` below; docs/operations.md).

The same inputs and settings also never make a second version by design: ``input_key``
(the validated rows' content + the settings that shape the model) is tagged on each
version, and a run that finds it reuses that version's decision (``run.force`` trains
anyway).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.grid import keys_in_order
from seriesflow.data.schema import SERIES_ID, TIMESTAMP
from seriesflow.ops.faults import fault_point
from seriesflow.ops.secrets import redact_url
from seriesflow.tracking.registry import (
    DONE,
    PENDING,
    TAG_COMMIT,
    TAG_HISTORY_VERSION,
    TAG_INPUT_KEY,
    TAG_ORPHAN,
    TAG_RUN_ID,
    TAG_WORKSPACE_ID,
    all_versions,
    belongs_to,
    end_run,
    run_status,
    running_runs,
    set_champion,
    tag_version,
    versions_of_run,
    workspace_id,
)
from seriesflow.workspace.files import (
    RunDir,
    Workspace,
    atomic_path,
    crashed_temporary,
    fsync_dir,
    read_json,
    read_parquet,
    utcnow,
)
from seriesflow.workspace.files import write_json as _write_json
from seriesflow.workspace.history import (
    BUCKET,
    MIGRATION,
    RUN_ID_KEY,
    append_file,
    append_rows,
    committed_version,
    history_version,
    new_rows,
    open_table,
)
from seriesflow.workspace.ledger import (
    INGESTED,
    LandedFile,
    ledger_rows,
    load_ledger,
    merge_ledger,
)
from seriesflow.workspace.profile import commit_profile

PREPARED, REGISTERING, REGISTERED, COMMITTED = "prepared", "registering", "registered", "committed"

Log = Callable[[str], None]


class JournalMismatch(RuntimeError):
    """The journal belongs to another registry than this run's: recovery will not guess."""


class JournalDamaged(RuntimeError):
    """``commit.json`` cannot be read as a journal: no run guesses what it said."""


REPAIR_HINT = (
    "run `seriesflow repair` (with this run's --config) to see it; `seriesflow repair "
    "--rollback` sets it aside once history and ledger agree (docs/operations.md)"
)

# --------------------------------------------------------------------------- identity


def input_key(validated: Path, config: PipelineConfig, batch_rows: int = 1 << 20) -> str:
    """What a version is trained on: the validated rows' content + the model's settings.

    The rows are hashed in (series, time) order, a record batch at a time while the file is
    in that order (validate writes it so); only a file out of order is read whole and
    sorted. The digest is the same either way. At 100M rows, the whole file as a frame
    (a Python string per id) took 8.9 GiB between validate and normalize."""
    digest = hashlib.sha256()
    source = pq.ParquetFile(validated)
    last = None  # the previous batch's last (series, time)
    for batch in source.iter_batches(batch_size=batch_rows):
        frame = batch.to_pandas()
        keys = _row_keys(batch)
        if not _in_key_order(keys, last):
            return _input_key_sorted(validated, config)
        last = (keys[0][-1], keys[1][-1]) if len(frame) else last
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return _finished(digest, source.schema_arrow.empty_table().to_pandas().columns, config)


def _finished(digest: Any, columns: pd.Index, config: PipelineConfig) -> str:
    """The key: the rows' digest, then the column names and the model's settings."""
    digest.update(repr(list(columns)).encode())
    digest.update(config.training_key().encode())
    return digest.hexdigest()


def _row_keys(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """(series ids as str objects, times as int64 UTC ticks) [rows] of a batch."""
    ids = batch.column(SERIES_ID).cast(pa.string()).to_numpy(zero_copy_only=False)
    times = batch.column(TIMESTAMP)
    if pa.types.is_timestamp(times.type):
        times = times.cast(pa.int64())
    return ids, times.to_numpy(zero_copy_only=False)


def _in_key_order(keys: tuple[np.ndarray, np.ndarray], last: tuple | None) -> bool:
    """Whether a batch's (series, time) ``keys``, after the previous batch's ``last``
    row, are in (series, time) order."""
    ids, times = keys
    if last is not None and len(ids):
        ids, times = np.r_[[last[0]], ids], np.r_[[last[1]], times]
    return keys_in_order(ids, times)


def _input_key_sorted(validated: Path, config: PipelineConfig) -> str:
    """``input_key`` of a file out of (series, time) order: read whole, sorted."""
    frame = pq.read_table(validated).to_pandas()
    frame = frame.sort_values([SERIES_ID, TIMESTAMP], kind="stable").reset_index(drop=True)
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    return _finished(hashlib.sha256(rows), frame.columns, config)


# --------------------------------------------------------------------------- the journal


# What each journal field must be (begin() writes them all): a journal that differs was torn
# by a crash of the disk or edited by hand, and recovery from it would act on a guess.
_FIELDS: dict[str, tuple[type, ...]] = {
    "state": (str,),
    "run_id": (str,),
    "run_dir": (str,),
    "validated": (str,),
    "buckets": (int,),
    "history_version": (int, type(None)),
    "files": (list,),
    "input_key": (str,),
    "model_name": (str,),
    "registry": (str,),
    "mlflow_run_id": (str, type(None)),
    "version": (str, type(None)),
    "promote": (bool,),
}
_FILE_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "sha256": (str,),
    "bytes": (int,),
    "mtime_ns": (int,),
    "path": (str,),
    "source": (str, type(None)),
}


def _damage(journal: Any) -> str | None:
    """What is wrong with a parsed journal, or None."""
    if not isinstance(journal, dict):
        return f"it holds a {type(journal).__name__}, not a JSON object"
    missing = [key for key in _FIELDS if key not in journal]
    if missing:
        return f"keys missing: {', '.join(missing)}"
    for key, types in _FIELDS.items():
        if not isinstance(journal[key], types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            return f"{key!r} should be a {names}, not {journal[key]!r:.60}"
    if journal["state"] not in (PREPARED, REGISTERING, REGISTERED, COMMITTED):
        return f"unknown state {journal['state']!r}"
    for k, record in enumerate(journal["files"]):
        if not isinstance(record, dict) or any(
            not isinstance(record.get(key), types) for key, types in _FILE_FIELDS.items()
        ):
            return f"files[{k}] is not a file record ({record!r:.80})"
    if journal["state"] in (REGISTERED, COMMITTED) and journal["version"] is None:
        return f"state {journal['state']!r} without a version"
    return None


def load(workspace: Workspace) -> dict[str, Any] | None:
    """The journal of the commit in progress, None when there is none; ``JournalDamaged``
    (naming the file and ``seriesflow repair``) when it cannot be trusted."""
    if not workspace.journal.exists():
        return None
    try:
        journal = read_json(workspace.journal)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problem = f"not readable JSON ({type(exc).__name__}: {exc})"
    else:
        problem = _damage(journal)
        if problem is None:
            return journal
    raise JournalDamaged(
        f"the commit journal {workspace.journal} is damaged: {problem}. No run starts until it "
        f"is settled: {REPAIR_HINT}"
    )


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
            "buckets": config.history.buckets,
            "history_version": None,
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
        written = commit_history(workspace, journal)
        fault_point("commit:history")
        # the profile validation checks the next arrival against, stamped with the version
        # that holds these rows (lost or out of step after a crash here: rebuilt)
        commit_profile(workspace, journal["validated"], written)
        rows = ledger_rows(landed_files(journal), INGESTED, journal["run_id"])
        merged = merge_ledger(load_ledger(workspace.ledger), rows)  # no row added twice
        with atomic_path(workspace.ledger) as tmp:
            fault_point("commit:ledger")
            pq.write_table(merged, tmp)
        journal = update(workspace, state=COMMITTED, history_version=written)
    model, version = journal["model_name"], journal["version"]
    if journal["history_version"] is not None and not _reused(journal):
        # what the version trained on, one time-travel read away (a reused version's tag
        # is the earlier run's: the same rows)
        tag_version(model, version, {TAG_HISTORY_VERSION: str(journal["history_version"])})
    if journal["promote"]:
        set_champion(model, version, workspace)  # only ever to this workspace's own version
        log(f"{model} v{version} is champion (its data is committed)")
    tag_version(model, version, {TAG_COMMIT: DONE})
    clear(workspace)


def commit_history(workspace: Workspace, journal: dict[str, Any]) -> int | None:
    """The data step: the run's rows into the history table, once. Returns the table version
    that holds them (None: no table and nothing to add).

    The Delta log says whether it happened: a commit whose metadata holds the run id is the
    run's append (a replay after a crash finds it and writes nothing). A run that adds no
    row (re-sent rows, ``ingest.retrain_without_new_data``) trained on the current version.
    """
    run_id = journal["run_id"]
    done = committed_version(workspace, run_id)
    if done is not None:
        return done
    run = RunDir(Path(journal["run_dir"]))
    if run.new_rows.exists() and not run.revised_rows.exists():  # appends only: streamed
        if not pq.ParquetFile(run.new_rows).metadata.num_rows:
            return history_version(workspace)
        fault_point("commit:write")
        return append_file(workspace, run.new_rows, run_id, journal["buckets"])
    appended, revised, schema = _changes(workspace, journal)
    if not len(appended) and not len(revised):
        return history_version(workspace)
    fault_point("commit:write")
    return append_rows(workspace, appended, schema, run_id, journal["buckets"], revised=revised)


def _changes(
    workspace: Workspace, journal: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pa.Schema]:
    """The run's new and revised rows, as validate wrote them; worked out from the validated
    rows and the table when validate did not (a run folder from before the table)."""
    run = RunDir(Path(journal["run_dir"]))
    if run.new_rows.exists():
        table = pq.read_table(run.new_rows)
        revised = (
            read_parquet(run.revised_rows)
            if run.revised_rows.exists()
            else table.schema.empty_table().to_pandas()
        )
        return table.to_pandas(), revised, table.schema
    validated = pq.read_table(journal["validated"])
    table = open_table(workspace)
    current = validated.schema.empty_table() if table is None else table.to_pyarrow_table()
    current = current.drop_columns([c for c in current.column_names if c == BUCKET])
    appended, revised = new_rows(current.to_pandas(), validated.to_pandas(), revisions=True)
    return appended, revised, validated.schema


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
    notes += _sweep_registry(workspace, model_name)
    for note in notes:
        log(f"Recovery: {note}")
    return notes


def _sweep_registry(workspace: Workspace, model_name: str) -> list[str]:
    """Once the journal is settled: this workspace's runs left RUNNING end FAILED, and its
    versions still pending are tagged orphans (no data will ever follow them). Another
    workspace's runs and versions are never touched: it may be mid-commit right now."""
    notes = []
    for run_id in running_runs(workspace):
        end_run(run_id, "FAILED", {TAG_ORPHAN: "its retrain process died before it ended"})
        notes.append(f"marked MLflow run {run_id} FAILED (left RUNNING by a crashed run)")
    return notes + _tag_orphan_versions(model_name, workspace)


def _reused(journal: dict[str, Any]) -> bool:
    """A reuse run's journal: it points at an earlier version it did not register (its
    commit adds data only). Its version's tags and run are the earlier run's, not its own."""
    return bool(journal.get("reused")) or journal.get("rule") == "reused"


def _finish_or_roll_back(workspace: Workspace, journal: dict[str, Any], log: Log) -> str:
    model, run_id = journal["model_name"], journal["run_id"]
    version = journal.get("version")
    if version is None and journal.get("mlflow_run_id"):
        found = versions_of_run(model, journal["mlflow_run_id"])
        version = found[-1] if found else None
    if version is not None and not Path(journal["validated"]).exists():
        clear(workspace)
        if _reused(journal):  # the version is an earlier run's, whose data it has: keep it
            return f"dropped reuse run {run_id}'s commit (its run folder is gone): files stay new"
        tag_version(model, version, {TAG_ORPHAN: f"run folder {journal['run_dir']} is gone"})
        return f"dropped run {run_id}'s commit: v{version} kept no data (tagged orphan)"
    if version is not None and _reused(journal):
        # only the data is to commit: the version, its tags and its run stay the earlier run's
        if journal["state"] in (PREPARED, REGISTERING):
            journal = update(workspace, state=REGISTERED, version=version)
        commit(workspace, journal, log)
        return f"finished reuse run {run_id}'s commit: its data is committed (v{version} reused)"
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
            TAG_WORKSPACE_ID: workspace_id(workspace),  # the journal's run made it, here
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


def _tag_orphan_versions(model: str, workspace: Workspace) -> list[str]:
    """This workspace's versions still ``pending`` once the journal is settled: no data will
    ever follow. (Another workspace's pending version may be its commit in flight.)"""
    notes = []
    for version in all_versions(model):
        tags = version.tags or {}
        pending = tags.get(TAG_COMMIT) == PENDING and not tags.get(TAG_ORPHAN)
        if pending and belongs_to(version, workspace):
            tag_version(model, str(version.version), {TAG_ORPHAN: "commit never finished"})
            notes.append(f"tagged v{version.version} orphan (its commit never finished)")
    return notes


# --------------------------------------------------------------------------- seriesflow repair
# What an operator runs when the journal stops every run (flows/cli.py, under the workspace
# lock; docs/operations.md). Each either settles the journal or refuses and says why: none
# guesses, and none rewrites history or the ledger except by finishing a commit.


def repair_rollback(
    workspace: Workspace, tracking_uri: str, model_name: str, log: Log | None = None
) -> list[str]:
    """Drop the commit in progress; returns what was done, one line each.

    A readable journal whose data may already be in history (``registered`` or ``committed``
    with history equal to the run's rows) is refused: ``repair_finish`` it. Otherwise its
    MLflow run ends FAILED and its own version (not a reused one) is tagged orphan, like a
    crash recovery's rollback; history and ledger are untouched, the files stay new. A damaged
    journal is set aside as ``commit.json.damaged-<time>`` once history and the ledger agree.
    """
    log = log or logging.getLogger("seriesflow").info
    try:
        journal = load(workspace)
    except JournalDamaged as damaged:
        notes = [_set_aside(workspace, damaged)]
    else:
        notes = [] if journal is None else [_roll_back(workspace, journal, tracking_uri)]
    notes += _sweep_registry(workspace, model_name)
    for note in notes:
        log(f"Repair: {note}")
    return notes


def repair_finish(
    workspace: Workspace, tracking_uri: str, model_name: str, log: Log | None = None
) -> list[str]:
    """Finish the commit in progress (as the next run's recovery would) when its version
    exists; refuses otherwise (nothing to finish: roll it back)."""
    journal = load(workspace)  # damaged: JournalDamaged (only a rollback sets it aside)
    if journal is None:
        return ["no commit in progress: nothing to finish"]
    version = journal.get("version")
    if version is None and journal.get("mlflow_run_id"):
        found = versions_of_run(journal["model_name"], journal["mlflow_run_id"])
        version = found[-1] if found else None
    if version is None:
        raise RuntimeError(
            f"{workspace.journal}: run {journal['run_id']} registered no model version "
            f"(state {journal['state']}), so there is nothing to finish: use --rollback"
        )
    return recover(workspace, tracking_uri, model_name, "seriesflow repair --finish", log)


def _roll_back(workspace: Workspace, journal: dict[str, Any], tracking_uri: str) -> str:
    if journal["registry"] != redact_url(tracking_uri):
        raise JournalMismatch(
            f"{workspace.journal} is a commit into the registry {journal['registry']}, but "
            f"this config uses {redact_url(tracking_uri)}: repair with the journal's registry"
        )
    written = committed_version(workspace, journal["run_id"]) is not None
    if journal["state"] == COMMITTED or written:
        raise RuntimeError(
            f"{workspace.journal}: run {journal['run_id']}'s data is already in the history "
            f"table {workspace.history.name}/ (state {journal['state']}); rolling back would "
            "leave history holding rows the ledger does not know: use --finish"
        )
    model, run_id = journal["model_name"], journal["run_id"]
    if _reused(journal):  # the version and its run are an earlier run's: left as they are
        clear(workspace)
        return f"rolled back reuse run {run_id}'s commit: its files stay new"
    why = {TAG_ORPHAN: "rolled back by seriesflow repair"}
    if journal.get("mlflow_run_id"):
        if run_status(journal["mlflow_run_id"]) == "RUNNING":
            end_run(journal["mlflow_run_id"], "FAILED", why)
        for version in versions_of_run(model, journal["mlflow_run_id"]):
            tag_version(model, version, why)
    clear(workspace)
    return f"rolled back run {run_id}'s commit: history and ledger untouched, its files stay new"


def ledger_disagreement(workspace: Workspace) -> str | None:
    """Why history and the ledger disagree, or None. A commit appends the run's rows to the
    history table (the Delta log names the run), then ledgers the run's files: so every run
    the log names has ledgered files, and a ledger with ingested files has a history."""
    ledger = load_ledger(workspace.ledger)
    ingested = ledger[ledger["status"] == INGESTED]
    table = open_table(workspace)
    if table is None:
        if len(ingested) and not workspace.legacy_history.exists():
            return f"{workspace.ledger.name} records ingested files but there is no history table"
        return None
    ledgered = set(ingested["run_id"].astype(str))
    for entry in table.history():
        run_id = entry.get(RUN_ID_KEY)
        if run_id is not None and run_id != MIGRATION and run_id not in ledgered:
            return (
                f"the history table's version {entry['version']} holds the rows of run "
                f"{run_id}, which the ledger does not record: a commit wrote history and died "
                "before its ledger"
            )
    return None


def _set_aside(workspace: Workspace, damaged: JournalDamaged) -> str:
    problem = ledger_disagreement(workspace)
    if problem is not None:
        raise RuntimeError(
            f"{workspace.journal} is damaged and {problem}: setting the journal aside would "
            "leave them so. Restore history/ and ledger.parquet from one backup (or "
            "move the journal aside by hand, accepting the difference); docs/operations.md"
        ) from damaged
    aside = workspace.root / f"{workspace.journal.name}.damaged-{utcnow():%Y%m%dT%H%M%S}"
    workspace.journal.rename(aside)
    fsync_dir(workspace.root)
    return f"set the damaged journal aside as {aside.name} (history and ledger agree)"
