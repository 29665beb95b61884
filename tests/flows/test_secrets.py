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
from flows.tune import tune
from seriesflow.model.tuning import SearchSpace, TuneConfig
from tests.factories import crash_config, series_frame, tiny_config, write_csv, zigzag_frame

PASSWORD = "hunter2-Secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """One tracking server for the module (a start costs seconds on two cores)."""
    port = _free_port()
    store = tmp_path_factory.mktemp("server")
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


ONE_TRIAL = TuneConfig(
    strategy="grid",
    trials=1,
    space=SearchSpace(
        units=[4], layers=[1], dropout=[0.0], learning_rate=[0.01], batch_size=[32], timesteps=[8]
    ),
)


def test_tune_passes_no_password_to_its_sub_flow_artifacts_or_mlflow(
    prefect_server, mlflow_server, tmp_path, monkeypatch, capsys, caplog
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    landing = tmp_path / "landing"
    write_csv(series_frame(n=200, period=10), landing / "base.csv")
    cfg = tiny_config(tmp_path / "work", landing, register={"tracking_uri": None})

    state = tune(cfg, ONE_TRIAL, return_state=True)
    result = state.result(raise_on_failure=False)

    assert isinstance(result, dict) and result["trials"][0]["status"] == "completed", result
    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(state.state_details.flow_run_id)
        subflows = [
            run
            for run in client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["tune-trials"]))
            )
            if run.parent_task_run_id
            and client.read_task_run(run.parent_task_run_id).flow_run_id == parent.id
        ]
        artifacts = client.read_artifacts()
    assert [r.name for r in subflows] and subflows[0].parameters["parent"]  # the trials' run
    stored = repr([parent.parameters, *(r.parameters for r in subflows)])
    assert PASSWORD not in stored
    assert "127.0.0.1" in stored  # the sub-flow still says which server, without the password
    assert PASSWORD not in repr([a.data for a in artifacts] + [a.description for a in artifacts])
    out = capsys.readouterr()
    assert PASSWORD not in caplog.text + out.out + out.err
    written = [
        p
        for p in cfg.paths.workspace_path().rglob("*")
        if p.is_file() and PASSWORD.encode() in p.read_bytes()
    ]
    assert not written, f"the password was written to {written}"
    mlflow.set_tracking_uri(mlflow_server)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(cfg.register.experiment)
    parent_run = result["parent_run_id"]  # the server is the module's: other tests' runs too
    runs = [client.get_run(parent_run)] + client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run}'"
    )
    assert len(runs) == 2  # the search and its trial
    assert PASSWORD not in repr([(r.data.params, r.data.tags) for r in runs])


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
