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


def test_retention_prunes_nothing_while_the_registry_cannot_name_the_champion(
    tmp_path, monkeypatch
):
    import mlflow

    from seriesflow.tracking.registry import champion_run_folder
    from tests.registry_stub import registry_503

    workspace = Workspace(tmp_path)
    names = [f"2026010{k}T000000-{k}" for k in range(1, 5)]  # the oldest is the champion's
    for name in names:
        workspace.new_run(name)
    warnings: list[str] = []

    with registry_503(monkeypatch) as uri:
        mlflow.set_tracking_uri(uri)
        removed = prune_runs(
            workspace,
            keep=1,
            protect={names[-1]},
            champion=lambda: champion_run_folder("m"),
            log=warnings.append,
        )

    assert removed == [] and sorted(p.name for p in workspace.runs.iterdir()) == names
    (warning,) = warnings
    assert "kept every run folder" in warning and "could not look up the champion" in warning


def test_prune_protects_the_champion_it_looks_up(tmp_path):
    workspace = Workspace(tmp_path)
    for name in ("20260101T000000-a", "20260102T000000-b", "20260103T000000-c"):
        workspace.new_run(name)
    removed = prune_runs(
        workspace, keep=1, protect={"20260103T000000-c"}, champion=lambda: "20260101T000000-a"
    )
    assert removed == ["20260102T000000-b"]
