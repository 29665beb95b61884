"""The retrain flow fanned out on a real Dask cluster: one task run per group of series."""

from __future__ import annotations

import time

import mlflow
import numpy as np
import pandas as pd
import pytest

from flows.retrain import retrain
from seriesflow.data.schema import GROUP, SERIES_ID, TIMESTAMP
from seriesflow.model.saved_model import SERIES_INPUT, X_INPUT, ModelSpec, load_model
from seriesflow.workspace.files import RunDir, read_json, read_parquet
from tasks.train import BRANCHES_DIR
from tests.factories import series_frame, tiny_config, write_csv

# sha256 mod 2 puts a, b in hash-0 and d, g in hash-1 (tests/seriesflow/model/test_branches.py)
SERIES = ("a", "b", "d", "g")
GROUPS = {"a": "hash-0", "b": "hash-0", "d": "hash-1", "g": "hash-1"}


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    # processes=True: each worker is its own Python with its own TensorFlow, as on a cluster
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


def branch_task_runs(flow_run_id) -> list:
    """The train-branch task runs of the train-branches sub-flow of this retrain run."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
            )
        )
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[s.id for s in subflows]))
        )
        return [t for t in runs if t.name.startswith("train-branch")]


def test_groups_train_one_task_per_group_on_dask_workers(prefect_server, tmp_path, cluster):
    landing = tmp_path / "landing"
    write_csv(series_frame(series=SERIES, n=200, period=10), landing / "base.csv")
    cfg = tiny_config(
        tmp_path / "work",
        landing,
        train={
            "epochs": 1,
            "units": 4,
            "min_windows_per_epoch": 0,
            "groups": {"by": "hash", "k": 2},
            "dask_address": cluster.scheduler_address,
        },
        validation={"build_data_docs": False},
        evaluate={"baselines": [], "make_plots": False},
    )
    started = time.perf_counter()
    state = retrain(cfg, return_state=True)
    seconds = time.perf_counter() - started
    result = state.result(raise_on_failure=False)
    assert result["status"] == "completed", result
    run = RunDir(cfg.paths.workspace_path() / "runs" / result["run_dir"].split("/")[-1])

    # one task run per group, on the cluster's worker processes
    tasks = branch_task_runs(state.state_details.flow_run_id)
    assert sorted(t.name for t in tasks) == ["train-branch-0", "train-branch-1"]
    assert all(t.state.is_completed() for t in tasks)
    runs = read_json(run.model_dir / BRANCHES_DIR / "runs.json")
    workers = set(cluster.scheduler_info["workers"])
    assert set(runs) == {"group_0", "group_1"}
    assert {r["where"] for r in runs.values()} <= workers
    timings = read_json(run.root / "manifest.json")["timings_seconds"]
    print(f"2-worker grouped retrain: {seconds:.1f} s; stages {timings}; branches {runs}")

    # one routed model: each series goes to its group's branch
    spec = ModelSpec.load(run.spec)
    assert dict(zip(spec.series, spec.groups, strict=True)) == GROUPS
    model = load_model(run.model)
    x = np.random.default_rng(0).uniform(size=(1, spec.timesteps, 1)).astype("float32")
    code = {sid: i for i, sid in enumerate(spec.series)}
    out = {
        sid: model.predict({X_INPUT: x, SERIES_INPUT: np.array([code[sid]], np.int32)}, verbose=0)[
            0
        ]
        for sid in SERIES
    }
    branch = [load_model(run.model_dir / BRANCHES_DIR / f"{k:03d}" / "model.keras") for k in (0, 1)]
    own = [b.predict(x, verbose=0)[0] for b in branch]
    for sid, group in GROUPS.items():
        assert np.allclose(out[sid], own[int(group[-1])], atol=1e-6)  # its group's weights
    assert not np.allclose(own[0], own[1], atol=1e-5)  # the two groups differ

    # per-group training curves, and evaluation of every series through the routed model
    epochs = read_parquet(run.epochs)
    assert sorted(set(epochs[GROUP])) == ["hash-0", "hash-1"]
    evaluation = read_parquet(run.evaluation)
    model_rows = evaluation[(evaluation["model"] == "model") & evaluation[SERIES_ID].isin(SERIES)]
    assert set(model_rows[SERIES_ID]) == set(SERIES)
    assert np.isfinite(model_rows["rmse"]).all()

    # registered; the pyfunc forecasts every series through its group's branch
    assert result["model_version"] == "1" and np.isfinite(result["metrics"]["model"]["rmse"])
    mlflow.set_tracking_uri(cfg.register.resolved_tracking_uri(cfg.paths.workspace_path()))
    version = mlflow.MlflowClient().get_model_version("test-lstm", "1")
    logged = mlflow.get_run(version.run_id).data.metrics
    assert {"loss.hash-0", "loss.hash-1", "val_loss.hash-0", "val_loss.hash-1"} <= set(logged)
    pyfunc = mlflow.pyfunc.load_model("models:/test-lstm/1")
    history = read_parquet(run.validated)
    tail = history.groupby(SERIES_ID).tail(40).reset_index(drop=True)
    tail = tail.assign(**{TIMESTAMP: pd.to_datetime(tail[TIMESTAMP]).dt.tz_localize(None)})
    forecasts = pyfunc.predict(tail)
    assert set(forecasts[SERIES_ID]) == set(SERIES)
    assert np.isfinite(forecasts["forecast"]).all()


def test_a_dask_address_without_the_dask_extra_names_the_extra(monkeypatch):
    import sys

    from flows.fanout import task_runner
    from seriesflow.ops.extras import MissingExtra

    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # as if not installed
    with pytest.raises(MissingExtra, match=r"pip install 'seriesflow\[dask\]'"):
        task_runner("tcp://127.0.0.1:8786")
    assert type(task_runner(None, max_workers=2)).__name__ == "ThreadPoolTaskRunner"
