import os
import time

from tasks.io import sha256_file
from tasks.ledger import (
    INGESTED,
    REJECTED,
    append_ledger,
    find_new,
    is_temporary_name,
    ledger_rows,
    load_ledger,
    scan_landing,
)


def _age(path, seconds):
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_scan_skips_temporary_and_unsettled_files(tmp_path):
    (tmp_path / "good.csv").write_text("a")
    (tmp_path / "other.txt").write_text("b")  # unknown type: ingest rejects it, scan reports it
    (tmp_path / ".hidden.csv").write_text("c")
    (tmp_path / "partial.csv.part").write_text("d")
    (tmp_path / "writing.csv").write_text("e")
    for name in ("good.csv", "other.txt", ".hidden.csv", "partial.csv.part"):
        _age(tmp_path / name, 60)
    found = scan_landing(tmp_path, settle_seconds=5)
    assert sorted(f.name for f in found) == ["good.csv", "other.txt"]
    assert {f.sha256 for f in found} == {
        sha256_file(tmp_path / "good.csv"),
        sha256_file(tmp_path / "other.txt"),
    }
    # once settled, the file being written is picked up
    assert "writing.csv" in {f.name for f in scan_landing(tmp_path, settle_seconds=0)}


def test_temporary_names():
    assert is_temporary_name("~lock.csv")
    assert is_temporary_name("data.csv.tmp")
    assert is_temporary_name(".tmp-abc.parquet")
    assert not is_temporary_name("chunk_0001.csv")


def test_ledger_by_content_hash(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("x,y\n1,2\n")
    files = scan_landing(landing, 0)
    ledger_path = tmp_path / "ledger.parquet"
    assert len(load_ledger(ledger_path)) == 0
    assert [f.name for f in find_new(files, load_ledger(ledger_path))] == ["a.csv"]

    append_ledger(ledger_path, ledger_rows(files, INGESTED, "run-1"))
    ledger = load_ledger(ledger_path)
    assert ledger["status"].tolist() == [INGESTED]
    assert ledger["run_id"].tolist() == ["run-1"]
    assert find_new(scan_landing(landing, 0), ledger) == []

    # an identical copy under another name is not new; edited content is
    (landing / "a_copy.csv").write_text("x,y\n1,2\n")
    assert find_new(scan_landing(landing, 0), ledger) == []
    (landing / "a.csv").write_text("x,y\n1,3\n")
    assert [f.name for f in find_new(scan_landing(landing, 0), ledger)] == ["a.csv"]


def test_same_content_twice_in_one_arrival_is_read_once(tmp_path):
    (tmp_path / "one.csv").write_text("same")
    (tmp_path / "two.csv").write_text("same")
    new = find_new(scan_landing(tmp_path, 0), load_ledger(tmp_path / "none.parquet"))
    assert len(new) == 1


def test_append_keeps_earlier_rows(tmp_path):
    (tmp_path / "a.csv").write_text("1")
    (tmp_path / "b.csv").write_text("2")
    files = scan_landing(tmp_path, 0)
    path = tmp_path / "ledger.parquet"
    append_ledger(path, ledger_rows(files[:1], INGESTED, "r1"))
    append_ledger(path, ledger_rows(files[1:], REJECTED, "r2", {files[1].sha256: "bad"}))
    ledger = load_ledger(path)
    assert ledger["status"].tolist() == [INGESTED, REJECTED]
    assert ledger["reason"].tolist()[1] == "bad"
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave nothing behind
