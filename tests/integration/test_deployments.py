"""The deployments end to end: ``scripts/serve.sh`` (real server, the real ``prefect.yaml``,
a real process worker) on a temporary workspace, with tiny data and tiny training.

The tests run in file order and share the stack: a file lands, the watcher announces it,
the trigger starts a retrain that registers a version; the nightly deployment then finds
nothing new and ends Skipped; a burst of events (with a scheduled run on top) starts one
triggered run, and no two retrain runs ever run at the same time.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
import yaml

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.ops.events import (
    EVENT_NAME,
    arrival_payload,
    arrival_resource,
    landing_resource_id,
)
from seriesflow.workspace.files import Workspace, sha256_file
from seriesflow.workspace.ledger import find_new, load_ledger, scan_landing
from tests.factories import fast_settings, over, series_frame, write_csv
from tests.integration.stack import (
    DEPLOYMENTS,
    REPO,
    RETRAIN_TIMEOUT,
    Stack,
    client,
    run_retrain,
    start_run,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration

WATCH_TIMEOUT = 180
TRIGGER_TIMEOUT = 60  # event -> automation -> flow run exists (~1-2 s when healthy)
MODEL = "integration-lstm"
PERIOD = 10
RESULTS: dict[str, float] = {}  # timings, printed when the module ends (report_timings)


# ----------------------------------------------------------------------------- helpers


def prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def declared(name: str) -> dict[str, Any]:
    """The deployment ``flow/name`` as prefect.yaml declares it."""
    deployment_name = name.split("/", 1)[1]
    return next(d for d in prefect_yaml()["deployments"] if d["name"] == deployment_name)


def deployment(name: str):
    with client() as c:
        return c.read_deployment_by_name(name)


def tiny_cfg(stack: Stack, deployed: dict[str, Any]) -> dict[str, Any]:
    """The deployed cfg (paths, registry limit from prefect.yaml) + the tests' fast training."""
    fast = fast_settings(
        stack.workspace,
        MODEL,
        ingest={"settle_seconds": 1},
        evaluate={"make_plots": False},
        validation={"build_data_docs": False},
    )
    return over(deployed, fast)


def runs_of(deployment_name: str, since: datetime | None = None) -> list:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )

    flow_run_filter = None
    if since is not None:
        flow_run_filter = FlowRunFilter(
            expected_start_time=FlowRunFilterExpectedStartTime(after_=since)
        )
    with client() as c:
        runs = c.read_flow_runs(
            deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment(deployment_name).id])
            ),
            flow_run_filter=flow_run_filter,
        )
    return sorted(runs, key=lambda r: r.expected_start_time)


def retrain_runs() -> list:
    return runs_of("retrain/on-new-data") + runs_of("retrain/scheduled")


