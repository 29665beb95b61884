"""The workspace, the run folder, and atomic file writes.

Every file a stage writes goes to a temporary name in the same folder and is
renamed into place, so a crash never leaves a half-written Parquet file that a
later stage (or run) would trust.

A temporary name says whose it is: ``.tmp-<kind>.<run-id>.<random><suffix>``, the kind
and run id of the flow that writes it (``writing_as``; ``any.pid<pid>`` outside one). The
retrain that recovers a workspace holds its lock, so a retrain temporary is a dead run's;
a forecast or a tune writes without the lock and may be writing right now, so recovery
leaves theirs until they are old (``crashed_temporary``).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import gc
import hashlib
import json
import mmap
import os
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TMP_PREFIX = ".tmp-"
RETRAIN = "retrain"  # the kind of writer that holds the workspace lock
# A temporary of a writer that may be alive (forecast, tune, no known kind) is left alone
# until it is this old: no single file write takes a day.
TEMPORARY_MAX_AGE = timedelta(days=1)
_WRITER: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "seriesflow_writer", default=None
)
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_\-]")
# A saved model: the Keras file and its spec (seriesflow/model/saved_model.py), in 05_model/.
MODEL_FILE = "model.keras"
SPEC_FILE = "model_spec.json"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (the directory entry itself is data)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing_as(kind: str, run_id: str) -> Iterator[None]:
    """Name the temporaries written in this context (and the tasks it starts) for the
    writer: ``kind`` (``retrain``, ``forecast``, ``tune``) and its run id."""
    token = _WRITER.set((_NOT_IN_NAME.sub("_", kind), _NOT_IN_NAME.sub("_", run_id)))
    try:
        yield
    finally:
        _WRITER.reset(token)


def temporary_prefix() -> str:
    """``.tmp-<kind>.<run-id>.`` of the current writer (``.tmp-any.pid<pid>.`` outside one)."""
    kind, run_id = _WRITER.get() or ("any", f"pid{os.getpid()}")
    return f"{TMP_PREFIX}{kind}.{run_id}."


def temporary_writer(path: str | Path) -> tuple[str, str] | None:
    """(kind, run id) of a temporary's writer; None for a name without one (older names)."""
    name = Path(path).name
    if not name.startswith(TMP_PREFIX):
        return None
    kind, _, rest = name[len(TMP_PREFIX) :].partition(".")
    run_id, sep, _ = rest.partition(".")
    return (kind, run_id) if sep and kind and run_id else None


def crashed_temporary(path: str | Path, now: float | None = None) -> bool:
    """Whether the caller, holding the workspace lock, may delete this temporary: a
    retrain's (its writer is dead: no other retrain runs while the lock is held), or any
    writer's older than ``TEMPORARY_MAX_AGE`` (a forecast or tune that died long ago)."""
    writer = temporary_writer(path)
    if writer is not None and writer[0] == RETRAIN:
        return True
    try:
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except FileNotFoundError:
        return False  # renamed into place meanwhile
    return age > TEMPORARY_MAX_AGE.total_seconds()


