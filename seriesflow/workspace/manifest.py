"""The run manifest: what went in, with which code and settings, how long, what came out."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from seriesflow.workspace.files import RunDir, release_memory, utcnow, write_json

PACKAGES = (
    "prefect",
    "tensorflow-cpu",
    "keras",
    "great-expectations",
    "mlflow",
    "pandas",
    "numpy",
    "pyarrow",
    "scikit-learn",
    "pydantic",
)


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB (a high-water mark: read after each
    stage, it says which stage raised it).

    ``VmHWM`` of ``/proc/self/status`` where there is one: Linux carries ``ru_maxrss``
    across ``exec``, so a flow started by a process that once held 2.9 GB (the scale
    benchmark, after timing forecasts) reported that as its own peak from its first stage.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**10, 1)  # kB
    except (OSError, IndexError, ValueError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def rss_mib() -> float | None:
    """This process's resident memory now, MiB (None where ``/proc`` is not there): beside
    the high-water mark, what a stage left held for the stages after it."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


@dataclass
class Manifest:
    run: RunDir
    config: dict[str, Any]
    started_at: str = field(default_factory=lambda: utcnow().isoformat())
    inputs: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, float] = field(default_factory=dict)  # MiB, high-water mark per stage
    rss: dict[str, float | None] = field(default_factory=dict)  # MiB, resident after each stage
    outcome: dict[str, Any] = field(default_factory=dict)
    registry: str | None = None  # the tracking URI, credentials masked
    history_version: int | None = None  # the history table version once committed

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = round(time.perf_counter() - start, 3)
            release_memory()  # what the stage freed goes back before the next one starts
            self.peak_rss[stage] = peak_rss_mib()
            self.rss[stage] = rss_mib()

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run.run_id,
            "run_dir": str(self.run.root),
            "started_at": self.started_at,
            "finished_at": utcnow().isoformat(),
            "inputs": self.inputs,
            "config": self.config,
            "registry": self.registry,
            "history_version": self.history_version,
            "versions": package_versions(),
            "timings_seconds": self.timings,
            "peak_rss_mib": self.peak_rss,
            "rss_mib": self.rss,
            "outcome": self.outcome,
        }

    def write(self) -> None:
        write_json(self.to_dict(), self.run.manifest)
