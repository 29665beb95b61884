"""automations.yaml and its target setting (against the real server: tests/integration)."""

from __future__ import annotations

from uuid import UUID

import pytest
from prefect.events.schemas.automations import AutomationCore

from seriesflow.ops.alerts import (
    BLOCK_ENV,
    BLOCK_PLACEHOLDER,
    DEFAULT_FILE,
    FREQUENCY_ENV,
    HEARTBEAT_EVENT,
    WEBHOOK_ENV,
    WINDOW_ENV,
    load_automations,
    needs_target,
    target_from_env,
    with_block,
    with_heartbeat_window,
)
from seriesflow.ops.events import MODEL_PROMOTED

BLOCK = UUID("12345678-1234-5678-1234-567812345678")


def test_the_shipped_automations_are_valid_and_name_what_the_flow_emits():
    items = load_automations(DEFAULT_FILE)
    automations = [AutomationCore.model_validate(i) for i in with_block(items, BLOCK)]
    by_name = {a.name: a for a in automations}
    assert set(by_name) == {
        "seriesflow: retrain stopped sending heartbeats",
        "seriesflow: retrain failed, crashed or rejected",
        "seriesflow: model promoted",
    }
    failed = by_name["seriesflow: retrain failed, crashed or rejected"].trigger
    # Rejected and TimedOut are Failed-type states: matched by type, not by name.
    assert failed.match.model_dump() == {
        "prefect.resource.id": "prefect.flow-run.*",
        "prefect.state-type": ["FAILED", "CRASHED"],
    }
    assert failed.match_related.model_dump() == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": "retrain",
    }
    assert by_name["seriesflow: model promoted"].trigger.expect == {MODEL_PROMOTED}
    notifications = [a for a in automations if a.name != HEARTBEATS]
    for automation in notifications:
        (action,) = automation.actions
        assert action.type == "send-notification" and action.block_document_id == BLOCK
    # the placeholder is only substituted in a copy
    assert [needs_target(i) for i in items] == [False, True, True]
    assert all(a["actions"][0]["block_document_id"] == BLOCK_PLACEHOLDER for a in items[1:])


HEARTBEATS = "seriesflow: retrain stopped sending heartbeats"


def test_the_heartbeat_automation_crashes_a_silent_retrain_and_nothing_else():
    (item,) = [i for i in load_automations(DEFAULT_FILE) if i["name"] == HEARTBEATS]
    automation = AutomationCore.model_validate(item)
    trigger = automation.trigger
    # Prefect's zombie-run recipe: a bucket per flow run, opened by each heartbeat, closed
    # by the next one or by a final state; none within `within` fires
    assert trigger.posture == "Proactive" and trigger.threshold == 1
    assert trigger.after == {HEARTBEAT_EVENT} and trigger.for_each == {"prefect.resource.id"}
    assert trigger.within.total_seconds() == 300
    # every final state the retrain flow ends in, its own names (Skipped, Rejected) too
    finals = {"Completed", "Skipped", "Failed", "Rejected", "TimedOut", "Cancelled", "Crashed"}
    assert trigger.expect == {HEARTBEAT_EVENT} | {f"prefect.flow-run.{n}" for n in finals}
    assert trigger.match_related.model_dump() == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": "retrain",
    }
    (action,) = automation.actions
    assert (action.type, action.state.value, action.force) == (
        "change-flow-run-state",
        "CRASHED",
        False,  # a run that ended meanwhile stays as it ended
    )


def test_the_heartbeat_window_is_a_setting_with_room_for_two_heartbeats():
    items = load_automations(DEFAULT_FILE)
    windows = {
        i["name"]: i["trigger"].get("within")
        for i in with_heartbeat_window(items, {WINDOW_ENV: "45", FREQUENCY_ENV: "20"})
    }
    assert windows[HEARTBEATS] == 45.0
    assert windows["seriesflow: model promoted"] == 0  # only the heartbeat one changes
    unchanged = with_heartbeat_window(items, {})
    assert [i["trigger"]["within"] for i in unchanged] == [i["trigger"]["within"] for i in items]
    with pytest.raises(ValueError, match="at least 60"):
        with_heartbeat_window(items, {WINDOW_ENV: "45", FREQUENCY_ENV: "30"})
    with pytest.raises(ValueError, match="at least 360"):
        with_heartbeat_window(items, {FREQUENCY_ENV: "180"})  # the file's 300 s < 2 x 180
    with pytest.raises(ValueError, match="number of seconds"):
        with_heartbeat_window(items, {WINDOW_ENV: "5m"})


def test_duplicate_names_are_refused(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("automations:\n  - name: x\n  - name: x\n")
    with pytest.raises(ValueError, match="unique"):
        load_automations(path)


def test_the_target_is_a_setting():
    assert target_from_env({}) is None
    assert target_from_env({WEBHOOK_ENV: " "}) is None
    assert target_from_env({WEBHOOK_ENV: "http://127.0.0.1:9/h"}) == (
        "webhook",
        "http://127.0.0.1:9/h",
    )
    assert target_from_env({BLOCK_ENV: "slack-webhook/team"}) == ("block", "slack-webhook/team")
    for bad in ({WEBHOOK_ENV: "hooks.example.com"}, {BLOCK_ENV: "team"}):
        with pytest.raises(ValueError):
            target_from_env(bad)
    with pytest.raises(ValueError, match="not both"):
        target_from_env({WEBHOOK_ENV: "http://h", BLOCK_ENV: "a/b"})
