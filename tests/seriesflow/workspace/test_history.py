"""The accepted history as a Delta table: appends, time travel, the log, one series alone,
revisions, and the one-time migration of ``history.parquet``."""

import os

import pandas as pd
import pytest
from deltalake import DeltaTable

from seriesflow.config.pipeline import ColumnsConfig
from seriesflow.workspace.files import Workspace, write_parquet
from seriesflow.workspace.history import (
    BUCKET,
    MIGRATION,
    accepted_schema,
    append_file,
    append_rows,
    committed_version,
    history_has_rows,
    history_tables,
    history_version,
    load_history,
    load_history_since,
    load_series,
    migrate,
    new_rows,
    series_bucket,
)
from tests.factories import series_frame

COLUMNS = ColumnsConfig()
SCHEMA = accepted_schema(COLUMNS)
KEY = ["series_id", "timestamp"]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY, ignore_index=True)


def test_series_buckets_are_stable_and_spread():
    ids = pd.Series([f"s{k}" for k in range(200)] + ["s0"])
    buckets = series_bucket(ids, 8)
    assert buckets[0] == buckets[-1] == 6  # crc32(b"s0") % 8, in any process
    assert set(buckets) == set(range(8))
    assert (series_bucket(ids, 8) == buckets).all()


def test_without_revisions_the_new_rows_are_those_after_each_series_last_time():
    history = series_frame(("a", "b"), n=10)
    merged = _sorted(pd.concat([history, series_frame(("a", "c"), n=3, start=10)]))

    appended, revised = new_rows(history, merged, revisions=False)

    assert _sorted(appended).equals(_sorted(series_frame(("a", "c"), n=3, start=10)))
    assert revised.empty


def test_with_revisions_changed_values_are_revised_and_unchanged_ones_left_out():
    history = series_frame(("a",), n=5)
    merged = pd.concat([history, series_frame(("a",), n=2, start=5)], ignore_index=True)
    merged.loc[1, "value"] = 99.0  # a revision of an accepted value

    appended, revised = new_rows(history, merged, revisions=True)

    assert list(appended["timestamp"]) == list(series_frame(("a",), n=2, start=5)["timestamp"])
    assert revised.to_dict("records") == [merged.loc[1].to_dict()]


def test_each_commit_appends_one_version_without_rewriting_a_file(tmp_path):
    workspace = Workspace(tmp_path)
    first = series_frame(("a", "b", "c"), n=20)
    later = series_frame(("a", "b", "c"), n=2, start=20)

    assert append_rows(workspace, first, SCHEMA, "run-1", 4) == 0
    before = {p: os.stat(p).st_mtime_ns for p in DeltaTable(str(workspace.history)).file_uris()}
    assert append_rows(workspace, later, SCHEMA, "run-2", 4) == 1

    files = DeltaTable(str(workspace.history)).file_uris()
    assert set(before) < set(files)  # the old files are all still there, untouched
    assert {p: os.stat(p).st_mtime_ns for p in before} == before
    assert len(files) - len(before) == len(set(series_bucket(later["series_id"], 4)))
    assert (committed_version(workspace, "run-1"), committed_version(workspace, "run-2")) == (0, 1)
    assert committed_version(workspace, "run-3") is None
    # readers get the frame the Parquet file gave: no bucket column, sorted, UTC times
    assert load_history(workspace, COLUMNS).equals(_sorted(pd.concat([first, later])))
    assert load_history(workspace, COLUMNS, version=0).equals(_sorted(first))  # time travel
    assert str(load_history(workspace, COLUMNS)["timestamp"].dtype) == "datetime64[us, UTC]"


