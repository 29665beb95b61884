"""Credentials in the tracking URI never reach logs, manifests, MLflow params or Prefect.

A real MLflow tracking server on a loopback port (it ignores the basic-auth user and
password, so a URI holding them works); the retrain run gets the URI, password included,
from ``MLFLOW_TRACKING_URI`` as a team's worker would.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from flows.retrain import retrain
from tests.factories import crash_config, write_csv, zigzag_frame

PASSWORD = "hunter2-Secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    store = tmp_path / "server"
    store.mkdir()
    log = open(store / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            assert server.poll() is None, (store / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
    yield f"http://ops:{PASSWORD}@127.0.0.1:{port}"
    server.terminate()
    server.wait(30)
    log.close()


def test_tracking_uri_password_is_never_written_anywhere(
    prefect_server, mlflow_server, tmp_path, monkeypatch, capsys, caplog
):
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    landing = tmp_path / "landing"
    write_csv(zigzag_frame(), landing / "base.csv")
    cfg = crash_config(tmp_path / "work", landing, register={"tracking_uri": None})

    state = retrain(cfg, return_state=True)
    result = state.result(raise_on_failure=False)

    assert result["status"] == "completed", result
    out = capsys.readouterr()
    logged = caplog.text + out.out + out.err  # Prefect's run logs, and what MLflow prints
    assert PASSWORD not in logged
    assert "ops:***@127.0.0.1" in caplog.text  # the log line says where, not how
    written = [
        p
        for p in cfg.paths.workspace_path().rglob("*")
        if p.is_file() and PASSWORD.encode() in p.read_bytes()
    ]
    assert not written, f"the password was written to {written}"
    mlflow.set_tracking_uri(mlflow_server)
    run = mlflow.MlflowClient().get_run(
        mlflow.MlflowClient().get_model_version(cfg.register.model_name, "1").run_id
    )
    assert PASSWORD not in repr(run.data.params) + repr(run.data.tags)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    assert PASSWORD not in repr(flow_run.parameters) + repr(flow_run.state.message)


def test_redaction_of_uris_and_free_text():
    from seriesflow.ops.secrets import redact_text, redact_url

    assert (
        redact_url("https://ops:hunter2@mlflow.internal/x") == "https://ops:***@mlflow.internal/x"
    )
    assert redact_url("postgresql://svc:pw@db:5432/m") == "postgresql://svc:***@db:5432/m"
    assert redact_url("sqlite:////data/work/mlflow.db") == "sqlite:////data/work/mlflow.db"
    assert redact_url("s3://bucket/in?X-Amz-Signature=abc&x=1") == (
        "s3://bucket/in?X-Amz-Signature=***&x=1"
    )
    text = "failed: HTTPConnectionPool for url http://ops:hunter2@10.0.0.1:5000/api (refused)"
    assert "hunter2" not in redact_text(text) and "ops:***@10.0.0.1" in redact_text(text)
    assert redact_text('bucket "AKIAIOSFODNN7EXAMPLE:pw@b"') == 'bucket "***@b"'