def events(stack: Stack, name: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        response = http.post(
            "/events/filter",
            json={"filter": {"event": {"name": [name]}, "order": "ASC"}, "limit": 50},
        )
        response.raise_for_status()
        return response.json()["events"]


def land(stack: Stack, name: str, start: int, n: int) -> Path:
    """Write a chunk the way an upstream job should: a temporary name, then a rename."""
    final = stack.landing / name
    partial = write_csv(series_frame(n=n, start=start, period=PERIOD), final.with_suffix(".part"))
    os.replace(partial, final)
    return final


def model_versions(stack: Stack) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{stack.workspace / 'mlflow.db'}")
    return client.search_model_versions(f"name='{MODEL}'")


def assert_no_overlap(runs: list) -> None:
    spans = sorted((r.start_time, r.end_time, r.name) for r in runs if r.start_time)
    for (_, end, name), (start, _, other) in zip(spans, spans[1:], strict=False):
        assert end is not None and end <= start, (
            f"retrain runs {name} and {other} overlapped: {name} ended {end}, {other} started "
            f"{start}"
        )


def assert_no_failed_automation_actions(stack: Stack) -> None:
    # An invalid templated parameter or a missing deployment shows up only as this event.
    failed = events(stack, "prefect.automation.action.failed")
    assert not failed, f"the trigger's run-deployment action failed: {failed}"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def report_timings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the latencies the issue asks to quote, whatever pytest captures."""
    started = time.monotonic()
    yield
    RESULTS["integration module, stack start to stop (s)"] = time.monotonic() - started
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for key, value in RESULTS.items():
            print(f"\n[seriesflow timing] {key}: {value:.1f}", end="")
        print()


@pytest.fixture(scope="module")
def tiny(stack: Stack) -> Stack:
    """Point every deployment's cfg at tiny training (the paths come from prefect.yaml)."""
    from prefect.client.schemas.actions import DeploymentUpdate

    for name in DEPLOYMENTS:
        current = deployment(name)
        parameters = {**current.parameters, "cfg": tiny_cfg(stack, current.parameters["cfg"])}
        with client() as c:
            c.update_deployment(current.id, DeploymentUpdate(parameters=parameters))
    return stack


# ----------------------------------------------------------------------------- tests


def test_deployments_are_deployed_as_declared(stack: Stack) -> None:
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    registry_limit = declared("retrain/on-new-data")["parameters"]["cfg"]["register"][
        "concurrency_limit"
    ]
    with client() as c:
        assert c.read_work_pool("seriesflow").type == "process"
        gcl = c.read_global_concurrency_limit_by_name(registry_limit)
        assert (gcl.limit, gcl.active) == (1, True)
        queue = c.read_work_queue_by_name("seriesflow-retrain", work_pool_name="seriesflow")
        assert queue.concurrency_limit == 1

    for name in ("retrain/on-new-data", "retrain/scheduled", "watch/poll"):
        deployed = deployment(name)
        spec = declared(name)
        assert deployed.entrypoint == spec["entrypoint"]
        assert deployed.work_queue_name == spec["work_pool"]["work_queue_name"]
        # The typed config is the parameter: the UI form and `-p cfg=...` come from it.
        assert "cfg" in deployed.parameter_openapi_schema["properties"]
        assert deployed.enforce_parameter_schema
        cfg = PipelineConfig.model_validate(deployed.parameters["cfg"])
        # prefect.yaml's {{ $SERIESFLOW_* }} were rendered by serve.sh's environment.
        assert cfg.paths.workspace_path() == stack.workspace
        assert cfg.paths.landing_path() == stack.landing
        assert cfg.register.concurrency_limit == registry_limit
        # Runs start in the checkout that serve.sh deployed from (SERIESFLOW_HOME).
        assert deployed.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
        ]
        limit = spec["concurrency_limit"]
        assert deployed.global_concurrency_limit.limit == limit["limit"] == 1
        assert deployed.concurrency_options.collision_strategy == ConcurrencyLimitStrategy(
            limit["collision_strategy"]
        )

    for name in ("retrain/on-new-data", "retrain/scheduled"):
        assert deployment(name).concurrency_options.collision_strategy.value == "ENQUEUE"

    (nightly,) = deployment("retrain/scheduled").schedules
    assert nightly.schedule.cron == declared("retrain/scheduled")["schedules"][0]["cron"]
    (poll,) = deployment("watch/poll").schedules
    assert (
        poll.schedule.interval.total_seconds() == declared("watch/poll")["schedules"][0]["interval"]
    )

    with client() as c:
        (automation,) = c.read_automations_by_name("seriesflow retrain on series.data.arrived")
    trigger, (action,) = automation.trigger, automation.actions
    assert trigger.expect == {EVENT_NAME}
    assert trigger.match.model_dump() == {"prefect.resource.id": landing_resource_id(stack.landing)}
    assert trigger.posture == "Reactive" and trigger.threshold == 1
    assert (
        trigger.within.total_seconds() == declared("retrain/on-new-data")["triggers"][0]["within"]
    )
    assert action.type == "run-deployment"
    assert action.deployment_id == deployment("retrain/on-new-data").id
    assert action.parameters is None  # the deployment's (validated) cfg is used as is
    # No alert target in this stack's environment: automations.yaml created no notification,
    # only the automation that crashes a silent retrain (it needs none), with make serve's
    # window (SERIESFLOW_HEARTBEAT_WINDOW, 300 s).
    with client() as c:
        (heartbeats,) = [a for a in c.read_automations() if a.name.startswith("seriesflow:")]
    assert heartbeats.name == "seriesflow: retrain stopped sending heartbeats"
    assert heartbeats.enabled and heartbeats.trigger.within.total_seconds() == 300

    # The scheduler is off in this stack, so nothing has run yet.
    assert not retrain_runs() and not runs_of("watch/poll")