def test_a_file_streamed_into_the_table_equals_its_rows_appended_as_a_frame(tmp_path):
    """The commit's append of ``02_new_rows.parquet`` a record batch at a time (7 rows,
    so batches cut through series): the same rows and buckets as ``append_rows`` of the
    frame, one transaction tagged with the run id, the table's bucket count kept."""
    first, later = series_frame(("a", "b", "c"), n=20), series_frame(("a", "d"), n=5, start=20)
    path = write_parquet(later, tmp_path / "02_new_rows.parquet")
    streamed, framed = Workspace(tmp_path / "streamed"), Workspace(tmp_path / "framed")
    for workspace in (streamed, framed):
        append_rows(workspace, first, SCHEMA, "run-1", 4)
    assert append_file(streamed, path, "run-2", buckets=9, batch_rows=7) == 1
    assert append_rows(framed, later, SCHEMA, "run-2", 9) == 1
    assert committed_version(streamed, "run-2") == 1
    assert load_history(streamed, COLUMNS).equals(load_history(framed, COLUMNS))

    def buckets(workspace: Workspace) -> pd.DataFrame:
        rows = DeltaTable(str(workspace.history)).to_pandas()[["series_id", "timestamp", BUCKET]]
        return rows.sort_values(KEY, ignore_index=True)

    assert buckets(streamed).equals(buckets(framed))
    assert set(buckets(streamed)[BUCKET]) <= set(range(4))  # the table's 4, not 9


def test_the_rows_since_a_time_are_those_of_the_whole_history_at_or_after_it(tmp_path):
    """What live scoring reads: a filtered scan, equal to the whole history filtered; the
    same from a workspace not migrated yet (``history.parquet``)."""
    workspace = Workspace(tmp_path / "table")
    append_rows(workspace, series_frame(("a", "b", "c"), n=20), SCHEMA, "run-1", 4)
    append_rows(workspace, series_frame(("a", "d"), n=3, start=20), SCHEMA, "run-2", 4)
    whole = load_history(workspace, COLUMNS)
    since = whole["timestamp"].sort_values().iloc[55]  # inside the first commit's rows
    names = ["series_id", "timestamp", "value"]
    want = whole.loc[whole["timestamp"] >= since, names].reset_index(drop=True)
    got = load_history_since(workspace, COLUMNS, since, names)
    assert 0 < len(got) < len(whole) and got.equals(want)
    legacy = Workspace(tmp_path / "legacy")
    write_parquet(whole, legacy.legacy_history)
    assert load_history_since(legacy, COLUMNS, since, names).equals(want)


def test_one_series_is_read_from_its_bucket_alone(tmp_path):
    workspace = Workspace(tmp_path)
    frame = series_frame(("a", "b", "c", "d"), n=6)
    append_rows(workspace, frame, SCHEMA, "run-1", 4)
    bucket = int(series_bucket(pd.Series(["c"]), 4)[0])
    table = DeltaTable(str(workspace.history))

    (only,) = table.file_uris(partition_filters=[(BUCKET, "=", str(bucket))])
    assert f"{BUCKET}={bucket}" in only
    assert load_series(workspace, "c").equals(
        frame[frame["series_id"] == "c"].reset_index(drop=True)
    )


@pytest.mark.parametrize("rows", [1, 7, 10**6])
def test_the_history_streams_a_bucket_at_a_time_in_load_history_order(tmp_path, rows):
    """history_tables (what ingest streams): one bucket read and sorted at a time, spilled,
    then merged a series at a time; the rows, order and types of load_history, in tables of
    whole series of at least ``rows`` rows, whatever the buckets and the appends."""
    import pyarrow as pa

    workspace = Workspace(tmp_path / "work")
    assert not history_has_rows(workspace) and list(history_tables(workspace)) == []
    ids = ("b", "a", "Z9", "é1", "a b", "a-", "ä", "c", "d10", "d9", "0")
    append_rows(workspace, series_frame(ids[::2], n=9), SCHEMA, "run-1", 5)
    append_rows(workspace, series_frame(ids, n=4, start=9), SCHEMA, "run-2", 5)
    assert history_has_rows(workspace)
    spill = tmp_path / "spill"
    parts = list(history_tables(workspace, spill=spill, rows=rows))
    want = load_history(workspace, COLUMNS)
    got = pa.concat_tables(parts).to_pandas()
    pd.testing.assert_frame_equal(got, want)
    assert (
        got["series_id"].is_monotonic_increasing
        and len(set(series_bucket(got["series_id"], 5))) > 2
    )
    assert not spill.exists()  # the spilled buckets are removed
    sizes = [p.num_rows for p in parts]
    assert all(rows <= s < rows + 13 for s in sizes[:-1]) and sum(sizes) == len(want)
    # as of an earlier version: that version's rows; all at once (no spill folder): the same
    old = pa.concat_tables(history_tables(workspace, version=0, spill=spill)).to_pandas()
    pd.testing.assert_frame_equal(old, load_history(workspace, COLUMNS, version=0))
    whole = pa.concat_tables(history_tables(workspace)).to_pandas()
    pd.testing.assert_frame_equal(whole, want)


