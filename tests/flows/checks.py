"""What must hold in a workspace after any crash, race or failure, once a run has followed it.

``assert_consistent`` checks the invariants of issue 11's fault matrix:

- history holds every accepted row exactly once (no duplicate series_id+timestamp);
- the ledger matches history: the rows of the files ledgered ``ingested`` (each file once)
  are exactly the history's rows;
- the champion's training data is in history, and is exactly the history table's version
  tagged on it (time travel);
- no temporary (``.tmp-*``) file is left in the workspace;
- no MLflow run is left RUNNING;
- no two model versions were trained on the same data (versions tagged as orphans by a
  recovery are left out: they are marked, not counted as models).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow.parquet as pq

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.profile import build_profile
from seriesflow.workspace.files import RunDir, Workspace
from seriesflow.workspace.history import history_version, load_history
from seriesflow.workspace.ledger import load_ledger
from seriesflow.workspace.profile import load_profile, profile_path, read_meta

REPO = Path(__file__).resolve().parents[2]
KEY = ["series_id", "timestamp"]


def rows(frame: pd.DataFrame) -> set[tuple[str, str, float]]:
    """(series, time, value) of a frame, times as UTC text, values rounded for comparison."""
    times = pd.to_datetime(frame["timestamp"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S")
    return set(zip(frame["series_id"].astype(str), times, frame["value"].round(6), strict=True))


def history_frame(cfg: PipelineConfig, version: int | None = None) -> pd.DataFrame:
    """The history table (as of ``version``), read as every reader reads it."""
    return load_history(Workspace(cfg.paths.workspace_path()), cfg.columns, version)


def client(cfg: PipelineConfig):
    mlflow.set_tracking_uri(cfg.register.resolved_tracking_uri(cfg.paths.workspace_path()))
    return mlflow.MlflowClient()


def versions(cfg: PipelineConfig) -> list:
    try:
        found = client(cfg).search_model_versions(f"name='{cfg.register.model_name}'")
    except Exception:  # noqa: BLE001 - no registered model yet
        return []
    return sorted(found, key=lambda v: int(v.version))


def champion(cfg: PipelineConfig):
    from mlflow.exceptions import MlflowException

    try:
        return client(cfg).get_model_version_by_alias(cfg.register.model_name, "champion")
    except MlflowException:
        return None


def run_dir_of(cfg: PipelineConfig, version) -> RunDir:
    tags = client(cfg).get_run(version.run_id).data.tags
    return RunDir(Path(tags["seriesflow.run_dir"]))


def assert_consistent(cfg: PipelineConfig, landed: dict[str, pd.DataFrame]) -> None:
    """The invariants above; ``landed`` maps every file name dropped so far to its rows."""
    workspace = Workspace(cfg.paths.workspace_path())
    history = history_frame(cfg)
    assert not history.duplicated(KEY).any(), "history holds a row twice"

    ledger = load_ledger(workspace.ledger)
    ingested = ledger[ledger["status"] == "ingested"]
    assert not ingested["sha256"].duplicated().any(), f"a file ledgered twice:\n{ingested}"
    expected: set = set()
    for name in ingested["name"]:
        expected |= rows(landed[name])
    assert rows(history) == expected, (
        f"history and ledger disagree: {len(rows(history) - expected)} history rows from no "
        f"ledgered file, {len(expected - rows(history))} ledgered rows missing from history"
    )

    left = [p for p in workspace.root.rglob(".tmp-*")]
    assert not left, f"temporary files left behind: {left}"

    mlflow_client = client(cfg)
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
    running = mlflow_client.search_runs(experiments, "attributes.status = 'RUNNING'")
    assert not running, f"MLflow runs left RUNNING: {[r.info.run_id for r in running]}"

    best = champion(cfg)
    if best is not None:
        trained_on = pq.read_table(run_dir_of(cfg, best).validated).to_pandas()
        missing = rows(trained_on) - rows(history)
        assert not missing, f"the champion v{best.version} was trained on rows not in history"
        # time travel: the table version tagged on the champion is exactly its training rows
        tagged = best.tags.get("seriesflow.history_version")
        assert tagged is not None, f"the champion v{best.version} has no history version tag"
        assert rows(history_frame(cfg, int(tagged))) == rows(trained_on)

    seen: dict[object, str] = {}
    for version in versions(cfg):
        if version.tags.get("seriesflow.orphan"):
            continue
        validated = run_dir_of(cfg, version).validated
        if validated.exists():
            data: object = frozenset(rows(pq.read_table(validated).to_pandas()))
        else:  # an old run folder, pruned: the version's tag says what it was trained on
            data = version.tags.get("seriesflow.input_key")
        assert data not in seen, (
            f"versions {seen.get(data)} and {version.version} were trained on the same data"
        )
        seen[data] = version.version


def assert_profile_in_step(cfg: PipelineConfig) -> None:
    """``profile.parquet`` is stamped with the history table's current version and row
    count (what the commit's data step installs after the Delta append), and holds the
    profile of that version's rows (the outlier reference aside, which lags by design)."""
    workspace = Workspace(cfg.paths.workspace_path())
    history = history_frame(cfg)
    version = history_version(workspace)
    profile, why = load_profile(workspace, version, len(history), cfg)
    assert profile is not None, f"{why}: {read_meta(profile_path(workspace))}"
    expected = build_profile(history, cfg.validation.frequency, cfg.columns.static)
    kept = ["n_points", "value_span", "off_grid_steps", "max_gap_steps", "frequency"]
    kept += ["first_us", "last_us", "value_min", "value_max", "n_values", "offset"]
    pd.testing.assert_frame_equal(
        profile[kept], expected[kept], check_dtype=False, check_index_type=False
    )


@dataclass
class Process:
    """A retrain run in its own process; its output goes to ``log``."""

    popen: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 300) -> int:
        return self.popen.wait(timeout)


def retrain_process(
    config_file: Path, api_url: str, fault: str | None = None, env: dict | None = None
) -> Process:
    """``python -m flows.retrain --config FILE`` as a real process (``fault``: SERIESFLOW_FAULT)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SERIESFLOW_FAULT")}
    environ["PREFECT_API_URL"] = api_url
    environ["PYTHONPATH"] = str(REPO)
    if fault:
        environ["SERIESFLOW_FAULT"] = fault
    environ.update(env or {})
    log = config_file.with_name(f"{config_file.stem}.{time.monotonic_ns()}.log")
    with open(log, "w") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "flows.retrain", "--config", str(config_file)],
            cwd=REPO,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Process(popen, log)


@dataclass(frozen=True)
class RetrainRun:
    """A retrain flow run, called in process: its final state and the summary it returned."""

    state: Any
    result: dict[str, Any]

    @property
    def status(self) -> str:
        return self.result["status"]

    def run_dir(self, cfg: PipelineConfig) -> RunDir:
        """The run folder of a completed run, in ``cfg``'s workspace."""
        return RunDir(cfg.paths.workspace_path() / "runs" / Path(self.result["run_dir"]).name)


def run_retrain(cfg: PipelineConfig, expect: str | None = None) -> RetrainRun:
    """Run the retrain flow on ``cfg`` (on the session's test server); with ``expect``, fail
    with the summary unless the run ended with that status."""
    from flows.retrain import retrain

    state = retrain(cfg, return_state=True)
    run = RetrainRun(state, state.result(raise_on_failure=False))
    if expect is not None:
        assert run.status == expect, run.result
    return run
