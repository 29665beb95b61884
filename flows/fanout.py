"""Fan-out: per-series and per-group training, one Prefect task per branch.

``train.per_series`` and ``train.groups`` split training into independent branches.
``train_split`` plans them (``tasks/train.py:plan_training``), trains each as its own
``train-branch`` task run inside the ``train-branches`` sub-flow, and routes the
trained branches into the one saved model (``combine_branches``). The sub-flow runs on
a Dask cluster when ``train.dask_address`` is set (prefect-dask; the tune flow's
``--address`` uses the same runner) and on local threads otherwise.

Tasks pass folders, never arrays: a Dask worker reads the windows and the scaler from
the run folder and writes its branch there, so workers need the same code and
packages and the same view of the workspace (a shared filesystem) as the flow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.ops.extras import require
from seriesflow.workspace.context import RunContext
from seriesflow.workspace.files import RunDir
from tasks.stage import limited
from tasks.train import combine_branches, plan_training, train_branch


def task_runner(address: str | None, max_workers: int | None = None) -> Any:
    """A ``DaskTaskRunner`` on the cluster at ``address``, else a thread pool."""
    if address:
        dask = require("prefect_dask", "dask", "a Dask cluster (train.dask_address)")
        return dask.DaskTaskRunner(address=address)
    return ThreadPoolTaskRunner(max_workers=max_workers)


@flow(name="train-branches", description="Train every branch as its own task, then collect.")
def train_branches(
    folders: list[Path],
    windows: Path,
    normalized: Path,
    scaler: Path,
    run: RunDir,
    cfg: PipelineConfig,
) -> list[Path]:
    branch = limited(train_branch, cfg.limits, "train")
    futures = [
        branch.submit(folder, f"branch-{k}", windows, normalized, scaler, run, cfg)
        for k, folder in enumerate(folders)
    ]
    return [future.result() for future in futures]


def train_split(
    windows: Path,
    normalized: Path,
    scaler: Path,
    validated: Path,
    cfg: PipelineConfig,
    context: RunContext,
    mlflow_run_id: str | None = None,
) -> Path:
    """Plan -> one task per branch (threads or Dask) -> one routed model in ``05_model/``."""
    logger = get_run_logger()
    run = context.run
    folders = limited(plan_training, cfg.limits, "window")(
        windows, normalized, scaler, validated, cfg, context
    )
    address = cfg.train.dask_address
    logger.info(
        "Training %d branches on %s",
        len(folders),
        f"the Dask cluster at {address}" if address else "local threads",
    )
    runner = task_runner(address)
    trained = train_branches.with_options(
        task_runner=runner, timeout_seconds=cfg.limits.timeouts.train
    )(folders, windows, normalized, scaler, run, cfg)
    return limited(combine_branches, cfg.limits, "window")(trained, run, cfg, mlflow_run_id)
