"""What a retrain run announces when it ends: the events and their payloads (no server)."""

from __future__ import annotations

import json
import math

from seriesflow.ops.events import (
    DATA_REJECTED,
    MODEL_PROMOTED,
    MODEL_REJECTED,
    landing_resource_id,
    outcome_events,
    quarantined_files,
)
from seriesflow.workspace.files import RunDir, write_json
from tests.factories import tiny_config

QUARANTINED = [
    {
        "name": "bad.csv",
        "sha256": "ab" * 32,
        "quarantined_to": "/w/quarantine/2026-03-01/bad.csv",
        "failures": [
            {
                "file": "bad.csv",
                "check": "expect_column_values_to_not_be_null",
                "column": "value",
                "message": "missing values",
                "unexpected_count": 3,
                "examples": [{"row": 2, "series_id": "acct-7731", "value": None}],
            }
        ],
    }
]


EXAMPLE = '{"row": 2, "series_id": "acct-7731", "value": null}'
SUMMARY = (
    "bad.csv: check 'expect_column_values_to_not_be_null' failed on column 'value' (3 rows): "
    "missing values"
)


def completed(promoted: bool) -> dict:
    return {
        "status": "completed",
        "model_name": "test-lstm",
        "model_version": "2",
        "promoted": promoted,
        "gate_rule": "beats_champion" if promoted else "champion_kept",
        "reason": "why",
        "metrics": {"model": {"rmse": 1.5, "mape": math.nan}, "naive": {"rmse": 3.0}},
    }


def test_a_promotion_and_a_kept_champion_are_model_events(tmp_path):
    cfg = tiny_config(tmp_path / "work", tmp_path / "landing")
    run = RunDir(tmp_path / "work" / "runs" / "r1")
    ((name, resource, payload),) = outcome_events(completed(True), cfg, run, [])
    assert name == MODEL_PROMOTED
    assert resource["prefect.resource.id"] == "seriesflow.model.test-lstm"
    assert payload == {
        "model_name": "test-lstm",
        "version": "2",
        "promoted": True,
        "rule": "beats_champion",
        "reason": "why",
        "metrics": {"rmse": 1.5},  # NaN left out: events are JSON
        "run_id": "r1",
        "run_dir": str(run.root),
    }
    ((name, _, payload),) = outcome_events(completed(False), cfg, run, [])
    assert name == MODEL_REJECTED and payload["promoted"] is False
    assert payload["rule"] == "champion_kept"


def test_quarantined_files_are_a_data_event_with_the_failed_checks(tmp_path):
    cfg = tiny_config(tmp_path / "work", tmp_path / "landing")
    run = RunDir(tmp_path / "work" / "runs" / "r2")
    write_json({"accepted": [], "rejected": QUARANTINED}, run.validation_dir / "validation.json")
    assert quarantined_files(run) == QUARANTINED
    # the run's reason (the CLI's, the log's) quotes an example row; alerts must not
    result = {"status": "rejected", "reason": f"{SUMMARY}; e.g. {EXAMPLE}", "promoted": False}

    ((name, resource, payload),) = outcome_events(result, cfg, run, quarantined_files(run))

    assert name == DATA_REJECTED
    assert resource["prefect.resource.id"] == landing_resource_id(cfg.paths.landing_path())
    assert payload == {
        "files": [
            {
                "name": "bad.csv",
                "sha256": "ab" * 32,
                "quarantined_to": "/w/quarantine/2026-03-01/bad.csv",
                "checks": [
                    {
                        "check": "expect_column_values_to_not_be_null",
                        "column": "value",
                        "message": "missing values",
                        "unexpected_count": 3,
                    }
                ],
            }
        ],
        "count": 1,
        "arrival_rejected": True,
        "reason": SUMMARY,
        "run_id": "r2",
    }
    assert "acct-7731" not in json.dumps(payload)  # no data row goes to a webhook
    # Part of the arrival was good: the run completes, both events go out.
    names = [e[0] for e in outcome_events(completed(True), cfg, run, QUARANTINED)]
    assert names == [DATA_REJECTED, MODEL_PROMOTED]
    partial = outcome_events(completed(True), cfg, run, QUARANTINED)[0][2]
    assert partial["arrival_rejected"] is False
    assert partial["reason"] == SUMMARY


def test_skipped_and_failed_runs_announce_nothing(tmp_path):
    cfg = tiny_config(tmp_path / "work", tmp_path / "landing")
    run = RunDir(tmp_path / "work" / "runs" / "r3")
    assert quarantined_files(run) == []
    for status in ("skipped", "failed"):
        assert outcome_events({"status": status, "promoted": False}, cfg, run, []) == []
