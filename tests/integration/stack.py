"""Starting, watching and stopping ``scripts/serve.sh`` for the integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "scripts" / "serve.sh"
DEPLOYMENTS = (
    "retrain/on-new-data",
    "retrain/scheduled",
    "watch/poll",
    "forecast/on-promotion",
    "forecast/daily",
)
POOL = "seriesflow"
RETRAIN_TIMEOUT = 420  # a cold process, TensorFlow + MLflow imports, tiny training, 2 cores
STARTUP_TIMEOUT = 300  # cold server (~15 s) + setup + deploy + worker on 2 busy cores
STOP_TIMEOUT = 90  # serve.sh waits up to 20 s per flow run, 30 s worker, 20 s server


@dataclass(frozen=True)
class Stack:
    api_url: str
    workspace: Path
    landing: Path
    log: Path
    reports_url: str = ""  # serve.sh's reports server (run folders over http)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def start_run(deployment: str, **kwargs: Any) -> UUID:
    """Start a run of ``flow/deployment`` (``create_flow_run_from_deployment`` keywords)."""
    with client() as c:
        found = c.read_deployment_by_name(deployment)
        return c.create_flow_run_from_deployment(found.id, **kwargs).id


def wait_final(run_id: UUID, timeout: float, stack: Stack):
    """The flow run once it is final; on a timeout, fail with the tail of serve.sh's log."""

    def final():
        with client() as c:
            run = c.read_flow_run(run_id)
        return run if run.state and run.state.is_final() else None

    try:
        return wait_for(final, timeout, f"flow run {run_id} to finish", interval=2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nserve.sh log:\n{stack.log_tail()}") from None


def run_retrain(
    stack: Stack, deployment: str = "retrain/scheduled", timeout: float = RETRAIN_TIMEOUT
):
    """Run a retrain deployment now and wait for its final state (the flow run)."""
    return wait_final(start_run(deployment), timeout, stack)


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) for every process (`ps`: Linux and macOS alike)."""
    out = subprocess.run(
        ["ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "stat="],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = {}
    for line in out.splitlines():
        pid, ppid, stat = line.split(None, 2)
        table[int(pid)] = (int(ppid), stat.strip())
    return table


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, children before grandchildren."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in _process_table().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent to reap it."""
    entry = _process_table().get(pid)
    return entry is not None and not entry[1].startswith("Z")


def ready(api_url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(
            f"scripts/serve.sh exited with {proc.returncode} before the stack was up:\n"
            + "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        )
    try:
        with httpx.Client(base_url=api_url, timeout=5) as http:
            deployed = all(
                http.get(f"/deployments/name/{name}").status_code == 200 for name in DEPLOYMENTS
            )
            workers = http.post(f"/work_pools/{POOL}/workers/filter", json={})
            online = workers.status_code == 200 and any(
                worker["status"] == "ONLINE" for worker in workers.json()
            )
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    return deployed and online


def stop(proc: subprocess.Popen[bytes]) -> list[int]:
    """Stop serve.sh the way Ctrl-C would; returns the pids that needed SIGKILL."""
    started = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    leftovers = [pid for pid in [proc.pid, *started] if alive(pid)]
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.wait(timeout=10)
    return leftovers
