"""The landing area: a local folder or an object store (any fsspec URL), as a flat listing.

``Landing("data/landing")`` or ``Landing("s3://bucket/prefix")`` lists the files directly
under the location (not recursive, temporary names left out), hashes them, fetches a
remote one into a local file, and moves or deletes one once the pipeline is done with
it. Everything else in the pipeline reads local files: a remote file is fetched into the
run folder first, and its hash checked against the one taken when it was listed.

A local landing is never read through a link: symlinks and special files (FIFOs,
sockets, devices) are listed with their kind and never opened, so a link to a secret
cannot be ingested, quoted in an error, or block a run (a FIFO would).

Only names that match ``ingest.patterns`` (``*.csv``, ``*.parquet``, ``*.pq`` by default)
are listed: a landing folder shared with other tools keeps their files (``README.txt``,
``export.xlsx``, a state file) untouched, unread and unreported.

A settled file is *claimed* before it is read (``claim``): moved out of landing into the
workspace (``claimed/<run-id>/``), so what is read, ledgered, archived, deleted or
quarantined is that copy, never whatever holds the name in landing by then; a producer that
rewrites the name afterwards makes a new arrival. Locally the claim is one atomic rename
(a copy, a check that the name still holds the same inode and ctime, then an unlink when
the landing is on another file system); in an object store it is a copy whose ETag is
checked before and after, then the delete of the key, only while it still has that ETag.

Object stores: credentials and the endpoint come from the environment (``AWS_*``,
``AWS_ENDPOINT_URL_S3``), never from the URL (the config refuses that); listings are
always fresh (s3fs caches them per instance otherwise). S3 has no delete-if-ETag, so a
rewrite in the instant between the last ETag check and the delete is lost to the producer
(the window is one request long; writers that upload under a temporary name and rename
never hit it).
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import shutil
import stat as stat_kind
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seriesflow.ops.extras import install_hint, require
from seriesflow.ops.secrets import redact_url
from seriesflow.workspace.files import atomic_path, sha256_file

FILE, SYMLINK, SPECIAL = "file", "symlink", "special"

# Names that writers use while a file is still being produced.
_TEMP_PREFIXES = (".", "~", "_")
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", ".swp", ".lock")


def is_temporary_name(name: str) -> bool:
    lower = name.lower()
    return lower.startswith(_TEMP_PREFIXES) or lower.endswith(_TEMP_SUFFIXES)


def _local_entry(name: str, kind: str, info: os.stat_result) -> Entry:
    return Entry(
        name, kind, info.st_size, info.st_mtime_ns, ino=info.st_ino, ctime_ns=info.st_ctime_ns
    )


def _same_local(now: Entry, listed: Entry) -> bool:
    return now.fingerprint == listed.fingerprint


def is_remote(location: str) -> bool:
    head, sep, _ = location.partition("://")
    return bool(sep) and len(head) > 1 and head != "file"


def matches(name: str, patterns: list[str] | tuple[str, ...] | None) -> bool:
    """``name`` matches one of ``patterns`` (shell style, case-insensitive); None: any."""
    if patterns is None:
        return True
    lower = name.lower()
    return any(fnmatch.fnmatchcase(lower, pattern.lower()) for pattern in patterns)


class ClaimLost(OSError):
    """The name changed while it was being claimed: nothing was taken, it stays for later."""


@dataclass(frozen=True)
class Entry:
    """One listed name: its kind, size and modification time (ns); the inode and change time
    of a local file, the ETag of an object."""

    name: str
    kind: str
    size: int
    mtime_ns: int
    etag: str = ""
    ino: int = 0
    ctime_ns: int = 0

    @property
    def fingerprint(self) -> list[Any]:
        """What must not change between two looks, and the hash memo's key. A rewrite can
        keep the size and set the mtime back (``os.utime``), but not the inode's change time,
        which the kernel sets on every write and every utime; an object's ETag changes with
        its content."""
        return [self.size, self.mtime_ns, self.etag, self.ino, self.ctime_ns]

    @property
    def has_identity(self) -> bool:
        """Whether the fingerprint pins the content (else a memoized hash cannot be trusted)."""
        return bool(self.etag) or bool(self.ino and self.ctime_ns)


class Landing:
    """Where files land: a local folder, or an fsspec URL (``s3://bucket/prefix``)."""

    def __init__(self, location: str | Path, patterns: list[str] | None = None) -> None:
        """``patterns``: the names that are arrivals (``ingest.patterns``); None lists all."""
        self.patterns = None if patterns is None else list(patterns)
        location = str(location)
        if location.startswith("file://"):
            location = location[len("file://") :]
        self.location = location.rstrip("/") if is_remote(location) else location
        self.remote = is_remote(location)
        self._fs: Any = None
        self._root = location
        if self.remote:
            protocol = self.location.split("://", 1)[0]
            feature = f"paths.landing {self.display}"
            fsspec = require("fsspec.core", "s3", feature)
            if protocol in {"s3", "s3a"}:
                require("s3fs", "s3", feature)
            try:
                self._fs, self._root = fsspec.url_to_fs(self.location)
            except (ImportError, ValueError) as exc:
                raise ValueError(
                    f"{feature}: no filesystem for '{protocol}://' ({exc}); s3:// comes with "
                    f"the s3 extra ({install_hint('s3')}), others need their fsspec package "
                    "(gcsfs for gs://, adlfs for az://)"
                ) from None
            self._root = self._root.rstrip("/")

    @property
    def display(self) -> str:
        """The location for logs and events (credentials, if any, masked)."""
        return redact_url(self.location) if self.remote else self.location

    def exists(self) -> bool:
        if not self.remote:
            return Path(self.location).is_dir()
        # an object-store "folder" is only a key prefix: empty once everything is archived,
        # so the landing exists when its bucket does
        bucket = self._root.split("/", 1)[0]
        self._fs.invalidate_cache(bucket)
        return bool(self._fs.exists(bucket))

    def source(self, name: str) -> str:
        """Where ``name`` is: a local path, or its URL."""
        if not self.remote:
            return str(Path(self.location) / name)
        protocol = self.location.split("://", 1)[0]
        return f"{protocol}://{self._root}/{name}"

    def path(self, name: str) -> Path:
        """The local file of ``name`` (a local landing only)."""
        if self.remote:
            raise ValueError(f"{self.display} is an object store: fetch the file first")
        return Path(self.location) / name

    # ------------------------------------------------------------------ listing and hashing

    def entries(self) -> list[Entry]:
        """Every name directly under the location, temporary names left out."""
        return self._remote_entries() if self.remote else self._local_entries()

    def _local_entries(self) -> list[Entry]:
        root = Path(self.location)
        if not root.is_dir():
            return []
        found = []
        with os.scandir(root) as listing:
            for item in listing:
                if is_temporary_name(item.name) or not matches(item.name, self.patterns):
                    continue
                try:
                    info = item.stat(follow_symlinks=False)  # the link itself, never its target
                except FileNotFoundError:  # claimed or removed since the listing
                    continue
                if stat_kind.S_ISDIR(info.st_mode):
                    continue
                if stat_kind.S_ISLNK(info.st_mode):
                    kind = SYMLINK
                elif stat_kind.S_ISREG(info.st_mode):
                    kind = FILE
                else:
                    kind = SPECIAL
                found.append(_local_entry(item.name, kind, info))
        return found

    def _remote_entries(self) -> list[Entry]:
        self._fs.invalidate_cache(self._root)  # s3fs caches listings per instance
        try:
            listing = self._fs.ls(self._root, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        found = []
        for item in listing:
            if item.get("type") != "file":
                continue
            name = item["name"].rstrip("/").rsplit("/", 1)[-1]
            if is_temporary_name(name) or not matches(name, self.patterns):
                continue
            modified = item.get("LastModified") or item.get("mtime") or item.get("updated")
            mtime_ns = int(modified.timestamp() * 1e9) if hasattr(modified, "timestamp") else 0
            etag = str(item.get("ETag") or item.get("etag") or "").strip('"')
            found.append(Entry(name, FILE, int(item.get("size") or 0), mtime_ns, etag))
        return found

    def sha256(self, name: str) -> str:
        if not self.remote:
            return sha256_file(self.path(name))
        digest = hashlib.sha256()
        with self._fs.open(f"{self._root}/{name}", "rb", block_size=8 << 20) as handle:
            while block := handle.read(8 << 20):
                digest.update(block)
        return digest.hexdigest()

    def entry(self, name: str) -> Entry | None:
        """``name``'s entry now (None when it is gone)."""
        if not self.remote:
            try:
                info = os.stat(self.path(name), follow_symlinks=False)
            except FileNotFoundError:
                return None
            return _local_entry(name, FILE if stat_kind.S_ISREG(info.st_mode) else SPECIAL, info)
        try:
            item = self._fs.info(f"{self._root}/{name}", refresh=True)
        except FileNotFoundError:
            return None
        etag = str(item.get("ETag") or item.get("etag") or "").strip('"')
        return Entry(name, FILE, int(item.get("size") or 0), 0, etag)

    # ------------------------------------------------------------------ claiming

    def claim(self, name: str, fingerprint: list[Any], dest: Path) -> Path:
        """Take ``name`` out of landing into the local file ``dest`` (see the module doc), if
        it still has the ``fingerprint`` it settled with; else raise ``ClaimLost``."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        entry = Entry(name, FILE, *fingerprint[:2], *fingerprint[2:])
        if self.remote:
            return self._claim_object(entry, dest)
        source = self.path(entry.name)
        now = self.entry(entry.name)
        if now is None or now.kind != FILE or not _same_local(now, entry):
            raise ClaimLost(f"{entry.name} changed or went away since it settled")
        try:
            os.rename(source, dest)  # atomic: the bytes listed are the bytes taken
            return dest
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        # landing on another file system: copy, then take the name only if it still holds
        # the same inode, unchanged (a rewrite in between changes its ctime)
        with atomic_path(dest) as tmp:
            shutil.copy2(source, tmp)
            now = self.entry(entry.name)
            if now is None or not _same_local(now, entry):
                raise ClaimLost(f"{entry.name} changed while it was being claimed")
        source.unlink()
        return dest

    def _claim_object(self, entry: Entry, dest: Path) -> Path:
        key = f"{self._root}/{entry.name}"
        with atomic_path(dest) as tmp:
            self._fs.get_file(key, str(tmp))
            now = self.entry(entry.name)
            if now is None or now.etag != entry.etag or now.size != entry.size:
                raise ClaimLost(f"{entry.name} changed while it was being claimed")
            if tmp.stat().st_size != entry.size:
                raise ClaimLost(f"{entry.name}: the copy is not the size listed")
        # the copy is complete and durable: only now may the key go, if it still holds it
        now = self.entry(entry.name)
        if now is not None and now.etag == entry.etag:
            self.remove(entry.name)
        return dest

    # ------------------------------------------------------------------ reading and moving

    def fetch(self, name: str, dest: Path) -> Path:
        """A local file with ``name``'s bytes: the file itself when local, else a copy at
        ``dest`` (written atomically)."""
        if not self.remote:
            return self.path(name)
        with atomic_path(dest) as tmp:
            self._fs.get_file(f"{self._root}/{name}", str(tmp))
        return dest

    def move_out(self, name: str, local: Path | None, dest: Path) -> None:
        """Move ``name`` out of landing to the local ``dest``. For an object store, ``local``
        is the fetched copy: it is moved to ``dest``, then the object is deleted."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not self.remote:
            shutil.move(str(self.path(name)), dest)
            return
        if local is not None and local.exists():
            shutil.move(str(local), dest)
        else:
            self.fetch(name, dest)
        self.remove(name)

    def remove(self, name: str) -> None:
        if not self.remote:
            self.path(name).unlink(missing_ok=True)
            return
        try:
            self._fs.rm_file(f"{self._root}/{name}")
        except FileNotFoundError:
            pass
