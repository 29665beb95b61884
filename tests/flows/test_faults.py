"""Crashes at every step of a retrain, a full disk at commit: nothing lost, nothing wrong.

Each case runs ``python -m flows.retrain`` as a real process that SIGKILLs itself at a
named point (``seriesflow/ops/faults.py``), then a normal run in this process, then checks the
workspace invariants (``tests/flows/checks.py``): every accepted row in history exactly
once, ledger and history agree, the champion's data is in history, no temporary files,
no MLflow run left RUNNING, no two versions trained on the same data.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from flows.cli import main as seriesflow
from flows.retrain import retrain
from seriesflow.data.profile import build_profile
from seriesflow.ops.faults import POINTS
from seriesflow.workspace.files import Workspace, atomic_path
from seriesflow.workspace.history import history_version
from seriesflow.workspace.profile import load_profile, profile_path, read_meta, write_profile
from tests.factories import crash_config, write_csv, zigzag_frame
from tests.flows.checks import (
    assert_consistent,
    assert_profile_in_step,
    champion,
    history_frame,
    retrain_process,
    versions,
)

KILL_POINTS = [p for p in POINTS if p != "commit:ledger"]  # its test is below


def _workspace(tmp_path):
    landing = tmp_path / "landing"
    base = zigzag_frame()
    write_csv(base, landing / "base.csv")
    cfg = crash_config(tmp_path / "work", landing)
    config_file = tmp_path / "cfg.json"
    config_file.write_text(json.dumps(cfg.dump()))  # JSON is YAML
    return cfg, config_file, {"base.csv": base}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_each_point_then_a_normal_run_leaves_nothing_wrong(
    prefect_api_url, tmp_path, point
):
    cfg, config_file, landed = _workspace(tmp_path)

    killed = retrain_process(config_file, prefect_api_url, fault=f"kill@{point}")
    assert killed.wait() == -signal.SIGKILL, killed.output()[-3000:]

    # a crash once the version exists is finished by the next run's recovery (which then
    # finds nothing new); a crash before that leaves the files for the next run to train on
    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] in ("completed", "skipped"), result
    assert_consistent(cfg, landed)
    assert_profile_in_step(cfg)  # installed by the commit or by its replay
    (version,) = [v for v in versions(cfg) if not v.tags.get("seriesflow.orphan")]
    best = champion(cfg)
    assert best is not None and best.version == version.version


def test_full_disk_at_commit_changes_nothing_then_the_next_run_completes(
    prefect_server, tmp_path, monkeypatch
):
    cfg, _, landed = _workspace(tmp_path)
    monkeypatch.setenv("SERIESFLOW_FAULT", "enospc@commit:write")

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "failed" and "No space left on device" in result["reason"]
    assert champion(cfg) is None, "the champion alias moved although the commit failed"
    assert history_version(Workspace(cfg.paths.workspace_path())) is None  # no Delta commit
    monkeypatch.delenv("SERIESFLOW_FAULT")

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] in ("completed", "skipped"), result
    assert_consistent(cfg, landed)
    (version,) = [v for v in versions(cfg) if not v.tags.get("seriesflow.orphan")]
    assert champion(cfg).version == version.version


def test_recovery_sweeps_a_killed_retrain_s_temporary_but_not_a_live_forecast_s(
    prefect_api_url, tmp_path
):
    # The retrain dies inside the ledger write (SIGKILL: no finally), leaving a temporary;
    # the next retrain recovers while a forecast (which writes without the lock) is mid-write.
    cfg, config_file, landed = _workspace(tmp_path)
    workspace = Workspace(cfg.paths.workspace_path())

    killed = retrain_process(config_file, prefect_api_url, fault="kill@commit:ledger")
    assert killed.wait() == -signal.SIGKILL, killed.output()[-3000:]
    left = [p.name for p in workspace.root.glob(".tmp-*")]

    forecast = workspace.root / "forecasts" / "20260301T120000-abc123" / "forecasts.parquet"
    with atomic_path(forecast) as tmp:
        tmp.write_bytes(b"forecast rows")
        result = retrain(cfg, return_state=True).result(raise_on_failure=False)
    assert forecast.read_bytes() == b"forecast rows"  # its write completed

    assert result["status"] in ("completed", "skipped"), result
    assert len(left) == 1 and left[0].startswith(".tmp-retrain."), left  # named for its writer
    assert any("temporary file" in note for note in result["recovered"]), result["recovered"]
    assert_consistent(cfg, landed)  # no temporary left anywhere either


@pytest.mark.parametrize(
    "damage", ['{"state": "registered", "run_id": "2026', "{}"], ids=["truncated", "empty"]
)
def test_a_damaged_journal_fails_the_run_with_a_summary_naming_it(prefect_server, tmp_path, damage):
    cfg, _, _ = _workspace(tmp_path)
    journal = cfg.paths.workspace_path() / "commit.json"
    journal.parent.mkdir(parents=True)
    journal.write_text(damage)

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert isinstance(result, dict) and result["status"] == "failed", result
    assert str(journal) in result["reason"] and "seriesflow repair" in result["reason"]
    assert journal.read_text() == damage  # evidence kept for repair


def test_repair_rollback_sets_a_damaged_journal_aside_and_the_next_run_completes(
    prefect_server, tmp_path, capsys
):
    cfg, config_file, landed = _workspace(tmp_path)
    workspace = cfg.paths.workspace_path()
    workspace.mkdir(parents=True)
    (workspace / "commit.json").write_text('{"state": "regis')

    assert seriesflow(["repair", "--config", str(config_file)]) == 1  # shows, changes nothing
    assert "damaged" in capsys.readouterr().out and (workspace / "commit.json").exists()
    assert seriesflow(["repair", "--config", str(config_file), "--rollback"]) == 0
    (aside,) = workspace.glob("commit.json.damaged-*")
    assert aside.read_text() == '{"state": "regis' and not (workspace / "commit.json").exists()

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "completed", result
    assert_consistent(cfg, landed)


def test_a_file_that_kills_two_runs_while_read_is_quarantined_and_the_rest_commits(
    prefect_api_url, tmp_path
):
    cfg, config_file, landed = _workspace(tmp_path)
    poison = cfg.paths.landing_location() + "/poison.csv"
    write_csv(zigzag_frame(n=24, start=120), Path(poison))
    old = time.time() - 3600  # landed first: the first file each run claims and reads
    os.utime(poison, (old, old))

    for _ in range(2):  # the reader dies on it (the OOM killer, a segfault)
        killed = retrain_process(config_file, prefect_api_url, fault="kill@ingest:read")
        assert killed.wait() == -signal.SIGKILL, killed.output()[-3000:]

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "completed", result
    assert result["new_files"] == ["base.csv"] and result["rejected_files"] == ["poison.csv"]
    workspace = cfg.paths.workspace_path()
    (reason,) = (workspace / "quarantine").glob("*/poison.csv.reason.json")
    (failure,) = json.loads(reason.read_text())["failures"]
    assert failure["check"] == "crashed_the_pipeline"
    assert "crashed the pipeline twice" in failure["message"]
    assert_consistent(cfg, landed)


def test_a_profile_out_of_step_with_the_history_table_is_detected_and_rebuilt(
    prefect_api_url, tmp_path
):
    cfg, config_file, landed = _workspace(tmp_path)
    landing = Path(cfg.paths.landing_location())
    workspace = Workspace(cfg.paths.workspace_path())
    assert retrain(cfg, return_state=True).result(raise_on_failure=False)["status"] == "completed"
    first = history_version(workspace)
    assert read_meta(profile_path(workspace))["history_version"] == first
    assert_profile_in_step(cfg)

    # killed between the Delta append and the profile's install: the table is a version
    # ahead of the profile, which says so
    landed["next.csv"] = zigzag_frame(n=24, start=120)
    write_csv(landed["next.csv"], landing / "next.csv")
    killed = retrain_process(config_file, prefect_api_url, fault="kill@commit:history")
    assert killed.wait() == -signal.SIGKILL, killed.output()[-3000:]
    assert history_version(workspace) == first + 1
    profile, why = load_profile(workspace, first + 1, len(history_frame(cfg)), cfg)
    assert profile is None
    assert why == f"profile.parquet describes history version {first} (240 rows), " + (
        f"not version {first + 1} (288 rows)"
    )
    # the next run's recovery replays the data step: the profile of the appended version
    result = retrain(cfg, return_state=True).result(raise_on_failure=False)
    assert result["status"] in ("completed", "skipped"), result
    assert_consistent(cfg, landed)
    assert_profile_in_step(cfg)

    # a profile stamped with another version (a table restored, a lost install) is not used
    # for the next arrival: validate rebuilds it from the history (the stale one, the first
    # version's rows, would give every series 24 points too few)
    stale = build_profile(history_frame(cfg, first), cfg.validation.frequency)
    meta = {**read_meta(profile_path(workspace)), "history_version": first}
    write_profile(stale, profile_path(workspace), meta)
    landed["third.csv"] = zigzag_frame(n=24, start=144)
    write_csv(landed["third.csv"], landing / "third.csv")
    result = retrain(cfg, return_state=True).result(raise_on_failure=False)
    assert result["status"] == "completed", result
    assert_consistent(cfg, landed)
    assert_profile_in_step(cfg)
    assert read_meta(profile_path(workspace))["history_rows"] == 336
