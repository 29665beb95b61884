"""The make targets an operator types: help, clean, mlflow-ui (no TensorFlow, seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from seriesflow.ops.mlflow_ui import experiment_link
from tests.integration.stack import free_port

REPO = Path(__file__).resolve().parents[1]


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A port where no `make serve` answers: clean refuses to run under a live server.
    base = {**os.environ, "SERIESFLOW_PORT": str(free_port())}
    return subprocess.run(
        ["make", "-s", *args],
        cwd=REPO,
        env={**base, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )


def workspace(root: Path) -> Path:
    folders = ("runs/r1", "landing", "quarantine", "prefect", "mlartifacts/1/abc")
    for folder in (*folders, "history/_delta_log"):  # the history table
        (root / folder).mkdir(parents=True)
    names = ("mlflow.db", "ledger.parquet", "history.parquet", "mlartifacts/1/abc/m")
    for name in (*names, "workspace.json"):
        (root / name).write_text("x")
    return root


def test_help_lists_clean_and_the_console_script():
    out = make("help").stdout
    assert "make clean" in out and "keep the model registry" in out
    assert "seriesflow retrain|forecast|watch|tune|serve" in out


def test_clean_keeps_the_model_registry_unless_all(tmp_path):
    work = workspace(tmp_path / "work")
    done = make("clean", f"WORK={work}")
    assert done.returncode == 0, done.stderr
    # workspace.json names the workspace to the registry: without it, the workspace's own
    # model would look like another workspace's (docs/operations.md)
    assert sorted(p.name for p in work.iterdir()) == ["mlartifacts", "mlflow.db", "workspace.json"]
    assert (work / "mlartifacts/1/abc/m").read_text() == "x"
    assert "except the model registry" in done.stdout

    # ALL=1 with no terminal to ask on (CI, scripts): the explicit ALL=1 is the answer
    done = make("clean", f"WORK={work}", "ALL=1")
    assert done.returncode == 0 and not work.exists()
    assert make("clean", f"WORK={work}").stdout.startswith("nothing to clean")


def test_mlflow_ui_uses_the_tracking_server_it_is_given():
    closed = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": closed}
    done = subprocess.run(
        [sys.executable, "-m", "seriesflow.ops.mlflow_ui"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"MLflow tracking server {closed}: its UI is already there" in done.stdout
    assert f"Training runs: {closed}/#/experiments?workflowType=machine_learning" in done.stdout
    assert experiment_link("http://h:5000/", "7") == (
        "http://h:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
