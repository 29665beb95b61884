"""Bounded inputs: a landed file is measured against the ``ingest.max_*`` limits before it
is parsed, so that one file can never take the memory (or the time) every later run needs.

Only cheap measurements, never a parse: the size on disk; for CSV the header's fields and
the number of lines (a streamed count, bounded by ``max_file_bytes``); for Parquet its
metadata (rows, columns, the row groups' uncompressed sizes), which pyarrow reads from the
footer without decoding a page. A 24 KB Parquet file of two million constant rows is
refused by its metadata, not discovered by the OOM killer.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from seriesflow.config.pipeline import IngestConfig
from seriesflow.data.errors import CheckFailure

_HEADER_BYTES = 4 << 20  # a header line longer than this is past any sane column limit


def _limit(name: str, check: str, key: str, measured: int, limit: int, what: str) -> CheckFailure:
    return CheckFailure(
        name,
        check,
        None,
        f"{what}: {measured} is past ingest.{key}={limit}; the file was not read (split it, "
        f"or raise ingest.{key} if the machine has room)",
        examples=[{"limit": f"ingest.{key}", "measured": measured, "allowed": limit}],
    )


def _csv_shape(path: Path) -> tuple[int, int]:
    """(header fields, lines after the header) without parsing the rows."""
    with open(path, "rb") as handle:
        head = handle.readline(_HEADER_BYTES)
        text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
        fields = len(next(csv.reader([text]), []))
        lines, last = 0, b"\n"
        while block := handle.read(8 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
        lines += last != b"\n"  # a last line without its newline
    return fields, lines


def decoded_bytes(meta: pq.FileMetaData) -> int:
    """What the file takes once decoded, from its footer alone: per row group, the larger of
    its uncompressed size and rows x the row's width. The uncompressed size alone misses
    dictionary and run-length encoding (a constant column is a few bytes on any page);
    the width is the type's for fixed-width columns, and for text the longer of the
    column chunk's min/max statistics (else its uncompressed bytes per value) plus the
    4-byte offset every decoded string carries."""
    total = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        width = 0
        for j in range(group.num_columns):
            chunk = group.column(j)
            physical = chunk.physical_type
            if physical in _FIXED_WIDTH:
                width += _FIXED_WIDTH[physical]
                continue
            stats = chunk.statistics
            if stats is not None and stats.has_min_max:
                longest = max(len(_as_bytes(stats.min)), len(_as_bytes(stats.max)))
            else:
                longest = chunk.total_uncompressed_size // max(chunk.num_values, 1)
            width += longest + 4
        total += max(group.total_byte_size, group.num_rows * width)
    return total


_FIXED_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8}


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", errors="replace")


def check_limits(path: Path, name: str, cfg: IngestConfig) -> CheckFailure | None:
    """The first limit ``path`` is past (check name, config key and measured value in the
    failure), or None. A file the measurement cannot open is left to the reader's errors."""
    size = path.stat().st_size
    if size > cfg.max_file_bytes:
        return _limit(name, "max_file_bytes", "max_file_bytes", size, cfg.max_file_bytes, "bytes")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            meta = pq.ParquetFile(path).metadata
        except (pa.ArrowException, OSError):
            return None  # not Parquet at all: the reader says so, with its own check
        if meta.num_columns > cfg.max_columns:
            return _limit(
                name, "max_columns", "max_columns", meta.num_columns, cfg.max_columns, "columns"
            )
        if meta.num_rows > cfg.max_rows:
            return _limit(name, "max_rows", "max_rows", meta.num_rows, cfg.max_rows, "rows")
        decoded = decoded_bytes(meta)
        if decoded > cfg.max_decoded_bytes:
            return _limit(
                name,
                "max_decoded_bytes",
                "max_decoded_bytes",
                decoded,
                cfg.max_decoded_bytes,
                "decoded bytes (the row groups' uncompressed size)",
            )
        return None
    if suffix == ".csv":
        fields, lines = _csv_shape(path)
        if fields > cfg.max_columns:
            return _limit(name, "max_columns", "max_columns", fields, cfg.max_columns, "columns")
        if lines > cfg.max_rows:
            return _limit(name, "max_rows", "max_rows", lines, cfg.max_rows, "rows (lines)")
    return None
