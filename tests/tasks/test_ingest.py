"""The ingest task on a real landing folder: claim, then read; bounded inputs; no poison
loop; only the configured patterns are arrivals (issue #18, findings 1, 2 and 8)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seriesflow.config.pipeline import ColumnsConfig, IngestConfig
from seriesflow.workspace.files import Workspace, sha256_file
from seriesflow.workspace.ledger import INGESTED, append_ledger, ledger_rows, load_ledger
from seriesflow.workspace.retention import dispose_landed
from tasks.ingest import ingest
from tests.factories import series_frame, write_csv


def _ingest(tmp_path, run_id="20260101T000000-a", **settings):
    workspace = Workspace(tmp_path / "work")
    run = workspace.new_run(run_id)
    cfg = IngestConfig(settle_seconds=0, **settings)
    result = ingest.fn(workspace.root, run, str(tmp_path / "landing"), ColumnsConfig(), cfg)
    return workspace, run, result


def _failure(result, name):
    (landed,) = [f for f in result.new_files if f.name == name]
    (failure,) = result.read_failures[landed.sha256]
    return failure


def test_a_rewrite_under_the_same_name_after_the_read_is_not_what_gets_archived(tmp_path):
    landing = tmp_path / "landing"
    write_csv(series_frame(n=30), landing / "plants_latest.csv")
    content_a = (landing / "plants_latest.csv").read_bytes()
    workspace, _, result = _ingest(tmp_path)
    (taken,) = result.new_files

    # the producer rewrites the name before the run ends: content B was never read
    write_csv(series_frame(n=40), landing / "plants_latest.csv")
    content_b = (landing / "plants_latest.csv").read_bytes()
    dispose_landed(workspace, [taken], "archive")

    (archived,) = workspace.archive.glob("*/*")
    assert archived.read_bytes() == content_a  # what was read (its hash is the ledger's)
    assert (landing / "plants_latest.csv").read_bytes() == content_b  # a new arrival, left
    assert taken.sha256 == sha256_file(archived)


def test_a_file_past_a_limit_is_quarantined_with_the_limit_named(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    # 24 KB on disk, many rows decoded: a constant column compresses to nothing
    rows = 200_000
    table = pa.table(
        {
            "series_id": pa.array(["a"] * rows),
            "timestamp": pa.array([pd.Timestamp("2026-01-01", tz="UTC")] * rows),
            "value": pa.array(np.zeros(rows)),
        }
    )
    pq.write_table(table, landing / "bomb.parquet", row_group_size=rows)
    wide = pd.DataFrame([list(range(2_000))], columns=[f"c{i}" for i in range(2_000)])
    wide.to_csv(landing / "wide.csv", index=False)
    write_csv(series_frame(n=30), landing / "good.csv")
    (landing / "big.csv").write_text("series_id,timestamp,value\n" + "a,2026-01-01,1\n" * 5000)

    _, _, result = _ingest(tmp_path, max_rows=100_000, max_columns=1_000, max_file_bytes=50_000)

    assert [f.name for f in result.new_files if f.sha256 not in result.read_failures] == [
        "good.csv"
    ]
    bomb = _failure(result, "bomb.parquet")
    assert (bomb["check"], bomb["column"]) == ("max_rows", None)
    assert "ingest.max_rows" in bomb["message"] and "200000" in bomb["message"]
    wide_failure = _failure(result, "wide.csv")
    assert wide_failure["check"] == "max_columns"
    assert "ingest.max_columns" in wide_failure["message"] and "2000" in wide_failure["message"]
    big = _failure(result, "big.csv")
    assert big["check"] == "max_file_bytes" and "ingest.max_file_bytes" in big["message"]
    assert str(os.path.getsize(next((tmp_path / "work").rglob("big.csv")))) in big["message"]


def test_the_decoded_size_of_parquet_row_groups_is_bounded_before_reading(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    rows = 50_000
    table = pa.table({"series_id": pa.array(["x" * 200] * rows), "value": np.ones(rows)})
    pq.write_table(table, landing / "wide_text.parquet")
    _, _, result = _ingest(tmp_path, max_decoded_bytes=1_000_000)
    failure = _failure(result, "wide_text.parquet")
    assert failure["check"] == "max_decoded_bytes"
    assert "ingest.max_decoded_bytes" in failure["message"]


class Killed(BaseException):
    """What the OOM killer does to a run, as far as the code after it sees: nothing runs."""


def test_a_file_that_crashed_two_runs_is_quarantined_and_the_next_arrival_proceeds(
    tmp_path, monkeypatch
):
    import tasks.ingest as ingest_module

    landing = tmp_path / "landing"
    write_csv(series_frame(n=30), landing / "innocent.csv")  # read fine before each crash
    write_csv(series_frame(n=30, start=60), landing / "poison.csv")
    real = ingest_module.read_series_file

    def reader(path, columns, cfg, name):
        if name == "poison.csv":
            raise Killed  # the process dies in the read
        return real(path, columns, cfg, name)

    monkeypatch.setattr(ingest_module, "read_series_file", reader)
    for run_id in ("20260101T000000-a", "20260101T000001-b"):
        with pytest.raises(Killed):
            _ingest(tmp_path, run_id=run_id)
    monkeypatch.setattr(ingest_module, "read_series_file", real)
    write_csv(series_frame(n=20, start=40), landing / "next.csv")

    _, _, result = _ingest(tmp_path, run_id="20260101T000002-c")

    failure = _failure(result, "poison.csv")
    assert failure["check"] == "crashed_the_pipeline"
    assert "crashed the pipeline twice" in failure["message"]
    assert "ingest.max_attempts=2" in failure["message"]
    assert failure["examples"] == [
        {"phase": "read", "runs": ["20260101T000000-a", "20260101T000001-b"]}
    ]
    readable = [f.name for f in result.new_files if f.sha256 not in result.read_failures]
    assert sorted(readable) == ["innocent.csv", "next.csv"]


def test_other_files_in_a_shared_landing_folder_are_left_alone(tmp_path):
    landing = tmp_path / "landing"
    write_csv(series_frame(n=30), landing / "base.csv")
    (landing / "README.txt").write_text("for the other tool")
    (landing / "export.xlsx").write_bytes(b"PK\x03\x04 not ours")
    (landing / "state.json").write_text("{}")

    workspace, _, result = _ingest(tmp_path)

    assert [f.name for f in result.new_files] == ["base.csv"]
    assert result.read_failures == {}
    assert sorted(p.name for p in landing.iterdir()) == ["README.txt", "export.xlsx", "state.json"]
    assert set(load_ledger(workspace.ledger)["name"]) <= {"base.csv"}


def test_a_run_that_died_after_claiming_leaves_its_files_to_the_next_run(tmp_path):
    landing = tmp_path / "landing"
    write_csv(series_frame(n=30), landing / "base.csv")
    content = (landing / "base.csv").read_bytes()
    _ingest(tmp_path, run_id="20260101T000000-a")  # claimed and read, then the run died
    write_csv(series_frame(n=10, start=50), landing / "base.csv")  # a newer file, same name

    newer = (landing / "base.csv").read_bytes()

    _, run, result = _ingest(tmp_path, run_id="20260101T000001-b")

    # the claimed copy is taken over (never lost), the newer file is not overwritten: it
    # waits in landing for the next run
    (taken,) = result.new_files
    assert taken.path.read_bytes() == content and run.run_id in str(taken.path)
    assert (landing / "base.csv").read_bytes() == newer
    # once run b commits, the next run takes the newer file (and disposes of b's copy)
    from seriesflow.workspace.retention import tidy_claims

    workspace = Workspace(tmp_path / "work")
    append_ledger(workspace.ledger, ledger_rows([taken], INGESTED, run.run_id))
    tidy_claims(workspace, load_ledger(workspace.ledger), "archive")
    _, _, after = _ingest(tmp_path, run_id="20260101T000002-c")
    assert [f.path.read_bytes() for f in after.new_files] == [newer]
    assert [p.read_bytes() for p in workspace.archive.glob("*/*")] == [content]


def test_a_retry_after_a_dropped_connection_reads_what_the_failed_try_claimed(
    tmp_path, monkeypatch
):
    """The landing area's storage drops the connection during the read: the file is claimed
    (out of landing) but unread. The retry (the same run, as Prefect retries the task) reads
    the claimed copy; the drop is not counted against the file."""
    import tasks.ingest as ingest_module

    landing = tmp_path / "landing"
    frame = series_frame(n=30)
    write_csv(frame, landing / "a.csv")
    real_read = ingest_module.read_series_file
    drops = [ConnectionResetError(104, "Connection reset by peer")]

    def read_once_dropped(*args, **kwargs):
        if drops:
            raise drops.pop()
        return real_read(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "read_series_file", read_once_dropped)
    workspace = Workspace(tmp_path / "work")
    run = workspace.new_run("20260101T000000-a")

    def one_try():
        cfg = IngestConfig(settle_seconds=0)
        return ingest.fn(workspace.root, run, str(landing), ColumnsConfig(), cfg)

    with pytest.raises(ConnectionResetError):
        one_try()  # the first try: claimed, then the read fails
    assert not (landing / "a.csv").exists()  # claimed out of landing already

    result = one_try()  # the retry: the same run
    (taken,) = result.new_files
    assert taken.name == "a.csv" and not result.read_failures
    assert len(pd.read_parquet(result.path)) == len(frame)
    # the drop is not counted as a run that died reading the file (ingest.max_attempts)
    record = json.loads((workspace.root / "attempts.json").read_text())
    assert record[taken.sha256]["read"] == []


@pytest.mark.parametrize("batch_rows", [7, 10**6])
def test_the_streamed_ingest_table_is_the_history_then_each_file_as_stacked_in_memory(
    tmp_path, batch_rows, monkeypatch
):
    """Ingest writes its table a part at a time (the history from the Delta table in
    batches, then each file as it is read), never stacking it in memory: the file equals
    ``stack_with_history`` of the accepted history and the files, row for row, and a
    history without a column configured since gets it empty."""
    import tasks.ingest as ingest_module
    from seriesflow.data.reading import stack_with_history
    from seriesflow.data.schema import SOURCE_FILE, SOURCE_ROW
    from seriesflow.workspace.history import (
        HISTORY_SOURCE,
        accepted_schema,
        append_rows,
        load_history,
    )

    workspace = Workspace(tmp_path / "work")
    old = series_frame(series=("b", "a"), n=20)
    append_rows(workspace, old, accepted_schema(ColumnsConfig()), "20250101T000000-x", 4)
    landing = tmp_path / "landing"
    first = series_frame(series=("b", "a"), n=5, start=20).assign(temp=1.5)
    second = series_frame(series=("c",), n=6).assign(temp=-2.0)
    write_csv(first, landing / "1-first.csv")
    write_csv(second, landing / "2-second.csv")
    os.utime(landing / "1-first.csv", (1_000_000, 1_000_000))  # landing order: first, second
    columns = ColumnsConfig(covariates=["temp"])
    real = ingest_module.history_parts
    monkeypatch.setattr(ingest_module, "history_parts", lambda h, s: real(h, s, rows=batch_rows))
    run = workspace.new_run("20260101T000000-a")
    cfg = IngestConfig(settle_seconds=0)
    result = ingest.fn(workspace.root, run, str(landing), columns, cfg)

    got = pd.read_parquet(result.path)
    history = load_history(workspace, columns).assign(temp=np.nan)
    frames = [(f.name, pd.read_csv(f.path)) for f in result.new_files]
    assert [name for name, _ in frames] == ["1-first.csv", "2-second.csv"]
    want = stack_with_history(history, [])
    assert result.history_rows == 40 and len(got) == 40 + 10 + 6
    head = got.iloc[:40].reset_index(drop=True)
    assert (head[SOURCE_FILE] == HISTORY_SOURCE).all() and head[SOURCE_ROW].tolist() == list(
        range(40)
    )
    for column in ["series_id", "value"]:
        assert head[column].tolist() == want[column].tolist()
    assert (head["timestamp"] == want["timestamp"]).all() and head["temp"].isna().all()
    assert head["series_id"].tolist() == ["a"] * 20 + ["b"] * 20  # sorted as load_history
    tail = got.iloc[40:].reset_index(drop=True)
    assert tail[SOURCE_FILE].tolist() == ["1-first.csv"] * 10 + ["2-second.csv"] * 6
    # each row's line in its file (the header is line 1), as read_series_file indexes it
    assert tail[SOURCE_ROW].tolist() == list(range(2, 12)) + list(range(2, 8))
    np.testing.assert_allclose(
        tail["value"].to_numpy(), np.r_[first["value"].to_numpy(), second["value"].to_numpy()]
    )
    assert tail["temp"].tolist() == [1.5] * 10 + [-2.0] * 6
    assert sorted(p.name for p in run.root.iterdir() if p.name.startswith(".")) == []
