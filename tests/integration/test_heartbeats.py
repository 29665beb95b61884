"""A retrain whose process dies without a word, on the real stack (``scripts/serve.sh``: a
``prefect server start``, the real deployments and automations, a process worker).

The run is parked inside the train task (the fault point ``train:started``), a second
retrain waits behind it in the queue, the worker is frozen (it would otherwise see its child
die and report the crash itself: the case here is a worker that went with its run, or cannot
speak for it) and the run's process gets SIGKILL. The heartbeat automation
(automations.yaml) must set the run Crashed within the configured window, the waiting
retrain must then start, take over the dead run's claimed file, recover what the dead run
left (its MLflow run) and finish Completed, with nothing lost.

Heartbeats every 30 s (Prefect's minimum) and a 60 s window here; ``make serve``'s defaults
are 60 s and 300 s. The timings are printed (``-s``) for docs/operations.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from seriesflow.config.pipeline import ColumnsConfig
from seriesflow.ops.faults import ENV as FAULT_ENV
from seriesflow.ops.faults import RELEASE_ENV
from seriesflow.workspace.files import Workspace, sha256_file
from seriesflow.workspace.history import load_history
from seriesflow.workspace.ledger import load_ledger
from tests.factories import fast_settings, over, series_frame, write_csv
from tests.integration.stack import (
    RETRAIN_TIMEOUT,
    Stack,
    client,
    start_run,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration

MODEL = "heartbeat-lstm"
HEARTBEAT_SECONDS = 30  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY: Prefect's minimum
WINDOW_SECONDS = 60  # SERIESFLOW_HEARTBEAT_WINDOW: no heartbeat this long -> Crashed
# The last heartbeat may have gone out just before the kill: the window, one heartbeat's
# slack for the events pipeline, and the server's proactive-trigger pass.
CRASH_DEADLINE = WINDOW_SECONDS + HEARTBEAT_SECONDS + 30
PARK_TIMEOUT = 300  # a cold flow-run process: TensorFlow, MLflow, ingest, validate on 2 cores
START_TIMEOUT = 60  # slot freed -> the waiting run starts (slot retry 5 s, worker poll 2 s)
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file that lets a run parked at the fault point go on (seriesflow/ops/faults.py)."""
    return tmp_path_factory.mktemp("fault") / "release"


@pytest.fixture(scope="module")
def stack_env(release: Path) -> dict[str, str]:
    """Short heartbeats and window; every run the worker starts parks inside train until
    ``release`` exists (the first one is killed there; the next one passes through)."""
    return {
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
        "SERIESFLOW_HEARTBEAT_WINDOW": str(WINDOW_SECONDS),
        FAULT_ENV: "pause@train:started",
        RELEASE_ENV: str(release),
    }


