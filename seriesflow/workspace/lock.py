"""One writer per workspace: an OS-level file lock around everything a run changes.

Whatever starts a retrain -- a deployment, ``make run`` while ``make serve`` is up,
``python -m flows.retrain``, ``tune --retrain-best`` -- it takes this lock before it reads
the history and holds it until its commit is done. A second run waits (and logs for
whom) or, with ``wait=False``, gives up at once with ``WorkspaceBusy``.

The lock is ``flock`` on ``<workspace>/workspace.lock`` (the ``filelock`` package): the
kernel drops it when the holder dies, however it dies, so a crash never leaves a stale
lock behind. ``workspace.lock.owner`` says who holds it (run, pid, host, since when), for
the waiting run's log line, and as evidence: a holder that ends normally deletes it, so a
run that finds it on taking the lock knows the previous holder died holding it (and
recovers, ``seriesflow/workspace/commit.py``). The lock itself is the kernel's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from seriesflow.workspace.files import Workspace, utcnow

OWNER_SUFFIX = ".owner"


class WorkspaceBusy(RuntimeError):
    """Another run holds the workspace and this one was told not to wait."""

    def __init__(self, workspace: Path, holder: str) -> None:
        self.holder = holder
        super().__init__(f"workspace busy: {workspace} is held by {holder}")


def holder_of(lock_file: Path) -> str:
    """Who holds the lock, as its owner file says (best effort: it may be stale)."""
    try:
        owner = json.loads(Path(str(lock_file) + OWNER_SUFFIX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "another run"
    return (
        f"{owner.get('owner', 'a run')} (pid {owner.get('pid')} on {owner.get('host')}, "
        f"since {owner.get('since')})"
    )


@contextlib.contextmanager
def workspace_lock(
    workspace: Path,
    owner: str,
    wait: bool = True,
    log: Callable[[str], None] | None = None,
    poll_seconds: float = 0.5,
) -> Iterator[str | None]:
    """Hold the workspace's writer lock; ``owner`` names the holder for waiting runs.

    Yields who held the lock before if that holder died holding it (its owner note was
    left behind), else None.
    """
    workspace.mkdir(parents=True, exist_ok=True)
    lock_file = Workspace(workspace).lock
    # preserve_lock_file: never unlink on release (a waiter may hold the old inode); it also
    # rules out the "soft" fallback, a marker file that a killed holder would leave behind.
    lock = FileLock(lock_file, is_singleton=False, preserve_lock_file=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = holder_of(lock_file)
        if not wait:
            raise WorkspaceBusy(workspace, holder) from None
        (log or logging.getLogger("seriesflow").info)(
            f"Workspace {workspace} is busy: {holder} holds it; waiting for it to finish "
            "(--no-wait ends this run as skipped instead)"
        )
        lock.acquire(timeout=-1, poll_interval=poll_seconds)
    note = Path(str(lock_file) + OWNER_SUFFIX)
    crashed = holder_of(lock_file) if note.exists() else None
    try:
        note.write_text(
            json.dumps(
                {
                    "owner": owner,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": utcnow().isoformat(timespec="seconds"),
                }
            ),
            encoding="utf-8",
        )
        yield crashed
    finally:
        note.unlink(missing_ok=True)  # a killed holder never gets here: it leaves its note
        lock.release()
