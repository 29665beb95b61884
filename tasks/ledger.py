"""The ingest ledger: every landed file by content hash, so each is read once.

A file is *new* when its content hash is not in the ledger: renaming or
re-copying an identical file is not new data, and an edited file with the same
name is. Files that are still being written (modified within the last
``settle_seconds``) or carry a temporary name are left for a later look.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.io import sha256_file, utcnow, write_table
from tasks.schema import LEDGER_SCHEMA

INGESTED, REJECTED = "ingested", "rejected"

# Names that writers use while a file is still being produced.
_TEMP_PREFIXES = (".", "~", "_")
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", ".swp", ".lock")


@dataclass(frozen=True)
class LandedFile:
    path: Path
    sha256: str
    bytes: int
    mtime: float

    @property
    def name(self) -> str:
        return self.path.name


def is_temporary_name(name: str) -> bool:
    lower = name.lower()
    return lower.startswith(_TEMP_PREFIXES) or lower.endswith(_TEMP_SUFFIXES)


def landing_files(landing: Path) -> list[Path]:
    """Regular files in ``landing`` (not recursive) that do not carry a temporary name."""
    if not landing.exists():
        return []
    return [p for p in landing.iterdir() if p.is_file() and not is_temporary_name(p.name)]


def scan_landing(
    landing: Path, settle_seconds: float, now: float | None = None
) -> list[LandedFile]:
    """Settled, non-temporary files in ``landing`` (not recursive), oldest first.

    Files of any extension are returned: deciding what is readable is ingest's
    job, so an unknown extension gets a clear rejection instead of silence.
    """
    now = time.time() if now is None else now
    found = []
    for path in landing_files(landing):
        stat = path.stat()
        if now - stat.st_mtime < settle_seconds:
            continue  # still being written; the next look will see it settled
        found.append(LandedFile(path, sha256_file(path), stat.st_size, stat.st_mtime))
    # Later files win on duplicate (series, timestamp): order by time landed, then name.
    return sorted(found, key=lambda f: (f.mtime, f.name))


def load_ledger(path: Path) -> pd.DataFrame:
    if not path.exists():
        return LEDGER_SCHEMA.empty_table().to_pandas()
    return pq.read_table(path).to_pandas()


def known_hashes(ledger: pd.DataFrame) -> set[str]:
    return set(ledger["sha256"])


def find_new(files: list[LandedFile], ledger: pd.DataFrame) -> list[LandedFile]:
    """Files whose content is not in the ledger (each content once, first path wins)."""
    known = known_hashes(ledger)
    new, seen = [], set()
    for landed in files:
        if landed.sha256 in known or landed.sha256 in seen:
            continue
        seen.add(landed.sha256)
        new.append(landed)
    return new


def ledger_rows(
    files: list[LandedFile], status: str, run_id: str, reasons: dict[str, str] | None = None
) -> pd.DataFrame:
    reasons = reasons or {}
    now = utcnow()
    return pd.DataFrame(
        {
            "name": [f.name for f in files],
            "sha256": [f.sha256 for f in files],
            "bytes": [f.bytes for f in files],
            "status": [status] * len(files),
            "run_id": [run_id] * len(files),
            "recorded_at": [now] * len(files),
            "reason": [reasons.get(f.sha256) for f in files],
        }
    )


def append_ledger(path: Path, rows: pd.DataFrame) -> Path:
    """Append rows to the ledger file (atomic rewrite; the ledger stays small)."""
    old = load_ledger(path)
    merged = pd.concat([old, rows], ignore_index=True) if len(old) else rows
    table = pa.Table.from_pandas(merged, schema=LEDGER_SCHEMA, preserve_index=False)
    return write_table(table, path)
