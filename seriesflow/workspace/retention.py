"""What the workspace keeps: landed files after their commit, and how many run folders.

- ``retention.landed``: a file is claimed out of landing before it is read
  (``seriesflow/workspace/claims.py``); once a run's data is committed, the claimed copy --
  the bytes that were read and ledgered, never whatever holds the name in landing by then --
  is moved to ``<workspace>/archive/<date>/`` (default), deleted, or kept where it was
  claimed (``<workspace>/claimed/<run-id>/``). A copy that cannot be moved stays claimed,
  and the next run tries again (``tidy_claims``); so does one whose commit finished in a
  recovery, or a byte-identical copy of an ingested file.
- ``retention.keep_runs``: the newest run folders are kept, older ones deleted -- never
  the champion's (its validated rows are the lineage of the model in service), never
  the folder of a commit still in progress. It fails closed: when the champion cannot be
  looked up (the registry does not answer), nothing is pruned this time.
- ``history.vacuum_hours``: the history table's data files that no version newer than
  that needs (Delta's vacuum: files a merge or compaction replaced, a torn write's files)
  are deleted -- never those of the champion's training version (``keep_versions``), so it
  still time-travels. It fails closed too: when the champion's version cannot be told (the
  registry does not answer, or the champion predates the table and has no tag), nothing is
  vacuumed.

Nothing here changes the history's rows, the ledger or the registry.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from seriesflow.workspace.claims import ARCHIVE, DELETE, KEEP, tidy_claims
from seriesflow.workspace.files import Workspace, utcnow
from seriesflow.workspace.history import open_table
from seriesflow.workspace.ledger import LandedFile

__all__ = [
    "ARCHIVE",
    "DELETE",
    "KEEP",
    "dispose_landed",
    "prune_runs",
    "tidy_claims",
    "vacuum_history",
]

Log = Callable[[str], None]


def _archive_target(workspace: Workspace, landed: LandedFile) -> Path:
    folder = workspace.archive / utcnow().strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / landed.name
    if target.exists():
        target = folder / f"{landed.sha256[:12]}-{landed.name}"
    return target


def dispose_landed(
    workspace: Workspace, files: list[LandedFile], mode: str, log: Log | None = None
) -> list[str]:
    """Archive, delete or keep the claimed copies of committed files (``landed.path``: the
    file whose hash is in the ledger); returns the names that were archived or deleted."""
    log = log or logging.getLogger("seriesflow").warning
    gone = []
    for landed in files:
        if mode == KEEP:
            continue
        try:
            if mode == ARCHIVE:
                shutil.move(str(landed.path), _archive_target(workspace, landed))
            else:
                landed.path.unlink()
        except OSError as exc:
            log(f"Could not {mode} {landed.path} ({exc}); it stays claimed, ledgered")
            continue
        gone.append(landed.name)
    return gone


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


class _NoTag(LookupError):
    """The champion has no history version tag: which files it needs is unknown."""


def vacuum_history(
    workspace: Workspace,
    hours: int,
    champion: Callable[[], tuple[bool, int | None]] = lambda: (False, None),
    log: Log | None = None,
) -> list[str]:
    """Delete the history table's files no version newer than ``hours`` needs, keeping
    every file of the champion's training version; returns the files deleted.

    ``champion`` returns (is there a champion, its history version). A champion without a
    version (registered before the table), or a lookup that raises, vacuums nothing.
    """
    log = log or logging.getLogger("seriesflow").warning
    table = open_table(workspace)
    if table is None:
        return []
    try:
        exists, version = champion()
        if exists and version is None:
            raise _NoTag("the champion has no seriesflow.history_version tag")
    except Exception as exc:  # noqa: BLE001 - fail closed whatever the lookup's failure
        log(f"Retention vacuumed no history file this time: {type(exc).__name__}: {exc}")
        return []
    keep = [version] if version is not None else None
    return table.vacuum(
        retention_hours=hours,
        dry_run=False,
        enforce_retention_duration=False,
        keep_versions=keep,
        full=True,  # files no version references (a killed write's) go too, once old
    )
