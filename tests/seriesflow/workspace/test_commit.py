"""The commit protocol: the journal, and recovery against a real (SQLite) MLflow registry;
crashes at each step of a real run are tests/flows/test_faults.py."""

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from seriesflow.config.pipeline import ColumnsConfig
from seriesflow.workspace.commit import (
    COMMITTED,
    PREPARED,
    REGISTERED,
    begin,
    input_key,
    load,
    update,
)
from seriesflow.workspace.files import Workspace, write_parquet
from seriesflow.workspace.history import accepted_schema, append_rows, history_version, load_history
from seriesflow.workspace.ledger import scan_landing
from tests.factories import series_frame, tiny_config

SCHEMA = accepted_schema(ColumnsConfig())


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


@pytest.mark.parametrize("batch_rows", [1, 7, 10**6])
def test_the_input_key_hashed_a_batch_at_a_time_is_the_key_of_the_sorted_frame(
    tmp_path, batch_rows
):
    """A file in (series, time) order is hashed a record batch at a time: the digest is the
    one the whole file read and sorted gives (the key versions were tagged with before).
    Out of order -- shuffled, or two rows swapped across a batch's edge -- it is read whole
    and sorted: the same key again."""
    from seriesflow.workspace.commit import _input_key_sorted

    frame = series_frame(("a", "b", "c"), n=10)
    cfg = tiny_config(tmp_path / "w", tmp_path / "l")
    in_order = write_parquet(frame, tmp_path / "in_order.parquet")
    want = _input_key_sorted(in_order, cfg)
    assert input_key(in_order, cfg, batch_rows=batch_rows) == want
    swapped = frame.iloc[[*range(6), 7, 6, *range(8, 30)]]  # rows 6 and 7 of series a
    shuffled = frame.sample(frac=1, random_state=2)
    for k, other in enumerate((swapped, shuffled)):
        path = write_parquet(other, tmp_path / f"other-{k}.parquet")
        assert input_key(path, cfg, batch_rows=batch_rows) == want
    empty = write_parquet(frame.iloc[:0], tmp_path / "empty.parquet")
    assert input_key(empty, cfg, batch_rows=batch_rows) == _input_key_sorted(empty, cfg)


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


# --------------------------------------------------------------------------- recovery, real MLflow
# A version is made with MlflowClient.create_model_version (no model file): recovery reads and
# writes only tags, runs and the alias, so a real SQLite registry and no TensorFlow suffice.


def _registry(tmp_path, name="registry.db"):
    import mlflow

    uri = f"sqlite:///{tmp_path / name}"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name("e")
    experiment = found.experiment_id if found else client.create_experiment("e")
    return uri, client, experiment


def _version(client, experiment, model, run_tags, version_tags, status="FINISHED"):
    """A registered version of ``model`` logged by a new MLflow run (left ``status``)."""
    from mlflow.exceptions import MlflowException

    run = client.create_run(experiment, tags=run_tags)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    try:
        client.create_registered_model(model)
    except MlflowException:
        pass  # there already
    source = f"runs:/{run.info.run_id}/model"
    made = client.create_model_version(model, source, run.info.run_id, tags=version_tags)
    return run.info.run_id, str(made.version)


def _tags_of(client, model, version):
    return dict(client.get_model_version(model, version).tags)


def _workspace_tags(workspace):
    from seriesflow.tracking.registry import TAG_WORKSPACE, TAG_WORKSPACE_ID, workspace_id

    return {TAG_WORKSPACE: str(workspace.root), TAG_WORKSPACE_ID: workspace_id(workspace)}