def test_new_file_is_announced_and_retrained_into_a_new_version(tiny: Stack) -> None:
    stack = tiny
    dropped_at = time.time()
    path = land(stack, "chunk-001.csv", start=0, n=240)
    digest, size = sha256_file(path), path.stat().st_size  # the run archives the file

    watch_run = wait_final(start_run("watch/poll"), WATCH_TIMEOUT, stack)
    assert watch_run.state.is_completed(), watch_run.state

    # The server stores events in batches (every few seconds): wait for it to show.
    (event,) = wait_for(lambda: events(stack, EVENT_NAME), 30, f"the {EVENT_NAME} event")
    assert event["resource"]["prefect.resource.id"] == landing_resource_id(stack.landing)
    assert event["resource"]["seriesflow.model"] == MODEL
    assert event["payload"] == {
        "files": [{"name": path.name, "sha256": digest, "bytes": size}],
        "count": 1,
        "bytes": size,
        "truncated": False,
    }

    (triggered,) = wait_for(
        lambda: runs_of("retrain/on-new-data"), TRIGGER_TIMEOUT, "the trigger to start a retrain"
    )
    run = wait_final(triggered.id, RETRAIN_TIMEOUT, stack)
    assert run.state.is_completed() and run.state.name == "Completed", (
        f"{run.state.name}: {run.state.message}\n{stack.log_tail()}"
    )
    assert [int(v.version) for v in model_versions(stack)] == [1]
    ledger = load_ledger(Workspace(stack.workspace).ledger)
    assert digest in set(ledger["sha256"])
    assert not path.exists() and list(Workspace(stack.workspace).archive.glob(f"*/{path.name}"))
    assert_no_failed_automation_actions(stack)

    RESULTS["file drop -> retrain flow start (s)"] = run.start_time.timestamp() - dropped_at
    RESULTS["event -> retrain flow start (s)"] = (
        run.start_time.timestamp() - datetime.fromisoformat(event["occurred"]).timestamp()
    )
    RESULTS["triggered retrain run (s)"] = run.total_run_time.total_seconds()


def test_a_promotion_triggers_the_forecast_deployment(tiny: Stack) -> None:
    """The retrain above registered v1; when it was promoted, its seriesflow.model.promoted
    event has started forecast/on-promotion. (Tiny training may lose the gate: then crown v1
    by hand and send the event the retrain flow sends, to the same effect.)"""
    from seriesflow.ops.events import MODEL_PROMOTED, model_resource

    stack = tiny
    mlflow.set_tracking_uri(f"sqlite:///{stack.workspace / 'mlflow.db'}")
    mlclient = mlflow.MlflowClient()
    promoted = "champion" in (mlclient.get_model_version(MODEL, "1").aliases or [])
    if not promoted:
        mlclient.set_registered_model_alias(MODEL, "champion", "1")
        with client():
            from prefect.events import emit_event

            emit_event(
                event=MODEL_PROMOTED,
                resource=model_resource(MODEL, stack.workspace),
                payload={"model_name": MODEL, "version": "1", "promoted": True},
            )
    (triggered,) = wait_for(
        lambda: runs_of("forecast/on-promotion"),
        TRIGGER_TIMEOUT,
        "the promotion event to start forecast/on-promotion",
    )
    run = wait_final(triggered.id, RETRAIN_TIMEOUT, stack)
    assert run.state.is_completed() and run.state.name == "Completed", (
        f"{run.state.name}: {run.state.message}\n{stack.log_tail()}"
    )
    latest = json.loads((stack.workspace / "forecasts" / "latest.json").read_text())
    forecasts = pd.read_parquet(latest["path"])
    assert set(forecasts["series_id"]) == {"a", "b"}
    assert (
        set(forecasts["model_version"]) == {"1"} and (forecasts["lower"] < forecasts["upper"]).all()
    )
    RESULTS["promotion event -> forecast flow start (s)"] = (
        run.start_time.timestamp() - run.created.timestamp()
    )
    RESULTS["forecast run (s)"] = run.total_run_time.total_seconds()
    RESULTS["the retrain itself promoted v1 (1 = yes)"] = float(promoted)


