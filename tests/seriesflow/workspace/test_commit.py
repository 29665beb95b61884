"""The commit protocol's pure parts; crashes at each step are tests/flows/test_faults.py."""

import tempfile
from pathlib import Path

import pytest

from seriesflow.workspace.commit import PREPARED, REGISTERED, begin, input_key, load, update
from seriesflow.workspace.files import Workspace, write_parquet
from seriesflow.workspace.ledger import scan_landing
from tests.factories import series_frame, tiny_config


def test_the_input_key_is_the_data_and_the_model_settings_not_the_rest(tmp_path):
    frame = series_frame(n=30)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_parquet(frame, a)
    write_parquet(frame.sample(frac=1, random_state=1), b)  # same rows, another order
    cfg = tiny_config(tmp_path / "w", tmp_path / "l")
    moved = tiny_config(tmp_path / "elsewhere", tmp_path / "l2", ingest={"settle_seconds": 99})

    assert input_key(a, cfg) == input_key(b, cfg) == input_key(a, moved)
    assert input_key(a, cfg) != input_key(
        a, tiny_config(tmp_path / "w", tmp_path / "l", train={"units": 3})
    )
    changed = frame.copy()
    changed.loc[4, "value"] += 0.001
    write_parquet(changed, b)
    assert input_key(a, cfg) != input_key(b, cfg)


def test_the_journal_records_each_step_durably(tmp_path):
    workspace = Workspace(tmp_path / "work")
    run = workspace.new_run("r1")
    write_parquet(series_frame(n=5), run.validated)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("x")
    files = scan_landing(tmp_path / "in", 0)
    cfg = tiny_config(workspace.root, tmp_path / "in")

    begin(workspace, run, files, "key", cfg, "https://ops:pw@mlflow.internal")
    journal = load(workspace)
    assert journal["state"] == PREPARED and journal["files"][0]["name"] == "a.csv"
    assert journal["registry"] == "https://ops:***@mlflow.internal"  # never the password
    assert update(workspace, state=REGISTERED, version="3")["version"] == "3"
    assert load(workspace)["state"] == REGISTERED
    assert not list(workspace.root.glob(".tmp-*"))
    with pytest.raises(RuntimeError, match="journal missing"):
        update(Workspace(tmp_path / "empty"), state=REGISTERED)


def test_recovery_sweeps_only_the_temporaries_of_crashed_writers(tmp_path):
    import os
    import time

    from seriesflow.workspace.commit import sweep_temporary
    from seriesflow.workspace.files import atomic_path, writing_as

    workspace = Workspace(tmp_path / "work")
    dead = workspace.new_run("20260301T110000-dead00")
    # a retrain killed mid-write (SIGKILL: no finally) left these, named as atomic_path names
    crashed = [
        Path(tempfile.mkstemp(prefix=f".tmp-retrain.{dead.run_id}.", dir=d, suffix=".parquet")[1])
        for d in (dead.root, workspace.root)
    ]
    stale = workspace.root / "forecasts" / "old" / ".tmp-forecast.20260101T000000-aaaaaa.x.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"a forecast that died two days ago")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    target = workspace.root / "forecasts" / "20260301T120000-live00" / "forecasts.parquet"

    # a forecast (no lock) is writing while the lock-holding retrain recovers
    with writing_as("forecast", "20260301T120000-live00"), atomic_path(target) as tmp:
        tmp.write_bytes(b"forecast rows")
        removed = sweep_temporary(workspace)
        assert tmp.exists()
    with atomic_path(workspace.root / "live_points.parquet") as tmp:  # a writer of no known kind
        tmp.write_bytes(b"points")
        removed += sweep_temporary(workspace)
        assert tmp.exists()

    assert target.read_bytes() == b"forecast rows"  # the write completed
    assert (workspace.root / "live_points.parquet").read_bytes() == b"points"
    assert sorted(removed) == sorted([*crashed, stale])
    assert not [p for p in workspace.root.rglob(".tmp-*")]
