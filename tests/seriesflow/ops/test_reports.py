"""The reports server serves reports and nothing else: a real server on a loopback port."""

from __future__ import annotations

import http.client
import threading
from pathlib import Path

import pytest

from seriesflow.ops.reports import make_server
from seriesflow.workspace.files import RunDir, Workspace

RUN = "20260301T120000-abc123"
PAGE = b"<html><body>expectations met</body></html>"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A run folder as a retrain leaves it, plus links, behind a live server; (port, run)."""
    root = tmp_path_factory.mktemp("reports")
    workspace = Workspace(root / "work")
    run = workspace.new_run(RUN)
    docs = run.validation_dir / "data_docs"
    (docs / "static" / "styles").mkdir(parents=True)
    (docs / "validations").mkdir()
    (docs / "index.html").write_bytes(PAGE)
    (docs / "validations" / "v.html").write_bytes(b"<html>v</html>")
    (docs / "static" / "styles" / "site.css").write_text("body {}")
    run.plots.mkdir()
    (run.plots / "loss_curve.png").write_bytes(b"\x89PNG-loss")
    for path in (run.validated, run.windows, run.evaluation, run.predictions):
        path.write_bytes(b"PAR1 accepted rows PAR1")
    run.model_dir.mkdir()
    run.model.write_bytes(b"keras model")
    run.spec.write_text("{}")
    for path in (
        run.config,
        run.manifest,
        run.scaler,
        run.gate,
        run.validation_dir / "validation.json",
    ):
        path.write_text('{"secret": "rows"}')
    outside = root / "outside.html"
    outside.write_text("outside the runs folder")
    (docs / "leak.html").symlink_to(outside)  # a link to a file elsewhere
    (run.plots / "model.png").symlink_to(run.model)  # an allowed name for a forbidden file
    (workspace.runs / "linked-run").symlink_to(run.root)  # a linked run folder
    (workspace.root / "history.parquet").write_bytes(b"PAR1 all history PAR1")

    server = make_server(workspace.runs, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], run
    server.shutdown()
    server.server_close()


def fetch(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalization of ``..``)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_reports_are_served(served):
    port, _ = served
    assert fetch(port, f"/{RUN}/02_validation/data_docs/index.html") == (200, PAGE)
    assert fetch(port, f"/{RUN}/02_validation/data_docs/validations/v.html")[0] == 200
    assert fetch(port, f"/{RUN}/02_validation/data_docs/static/styles/site.css") == (
        200,
        b"body {}",
    )
    assert fetch(port, f"/{RUN}/plots/loss_curve.png") == (200, b"\x89PNG-loss")
    assert fetch(port, "/health") == (200, b"ok\n")  # what make serve waits for


@pytest.mark.parametrize(
    "path",
    ["/", f"/{RUN}/", f"/{RUN}", f"/{RUN}/02_validation/", f"/{RUN}/02_validation/data_docs/"],
)
def test_no_directory_is_listed(served, path):
    port, _ = served
    status, body = fetch(port, path)
    assert status == 404 and RUN.encode() not in body and b"index.html" not in body


@pytest.mark.parametrize(
    "name",
    [
        "02_validated.parquet",
        "04_windows.parquet",
        "06_evaluation.parquet",
        "predictions.parquet",
        "config.json",
        "manifest.json",
        "scaler.json",
        "gate.json",
        "02_validation/validation.json",
        "05_model/model.keras",
        "05_model/model_spec.json",
    ],
)
def test_data_models_configs_and_manifests_are_refused(served, name):
    port, _ = served
    status, body = fetch(port, f"/{RUN}/{name}")
    assert status == 404 and b"rows" not in body and b"keras model" not in body


@pytest.mark.parametrize(
    "path",
    [
        f"/{RUN}/02_validation/data_docs/leak.html",  # link to a file outside runs/
        f"/{RUN}/plots/model.png",  # link to the model under an allowed name
        "/linked-run/02_validation/data_docs/index.html",  # a linked folder on the way
    ],
)
def test_links_are_never_followed(served, path):
    port, _ = served
    status, body = fetch(port, path)
    assert status == 404 and b"outside" not in body and b"keras" not in body and PAGE not in body


@pytest.mark.parametrize(
    "path",
    [
        "/../history.parquet",
        "/%2e%2e/history.parquet",
        f"/{RUN}/../../history.parquet",
        f"/{RUN}/02_validation/data_docs/%2e%2e/%2e%2e/%2e%2e/history.parquet",
        f"/{RUN}/02_validation/data_docs/..%2f..%2f..%2f..%2fhistory.parquet",
        f"/{RUN}/02_validation/data_docs/../../config.json",
    ],
)
def test_traversal_is_refused(served, path):
    port, _ = served
    status, body = fetch(port, path)
    assert status == 404 and b"history" not in body and b"rows" not in body


def test_only_get_and_head(served):
    port, _ = served
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", f"/{RUN}/plots/loss_curve.png", body=b"x")
    assert connection.getresponse().status in (405, 501)
    connection.close()


def test_the_allow_list_is_the_run_folder_s_report_kinds(tmp_path):
    from seriesflow.ops.reports import is_report

    run = RunDir(tmp_path / RUN)
    assert is_report(Path(RUN, "02_validation", "data_docs", "index.html"))
    assert is_report(run.plots.relative_to(tmp_path) / "forecast_vs_actual.png")
    assert not is_report(run.validated.relative_to(tmp_path))
    assert not is_report(Path(RUN, "02_validation", "data_docs", "x.parquet"))
    assert not is_report(Path(RUN, "plots", "data.csv"))
    assert not is_report(Path(RUN, "plots", ".tmp-x.png"))  # a write in progress
