"""automations.yaml and its target setting (against the real server: tests/integration)."""

from __future__ import annotations

from uuid import UUID

import pytest
from prefect.events.schemas.automations import AutomationCore

from seriesflow.ops.alerts import (
    BLOCK_ENV,
    BLOCK_PLACEHOLDER,
    DEFAULT_FILE,
    WEBHOOK_ENV,
    load_automations,
    target_from_env,
    with_block,
)
from seriesflow.ops.events import MODEL_PROMOTED

BLOCK = UUID("12345678-1234-5678-1234-567812345678")


def test_the_shipped_automations_are_valid_and_name_what_the_flow_emits():
    items = load_automations(DEFAULT_FILE)
    automations = [AutomationCore.model_validate(i) for i in with_block(items, BLOCK)]
    by_name = {a.name: a for a in automations}
    assert set(by_name) == {
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
    for automation in automations:
        (action,) = automation.actions
        assert action.type == "send-notification" and action.block_document_id == BLOCK
    # the placeholder is only substituted in a copy
    assert all(a["actions"][0]["block_document_id"] == BLOCK_PLACEHOLDER for a in items)


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
