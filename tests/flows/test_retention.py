"""What a run leaves behind: landed files archived, old run folders pruned, skips leave none;
the same inputs and config never make a second version."""

from __future__ import annotations

import os

from seriesflow.workspace.files import Workspace
from tests.factories import crash_config, write_csv, zigzag_frame
from tests.flows.checks import assert_consistent, champion, run_retrain, versions


def _run(cfg):
    return run_retrain(cfg).result


def test_landed_files_are_archived_and_a_skipped_run_leaves_no_folder(prefect_server, tmp_path):
    landing = tmp_path / "landing"
    base = zigzag_frame()
    write_csv(base, landing / "base.csv")
    cfg = crash_config(tmp_path / "work", landing)
    workspace = Workspace(cfg.paths.workspace_path())

    assert _run(cfg)["status"] == "completed"
    assert not (landing / "base.csv").exists()
    (archived,) = (workspace.root / "archive").glob("*/base.csv")
    assert archived.parent.name == archived.parent.name[:10] and len(archived.parent.name) == 10

    folders = sorted(workspace.runs.iterdir())
    result = _run(cfg)
    assert result["status"] == "skipped" and result["run_dir"] is None
    assert sorted(workspace.runs.iterdir()) == folders
    assert_consistent(cfg, {"base.csv": base})


def test_keep_landed_files_where_they_were_claimed_or_delete_them(prefect_server, tmp_path):
    landing = tmp_path / "landing"
    write_csv(zigzag_frame(), landing / "base.csv")
    body = (landing / "base.csv").read_bytes()
    cfg = crash_config(tmp_path / "work", landing, retention={"landed": "keep"})
    claimed = cfg.paths.workspace_path() / "claimed"
    assert _run(cfg)["status"] == "completed"
    # claimed out of landing before the read, and kept there: the bytes that were ingested
    (kept,) = claimed.glob("*/*/base.csv")
    assert kept.read_bytes() == body and not (landing / "base.csv").exists()
    assert _run(cfg)["status"] == "skipped"  # kept, ledgered: not new

    write_csv(zigzag_frame(n=24, start=120), landing / "next.csv")
    deleting = crash_config(tmp_path / "work", landing, retention={"landed": "delete"})
    assert _run(deleting)["status"] == "completed"
    assert os.listdir(landing) == []
    # deleted: next.csv's claimed copy; what an earlier run kept stays kept
    assert [p.name for p in claimed.glob("*/*/*")] == ["base.csv"]
    assert not (cfg.paths.workspace_path() / "archive").exists()


def test_old_run_folders_are_pruned_but_never_the_champions(prefect_server, tmp_path):
    landing = tmp_path / "landing"
    landed = {"base.csv": zigzag_frame()}
    write_csv(landed["base.csv"], landing / "base.csv")
    cfg = crash_config(
        tmp_path / "work",
        landing,
        retention={"keep_runs": 2},
        register={"promote_margin": 0.95},  # only the first version can be champion
    )
    workspace = Workspace(cfg.paths.workspace_path())
    assert _run(cfg)["promoted"] is True
    first = champion(cfg)
    for k in range(3):
        name = f"next{k}.csv"
        landed[name] = zigzag_frame(n=24, start=120 + 24 * k)
        write_csv(landed[name], landing / name)
        result = _run(cfg)
        assert result["status"] == "completed" and result["promoted"] is False, result

    folders = {p.name for p in workspace.runs.iterdir()}
    assert len(folders) == 3  # the last two runs and the champion's
    champion_run = mlflow_run_dir(cfg, first)
    assert champion_run.name in folders and champion_run.exists()
    assert_consistent(cfg, landed)


def mlflow_run_dir(cfg, version):
    from tests.flows.checks import run_dir_of

    return run_dir_of(cfg, version).root


def test_same_inputs_and_config_reuse_the_version_unless_forced(prefect_server, tmp_path):
    landing = tmp_path / "landing"
    write_csv(zigzag_frame(), landing / "base.csv")
    cfg = crash_config(tmp_path / "work", landing)
    first = _run(cfg)
    assert first["model_version"] == "1"

    again = crash_config(tmp_path / "work", landing, ingest={"retrain_without_new_data": True})
    result = _run(again)
    assert result["status"] == "completed" and result["model_version"] == "1", result
    assert result["reused"] is True and "version 1" in result["reason"]
    assert len(versions(cfg)) == 1

    forced = crash_config(
        tmp_path / "work", landing, ingest={"retrain_without_new_data": True}, run={"force": True}
    )
    assert _run(forced)["model_version"] == "2"
    changed = crash_config(
        tmp_path / "work", landing, ingest={"retrain_without_new_data": True}, train={"units": 8}
    )
    assert _run(changed)["model_version"] == "3"  # another config: another model


def test_a_workspace_with_history_parquet_is_migrated_once_by_its_next_retrain(
    prefect_server, tmp_path
):
    import shutil

    from deltalake import DeltaTable

    from seriesflow.workspace.files import write_parquet
    from seriesflow.workspace.history import accepted_schema, load_history

    landing = tmp_path / "landing"
    base, later = zigzag_frame(), zigzag_frame(n=24, start=120)
    write_csv(base, landing / "base.csv")
    cfg = crash_config(tmp_path / "work", landing)
    workspace = Workspace(cfg.paths.workspace_path())
    assert _run(cfg)["status"] == "completed"
    # as a workspace from before the table left it: the accepted rows in history.parquet
    rows = load_history(workspace, cfg.columns)
    write_parquet(rows, workspace.legacy_history, accepted_schema(cfg.columns))
    shutil.rmtree(workspace.history)
    write_csv(later, landing / "next.csv")

    result = _run(cfg)

    assert result["status"] == "completed", result
    assert not workspace.legacy_history.exists()
    assert (workspace.root / "history.parquet.migrated").exists()
    log = [entry.get("seriesflow.run_id") for entry in DeltaTable(str(workspace.history)).history()]
    run_id = result["run_dir"].rsplit("/", 1)[-1]
    assert log == [run_id, "migration"]  # newest first: the migration once, then the append
    assert result["history_version"] == 1
    assert_consistent(cfg, {"base.csv": base, "next.csv": later})
    assert _run(cfg)["status"] == "skipped"  # nothing new; nothing migrated again
    assert len(DeltaTable(str(workspace.history)).history()) == 2
