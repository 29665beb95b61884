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
