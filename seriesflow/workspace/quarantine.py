"""Quarantine: move a rejected file's claimed copy aside, with the reason beside it.

What moves is ``landed.path``: the copy ingest claimed out of landing and read (its hash is
the one ledgered), never the name in landing, which a producer may have rewritten since.

The ledger records the file's content hash as rejected, so the same bytes are not
tried again; a corrected file (new content) is picked up as new.

Nothing here stops a run: a file that cannot be moved (a permission, a full disk, a
folder in the way) is ledgered ``failed`` with the reason and left where it is, and the
rest of the arrival goes on. A symlink or special file is never moved or read: it is
ledgered ``rejected`` with its kind ("symlink") as the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from seriesflow.data.errors import CheckFailure
from seriesflow.workspace.files import Workspace, utcnow, write_json
from seriesflow.workspace.landing import FILE, Landing, is_remote
from seriesflow.workspace.ledger import (
    FAILED,
    REJECTED,
    UNREADABLE,
    LandedFile,
    append_ledger,
    ledger_rows,
)


def _landing_of(landed: LandedFile) -> Landing | None:
    """The landing a remote file came from (None for a local one)."""
    if not is_remote(landed.source):
        return None
    return Landing(landed.source.rsplit("/", 1)[0])


def quarantine(
    workspace: Workspace, landed: LandedFile, failures: list[CheckFailure], run_id: str
) -> Path | None:
    """Move ``landed`` to ``quarantine/<date>/`` with ``<name>.reason.json``; ledger it.

    Returns where it went, or None when it stayed (a link, or a file that could not be
    moved: then it is ledgered ``failed``).
    """
    reason = "; ".join(f"{f.check}({f.column or '-'})" for f in failures)
    if landed.kind not in (FILE, UNREADABLE):
        append_ledger(
            workspace.ledger,
            ledger_rows([landed], REJECTED, run_id, {landed.sha256: landed.kind}),
        )
        return None
    try:
        folder = workspace.quarantine / utcnow().strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / landed.name
        if target.exists():
            target = folder / f"{landed.sha256[:12]}-{landed.name}"
        write_json(
            {
                "file": landed.name,
                "sha256": landed.sha256,
                "bytes": landed.bytes,
                "run_id": run_id,
                "rejected_at": utcnow().isoformat(),
                "failures": [f.to_dict() for f in failures],
            },
            target.with_name(target.name + ".reason.json"),
        )
        remote = _landing_of(landed)
        if landed.kind == UNREADABLE and remote is not None:
            # listed but never claimed (it could not be hashed): the object itself
            remote.move_out(landed.name, None, target)
        else:
            shutil.move(str(landed.path), target)  # the claimed copy (or a local file)
    except OSError as exc:
        why = f"{reason}; could not be moved to quarantine ({type(exc).__name__}: {exc})"
        append_ledger(workspace.ledger, ledger_rows([landed], FAILED, run_id, {landed.sha256: why}))
        raise QuarantineFailed(why) from exc
    append_ledger(
        workspace.ledger, ledger_rows([landed], REJECTED, run_id, {landed.sha256: reason})
    )
    return target


class QuarantineFailed(OSError):
    """The file was ledgered ``failed`` and left in landing."""


def quarantine_files(
    workspace: Workspace,
    files: list[LandedFile],
    failures: dict[str, list[CheckFailure]],
    run_id: str,
) -> list[dict[str, Any]]:
    """Quarantine every file named in ``failures``; one record each for validation.json."""
    by_name = {f.name: f for f in files}
    records = []
    for name, items in failures.items():
        error = None
        try:
            target = quarantine(workspace, by_name[name], items, run_id)
        except QuarantineFailed as exc:
            target, error = None, str(exc)
        records.append(
            {
                "name": name,
                "sha256": by_name[name].sha256,
                "quarantined_to": None if target is None else str(target),
                "error": error,
                "failures": [f.to_dict() for f in items],
            }
        )
    return records
