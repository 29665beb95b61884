"""Fault injection for the crash tests: named points where a run can be made to die.

``fault_point("after:train")`` does nothing unless the environment variable
``SERIESFLOW_FAULT`` names that point, as ``ACTION@POINT`` (several separated by
commas). Actions:

- ``kill``: SIGKILL this process on the spot (no cleanup, no ``finally``, no
  atexit): what a power cut, the OOM killer or ``kill -9`` does to a run;
- ``enospc``: raise ``OSError(ENOSPC)`` as a full disk would, at the write that
  follows;
- ``pause``: write ``$SERIESFLOW_FAULT_RELEASE.paused`` and wait until the file
  ``$SERIESFLOW_FAULT_RELEASE`` exists (a test holds a run at a point without timers).

The points (``POINTS``) are the read of each claimed file in ingest, the ends of the
stages, the start of the train task, inside register once its MLflow run is open and once
the model version exists, the gap between register and commit, the history table's
transaction, the gap between that Delta commit and the profile and ledger, and the
ledger's write. The hooks cost one dictionary lookup when the variable is unset;
tests/flows/test_faults.py drives them with real subprocesses.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

ENV = "SERIESFLOW_FAULT"
RELEASE_ENV = "SERIESFLOW_FAULT_RELEASE"
STAGES = ("ingest", "validate", "normalize", "window", "train", "evaluate", "register")
POINTS = (
    "ingest:read",  # inside ingest: a file claimed out of landing, its attempt recorded
    *(f"after:{stage}" for stage in STAGES[:-1]),
    "train:started",  # inside the train task (Running), before the fit: a run parked mid-train
    "register:started",  # inside register: an MLflow run is open, no version yet
    "register:versioned",  # inside register: the version exists, nothing else knows it yet
    "before:commit",  # register returned: the version exists, history and ledger not written
    "commit:history",  # the Delta append committed, profile and ledger not yet
    "commit:write",  # right before the history table's transaction (enospc: a full disk)
    "commit:ledger",  # the ledger's write itself: its temporary exists, not yet renamed
)


def _actions(point: str) -> list[str]:
    spec = os.environ.get(ENV, "")
    return [a for a, _, p in (item.partition("@") for item in spec.split(",")) if p == point]


def fault_point(point: str) -> None:
    """Die, fail or wait here if ``SERIESFLOW_FAULT`` asks for it (see the module doc)."""
    if ENV not in os.environ:
        return
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}; known: {', '.join(POINTS)}")
    for action in _actions(point):
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # never reached: SIGKILL is not deliverable late
        elif action == "enospc":
            raise OSError(errno.ENOSPC, f"No space left on device (injected at {point})")
        elif action == "pause":
            release = Path(os.environ[RELEASE_ENV])
            release.with_name(release.name + ".paused").write_text(str(os.getpid()))
            while not release.exists():
                time.sleep(0.05)
        else:
            raise ValueError(f"unknown fault action {action!r} in {ENV}")