def test_recovery_in_one_workspace_leaves_another_workspaces_pending_version_alone(tmp_path):
    from seriesflow.tracking.registry import TAG_COMMIT, TAG_ORPHAN, TAG_WORKSPACE_ID
    from seriesflow.workspace.commit import recover

    uri, client, experiment = _registry(tmp_path)
    a, b = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    a.root.mkdir()
    b.root.mkdir()
    # A is between register and commit (it holds A's lock; B cannot know): v1 is pending
    tags_a = _workspace_tags(a)
    _, v1 = _version(
        client,
        experiment,
        "shared",
        tags_a,
        {TAG_COMMIT: "pending", TAG_WORKSPACE_ID: tags_a[TAG_WORKSPACE_ID]},
        status="RUNNING",
    )
    # B's previous run died holding B's lock, and left a pending version of its own
    tags_b = _workspace_tags(b)
    _, v2 = _version(
        client,
        experiment,
        "shared",
        tags_b,
        {TAG_COMMIT: "pending", TAG_WORKSPACE_ID: tags_b[TAG_WORKSPACE_ID]},
    )

    notes = recover(b, uri, "shared", crashed="a run of b", log=lambda _: None)

    assert TAG_ORPHAN not in _tags_of(client, "shared", v1), notes
    assert client.get_run(client.get_model_version("shared", v1).run_id).info.status == "RUNNING"
    assert _tags_of(client, "shared", v2)[TAG_ORPHAN] == "commit never finished"


def test_a_commit_never_moves_the_alias_to_another_workspaces_version(tmp_path):
    from seriesflow.tracking.registry import TAG_WORKSPACE_ID
    from seriesflow.workspace.commit import commit

    uri, client, experiment = _registry(tmp_path)
    a, b = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    tags_a = _workspace_tags(a)
    _, v1 = _version(
        client, experiment, "shared", tags_a, {TAG_WORKSPACE_ID: tags_a[TAG_WORKSPACE_ID]}
    )
    run = b.new_run("r1")
    write_parquet(series_frame(n=5), run.validated)
    cfg = tiny_config(b.root, tmp_path / "in", register={"model_name": "shared"})
    begin(b, run, [], "key", cfg, uri)
    journal = update(b, state=COMMITTED, version=v1, promote=True)

    with pytest.raises(RuntimeError, match=f"v{v1} of 'shared' belongs to workspace {a.root}"):
        commit(b, journal, log=lambda _: None)
    assert not client.get_registered_model("shared").aliases


def test_recovering_an_interrupted_reuse_leaves_the_champions_tags_alone(tmp_path):
    from seriesflow.tracking.registry import (
        TAG_COMMIT,
        TAG_RUN_ID,
        TAG_WORKSPACE_ID,
        champion_run_folder,
        set_champion,
    )
    from seriesflow.workspace.commit import recover

    uri, client, experiment = _registry(tmp_path)
    workspace = Workspace(tmp_path / "work")
    champion_run = workspace.new_run("20260101T000000-champ")
    tags = _workspace_tags(workspace)
    champion_tags = {
        TAG_RUN_ID: champion_run.run_id,
        TAG_COMMIT: "done",
        "promoted": "True",
        "gate_rule": "beats_champion",
        "gate_reason": "the first model",
        TAG_WORKSPACE_ID: tags[TAG_WORKSPACE_ID],
    }
    _, v1 = _version(client, experiment, "m", tags, champion_tags)
    set_champion("m", v1)
    # a later run found the same data and settings: it reuses v1 and was killed mid-commit
    reuse = workspace.new_run("20260102T000000-reuse")
    write_parquet(series_frame(n=5), reuse.validated)
    cfg = tiny_config(workspace.root, tmp_path / "in", register={"model_name": "m"})
    begin(workspace, reuse, [], "key", cfg, uri)
    update(workspace, state=REGISTERED, version=v1, promote=False, rule="reused", reason="same")

    recover(workspace, uri, "m", crashed="the reuse run", log=lambda _: None)

    assert _tags_of(client, "m", v1) == champion_tags
    assert champion_run_folder("m") == champion_run.run_id
    assert load(workspace) is None
    assert load_history(workspace, cfg.columns).equals(series_frame(n=5))  # its rows, once


def test_a_reuse_whose_run_folder_is_gone_does_not_orphan_the_version_it_reused(tmp_path):
    from seriesflow.tracking.registry import TAG_COMMIT, TAG_ORPHAN, TAG_WORKSPACE_ID
    from seriesflow.workspace.commit import recover

    uri, client, experiment = _registry(tmp_path)
    workspace = Workspace(tmp_path / "work")
    tags = _workspace_tags(workspace)
    _, v1 = _version(
        client,
        experiment,
        "m",
        tags,
        {TAG_COMMIT: "done", TAG_WORKSPACE_ID: tags[TAG_WORKSPACE_ID]},
    )
    reuse = workspace.new_run("20260102T000000-reuse")
    write_parquet(series_frame(n=5), reuse.validated)
    cfg = tiny_config(workspace.root, tmp_path / "in", register={"model_name": "m"})
    begin(workspace, reuse, [], "key", cfg, uri)
    update(workspace, state=REGISTERED, version=v1, promote=False, rule="reused", reason="same")
    reuse.validated.unlink()

    recover(workspace, uri, "m", crashed="the reuse run", log=lambda _: None)

    assert TAG_ORPHAN not in _tags_of(client, "m", v1) and load(workspace) is None


