"""A real seriesflow stack for the integration tests: ``scripts/serve.sh`` as ``make serve``
runs it (a ``prefect server start`` on a free loopback port, the real ``prefect.yaml``
deployments, a process worker), on a temporary workspace and PREFECT_HOME.

The stack is stopped when the module's tests end, also when they fail: SIGTERM to
serve.sh (its trap stops the flow runs, the worker and the server), then SIGKILL for
any process it started that is still there.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from seriesflow.ops.serve_env import serve_env
from tests.integration.stack import (
    DEPLOYMENTS,
    REPO,
    SERVE,
    STARTUP_TIMEOUT,
    Stack,
    free_port,
    ready,
    stop,
    wait_for,
)


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """Extra environment for a module's stack (a module overrides this fixture)."""
    return {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_env: dict[str, str]) -> Iterator[Stack]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = tmp_path_factory.mktemp("serve").resolve()
    workspace = root / "work"
    landing = root / "landing"  # next to the workspace, never inside it
    port, reports_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = serve_env(
        root,
        workspace,
        landing,
        port,
        reports_port,
        # Pick runs up within ~2 s (default 10 s) and retry a run held back by the
        # deployment concurrency limit after 5 s (default 30 s).
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS="5",
    )
    env.update(stack_env)
    log = root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(SERVE)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on pytest must not reach the stack directly
        )
    leftovers: list[int] = []
    try:
        wait_for(
            lambda: ready(api_url, proc, log),
            STARTUP_TIMEOUT,
            f"scripts/serve.sh to deploy {', '.join(DEPLOYMENTS)} and start a worker (log: {log})",
            interval=2,
        )
        with temporary_settings({PREFECT_API_URL: api_url}):
            yield Stack(
                api_url=api_url,
                workspace=workspace,
                landing=landing,
                log=log,
                reports_url=f"http://127.0.0.1:{reports_port}",
            )
    finally:
        leftovers = stop(proc)
    # Outside `finally`: a failing test keeps its own error; this checks the trap itself.
    assert proc.returncode in (143, 130), (
        f"scripts/serve.sh exited with {proc.returncode} on SIGTERM, expected 143:\n"
        + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    )
    assert not leftovers, f"scripts/serve.sh left processes behind after SIGTERM: {leftovers}"
