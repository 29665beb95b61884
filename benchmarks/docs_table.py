"""Benchmarks write their own tables into docs/benchmarks.md (house style 16).

Each benchmark calls ``write_block(name, markdown)`` with the table it printed, under a
one-line header from ``measured(settings)``. The block is the text between
``<!-- benchmark:NAME -->`` and ``<!-- /benchmark:NAME -->``; everything outside it is left
as it was, and a block that is missing is added at the end. The file is replaced
atomically (a temporary file in the same folder, fsynced, renamed over it), so a benchmark
killed half-way never leaves a half-written page.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import tempfile
from pathlib import Path

DOCS_BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def markers(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"benchmark block name {name!r}: use letters, digits, '_', '-', '.'")
    return f"<!-- benchmark:{name} -->", f"<!-- /benchmark:{name} -->"


def machine() -> str:
    """Cores, architecture and memory of this machine (no host name: the page is public)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        ram = f", {memory:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        ram = ""
    return f"{os.cpu_count()} cores {platform.machine()}{ram}, Python {platform.python_version()}"


def measured(settings: str) -> str:
    """The one-line header above a table: when, on what, with which settings."""
    return f"_Measured on {dt.date.today().isoformat()}, {machine()}; settings: {settings}._"


def write_block(name: str, markdown: str, path: Path | str = DOCS_BENCHMARKS) -> Path:
    """Replace the ``benchmark:NAME`` block of ``path`` with ``markdown`` (atomically)."""
    path = Path(path)
    begin, end = markers(name)
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def variant(base: str, *settings: str) -> str:
    """The block name of a run with non-default settings, so it does not overwrite the default's.

    ``variant("scale")`` is ``scale``; ``variant("scale", "window.stride=1")`` is
    ``scale-window.stride-1``.
    """
    extra = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "-", s).strip("-") for s in settings if s)
    return f"{base}-{extra}" if extra else base
