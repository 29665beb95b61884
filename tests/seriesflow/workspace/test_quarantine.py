from seriesflow.data.errors import CheckFailure
from seriesflow.workspace.files import Workspace, utcnow
from seriesflow.workspace.ledger import load_ledger, scan_landing
from seriesflow.workspace.quarantine import quarantine_files


def test_a_file_that_cannot_be_moved_is_ledgered_failed_and_left_in_place(tmp_path):
    workspace = Workspace(tmp_path / "work")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "bad.csv").write_text("series_id,timestamp,value\n")
    (landing / "worse.csv").write_text("nothing\n")
    files = scan_landing(landing, 0)
    # the day's quarantine folder cannot be created: a file is in the way
    workspace.quarantine.mkdir(parents=True)
    (workspace.quarantine / utcnow().strftime("%Y-%m-%d")).write_text("in the way")
    failures = {
        f.name: [CheckFailure(f.name, "not_empty", None, "the file has a header but no rows")]
        for f in files
    }

    records = quarantine_files(workspace, files, failures, "run-1")

    assert {r["name"] for r in records} == {"bad.csv", "worse.csv"}
    assert all(r["quarantined_to"] is None and "could not be moved" in r["error"] for r in records)
    assert (landing / "bad.csv").exists() and (landing / "worse.csv").exists()
    ledger = load_ledger(workspace.ledger)
    assert sorted(ledger["status"]) == ["failed", "failed"]
    reason = ledger["reason"].iloc[0]
    assert "not_empty" in reason and "could not be moved" in reason