@pytest.mark.parametrize(
    "text",
    [
        '{"state": "registered", "run_id": "r1", "run_d',  # truncated by a torn write
        "{}",
        '{"state": "registered", "run_id": "r1"}',  # keys missing
        '["registered"]',  # not an object
    ],
    ids=["truncated", "empty-object", "missing-keys", "not-an-object"],
)
def test_a_damaged_journal_names_the_file_and_the_repair_command(tmp_path, text):
    workspace = Workspace(tmp_path / "work")
    workspace.root.mkdir()
    workspace.journal.write_text(text)

    with pytest.raises(RuntimeError, match="commit.json.*seriesflow repair") as raised:
        load(workspace)
    assert str(workspace.journal) in str(raised.value)


def test_a_journal_with_a_wrong_type_is_damaged(tmp_path):
    workspace = Workspace(tmp_path / "work")
    run = workspace.new_run("r1")
    write_parquet(series_frame(n=5), run.validated)
    cfg = tiny_config(workspace.root, tmp_path / "in")
    journal = begin(workspace, run, [], "key", cfg, "sqlite:///x.db")
    journal["files"] = "a.csv"  # a list of file records, not a name
    workspace.journal.write_text(json.dumps(journal))

    with pytest.raises(RuntimeError, match=r"'files' should be a list.*seriesflow repair"):
        load(workspace)


def test_recovery_works_in_a_workspace_whose_path_holds_a_quote(tmp_path):
    from seriesflow.tracking.registry import TAG_ORPHAN
    from seriesflow.workspace.commit import recover

    uri, client, experiment = _registry(tmp_path)
    workspace = Workspace(tmp_path / 'it\'s a "workspace"')
    workspace.root.mkdir()
    left = client.create_run(experiment, tags=_workspace_tags(workspace))  # a crashed run's

    notes = recover(workspace, uri, "m", crashed="a killed run", log=lambda _: None)

    run = client.get_run(left.info.run_id)
    assert run.info.status == "FAILED" and TAG_ORPHAN in run.data.tags, notes


def test_repair_rollback_drops_a_readable_commit_and_leaves_history_alone(tmp_path):
    from seriesflow.tracking.registry import TAG_ORPHAN, TAG_WORKSPACE_ID
    from seriesflow.workspace.commit import REGISTERING, repair_finish, repair_rollback

    uri, client, experiment = _registry(tmp_path)
    workspace = Workspace(tmp_path / "work")
    run = workspace.new_run("r1")
    write_parquet(series_frame(n=5), run.validated)
    tags = _workspace_tags(workspace)
    mlflow_run, v1 = _version(
        client,
        experiment,
        "m",
        tags,
        {"seriesflow.commit": "pending", TAG_WORKSPACE_ID: tags[TAG_WORKSPACE_ID]},
        status="RUNNING",
    )
    cfg = tiny_config(workspace.root, tmp_path / "in", register={"model_name": "m"})
    begin(workspace, run, [], "key", cfg, uri)
    update(workspace, state=REGISTERING, mlflow_run_id=mlflow_run)
    before = append_rows(workspace, series_frame(n=3), SCHEMA, "r0", 4)  # an earlier run's

    notes = repair_rollback(workspace, uri, "m", log=lambda _: None)

    assert load(workspace) is None and history_version(workspace) == before  # not written
    assert client.get_run(mlflow_run).info.status == "FAILED", notes
    assert _tags_of(client, "m", v1)[TAG_ORPHAN] == "rolled back by seriesflow repair"
    assert repair_finish(workspace, uri, "m") == ["no commit in progress: nothing to finish"]


