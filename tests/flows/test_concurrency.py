"""One writer per workspace: two ad-hoc runs at once lose nothing; --no-wait ends skipped."""

from __future__ import annotations

import json
import time

from flows.retrain import retrain
from seriesflow.workspace.files import Workspace
from seriesflow.workspace.ledger import load_ledger
from tests.factories import crash_config, write_csv, zigzag_frame
from tests.flows.checks import assert_consistent, retrain_process


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_adhoc_runs_at_once_both_finish_and_lose_nothing(prefect_api_url, tmp_path):
    landing = tmp_path / "landing"
    first_file, second_file = zigzag_frame(), zigzag_frame(n=24, start=120)
    write_csv(first_file, landing / "base.csv")
    cfg = crash_config(tmp_path / "work", landing)
    config_file = tmp_path / "cfg.json"
    config_file.write_text(json.dumps(cfg.dump()))
    release = tmp_path / "release"

    # The first run has read history and the landing folder, and is held there...
    first = retrain_process(
        config_file,
        prefect_api_url,
        fault="pause@after:ingest",
        env={"SERIESFLOW_FAULT_RELEASE": str(release)},
    )
    paused = release.with_name("release.paused")
    _wait_for(lambda: paused.exists() or first.popen.poll() is not None, 180, "run 1 to pause")
    assert paused.exists(), first.output()[-3000:]
    # ... when a second file lands and a second run starts (make run while make serve is up).
    write_csv(second_file, landing / "next.csv")
    second = retrain_process(config_file, prefect_api_url)
    _wait_for(
        lambda: "is busy" in second.output() or second.popen.poll() is not None,
        180,
        "run 2 to wait for the workspace (or to finish)",
    )
    release.touch()

    assert first.wait() == 0, first.output()[-3000:]
    assert second.wait() == 0, second.output()[-3000:]
    assert_consistent(cfg, {"base.csv": first_file, "next.csv": second_file})
    ledger = load_ledger(Workspace(cfg.paths.workspace_path()).ledger)
    assert sorted(ledger["name"]) == ["base.csv", "next.csv"]
    assert set(ledger["status"]) == {"ingested"}
    assert "is busy" in second.output()  # it waited for the first, and said for whom


def test_no_wait_ends_skipped_when_the_workspace_is_busy(prefect_server, tmp_path):
    from seriesflow.workspace.lock import workspace_lock

    landing = tmp_path / "landing"
    write_csv(zigzag_frame(), landing / "base.csv")
    cfg = crash_config(tmp_path / "work", landing, run={"wait_for_workspace": False})

    with workspace_lock(cfg.paths.workspace_path(), owner="a test holding it"):
        state = retrain(cfg, return_state=True)
        result = state.result(raise_on_failure=False)

    assert state.is_completed() and state.name == "Skipped"
    assert result["status"] == "skipped" and result["reason"].startswith("workspace busy")
    assert "a test holding it" in result["reason"]
    assert result["run_dir"] is None
    assert not (cfg.paths.workspace_path() / "runs").exists() or not any(
        (cfg.paths.workspace_path() / "runs").iterdir()
    )
