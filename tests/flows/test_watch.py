"""The watcher: what counts as new, what the event says, and that it is really emitted."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from flows.watch import watch
from seriesflow.config.pipeline import PipelineConfig
from seriesflow.ops.events import (
    EVENT_NAME,
    MAX_LISTED_FILES,
    arrival_payload,
    arrival_resource,
    landing_resource_id,
)
from seriesflow.workspace.files import Workspace, sha256_file
from seriesflow.workspace.ledger import (
    INGESTED,
    LandedFile,
    append_ledger,
    ledger_rows,
    scan_landing,
)


def _config(workspace: Path, landing: Path, settle_seconds: float = 5) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "paths": {"workspace": str(workspace), "landing": str(landing)},
            "ingest": {"settle_seconds": settle_seconds},
            "register": {"model_name": "watch-test"},
        }
    )


def _events(resource_id: str) -> list[dict]:
    from prefect.settings import PREFECT_API_URL

    with httpx.Client(base_url=PREFECT_API_URL.value(), timeout=10) as http:
        response = http.post(
            "/events/filter",
            json={
                "filter": {
                    "event": {"name": [EVENT_NAME]},
                    "resource": {"id": [resource_id]},
                    "order": "ASC",
                }
            },
        )
        response.raise_for_status()
        return response.json()["events"]


def test_payload_lists_a_bounded_number_of_files_with_exact_totals():
    files = [
        LandedFile(Path(f"/in/f{i:04d}.csv"), f"{i:064x}", bytes=10 + i, mtime=0.0)
        for i in range(MAX_LISTED_FILES + 3)
    ]
    payload = arrival_payload(files)
    assert payload["count"] == MAX_LISTED_FILES + 3
    assert payload["bytes"] == sum(10 + i for i in range(MAX_LISTED_FILES + 3))
    assert payload["truncated"] is True
    assert len(payload["files"]) == MAX_LISTED_FILES
    assert payload["files"][0] == {"name": "f0000.csv", "sha256": f"{0:064x}", "bytes": 10}

    small = arrival_payload(files[:2])
    assert (small["count"], small["bytes"], small["truncated"]) == (2, 21, False)


def test_resource_names_the_resolved_landing_folder(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    cfg = _config(tmp_path / "work", tmp_path / "link")
    # The trigger in prefect.yaml matches this id exactly: symlinks resolved, absolute.
    assert landing_resource_id(cfg.paths.landing_path()) == f"seriesflow.landing.{real}"
    resource = arrival_resource(real, tmp_path / "work", "m")
    assert resource["prefect.resource.id"] == f"seriesflow.landing.{real}"
    assert resource["seriesflow.landing"] == str(real)
    assert resource["seriesflow.model"] == "m"


def test_unrendered_deployment_paths_are_refused_with_a_hint(tmp_path):
    # prefect deploy without the variables would bake the placeholder into the deployment
    with pytest.raises(ValueError, match="SERIESFLOW_LANDING"):
        _config(tmp_path / "work", Path("{{ $SERIESFLOW_LANDING }}"))


def test_watch_announces_only_new_settled_content(prefect_server, tmp_path):
    workspace, landing = tmp_path / "work", tmp_path / "landing"
    landing.mkdir()
    cfg = _config(workspace, landing, settle_seconds=1)
    (landing / "seen.csv").write_text("series_id,timestamp,value\na,2026-01-01,1\n")
    (landing / "new.csv").write_text("series_id,timestamp,value\na,2026-01-02,2\n")
    (landing / "half.csv.part").write_text("series_id,timestamp,value\na,2026-01-03,")
    shutil.copy2(landing / "seen.csv", landing / "seen-again.csv")  # same bytes: not new
    append_ledger(
        Workspace(workspace).ledger,
        ledger_rows([f for f in scan_landing(landing, 0) if f.name == "seen.csv"], INGESTED, "r1"),
    )
    # a writer still at work: the file changes between the watcher's two looks
    writing, stop = landing / "writing.csv", threading.Event()

    def write_slowly():
        with open(writing, "a") as out:
            while not stop.wait(0.1):
                out.write("a,2026-01-04,4\n")
                out.flush()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    try:
        summary = watch(cfg)
    finally:
        stop.set()
        writer.join()

    new = landing / "new.csv"
    assert summary["status"] == "announced"
    assert (summary["count"], summary["bytes"]) == (1, new.stat().st_size)
    resource_id = landing_resource_id(landing.resolve())

    deadline = time.monotonic() + 30  # the server stores events in batches
    while not (found := _events(resource_id)) and time.monotonic() < deadline:
        time.sleep(1)
    (event,) = found
    assert event["id"] == summary["event_id"]
    assert event["payload"]["files"] == [
        {"name": "new.csv", "sha256": sha256_file(new), "bytes": new.stat().st_size}
    ]
    assert event["resource"]["seriesflow.workspace"] == str(workspace.resolve())


def test_watch_with_nothing_new_emits_nothing(prefect_server, tmp_path):
    workspace, landing = tmp_path / "work", tmp_path / "landing"
    landing.mkdir()
    summary = watch(_config(workspace, landing))
    assert summary == {
        "status": "nothing-new",
        "landing": str(landing.resolve()),
        "count": 0,
        "bytes": 0,
        "event_id": None,
    }


def test_watch_fails_loudly_on_a_missing_landing_folder(prefect_server, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: create it"):
        watch(_config(tmp_path / "work", tmp_path / "nowhere"))