def test_scheduled_run_without_new_data_ends_skipped(tiny: Stack) -> None:
    stack = tiny
    workspace = Workspace(stack.workspace)
    unseen = find_new(scan_landing(stack.landing, 0), load_ledger(workspace.ledger))
    assert not unseen, f"precondition: the landing folder should hold nothing new, has {unseen}"
    versions_before = len(model_versions(stack))

    run = run_retrain(stack)

    assert run.state.is_completed() and run.state.name == "Skipped", (
        f"{run.state.name}: {run.state.message}"
    )
    assert len(model_versions(stack)) == versions_before
    RESULTS["skipped scheduled run (s)"] = run.total_run_time.total_seconds()


def test_burst_of_events_starts_one_run_and_retrains_never_overlap(tiny: Stack) -> None:
    stack = tiny
    paths = [
        land(stack, "chunk-002.csv", start=240, n=48),
        land(stack, "chunk-003.csv", start=288, n=48),
    ]
    time.sleep(1.5)  # settle_seconds=1: let the files settle as a real burst would
    wait_out_trigger_window(stack)
    started = datetime.now().astimezone()

    # An upstream job announcing each file itself, twice in a row (docs/operations.md:
    # "Announcing new data"),
    # while the nightly run happens to start too.
    new = find_new(scan_landing(stack.landing, 0), load_ledger(Workspace(stack.workspace).ledger))
    assert {f.name for f in new} == {p.name for p in paths}
    digests = {sha256_file(p) for p in paths}  # the run archives the files
    asyncio.run(emit_twice(stack, new))
    nightly = start_run("retrain/scheduled")

    (triggered,) = wait_for(
        lambda: runs_of("retrain/on-new-data", since=started),
        TRIGGER_TIMEOUT,
        "the burst to start a retrain",
    )
    runs = [wait_final(r, RETRAIN_TIMEOUT, stack) for r in (triggered.id, nightly)]
    # The second event must not have started a second run (it would exist by now).
    assert [r.id for r in runs_of("retrain/on-new-data", since=started)] == [triggered.id]
    assert sorted(r.state.name for r in runs) == ["Completed", "Skipped"], [
        (r.name, r.state.name, r.state.message) for r in runs
    ]
    assert len(model_versions(stack)) == 2
    ledger = set(load_ledger(Workspace(stack.workspace).ledger)["sha256"])
    assert digests <= ledger

    assert_no_overlap(retrain_runs())
    assert_no_failed_automation_actions(stack)


# ----------------------------------------------------------------------------- burst helpers


def wait_out_trigger_window(stack: Stack) -> None:
    """Place the burst so that it cannot straddle one of the trigger's windows.

    The server evaluates a Reactive trigger in windows of `within` seconds, on event times:
    after it fires, events until the end of the current window are ignored. A burst that
    started just before a window boundary would have its second event counted in the
    next window. Sleep past the quiet window and away from the next boundary.
    """
    within = float(declared("retrain/on-new-data")["triggers"][0]["within"])
    last = datetime.fromisoformat(events(stack, EVENT_NAME)[-1]["occurred"]).timestamp()
    now = time.time()
    if now < last + within:
        time.sleep(last + within - now)
        now = time.time()
    boundary = last + 2 * within
    if boundary - 3 < now < boundary + 1:
        time.sleep(boundary + 1 - now)


async def emit_twice(stack: Stack, new: list) -> None:
    from prefect.events import Event
    from prefect.events.clients import get_events_client

    cfg = PipelineConfig.model_validate(deployment("retrain/on-new-data").parameters["cfg"])
    resource = arrival_resource(stack.landing, stack.workspace, cfg.register.model_name)
    async with get_events_client() as events_client:
        for _ in range(2):
            await events_client.emit(
                Event(event=EVENT_NAME, resource=resource, payload=arrival_payload(new))
            )
            await asyncio.sleep(0.3)