@contextlib.contextmanager
def atomic_path(
    final: str | Path, prefix: str | None = None, durable: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place on success.

    ``prefix``: the temporary's name starts with it; default: the writer's
    (``temporary_prefix``), which recovery reads to tell a dead writer's file from a live one.

    ``durable``: the bytes are fsynced before the rename and the folder after it, so after
    a power cut the file is either the old one or the new one, never empty or torn.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = temporary_prefix() if prefix is None else prefix
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if durable:
            with open(tmp_path, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp_path, final)
        if durable:
            fsync_dir(final.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_parquet(frame: pd.DataFrame, path: str | Path, schema: pa.Schema | None = None) -> Path:
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


@contextlib.contextmanager
def parquet_parts(
    path: str | Path, schema: pa.Schema | Callable[[pa.Table], pa.Schema]
) -> Iterator[Callable[[pd.DataFrame | pa.Table], None]]:
    """A Parquet file written a part at a time, atomically: yields ``write(part)`` (a frame
    or an Arrow table, a row group or more each); the file appears, whole, when the block
    ends without an error, and not at all (no temporary left) when it raises. A stage that
    makes or reads its output a chunk at a time never holds all of it.

    ``schema``: the file's, or a function of the first part (as Arrow) that gives it (a
    stage that learns its columns from its first chunk). No part at all is an error: an
    empty file needs a schema the caller did not have."""
    with atomic_path(path) as tmp:
        writer: pq.ParquetWriter | None = None
        fixed: pa.Schema | None = None if callable(schema) else schema

        def write(part: pd.DataFrame | pa.Table) -> None:
            nonlocal writer, fixed
            if isinstance(part, pd.DataFrame):
                table = pa.Table.from_pandas(part, schema=fixed, preserve_index=False)
            else:
                table = part
            if fixed is None:
                fixed = schema(table)  # type: ignore[operator]
                if isinstance(part, pd.DataFrame):  # converted again, to the file's types
                    table = pa.Table.from_pandas(part, schema=fixed, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, fixed)
            writer.write_table(table.select(fixed.names).cast(fixed))

        try:
            yield write
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"nothing to write to {path}: no rows")


def write_parquet_parts(
    frames: Iterable[pd.DataFrame],
    path: str | Path,
    schema: pa.Schema | Callable[[pa.Table], pa.Schema],
) -> Path:
    """``frames`` one after another as one Parquet file (``parquet_parts``)."""
    with parquet_parts(path, schema) as write:
        for frame in frames:
            write(frame)
    return Path(path)


def concat_parquet(paths: Iterable[str | Path], path: str | Path, schema: pa.Schema) -> Path:
    """The Parquet files at ``paths`` one after another as one file (``parquet_parts``), a
    row group at a time."""
    with parquet_parts(path, schema) as write:
        write(schema.empty_table())
        for part in paths:
            source = pq.ParquetFile(part)
            for group in range(source.num_row_groups):
                write(source.read_row_group(group))
    return Path(path)


def write_table(table: pa.Table, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file as a frame; ``columns``: only those (the others are never read)."""
    frame = pq.read_table(path, columns=columns).to_pandas()
    release_arrow_memory()
    return frame


def read_parquet_where(path: str | Path, column: str, values: list[Any]) -> pd.DataFrame:
    """The rows of a Parquet file whose ``column`` is one of ``values`` (a filter pushed into
    the read: the other row groups are skipped, never all of a large file in memory)."""
    frame = pq.read_table(path, filters=[(column, "in", list(values))]).to_pandas()
    release_arrow_memory()
    return frame


def release_arrow_memory() -> None:
    """Give back what Arrow's allocator kept after a conversion (``release_unused``).

    Arrow's pool (mimalloc) holds on to freed blocks; numpy, pandas and TensorFlow
    allocate elsewhere and cannot reuse them, so after a 10M-row read the process kept
    about 100 MB per million rows it no longer used (measured on the scale benchmark).
    """
    pa.default_memory_pool().release_unused()


def release_memory() -> None:
    """Hand what the process freed back to the system: Python's cycles, Arrow's pool, and
    the C heap's free pages (glibc ``malloc_trim``, every thread's arena: Prefect runs each
    task on a worker thread, whose arena otherwise keeps a stage's freed arrays resident
    into the stages after it), and the pages of memory-mapped arrays it has read
    (``drop_mapped_pages``). Called at the end of each stage; a no-op where there is no
    glibc."""
    gc.collect()
    release_arrow_memory()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    drop_mapped_pages()


# the maps of the arrays ``map_array`` opened, while any array still uses them
_MAPPED: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()
_MAPPED_LOCK = threading.Lock()
# how often the process hands back the mapped pages it read (``_hand_back_pages``)
HAND_BACK_SECONDS = 0.05  # a hand-back with nothing resident costs about 10 microseconds
_HANDING_BACK: list[threading.Thread] = []


def map_array(path: str | Path) -> np.ndarray:
    """A read-only memory map of the .npy file at ``path`` (``np.load(mmap_mode="r")``)
    whose resident pages ``drop_mapped_pages`` can hand back."""
    return handed_back(np.load(path, mmap_mode="r"))


def handed_back(array: np.ndarray) -> np.ndarray:
    """``array``, whose pages are handed back when it is a memory map (a file's shared map:
    written pages stay in the page cache and reach the file): by ``drop_mapped_pages``, and
    every ``HAND_BACK_SECONDS`` by a daemon thread while the map is open, so that a pass
    over a large file (evaluate's contexts, the classical fits' jobs, the seasons refit on
    every point) never holds more than a second's reading of it in the RSS."""
    if getattr(array, "_mmap", None) is not None:
        with _MAPPED_LOCK:
            _MAPPED.add(array._mmap)
            if not _HANDING_BACK or not _HANDING_BACK[0].is_alive():
                thread = threading.Thread(
                    target=_hand_back_pages, name="seriesflow-mapped-pages", daemon=True
                )
                _HANDING_BACK[:] = [thread]
                thread.start()
    return array


def _hand_back_pages() -> None:
    while True:
        time.sleep(HAND_BACK_SECONDS)
        drop_mapped_pages()


def drop_mapped_pages() -> None:
    """Unmap from this process the pages of ``map_array``'s files it has read
    (``MADV_DONTNEED``). They count in the process's RSS until then, and a pass over a
    100M-row table reads gigabytes of them. The maps are shared, so the pages stay in the
    page cache (the kernel's to write back and evict) and the next read maps them again
    from there."""
    advice = getattr(mmap, "MADV_DONTNEED", None)  # Linux and macOS
    with _MAPPED_LOCK:
        opened_maps = list(_MAPPED) if advice is not None else []
    for opened in opened_maps:
        with contextlib.suppress(ValueError, OSError):  # closed meanwhile
            opened.madvise(advice)


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def write_json(obj: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", "utf-8")
    return Path(path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_run_id(now: datetime | None = None) -> str:
    now = now or utcnow()
    return now.strftime("%Y%m%dT%H%M%S") + f"-{os.urandom(3).hex()}"


@dataclass(frozen=True)
class Workspace:
    """State that outlives a run: accepted history, ledger, quarantine, MLflow store."""

    root: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.parquet"

    @property
    def history(self) -> Path:
        """The accepted rows so far, a Delta table (``seriesflow/workspace/history.py``)."""
        return self.root / "history"

    @property
    def legacy_history(self) -> Path:
        """Where the accepted rows were before the Delta table (migrated once)."""
        return self.root / "history.parquet"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def archive(self) -> Path:
        """Landed files accepted into history (``retention.landed: archive``), by date."""
        return self.root / "archive"

    @property
    def looks(self) -> Path:
        """The last look at each landed file (settling across polls, the hash memo)."""
        return self.root / "landing_looks.json"

    @property
    def journal(self) -> Path:
        """The commit in progress, if any (``seriesflow/workspace/commit.py``)."""
        return self.root / "commit.json"

    @property
    def lock(self) -> Path:
        """The workspace's writer lock (``seriesflow/workspace/lock.py``)."""
        return self.root / "workspace.lock"

    def new_run(self, run_id: str | None = None) -> RunDir:
        run = RunDir(self.runs / (run_id or new_run_id()))
        run.root.mkdir(parents=True, exist_ok=False)
        return run


@dataclass(frozen=True)
class RunDir:
    """One retrain run's folder; stages exchange these files (see docs/ARCHITECTURE.md)."""

    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def ingested(self) -> Path:
        return self.root / "01_ingested.parquet"

    @property
    def validated(self) -> Path:
        return self.root / "02_validated.parquet"

    @property
    def new_rows(self) -> Path:
        """What the run adds to history: the validated rows history lacks (the commit
        appends them)."""
        return self.root / "02_new_rows.parquet"

    @property
    def revised_rows(self) -> Path:
        """Accepted rows the run gives other values (validation.allow_history_revisions)."""
        return self.root / "02_revised_rows.parquet"

    @property
    def validation_dir(self) -> Path:
        return self.root / "02_validation"

    @property
    def data_docs(self) -> Path:
        """The validation's Data Docs site (what the reports server serves, with plots/)."""
        return self.validation_dir / "data_docs"

    @property
    def normalized(self) -> Path:
        return self.root / "03_normalized.parquet"

    @property
    def scaler(self) -> Path:
        return self.root / "scaler.json"

    @property
    def windows(self) -> Path:
        return self.root / "04_windows.parquet"

    @property
    def model_dir(self) -> Path:
        return self.root / "05_model"

    @property
    def model(self) -> Path:
        return self.model_dir / MODEL_FILE

    @property
    def spec(self) -> Path:
        return self.model_dir / SPEC_FILE

    @property
    def epochs(self) -> Path:
        """Per-epoch training log: loss, val_loss, learning_rate (per series if per-series)."""
        return self.model_dir / "epochs.parquet"

    @property
    def evaluation(self) -> Path:
        return self.root / "06_evaluation.parquet"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.parquet"

    @property
    def backtest(self) -> Path:
        return self.root / "06_backtest.parquet"

    @property
    def classical_fits(self) -> Path:
        """The statsforecast fits per series, made beside training (scoring.BackgroundFits)."""
        return self.model_dir / "classical_fits.json"

    @property
    def final_model(self) -> Path:
        """The model trained on every window after evaluation (train.final_epochs)."""
        return self.model_dir / "final.keras"

    @property
    def final_scaler(self) -> Path:
        """The registered model's scaler: seasonal indices refit on every point."""
        return self.model_dir / "final_scaler.json"

    @property
    def router(self) -> Path:
        """Which model serves each series (seriesflow/evaluation/router.py)."""
        return self.root / "06_router.json"

    @property
    def intervals(self) -> Path:
        """Prediction intervals shipped with the model (seriesflow/model/intervals.py)."""
        return self.root / "06_intervals.json"

    @property
    def forecast_settings(self) -> Path:
        """How the registered model forecasts: steps, interval levels (model/forecasting.py)."""
        return self.root / "forecast.json"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def gate(self) -> Path:
        return self.root / "gate.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"
