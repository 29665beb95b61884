"""Quarantine: move a rejected file out of the landing folder, with the reason beside it.

The ledger records the file's content hash as rejected, so the same bytes are
not tried again; a corrected file (new content) is picked up as new.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tasks.errors import CheckFailure
from tasks.io import Workspace, utcnow, write_json
from tasks.ledger import REJECTED, LandedFile, append_ledger, ledger_rows


def quarantine(
    workspace: Workspace, landed: LandedFile, failures: list[CheckFailure], run_id: str
) -> Path:
    """Move ``landed`` to ``quarantine/<date>/`` with ``<name>.reason.json``; ledger it."""
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
    if landed.path.exists():
        shutil.move(str(landed.path), target)
    reason = "; ".join(f"{f.check}({f.column or '-'})" for f in failures)
    append_ledger(
        workspace.ledger, ledger_rows([landed], REJECTED, run_id, {landed.sha256: reason})
    )
    return target


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
        target = quarantine(workspace, by_name[name], items, run_id)
        records.append(
            {
                "name": name,
                "sha256": by_name[name].sha256,
                "quarantined_to": str(target),
                "failures": [f.to_dict() for f in items],
            }
        )
    return records
