import os

import pandas as pd
import pyarrow as pa

from seriesflow.workspace.files import atomic_path, write_table


def test_atomic_writes_are_durable_file_then_folder(tmp_path, monkeypatch):
    # after a power cut a renamed file must hold its bytes (fsync before the rename) and the
    # rename itself must be on disk (fsync of the folder after it)
    synced = []
    real = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd)
    )

    write_table(pa.Table.from_pandas(pd.DataFrame({"a": [1, 2]})), tmp_path / "t.parquet")

    assert len(synced) == 2
    assert os.path.basename(synced[0]).startswith(".tmp-")  # the bytes, before the rename
    assert synced[1] == str(tmp_path)  # then the folder that holds the new name
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "history.parquet"
    target.write_bytes(b"old")
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(28, "No space left on device")
    except OSError:
        pass
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["history.parquet"]


def test_a_temporary_name_says_which_writer_it_belongs_to(tmp_path):
    # recovery tells a crashed retrain's temporaries from those of a live forecast or tune
    from seriesflow.workspace.files import temporary_writer, writing_as

    final = tmp_path / "forecasts.parquet"
    with writing_as("forecast", "20260301T120000-abc123"), atomic_path(final) as tmp:
        assert tmp.name.startswith(".tmp-forecast.20260301T120000-abc123.")
        assert tmp.name.endswith(".parquet")
        assert temporary_writer(tmp) == ("forecast", "20260301T120000-abc123")
    with atomic_path(tmp_path / "x.json") as tmp:  # outside any flow: a writer of unknown kind
        assert temporary_writer(tmp) == ("any", f"pid{os.getpid()}")
    assert temporary_writer(tmp_path / ".tmp-k2h3j4.parquet") is None  # an older name
    # ids are names, never paths
    with writing_as("retrain", "../odd id"), atomic_path(tmp_path / "y.json") as tmp:
        assert tmp.parent == tmp_path and temporary_writer(tmp) == ("retrain", "___odd_id")