def test_repair_refuses_a_rollback_once_history_holds_the_runs_rows(tmp_path):
    from seriesflow.workspace.commit import repair_rollback

    uri, client, experiment = _registry(tmp_path)
    workspace = Workspace(tmp_path / "work")
    run = workspace.new_run("r1")
    write_parquet(series_frame(n=5), run.validated)
    cfg = tiny_config(workspace.root, tmp_path / "in", register={"model_name": "m"})
    begin(workspace, run, [], "key", cfg, uri)
    update(workspace, state=REGISTERED, version="1")
    # killed after the Delta append, before the ledger: the log names the run
    append_rows(workspace, series_frame(n=5), SCHEMA, "r1", 4)

    with pytest.raises(RuntimeError, match="use --finish"):
        repair_rollback(workspace, uri, "m", log=lambda _: None)
    assert load(workspace)["state"] == REGISTERED


def test_repair_sets_a_damaged_journal_aside_only_when_history_and_ledger_agree(tmp_path):
    from seriesflow.workspace.commit import repair_rollback
    from seriesflow.workspace.ledger import INGESTED, append_ledger, ledger_rows

    uri, _, _ = _registry(tmp_path)
    workspace = Workspace(tmp_path / "work")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("x")
    frame = series_frame(n=6)
    append_rows(workspace, frame.iloc[:5], SCHEMA, "r1", 4)
    append_ledger(workspace.ledger, ledger_rows(scan_landing(tmp_path / "in", 0), INGESTED, "r1"))
    append_rows(workspace, frame.iloc[5:], SCHEMA, "r2", 4)  # r2 wrote history, not the ledger
    workspace.journal.write_text("{}")

    with pytest.raises(RuntimeError, match="holds the rows of run r2, which the ledger does not"):
        repair_rollback(workspace, uri, "m", log=lambda _: None)
    assert workspace.journal.read_text() == "{}"

    # as r1's commit left it: the history table restored to r1's version (a backup)
    shutil.rmtree(workspace.history)
    append_rows(workspace, frame.iloc[:5], SCHEMA, "r1", 4)
    (note, *_) = repair_rollback(workspace, uri, "m", log=lambda _: None)

    (aside,) = workspace.root.glob("commit.json.damaged-*")
    assert aside.read_text() == "{}" and not workspace.journal.exists() and aside.name in note


def test_a_commit_replayed_after_its_append_finds_it_in_the_delta_log_and_appends_nothing(
    tmp_path,
):
    from seriesflow.tracking.registry import TAG_HISTORY_VERSION, TAG_WORKSPACE_ID
    from seriesflow.workspace.commit import commit, commit_history

    uri, client, experiment = _registry(tmp_path)
    workspace = Workspace(tmp_path / "work")
    tags = _workspace_tags(workspace)
    _, v1 = _version(client, experiment, "m", tags, {TAG_WORKSPACE_ID: tags[TAG_WORKSPACE_ID]})
    first = series_frame(n=5)
    append_rows(workspace, first, SCHEMA, "r0", 4)  # an earlier run's version 0
    run = workspace.new_run("r1")
    later = series_frame(n=2, start=5)
    merged = pd.concat([first, later]).sort_values(["series_id", "timestamp"], ignore_index=True)
    write_parquet(merged, run.validated, SCHEMA)  # sorted, as validate writes it
    write_parquet(later, run.new_rows, SCHEMA)  # what validate found new
    cfg = tiny_config(workspace.root, tmp_path / "in", register={"model_name": "m"})
    begin(workspace, run, [], "key", cfg, uri)
    journal = update(workspace, state=REGISTERED, version=v1, promote=True)
    assert commit_history(workspace, journal) == 1  # appended; then killed (commit:history)

    commit(workspace, load(workspace), log=lambda _: None)  # the next run's replay

    assert history_version(workspace) == 1  # no second append
    assert load_history(workspace, cfg.columns).equals(merged)
    assert load_history(workspace, cfg.columns, version=1).equals(
        pd.read_parquet(run.validated)  # what v1 trained on, exactly
    )
    assert _tags_of(client, "m", v1)[TAG_HISTORY_VERSION] == "1"
    assert client.get_registered_model("m").aliases == {"champion": int(v1)}
    assert load(workspace) is None
