"""The ingest ledger, and which landed files are settled and new.

A file is *new* when its content hash is not in the ledger: renaming or re-copying an
identical file is not new data, and an edited file with the same name is.

A file is *settled* when two looks at least ``settle_seconds`` apart saw the same size,
modification time, inode and change time (in an object store: size and ETag). The looks
persist in a small JSON file in the workspace (``Workspace.looks``), so the watcher's polls
and the runs' scans all count. Temporary names (``.part``, ``.tmp``, a leading dot...) and
names that match none of ``ingest.patterns`` are never looked at.

Hashes are memoized in the looks, keyed by that fingerprint: content identity a rewrite
cannot fake (a rewrite that keeps the size and sets the old mtime back still changes the
inode's ctime; an object's ETag follows its content). Where the listing gives no such
identity (no inode, no ETag) the file is hashed at every look. Ingested files are not in
landing any more (ingest claims a file before reading it), so the memo serves the files
still waiting for a run.

Symlinks and special files are never read: they come back with their kind and a
stand-in hash (``symlink:<name>:<size>:<mtime_ns>``) so that ingest can ledger them as
rejected once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seriesflow.data.schema import LEDGER_SCHEMA
from seriesflow.workspace.files import atomic_path, utcnow, write_table
from seriesflow.workspace.landing import FILE, Landing, is_temporary_name

__all__ = ["is_temporary_name"]  # re-exported: the landing filter, by its old name

INGESTED, REJECTED, FAILED = "ingested", "rejected", "failed"
UNREADABLE = "unreadable"  # a file listed but not hashable (kind of a LandedFile)
LOOKS_TMP_PREFIX = ".looks-tmp-"  # not ".tmp-": the watcher writes it without the lock


@dataclass(frozen=True)
class LandedFile:
    """A settled landed file. ``path`` is a local file to read (for an object store: the
    fetched copy, once fetched); ``source`` where it landed (a path or a URL)."""

    path: Path
    sha256: str
    bytes: int
    mtime: float
    mtime_ns: int = 0
    kind: str = FILE  # file | symlink | special | unreadable
    source: str = ""
    error: str | None = None  # why an unreadable file could not be hashed
    fingerprint: tuple = ()  # the listing's (Entry.fingerprint) when it settled: claim checks it

    @property
    def name(self) -> str:
        return self.path.name


def _stand_in(kind: str, name: str, size: int, mtime_ns: int) -> str:
    """The ledger key of a file that is never read: stable while it does not change."""
    return f"{kind}:{name}:{size}:{mtime_ns}"


def _load_looks(state: Path | None, location: str) -> dict[str, dict]:
    if state is None or not state.exists():
        return {}
    try:
        return json.loads(state.read_text(encoding="utf-8")).get(location, {})
    except (OSError, ValueError):
        return {}  # a damaged state file costs one more look, nothing else


def _save_looks(state: Path | None, location: str, looks: dict[str, dict]) -> None:
    if state is None:
        return
    try:
        tree = json.loads(state.read_text(encoding="utf-8")) if state.exists() else {}
    except (OSError, ValueError):
        tree = {}
    tree[location] = looks
    with atomic_path(state, prefix=LOOKS_TMP_PREFIX, durable=False) as tmp:
        tmp.write_text(json.dumps(tree), encoding="utf-8")


@dataclass(frozen=True)
class Scan:
    """One look at the landing: settled files, and those still waiting to settle."""

    files: list[LandedFile]
    waiting: list[str]
    wait_seconds: float  # until the last waiting file could settle, if unchanged


def look(
    landing: Landing | Path | str,
    settle_seconds: float,
    now: float | None = None,
    state: Path | None = None,
) -> Scan:
    """Look at the landing once; record the look in ``state`` (when given)."""
    landing = landing if isinstance(landing, Landing) else Landing(landing)
    now = time.time() if now is None else now
    before = _load_looks(state, landing.location)
    looks: dict[str, dict] = {}
    files, waiting, wait = [], [], 0.0
    for entry in landing.entries():
        seen = before.get(entry.name)
        same = seen is not None and seen.get("fp") == entry.fingerprint
        first = float(seen["first"]) if same else now
        known = seen.get("sha256") if same else None
        record = {"fp": entry.fingerprint, "first": first, "sha256": known}
        looks[entry.name] = record
        mtime = entry.mtime_ns / 1e9
        if entry.kind != FILE:  # never read, never waited for
            stand_in = _stand_in(entry.kind, entry.name, entry.size, entry.mtime_ns)
            files.append(
                LandedFile(
                    Path(entry.name),
                    stand_in,
                    entry.size,
                    mtime,
                    entry.mtime_ns,
                    entry.kind,
                    landing.source(entry.name),
                )
            )
            continue
        if now - first < settle_seconds:
            waiting.append(entry.name)
            wait = max(wait, settle_seconds - (now - first))
            continue
        kind, error = FILE, None
        sha = record["sha256"] if entry.has_identity else None
        if sha is None:
            try:
                sha = landing.sha256(entry.name)
            except OSError as exc:  # vanished, unreadable: isolated, never blocks the rest
                kind, error = UNREADABLE, f"{type(exc).__name__}: {exc.strerror or exc}"
                sha = _stand_in(UNREADABLE, entry.name, entry.size, entry.mtime_ns)
        if kind == FILE:
            record["sha256"] = sha
        path = Path(entry.name) if landing.remote else landing.path(entry.name)
        files.append(
            LandedFile(
                path,
                sha,
                entry.size,
                mtime,
                entry.mtime_ns,
                kind,
                landing.source(entry.name),
                error=error,
                fingerprint=tuple(entry.fingerprint),
            )
        )
    _save_looks(state, landing.location, looks)
    # Later files win on duplicate (series, timestamp): order by time landed, then name.
    return Scan(sorted(files, key=lambda f: (f.mtime, f.name)), sorted(waiting), wait)


def settle(
    landing: Landing | Path | str,
    settle_seconds: float,
    state: Path | None,
    second_look: bool = True,
    log: Callable[[str], None] | None = None,
) -> Scan:
    """Look; when files are still waiting to settle and ``second_look``, wait until they
    could have (at most ``settle_seconds``) and look again."""
    scan = look(landing, settle_seconds, state=state)
    if scan.waiting and second_look and state is not None:
        pause = min(scan.wait_seconds, settle_seconds)
        if log is not None:
            log(
                f"{len(scan.waiting)} file(s) first seen or changed since the last look: "
                f"looking again in {pause:.0f} s (ingest.settle_seconds)"
            )
        time.sleep(pause)
        scan = look(landing, settle_seconds, state=state)
    return scan


def scan_landing(
    landing: Landing | Path | str,
    settle_seconds: float,
    now: float | None = None,
    state: Path | None = None,
) -> list[LandedFile]:
    """The settled files of one look (see ``look``); without ``state`` every look is a
    first one, so only ``settle_seconds=0`` settles anything."""
    return look(landing, settle_seconds, now, state).files


def load_ledger(path: Path) -> pd.DataFrame:
    if not path.exists():
        return LEDGER_SCHEMA.empty_table().to_pandas()
    frame = pq.read_table(path).to_pandas()
    for field in LEDGER_SCHEMA:  # ledgers written before a column existed
        if field.name not in frame:
            frame[field.name] = None
    return frame


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
            "mtime_ns": pd.array([f.mtime_ns or None for f in files], dtype="Int64"),
        }
    )


def merge_ledger(old: pd.DataFrame, rows: pd.DataFrame) -> pa.Table:
    """``old`` + ``rows``, a file's content recorded once (a replayed commit adds nothing)."""
    if len(old):
        rows = rows[~rows["sha256"].isin(set(old["sha256"]))]
    parts = [part for part in (old, rows) if len(part)]
    if not parts:
        return LEDGER_SCHEMA.empty_table()
    merged = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    merged = merged.astype({"mtime_ns": "Int64"})
    return pa.Table.from_pandas(merged, schema=LEDGER_SCHEMA, preserve_index=False)


def append_ledger(path: Path, rows: pd.DataFrame) -> Path:
    """Append rows to the ledger file (atomic, durable rewrite; the ledger stays small)."""
    return write_table(merge_ledger(load_ledger(path), rows), path)
