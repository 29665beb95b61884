"""What the workspace keeps: landed files after their commit, and how many run folders.

- ``retention.landed``: once a run's data is committed, the files it took leave the
  landing area -- moved to ``<workspace>/archive/<date>/`` (default), deleted, or kept in
  place (the ledger remembers them, and its hash memo means a poll never reads them
  again). A file that cannot be moved stays, and the next run tries again; so does a
  file whose commit finished in a recovery, or a byte-identical copy of an ingested file.
- ``retention.keep_runs``: the newest run folders are kept, older ones deleted -- never
  the champion's (its validated rows are the lineage of the model in service), never
  the folder of a commit still in progress. It fails closed: when the champion cannot be
  looked up (the registry does not answer), nothing is pruned this time.

Nothing here changes the history, the ledger or the registry.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from seriesflow.workspace.files import Workspace, utcnow
from seriesflow.workspace.landing import FILE, Landing, is_remote
from seriesflow.workspace.ledger import INGESTED, LandedFile, hash_memo

Log = Callable[[str], None]
ARCHIVE, KEEP, DELETE = "archive", "keep", "delete"


def _archive_target(workspace: Workspace, landed: LandedFile) -> Path:
    folder = workspace.archive / utcnow().strftime("%Y-%m-%d")
    target = folder / landed.name
    if target.exists():
        target = folder / f"{landed.sha256[:12]}-{landed.name}"
    return target


def dispose_landed(
    workspace: Workspace, files: list[LandedFile], mode: str, log: Log | None = None
) -> list[str]:
    """Archive, delete or keep committed files; returns the names that left landing."""
    log = log or logging.getLogger("seriesflow").warning
    gone = []
    for landed in files:
        if mode == KEEP:
            continue
        source = landed.source or str(landed.path)
        landing = Landing(source.rsplit("/", 1)[0] if is_remote(source) else Path(source).parent)
        fetched = landed.path if landing.remote else None
        try:
            if mode == ARCHIVE:
                landing.move_out(landed.name, fetched, _archive_target(workspace, landed))
            else:
                landing.remove(landed.name)
                if fetched is not None:
                    fetched.unlink(missing_ok=True)
        except OSError as exc:
            log(f"Could not {mode} {landed.name} ({exc}); it stays in landing, ledgered")
            continue
        gone.append(landed.name)
    return gone


def tidy_landing(
    workspace: Workspace, landing: Landing, ledger: pd.DataFrame, mode: str, log: Log | None = None
) -> list[str]:
    """Dispose of files still in landing that the ledger says were ingested, found by the
    hash memo (name, size, mtime_ns): no file is read."""
    if mode == KEEP:
        return []
    ingested = ledger[ledger["status"] == INGESTED]
    memo = hash_memo(ingested)
    leftovers = [
        LandedFile(
            landing.path(e.name) if not landing.remote else Path(e.name),
            memo[(e.name, e.size, e.mtime_ns)],
            e.size,
            e.mtime_ns / 1e9,
            e.mtime_ns,
            source=landing.source(e.name),
        )
        for e in landing.entries()
        if e.kind == FILE and (e.name, e.size, e.mtime_ns) in memo
    ]
    return dispose_landed(workspace, leftovers, mode, log)


def prune_runs(
    workspace: Workspace,
    keep: int,
    protect: set[str],
    champion: Callable[[], str | None] = lambda: None,
    log: Log | None = None,
) -> list[str]:
    """Delete all but the newest ``keep`` run folders, never those named in ``protect``, nor
    the champion's (``champion`` looks its folder up: None when there is no champion).

    When ``champion`` raises (a 503, a timeout, a journal that cannot be read), which folder
    is the champion's is unknown: nothing is deleted, and ``log`` says why. The next run
    tries again; a folder kept too long costs disk, a folder deleted wrongly costs lineage.
    """
    if not workspace.runs.exists():
        return []
    try:
        protect = protect | {champion()} - {None}
    except Exception as exc:  # noqa: BLE001 - fail closed whatever the lookup's failure
        (log or logging.getLogger("seriesflow").warning)(
            f"Retention kept every run folder this time: {type(exc).__name__}: {exc}"
        )
        return []
    folders = sorted(p for p in workspace.runs.iterdir() if p.is_dir())  # ids sort by time
    removed = []
    for folder in folders[: max(0, len(folders) - keep)]:
        if folder.name in protect:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    return removed
