"""Claimed files: what a run took out of landing, from the claim until nothing needs them.

A run claims each settled landed file before reading it (``Landing.claim``): the file moves
to ``<workspace>/claimed/<run-id>/<nnnn>/<name>`` (one numbered slot per file, so two
files of the same name never meet). From then on the pipeline only ever touches that copy:
its hash is the one ingest reads, validate quarantines and the ledger records, and
retention archives or deletes it. Whatever a producer writes to the name in landing
afterwards is a new arrival.

Every run, under the workspace lock and after the commit recovery, settles the claims
(``tidy_claims``): a claimed file whose content the ledger holds is done with --
``ingested``: archived, deleted or kept (``retention.landed``); ``rejected`` or ``failed``
(a byte-identical copy of a file already quarantined): moved to quarantine beside it. A
claimed file the ledger does not hold belongs to a run that died or failed before its
commit: the next ingest takes it over (``adopt_stale``) as an arrival, before anything
new from landing, so a crash never loses a claimed file and never overwrites a newer one
in landing. ``retention.landed=keep`` leaves committed copies in their claim folder,
marked ``.settled`` so that no later run hashes them again.

The attempts record (``<workspace>/attempts.json``) counts, by content hash, the runs that
died while reading a file (recorded before its read, cleared as soon as the read returns,
so a file read fine before another one killed the run is not blamed) and the runs that
died validating an arrival it was in (recorded before validate, cleared after it). A file
that took down the pipeline ``ingest.max_attempts`` times in either phase (the OOM
killer, a segfault in a reader) is quarantined instead of being tried again, and the
arrivals behind it go on. Validate sees an arrival as a whole, so a crash there counts
against every file of that arrival.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from seriesflow.data.errors import shown_name
from seriesflow.workspace.files import Workspace, read_json, sha256_file, utcnow, write_json
from seriesflow.workspace.landing import FILE, ClaimLost, Landing
from seriesflow.workspace.ledger import FAILED, INGESTED, REJECTED, LandedFile

Log = Callable[[str], None]
ARCHIVE, KEEP, DELETE = "archive", "keep", "delete"
SETTLED_MARK = ".settled"  # a claim folder whose files are all committed and kept


def claims_root(workspace: Workspace) -> Path:
    return workspace.root / "claimed"


def attempts_path(workspace: Workspace) -> Path:
    return workspace.root / "attempts.json"


def _next_slot(folder: Path) -> Path:
    taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.exists() else []
    return folder / f"{max(taken, default=0) + 1:04d}"


def _claimed_file(path: Path, source: str) -> LandedFile:
    info = path.stat()
    return LandedFile(
        path, sha256_file(path), info.st_size, info.st_mtime, info.st_mtime_ns, source=source
    )


def claim_landed(
    workspace: Workspace, run_id: str, landing: Landing, files: list[LandedFile], log: Log
) -> list[LandedFile]:
    """Claim each settled regular file into this run's claim folder; the claimed copies
    come back hashed. A file that changed since it settled, or cannot be moved, stays in
    landing for a later run (logged); links and special files are never moved."""
    folder = claims_root(workspace) / run_id
    claimed = []
    for landed in files:
        if landed.kind != FILE:
            claimed.append(landed)
            continue
        dest = _next_slot(folder) / landed.name
        try:
            landing.claim(landed.name, list(landed.fingerprint), dest)
        except ClaimLost as exc:
            log(f"{exc}: left in landing for the next run")
            _drop_empty(dest.parent)
            continue
        except OSError as exc:  # a read-only landing, a permission: never read in place
            log(
                f"Could not claim {shown_name(landed.source)} ({type(exc).__name__}: {exc}); it "
                "stays in landing unread (ingest moves a file out of landing before reading it)"
            )
            _drop_empty(dest.parent)
            continue
        claimed.append(replace(_claimed_file(dest, landed.source), mtime=landed.mtime))
    return claimed


def _drop_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _stale_files(workspace: Workspace, run_id: str | None) -> list[tuple[str, Path]]:
    """(run id, path) of every file in a claim folder not settled (``run_id``'s excepted)."""
    root = claims_root(workspace)
    if not root.exists():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name == run_id or (folder / SETTLED_MARK).exists():
            continue
        # slots sort by number: the order the files were claimed in (the order they landed)
        for path in sorted(folder.glob("*/*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                found.append((folder.name, path))
    return found


def adopt_stale(workspace: Workspace, run_id: str, known: set[str], log: Log) -> list[LandedFile]:
    """Take over the claimed files that no commit recorded (their run died or failed):
    moved into this run's claim folder (a rename inside the workspace) and returned as
    arrivals, oldest claim first, one per name (a later one waits for the next run)."""
    folder = claims_root(workspace) / run_id
    adopted: list[LandedFile] = []
    for previous, path in _stale_files(workspace, run_id):
        if path.name in {f.name for f in adopted}:
            continue
        landed = _claimed_file(path, str(path))
        if landed.sha256 in known:
            continue  # committed: tidy_claims disposes of it
        dest = _next_slot(folder) / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.rename(dest)
        _drop_empty(path.parent)
        log(
            f"{shown_name(path.name)}: claimed by run {previous}, which never committed it: "
            "taken over"
        )
        adopted.append(replace(landed, path=dest))
    return adopted


def own_claims(workspace: Workspace, run_id: str) -> list[LandedFile]:
    """The files already in ``run_id``'s claim folder: what an earlier try of the same run's
    ingest claimed or took over before it failed (a retry reads them, in claim order)."""
    folder = claims_root(workspace) / run_id
    if not folder.exists():
        return []
    found = []
    for path in sorted(folder.glob("*/*")):
        if path.is_file() and not path.name.startswith(".tmp-"):
            found.append(_claimed_file(path, str(path)))
    return found


def tidy_claims(
    workspace: Workspace, ledger: pd.DataFrame, mode: str, log: Log | None = None
) -> list[str]:
    """Dispose of every claimed file whose content the ledger holds (see the module doc);
    returns the names that were archived, deleted or moved to quarantine."""
    log = log or logging.getLogger("seriesflow").warning
    status = dict(zip(ledger["sha256"], ledger["status"], strict=True)) if len(ledger) else {}
    done = []
    for _, path in _stale_files(workspace, None):
        try:
            sha = sha256_file(path)
        except OSError as exc:  # unreadable: left claimed, and said, never a failed run
            log(
                f"Could not read the claimed copy {shown_name(str(path))} ({exc}); left where it is"
            )
            continue
        state = status.get(sha)
        if state is None:
            continue  # not committed: the next ingest takes it over
        try:
            if state in (REJECTED, FAILED):
                shutil.move(str(path), _dated_target(workspace.quarantine, path.name, sha))
            elif mode == ARCHIVE:
                shutil.move(str(path), _dated_target(workspace.archive, path.name, sha))
            elif mode == DELETE:
                path.unlink()
            else:
                continue  # keep: it stays in its claim folder
        except OSError as exc:
            log(
                f"Could not {mode} the claimed copy {shown_name(str(path))} ({exc}); "
                "the next run tries again"
            )
            continue
        _drop_empty(path.parent)
        done.append(path.name)
    _settle_folders(workspace, status)
    return done


def _dated_target(base: Path, name: str, sha: str) -> Path:
    folder = base / utcnow().strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    return folder / f"{sha[:12]}-{name}" if target.exists() else target


def _settle_folders(workspace: Workspace, status: dict[str, str]) -> None:
    """Remove emptied claim folders; mark those left with only committed (kept) files."""
    root = claims_root(workspace)
    if not root.exists():
        return
    for folder in (p for p in root.iterdir() if p.is_dir()):
        if (folder / SETTLED_MARK).exists():
            continue
        files = [p for p in folder.glob("*/*") if p.is_file()]
        if not files:
            shutil.rmtree(folder, ignore_errors=True)
            continue
        try:
            settled = all(status.get(sha256_file(p)) == INGESTED for p in files)
        except OSError:
            continue
        if settled:
            (folder / SETTLED_MARK).write_text(utcnow().isoformat(), encoding="utf-8")


def pending_claims(workspace: Workspace, known: set[str]) -> list[LandedFile]:
    """Claimed files no commit recorded (the watcher announces them: a run takes them over).
    The watcher holds no lock: a file a run moves meanwhile is simply not counted."""
    files = []
    for _, path in _stale_files(workspace, None):
        try:
            files.append(_claimed_file(path, str(path)))
        except OSError:
            continue
    return [f for f in files if f.sha256 not in known]


# --------------------------------------------------------------------------- attempts


def _attempts(workspace: Workspace) -> dict[str, Any]:
    path = attempts_path(workspace)
    try:
        return read_json(path) if path.exists() else {}
    except (OSError, ValueError):
        return {}  # a damaged record costs the count, never a run


READ, VALIDATE = "read", "validate"


def record_attempt(workspace: Workspace, landed: LandedFile, run_id: str) -> dict[str, list[str]]:
    """Record, durably and before the read, that ``run_id`` starts reading ``landed``;
    returns the earlier runs that died reading it and that died validating an arrival it was
    in (``{"read": [...], "validate": [...]}``)."""
    record = _attempts(workspace)
    entry = record.setdefault(landed.sha256, {"name": landed.name, READ: [], VALIDATE: []})
    earlier = {
        phase: [r for r in entry.get(phase, []) if r != run_id] for phase in (READ, VALIDATE)
    }
    entry[READ] = [*earlier[READ], run_id]
    write_json(record, attempts_path(workspace))
    return earlier


def read_done(workspace: Workspace, landed: LandedFile, run_id: str) -> None:
    """``run_id`` got through reading ``landed`` (whatever the verdict): not its crash."""
    record = _attempts(workspace)
    entry = record.get(landed.sha256)
    if entry is None or run_id not in entry.get(READ, []):
        return
    entry[READ] = [r for r in entry[READ] if r != run_id]
    write_json(record, attempts_path(workspace))


def validating(workspace: Workspace, hashes: Iterable[str], run_id: str) -> None:
    """Record, before validate, that ``run_id`` validates an arrival of these files (a crash
    there counts against each of them: validate sees the arrival as a whole)."""
    record = _attempts(workspace)
    for sha in hashes:
        entry = record.setdefault(sha, {"name": "", READ: [], VALIDATE: []})
        entry[VALIDATE] = [*(r for r in entry.get(VALIDATE, []) if r != run_id), run_id]
    write_json(record, attempts_path(workspace))


def clear_attempts(workspace: Workspace, hashes: Iterable[str]) -> None:
    """The files got through validate (accepted or rejected): their count starts over."""
    record = _attempts(workspace)
    hashes = set(hashes)
    if not hashes & set(record):
        return
    write_json({k: v for k, v in record.items() if k not in hashes}, attempts_path(workspace))