def test_revisions_merge_in_one_transaction_and_the_old_version_still_reads(tmp_path):
    workspace = Workspace(tmp_path)
    frame = series_frame(("a", "b"), n=4)
    append_rows(workspace, frame, SCHEMA, "run-1", 4)
    revised = frame.iloc[[1]].assign(value=-1.0)
    added = series_frame(("a",), n=1, start=4)

    assert append_rows(workspace, added, SCHEMA, "run-2", 4, revised=revised) == 1

    expected = pd.concat([frame, added], ignore_index=True)
    expected.loc[1, "value"] = -1.0
    assert load_history(workspace, COLUMNS).equals(_sorted(expected))
    assert load_history(workspace, COLUMNS, version=0).equals(_sorted(frame))
    assert committed_version(workspace, "run-2") == 1


def test_an_unknown_version_names_the_table(tmp_path):
    workspace = Workspace(tmp_path)
    append_rows(workspace, series_frame(n=3), SCHEMA, "run-1", 4)
    with pytest.raises(ValueError, match="has no version 7"):
        load_history(workspace, COLUMNS, version=7)


def test_migration_moves_history_parquet_into_the_table_once(tmp_path):
    workspace = Workspace(tmp_path)
    frame = series_frame(("a", "b"), n=30)
    write_parquet(frame, workspace.legacy_history, SCHEMA)
    assert load_history(workspace, COLUMNS).equals(frame)  # read as it is until migrated

    note = migrate(workspace, 4)

    assert "history.parquet.migrated" in note
    assert not workspace.legacy_history.exists()
    assert (tmp_path / "history.parquet.migrated").exists()
    assert load_history(workspace, COLUMNS).equals(frame)
    assert committed_version(workspace, MIGRATION) == 0
    assert migrate(workspace, 4) is None and history_version(workspace) == 0  # idempotent


def test_migration_killed_after_its_commit_only_renames_the_file_next_time(tmp_path):
    workspace = Workspace(tmp_path)
    frame = series_frame(("a", "b"), n=30)
    write_parquet(frame, workspace.legacy_history, SCHEMA)
    append_rows(workspace, frame, SCHEMA, MIGRATION, 4)  # committed, then the process died

    migrate(workspace, 4)

    assert history_version(workspace) == 0  # no second copy of the rows
    assert load_history(workspace, COLUMNS).equals(frame)
    assert not workspace.legacy_history.exists()


def test_migration_killed_mid_write_writes_again_and_ignores_the_torn_files(tmp_path):
    workspace = Workspace(tmp_path)
    frame = series_frame(("a", "b"), n=30)
    write_parquet(frame, workspace.legacy_history, SCHEMA)
    torn = workspace.history / f"{BUCKET}=1" / "part-00000-torn.parquet"
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"half a file")  # data files written, no log entry

    migrate(workspace, 4)

    assert load_history(workspace, COLUMNS).equals(frame)


def test_migration_refuses_when_a_table_not_made_from_the_file_exists(tmp_path):
    workspace = Workspace(tmp_path)
    append_rows(workspace, series_frame(n=3), SCHEMA, "run-1", 4)
    write_parquet(series_frame(n=5), workspace.legacy_history, SCHEMA)
    with pytest.raises(RuntimeError, match="both exist"):
        migrate(workspace, 4)
    assert workspace.legacy_history.exists()
