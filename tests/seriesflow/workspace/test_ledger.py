import os
import time

from seriesflow.workspace.files import sha256_file
from seriesflow.workspace.ledger import (
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


def test_scan_skips_temporary_names_and_lists_every_other_file(tmp_path):
    (tmp_path / "good.csv").write_text("a")
    (tmp_path / "other.txt").write_text("b")  # unknown type: ingest rejects it, scan reports it
    (tmp_path / ".hidden.csv").write_text("c")
    (tmp_path / "partial.csv.part").write_text("d")
    (tmp_path / "sub").mkdir()  # not recursive
    found = scan_landing(tmp_path, settle_seconds=0)
    assert sorted(f.name for f in found) == ["good.csv", "other.txt"]
    assert {f.sha256 for f in found} == {
        sha256_file(tmp_path / "good.csv"),
        sha256_file(tmp_path / "other.txt"),
    }
    # with a settle time, one look is never enough, however old the file
    _age(tmp_path / "good.csv", 3600)
    assert scan_landing(tmp_path, settle_seconds=5) == []


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


def test_a_writer_that_pauses_is_not_read_until_two_looks_agree(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    path = landing / "slow.csv"
    path.write_text("series_id,timestamp,value\na,2026-01-01T00:00:00Z,10")  # cut mid-number
    paused_at = path.stat().st_mtime + 5  # the writer has paused 5 s (the old settle: 2 s)
    assert scan_landing(landing, 2.0, now=paused_at) == []

    state = tmp_path / "looks.json"
    assert scan_landing(landing, 30, now=paused_at, state=state) == []  # first look
    with open(path, "a") as out:  # the writer resumes
        out.write("2.345\na,2026-01-01T01:00:00Z,11.5\n")
    assert scan_landing(landing, 30, now=paused_at + 40, state=state) == []  # changed
    (found,) = scan_landing(landing, 30, now=paused_at + 71, state=state)  # unchanged 31 s
    assert found.name == "slow.csv" and found.sha256 == sha256_file(path)
    assert found.bytes == len(path.read_bytes())


def test_part_files_are_never_read_even_when_old(tmp_path):
    (tmp_path / "big.csv.part").write_text("series_id,timestamp,value\n")
    _age(tmp_path / "big.csv.part", 3600)
    state = tmp_path.parent / f"{tmp_path.name}-looks.json"
    assert scan_landing(tmp_path, 0, state=state) == []
    assert scan_landing(tmp_path, 0, state=state) == []


def test_symlinks_and_special_files_are_listed_as_such_and_never_opened(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    target = tmp_path / "secret.txt"
    target.write_text("TOPSECRET")
    (landing / "link.csv").symlink_to(target)
    os.mkfifo(landing / "pipe.csv")  # opening a FIFO for reading would block forever
    found = {f.name: f for f in scan_landing(landing, 0)}
    assert (found["link.csv"].kind, found["pipe.csv"].kind) == ("symlink", "special")
    assert "TOPSECRET" not in repr(found)


def test_a_poll_over_files_already_looked_at_reads_none_of_them(tmp_path, monkeypatch):
    import seriesflow.workspace.landing as landing_module

    landing = tmp_path / "landing"
    landing.mkdir()
    for i in range(200):
        (landing / f"f{i:04d}.csv").write_text(f"x,y\n{i},{i}\n")
    state = tmp_path / "looks.json"
    ledger_path = tmp_path / "ledger.parquet"
    append_ledger(ledger_path, ledger_rows(scan_landing(landing, 0, state=state), INGESTED, "r1"))

    reads = []
    real = landing_module.sha256_file
    monkeypatch.setattr(landing_module, "sha256_file", lambda p: reads.append(p) or real(p))
    ledger = load_ledger(ledger_path)
    assert find_new(scan_landing(landing, 0, state=state), ledger) == []
    assert reads == []
    (landing / "f0007.csv").write_text("x,y\n7,8\n")  # edited: hashed again, and new
    new = find_new(scan_landing(landing, 0, state=state), ledger)
    assert [f.name for f in new] == ["f0007.csv"] and len(reads) == 1


def test_a_rewrite_that_keeps_size_and_mtime_is_read_again(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    path = landing / "plants_latest.csv"
    path.write_text("x,y\n1,2\n")
    state = tmp_path / "looks.json"
    (first,) = scan_landing(landing, 0, state=state)
    ledger_path = tmp_path / "ledger.parquet"
    append_ledger(ledger_path, ledger_rows([first], INGESTED, "run-1"))

    before = path.stat()
    path.write_text("x,y\n9,9\n")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old mtime

    ledger = load_ledger(ledger_path)
    new = find_new(scan_landing(landing, 0, state=state), ledger)
    assert [(f.name, f.sha256) for f in new] == [("plants_latest.csv", sha256_file(path))]