@pytest.fixture(scope="module", autouse=True)
def print_timings(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for key, value in TIMINGS.items():
            print(f"\n[seriesflow timing] {key}: {value:.1f}", end="")
        print()


def tiny(stack: Stack) -> None:
    """retrain/scheduled with the tests' fast training (the paths come from prefect.yaml)."""
    from prefect.client.schemas.actions import DeploymentUpdate

    with client() as c:
        current = c.read_deployment_by_name("retrain/scheduled")
        fast = fast_settings(
            stack.workspace,
            MODEL,
            evaluate={"make_plots": False},
            validation={"build_data_docs": False},
        )
        cfg = over(current.parameters["cfg"], fast)
        c.update_deployment(
            current.id, DeploymentUpdate(parameters={**current.parameters, "cfg": cfg})
        )


def read_run(run_id):
    with client() as c:
        return c.read_flow_run(run_id)


def ps(pid: int, field: str) -> str:
    """One ``ps`` field of a process (Linux and macOS alike), never cut to a terminal's width
    (``-ww``: a command under a long checkout path was cut before its last word)."""
    out = subprocess.run(
        ["ps", "-ww", "-o", f"{field}=", "-p", str(pid)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def mlflow_runs(stack: Stack) -> pd.DataFrame:
    mlflow.set_tracking_uri(f"sqlite:///{stack.workspace / 'mlflow.db'}")
    return mlflow.search_runs(search_all_experiments=True)


def since(start: datetime, end: datetime | None) -> float:
    assert end is not None
    return end.timestamp() - start.timestamp()


def test_a_silent_retrain_is_crashed_by_its_heartbeats_and_the_next_one_finishes(
    stack: Stack, release: Path
) -> None:
    with client() as c:
        (automation,) = c.read_automations_by_name("seriesflow: retrain stopped sending heartbeats")
    assert automation.enabled  # applied with no alert target configured in this stack
    assert automation.trigger.within.total_seconds() == WINDOW_SECONDS  # the stack's setting

    tiny(stack)
    landed = stack.landing / "chunk-001.csv"
    frame = series_frame(n=240, period=10)
    write_csv(frame, landed)
    digest = sha256_file(landed)

    dead = start_run("retrain/scheduled")
    paused = release.with_name(release.name + ".paused")
    wait_for(paused.exists, PARK_TIMEOUT, "the first retrain to reach train:started", 0.5)
    run_pid = int(paused.read_text())
    worker_pid = int(ps(run_pid, "ppid"))
    assert "worker" in ps(worker_pid, "command"), ps(worker_pid, "command")
    assert read_run(dead).state.name == "Running"
    # the second retrain waits for the first one's slot (concurrency 1, ENQUEUE)
    waiting = start_run("retrain/scheduled")

    # A worker that cannot speak for its run, and a run killed on the spot: only the
    # missing heartbeats tell.
    os.kill(worker_pid, signal.SIGSTOP)
    try:
        killed_at = datetime.now().astimezone()
        os.kill(run_pid, signal.SIGKILL)
        crashed = wait_for(
            lambda: (run := read_run(dead)).state.type.value == "CRASHED" and run,
            CRASH_DEADLINE,
            f"the heartbeat automation to crash flow run {dead}\n{stack.log_tail()}",
        )
        assert "No heartbeat" in crashed.state.message, crashed.state.message
        assert read_run(waiting).start_time is None  # it waited, behind the dead run
    finally:
        release.touch()  # the next run passes train:started without stopping
        os.kill(worker_pid, signal.SIGCONT)

    done = wait_final(waiting, RETRAIN_TIMEOUT, stack)
    assert done.state.name == "Completed", f"{done.state.name}: {done.state.message}"
    assert read_run(dead).state.type.value == "CRASHED"  # the worker's late word changes nothing
    TIMINGS["SIGKILL -> Crashed by the heartbeat automation (s)"] = since(
        killed_at, crashed.state.timestamp
    )
    TIMINGS["Crashed -> the waiting retrain started (s)"] = since(
        crashed.state.timestamp, done.start_time
    )
    TIMINGS["the waiting retrain, started -> finished (s)"] = since(done.start_time, done.end_time)
    assert TIMINGS["Crashed -> the waiting retrain started (s)"] < START_TIMEOUT

    # Nothing lost: the dead run's claimed file was taken over and committed once, its rows
    # are the history, and the one version trained on them is committed.
    workspace = Workspace(stack.workspace)
    ledger = load_ledger(workspace.ledger)
    assert list(ledger["sha256"]) == [digest] and list(ledger["status"]) == ["ingested"]
    history = load_history(workspace, ColumnsConfig())
    assert len(history) == len(frame)
    assert not list((workspace.root / "claimed").glob("*/*/*")), "a claimed file left behind"
    mlclient = mlflow.MlflowClient(tracking_uri=f"sqlite:///{stack.workspace / 'mlflow.db'}")
    (found,) = mlclient.search_model_versions(f"name='{MODEL}'")
    version = mlclient.get_model_version(MODEL, found.version)  # (search leaves out aliases)
    # committed (the alias moved, or stayed off, as the gate said: tiny training may lose it)
    assert version.tags["seriesflow.commit"] == "done"
    assert ("champion" in (version.aliases or [])) == (version.tags["promoted"] == "True")
    # the dead run's MLflow run, left RUNNING, was closed by the next run's recovery
    runs = mlflow_runs(stack)
    assert sorted(runs["status"]) == ["FAILED", "FINISHED"], runs[["run_id", "status"]]
