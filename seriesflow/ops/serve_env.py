"""The environment for ``scripts/serve.sh`` (the server, the worker and the UI it starts) on
a chosen workspace and ports, with nothing from the caller's shell that would point it
elsewhere. The integration tests and ``benchmarks/ui_check.py`` start their stacks with it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Settings that must not leak from a developer's shell or CI into the stack: another API,
# its key or profile, another registry, another reports server or alert target.
SCRUB = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_PROFILE",
    "SERIESFLOW_REPORTS_URL",
    "SERIESFLOW_ALERT_WEBHOOK_URL",
    "SERIESFLOW_ALERT_BLOCK",
)
SCRUB_PREFIXES = ("PREFECT_API_", "MLFLOW_")


def serve_env(
    root: Path,
    workspace: Path,
    landing: Path,
    port: int,
    reports_port: int,
    base: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """``base`` (default ``os.environ``) less ``SCRUB``, plus serve.sh's settings: this
    checkout, ``workspace``/``landing``, the API and reports ports, ``PREFECT_HOME`` under
    ``root``, no scheduler (the caller starts every run); ``extra`` last."""
    base = os.environ if base is None else base
    env = {
        key: value
        for key, value in base.items()
        if key not in SCRUB and not key.startswith(SCRUB_PREFIXES)
    }
    env.update(
        # serve.sh runs `prefect` (and the worker, and so the runs) from this interpreter's
        # environment when the checkout has no .venv of its own.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        SERIESFLOW_HOME=str(REPO),
        SERIESFLOW_WORKSPACE=str(workspace),
        SERIESFLOW_LANDING=str(landing),
        SERIESFLOW_PORT=str(port),
        SERIESFLOW_REPORTS_PORT=str(reports_port),
        PREFECT_HOME=str(root / "prefect"),
        # No nightly or 2-minute runs in between the ones the caller starts.
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
    )
    env.update(extra)
    return env
