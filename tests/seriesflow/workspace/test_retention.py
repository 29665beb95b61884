from seriesflow.workspace.files import Workspace
from seriesflow.workspace.landing import Landing
from seriesflow.workspace.ledger import (
    INGESTED,
    append_ledger,
    ledger_rows,
    load_ledger,
    scan_landing,
)
from seriesflow.workspace.retention import prune_runs, tidy_landing


def test_prune_keeps_the_newest_and_every_protected_folder(tmp_path):
    workspace = Workspace(tmp_path)
    for name in (
        "20260101T000000-a",
        "20260102T000000-b",
        "20260103T000000-c",
        "20260104T000000-d",
    ):
        workspace.new_run(name)
    removed = prune_runs(workspace, keep=2, protect={"20260101T000000-a"})
    assert removed == ["20260102T000000-b"]
    assert sorted(p.name for p in workspace.runs.iterdir()) == [
        "20260101T000000-a",
        "20260103T000000-c",
        "20260104T000000-d",
    ]


def test_ingested_files_left_in_landing_are_archived_without_being_read(tmp_path, monkeypatch):
    import seriesflow.workspace.landing as landing_module

    workspace, landing = Workspace(tmp_path / "work"), tmp_path / "landing"
    landing.mkdir()
    (landing / "old.csv").write_text("ingested earlier\n")
    (landing / "new.csv").write_text("not yet\n")
    old = [f for f in scan_landing(landing, 0) if f.name == "old.csv"]
    append_ledger(workspace.ledger, ledger_rows(old, INGESTED, "r1"))
    monkeypatch.setattr(landing_module, "sha256_file", lambda p: 1 / 0)  # no file is read

    moved = tidy_landing(workspace, Landing(landing), load_ledger(workspace.ledger), "archive")

    assert moved == ["old.csv"] and [p.name for p in landing.iterdir()] == ["new.csv"]
    assert [p.name for p in workspace.archive.glob("*/*")] == ["old.csv"]
