import os

from seriesflow.workspace.claims import claim_landed
from seriesflow.workspace.files import Workspace
from seriesflow.workspace.landing import Landing
from seriesflow.workspace.ledger import (
    INGESTED,
    REJECTED,
    append_ledger,
    ledger_rows,
    load_ledger,
    scan_landing,
)
from seriesflow.workspace.retention import prune_runs, tidy_claims


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


def test_committed_claimed_copies_are_archived_and_uncommitted_ones_stay_claimed(tmp_path):
    workspace, landing = Workspace(tmp_path / "work"), tmp_path / "landing"
    landing.mkdir()
    for name, body in (("old.csv", "ingested\n"), ("bad.csv", "rejected\n"), ("new.csv", "x\n")):
        (landing / name).write_text(body)
    files = claim_landed(
        workspace, "20260101T000000-a", Landing(landing), scan_landing(landing, 0), print
    )
    by_name = {f.name: f for f in files}
    assert os.listdir(landing) == []  # claimed: out of landing before anything reads them
    append_ledger(workspace.ledger, ledger_rows([by_name["old.csv"]], INGESTED, "r1"))
    append_ledger(workspace.ledger, ledger_rows([by_name["bad.csv"]], REJECTED, "r1"))

    done = tidy_claims(workspace, load_ledger(workspace.ledger), "archive")

    assert sorted(done) == ["bad.csv", "old.csv"]
    assert [p.read_text() for p in workspace.archive.glob("*/*")] == ["ingested\n"]
    assert [p.read_text() for p in workspace.quarantine.glob("*/*")] == ["rejected\n"]
    (left,) = (workspace.root / "claimed").glob("*/*/*")
    assert left == by_name["new.csv"].path  # not committed: the next ingest takes it over


def test_keep_leaves_committed_copies_claimed_and_never_hashes_them_again(tmp_path, monkeypatch):
    import seriesflow.workspace.claims as claims_module

    workspace, landing = Workspace(tmp_path / "work"), tmp_path / "landing"
    landing.mkdir()
    (landing / "base.csv").write_text("kept\n")
    (taken,) = claim_landed(
        workspace, "20260101T000000-a", Landing(landing), scan_landing(landing, 0), print
    )
    append_ledger(workspace.ledger, ledger_rows([taken], INGESTED, "r1"))
    assert tidy_claims(workspace, load_ledger(workspace.ledger), "keep") == []
    assert taken.path.read_text() == "kept\n"
    monkeypatch.setattr(claims_module, "sha256_file", lambda p: 1 / 0)  # settled: not read
    assert tidy_claims(workspace, load_ledger(workspace.ledger), "delete") == []
    assert taken.path.exists()


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


def test_vacuum_never_takes_the_files_of_the_champions_version(tmp_path):
    from seriesflow.config.pipeline import ColumnsConfig
    from seriesflow.workspace.history import accepted_schema, append_rows, load_history
    from seriesflow.workspace.retention import vacuum_history
    from tests.factories import series_frame

    columns = ColumnsConfig()
    schema = accepted_schema(columns)
    workspace = Workspace(tmp_path)
    frame = series_frame(("a", "b"), n=6)
    append_rows(workspace, frame, schema, "run-1", 3)  # version 0: the champion trained on it
    append_rows(workspace, frame.iloc[:0], schema, "run-2", 3, revised=frame.assign(value=0.0))
    champion_rows = load_history(workspace, columns, version=0)

    # champion known: version 0's files stay, though the merge replaced them
    assert vacuum_history(workspace, 0, champion=lambda: (True, 0)) == []
    assert load_history(workspace, columns, version=0).equals(champion_rows)
    # a champion without a tag (from before the table): fails closed, nothing goes
    assert vacuum_history(workspace, 0, champion=lambda: (True, None), log=lambda _: None) == []
    # a registry that does not answer: nothing goes either
    assert vacuum_history(workspace, 0, champion=_unreachable, log=lambda _: None) == []
    assert load_history(workspace, columns, version=0).equals(champion_rows)
    # no champion (or one on version 1): the replaced files older than the retention go
    assert vacuum_history(workspace, 24, champion=lambda: (False, None)) == []  # too recent
    torn = workspace.history / "series_bucket=0" / "part-00000-torn.parquet"
    torn.write_bytes(b"a killed write's file, in no version")
    gone = vacuum_history(workspace, 0, champion=lambda: (True, 1))
    # the files of version 0 (series a and b are in buckets 0 and 2) and the torn one
    assert len(gone) == 3 and torn.relative_to(workspace.history).as_posix() in gone
    assert not torn.exists()
    assert load_history(workspace, columns)["value"].eq(0.0).all()


def _unreachable():
    raise ConnectionError("503 from the registry")
