"""What an operator sees, against the real stack (``scripts/serve.sh``: server, worker, reports
server, automations) with a webhook receiver on a loopback port as the alert target.

Two retrain runs through the deployment, in file order: the first promotes a champion
(plots, Data Docs, a promotion notification), the second gets only a bad file (state
Rejected, a data.rejected event, a notification). Nothing the UI shows may point at
``file://``: a browser will not open it from an http page.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import httpx
import pytest
from PIL import Image

from seriesflow.data.datadocs import LOADS
from seriesflow.ops.alerts import WEBHOOK_BLOCK, WEBHOOK_ENV, load_automations, needs_target
from seriesflow.ops.events import DATA_REJECTED, MODEL_PROMOTED, OUTCOME_ARTIFACT
from tests.factories import fast_settings, over, series_frame, write_csv
from tests.integration.stack import REPO, Stack, client, free_port, run_retrain, wait_for

pytestmark = pytest.mark.integration

ALERT_TIMEOUT = 60  # event -> automation -> webhook (0.1-1 s when healthy)
MODEL = "operator-lstm"
MEASURED: dict[str, float] = {}


# ----------------------------------------------------------------------------- receiver


class Receiver:
    """Records every POST: (arrival time, parsed JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                received.append((time.time(), json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def subjects(self) -> list[str]:
        return [body.get("subject", "") for _, body in self.received]

    def wait(self, pattern: str) -> tuple[float, dict[str, Any]]:
        def found():
            return next((m for m in self.received if re.search(pattern, m[1]["subject"])), None)

        return wait_for(found, ALERT_TIMEOUT, f"a notification matching {pattern!r}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


@pytest.fixture(scope="module")
def stack_env(receiver: Receiver) -> dict[str, str]:
    return {WEBHOOK_ENV: receiver.url}


@pytest.fixture(scope="module", autouse=True)
def report_measures(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for key, value in MEASURED.items():
            print(f"\n[seriesflow measure] {key}: {value:.2f}", end="")
        print()


# ----------------------------------------------------------------------------- helpers


def api(stack: Stack, path: str, body: dict[str, Any]) -> Any:
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        response = http.post(path, json=body)
        response.raise_for_status()
        return response.json()


def use_operator_config(stack: Stack) -> None:
    """retrain/scheduled with tiny training, but plots and Data Docs on (the UI's content)."""
    from prefect.client.schemas.actions import DeploymentUpdate

    with client() as c:
        current = c.read_deployment_by_name("retrain/scheduled")
        # the tests' fast training, for long enough to beat the baselines (~30 epochs, ~6 s)
        fast = fast_settings(
            stack.workspace,
            MODEL,
            train={"epochs": 30},
            validation={"build_data_docs": True},
        )
        cfg = over(current.parameters["cfg"], fast)
        c.update_deployment(
            current.id, DeploymentUpdate(parameters={**current.parameters, "cfg": cfg})
        )


def artifacts_of(stack: Stack, flow_run_id: UUID) -> dict[str, dict[str, Any]]:
    found = api(stack, "/artifacts/filter", {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}})
    return {a["key"]: a for a in found}


def events(stack: Stack, name: str) -> list[dict[str, Any]]:
    body = {"filter": {"event": {"name": [name]}, "order": "ASC"}, "limit": 50}
    return api(stack, "/events/filter", body)["events"]


def inline_pngs(markdown: str) -> list[Image.Image]:
    images = re.findall(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in images]


def automations_by_name(names: list[str]) -> dict[str, list]:
    with client() as c:
        return {name: c.read_automations_by_name(name) for name in names}


# ----------------------------------------------------------------------------- tests


def test_serve_applied_the_automations_once_and_applying_again_changes_nothing(
    stack: Stack, receiver: Receiver
) -> None:
    items = load_automations(REPO / "automations.yaml")
    names = [item["name"] for item in items if needs_target(item)]  # the notifications
    (heartbeats,) = [item["name"] for item in items if not needs_target(item)]
    with client() as c:
        block = c.read_block_document_by_name(
            WEBHOOK_BLOCK, block_type_slug="custom-webhook", include_secrets=False
        )
    # The URL is a secret of the block: the API does not show it.
    assert receiver.url not in json.dumps(block.data, default=str)

    def apply(target: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != WEBHOOK_ENV}
        env["PREFECT_API_URL"] = stack.api_url
        if target:
            env[WEBHOOK_ENV] = target
        return subprocess.run(
            [sys.executable, "-m", "flows.cli", "alerts", "apply"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    for _ in range(2):  # make serve, then make serve again
        found = automations_by_name(names)
        assert {n: len(a) for n, a in found.items()} == dict.fromkeys(names, 1)
        for (automation,) in found.values():
            assert automation.enabled
            assert [a.block_document_id for a in automation.actions] == [block.id]
        out = apply(receiver.url)
        assert out.count("updated") == len(items) and "created" not in out, out

    # The target unset: nothing is sent any more (paused), until it is set again. The
    # heartbeat automation sends nothing: it stays, enabled, and is updated in place.
    out = apply(None)
    assert out.count("paused") == len(names) and "alerts are off" in out, out
    assert f"updated {heartbeats!r}" in out, out
    assert not any(a.enabled for (a,) in automations_by_name(names).values())
    ((kept,),) = automations_by_name([heartbeats]).values()
    assert kept.enabled
    apply(receiver.url)
    assert all(a.enabled for (a,) in automations_by_name(names).values())

    # make serve started the server with a UI that finds its API on any port.
    with httpx.Client(timeout=10) as http:
        ui_settings = http.get(stack.api_url.removesuffix("/api") + "/ui-settings").json()
    assert ui_settings["api_url"] == "/api"


def test_a_promotion_shows_plots_and_data_docs_over_http_and_notifies(
    stack: Stack, receiver: Receiver
) -> None:
    use_operator_config(stack)
    write_csv(series_frame(n=300, period=10), stack.landing / "base.csv")

    run = run_retrain(stack)

    assert run.state.name == "Completed", f"{run.state.message}\n{stack.log_tail()}"
    found = artifacts_of(stack, run.id)
    assert {"evaluation-report", "data-docs", "promotion", OUTCOME_ARTIFACT} <= set(found)
    for key, artifact in found.items():
        text = json.dumps(artifact["data"])
        assert "file://" not in text, f"{key} points at file://"
        assert len(text) < 1_000_000, f"{key} is {len(text)} bytes"
        MEASURED[f"artifact {key} (bytes)"] = len(text)

    report = found["evaluation-report"]["data"]
    plots = inline_pngs(report)
    assert [p.format for p in plots] == ["PNG", "PNG"]  # loss curve, forecast vs actual
    assert all(200 < p.width <= 760 and p.height > 100 for p in plots)

    outcome = found[OUTCOME_ARTIFACT]
    assert outcome["task_run_id"] is None  # the flow run's own, not a task's
    assert outcome["data"].startswith(f"# {MODEL} v1 promoted to champion")

    # The Data Docs link opens over http, and so does everything the page loads.
    (url,) = re.findall(r"\((http[^)]+)\)", found["data-docs"]["data"])
    assert url.startswith(stack.reports_url + "/") and url.endswith("/data_docs/index.html")
    assert f"[open]({url})" in outcome["data"]
    with httpx.Client(timeout=10) as http:
        page = http.get(url)
        assert page.status_code == 200 and "Great Expectations" in page.text
        loads = [next(g for g in m.groups() if g) for m in LOADS.finditer(page.text)]
        vendored = [u for u in loads if "static/vendor/" in u]
        assert len(vendored) >= 10 and not [u for u in loads if u.startswith("http")]
        for asset in loads:
            response = http.get(httpx.URL(url).join(asset))
            assert response.status_code == 200 and response.content, asset

    (event,) = wait_for(lambda: events(stack, MODEL_PROMOTED), 30, MODEL_PROMOTED)
    assert event["resource"]["prefect.resource.id"] == f"seriesflow.model.{MODEL}"
    assert event["payload"]["version"] == "1" and event["payload"]["promoted"] is True
    assert event["payload"]["reason"] == run.state.message
    roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in event["related"]}
    assert roles["flow-run"] == f"prefect.flow-run.{run.id}"

    arrived, body = receiver.wait(rf"{MODEL} v1 is the new champion")
    assert "promoted to champion by rule" in body["body"] and body["source"] == "seriesflow"
    MEASURED["promotion event -> webhook (s)"] = (
        arrived - datetime.fromisoformat(event["occurred"]).timestamp()
    )


def test_a_rejected_arrival_ends_rejected_and_notifies(stack: Stack, receiver: Receiver) -> None:
    bad = series_frame(n=48, start=300, period=10)
    bad.loc[5, "value"] = float("nan")
    write_csv(bad, stack.landing / "bad.csv")

    run = run_retrain(stack)

    assert (run.state.type.value, run.state.name) == ("FAILED", "Rejected"), run.state
    (event,) = wait_for(lambda: events(stack, DATA_REJECTED), 30, DATA_REJECTED)
    payload = event["payload"]
    assert payload["arrival_rejected"] is True and payload["count"] == 1
    (file,) = payload["files"]
    assert file["name"] == "bad.csv" and "quarantine" in file["quarantined_to"]
    assert file["checks"][0]["check"] == "expect_column_values_to_not_be_null"
    assert "bad.csv" in payload["reason"]

    arrived, body = receiver.wait(rf"retrain run {run.name} is Rejected")
    assert "bad.csv" in body["body"] and str(run.id) in body["body"]
    (state_event,) = wait_for(
        lambda: [e for e in events(stack, "prefect.flow-run.Rejected")], 30, "the state event"
    )
    MEASURED["Rejected state event -> webhook (s)"] = (
        arrived - datetime.fromisoformat(state_event["occurred"]).timestamp()
    )
    outcome = artifacts_of(stack, run.id)[OUTCOME_ARTIFACT]["data"]
    assert outcome.startswith("# Rejected: no usable data arrived") and "bad.csv" in outcome
    # Exactly the two notifications this module caused: no duplicates, nothing else.
    assert len(receiver.received) == 2, receiver.subjects()
