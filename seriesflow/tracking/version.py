"""Logging a run to MLflow and adding its model version (the register stage's MLflow part).

``log_version`` logs the run's metrics and artifacts and registers the self-contained
forecaster (``log_forecaster``, ``seriesflow/tracking/pyfunc.py``) as a new version,
without the alias: the commit (``seriesflow/workspace/commit.py``) moves it later. Each
step is recorded in the commit journal. The tracking URI is set up by the caller.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import (
    ALL_SERIES,
    ALL_WINDOWS,
    CLASSIFICATION,
    FOLD,
    SERIES_ID,
    TIMESTAMP,
    branch_column,
)
from seriesflow.evaluation.gate import Decision
from seriesflow.model.forecasting import longest_steps, settings_of
from seriesflow.model.intervals import Intervals
from seriesflow.model.saved_model import ModelSpec
from seriesflow.model.scaler import Scaler
from seriesflow.ops.faults import fault_point
from seriesflow.tracking.bundle import bundle_code
from seriesflow.tracking.plain import TAG_SHA256, hashes_of
from seriesflow.tracking.pyfunc import (
    INTERVALS,
    KERAS,
    ROUTER,
    SCALER,
    SETTINGS,
    SPEC,
    SeriesForecaster,
    forecaster_signature,
    input_columns,
    signature_example,
    with_future_rows,
)
from seriesflow.tracking.registry import (
    PENDING,
    TAG_COMMIT,
    TAG_INPUT_KEY,
    TAG_RUN_ID,
    TAG_WORKSPACE_ID,
    epoch_steps,
    finite,
    flatten,
    mlflow_module,
    pip_requirements,
    run_tags,
    workspace_id,
)
from seriesflow.workspace.commit import REGISTERED, REGISTERING
from seriesflow.workspace.commit import update as journal
from seriesflow.workspace.files import (
    RunDir,
    Workspace,
    read_json,
    read_parquet,
    read_parquet_where,
    write_json,
)
from seriesflow.workspace.results import EvaluationResult


def log_version(
    workspace: Workspace,
    run: RunDir,
    scaler: Path,
    config: PipelineConfig,
    evaluation: EvaluationResult,
    decision: Decision,
    mlflow_run_id: str | None,
) -> tuple[str, str]:
    """The run's metrics and artifacts; a new model version (a pyfunc), no alias.

    Returns (version, MLflow run id); ``mlflow_run_id``: the retrain's run to resume.
    """
    mlflow = mlflow_module()
    cfg = config.register
    resume = {"run_id": mlflow_run_id} if mlflow_run_id else {"run_name": run.run_id}
    with mlflow.start_run(**resume) as active:
        mlflow.set_tags(run_tags(run, workspace))
        started = journal(
            workspace,
            state=REGISTERING,
            mlflow_run_id=active.info.run_id,
            promote=decision.promote,
            rule=decision.rule,
            reason=decision.reason,
        )
        fault_point("register:started")
        if not mlflow_run_id:  # a run of its own: params and the per-epoch curves here
            params = flatten("", config.dump(), {})
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            epochs = read_parquet(run.epochs)
            for step, values in epoch_steps(epochs, branch_column(epochs)):
                mlflow.log_metrics(values, step=step)
        for name, values in evaluation.scores.items():
            mlflow.log_metrics({f"test_{name}_{k}": v for k, v in finite(values).items()})
        if evaluation.origins:  # which origins the scores above come from, and how chosen
            mlflow.log_params(
                {f"evaluation.origins.{k}": str(v)[:500] for k, v in evaluation.origins.items()}
            )
        if evaluation.lstm_share is not None:  # which series the LSTM serves: router.json
            mlflow.log_metrics(finite({"lstm_share": evaluation.lstm_share}))
            mlflow.set_tag("seriesflow.lstm_share", f"{evaluation.lstm_share:.4f}")
        logged = [scaler, run.config, run.evaluation, run.epochs, run.spec, run.gate]
        logged += [run.intervals, run.router]
        if evaluation.backtest is not None:
            logged.append(evaluation.backtest)
            folds = read_parquet(evaluation.backtest)
            pooled = folds[(folds[SERIES_ID] == ALL_SERIES) & (folds["scope"] == ALL_WINDOWS)]
            names = [c for c in evaluation.scores.get("model", {}) if c in folds]
            for _, row in pooled.iterrows():
                values = {f"backtest_{row['model']}_{k}": row[k] for k in names}
                mlflow.log_metrics(finite(values), step=int(row[FOLD]))
        for path in logged:
            if Path(path).exists():
                mlflow.log_artifact(str(path))
        for plot in evaluation.plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.log_artifact(str(run.manifest))
        info, hashes = log_forecaster(run, scaler, config, cfg.model_name)
        version = str(info.registered_model_version)
        fault_point("register:versioned")
        client = mlflow.MlflowClient()
        tags = {
            "promoted": str(decision.promote),
            "gate_rule": decision.rule,
            "gate_reason": decision.reason,
            TAG_INPUT_KEY: started["input_key"],
            TAG_RUN_ID: run.run_id,
            TAG_COMMIT: PENDING,  # "done" once the data is committed (workspace/commit.py)
            # whose version it is: recovery and the alias touch only their own workspace's
            TAG_WORKSPACE_ID: workspace_id(workspace),
            # what the pipeline checks before it reads the artifacts (tracking/plain.py)
            TAG_SHA256: hashes,
        }
        for key, value in tags.items():
            client.set_model_version_tag(cfg.model_name, version, key, value)
        journal(workspace, state=REGISTERED, version=version)
        mlflow.set_tags({"promoted": str(decision.promote), "gate_reason": decision.reason})
        return version, active.info.run_id


def log_forecaster(
    run: RunDir, scaler_path: Path, config: PipelineConfig, model_name: str
) -> tuple[Any, str]:
    """Log and register this run's self-contained forecaster (``tracking/pyfunc.py``).

    Returns MLflow's model info and the SHA-256 of each artifact (the version's
    ``seriesflow.sha256`` tag), taken from the files that were logged."""
    mlflow = mlflow_module()
    spec = ModelSpec.load(run.spec)
    settings = settings_of(config)
    write_json(settings.to_json(), run.forecast_settings)
    files = {
        # the model trained on every window after evaluation (train.final_epochs), if any
        KERAS: run.final_model if run.final_model.exists() else run.model,
        ROUTER: run.router,  # regression only
        # the registered model's scaler (indices refit on every point), else evaluate's
        SCALER: run.final_scaler if run.final_scaler.exists() else scaler_path,
        SPEC: run.spec,
        INTERVALS: run.intervals,  # regression only
        SETTINGS: run.forecast_settings,
    }
    artifacts = {key: str(path) for key, path in files.items() if path.exists()}
    signature, example = None, None
    if spec.task != CLASSIFICATION and run.intervals.exists():
        scaler = Scaler.load(scaler_path)
        columns = input_columns(scaler)  # value, past, future, static covariates
        # the first series' rows alone: the whole validated file was a frame of every row
        # (a Python string per id; gigabytes at 100M rows) for an example of one series
        ids = next(pq.ParquetFile(run.validated).iter_batches(batch_size=1, columns=[SERIES_ID]))
        first = read_parquet_where(run.validated, SERIES_ID, [ids.column(0)[0].as_py()])
        steps = longest_steps(settings, scaler, spec.horizon)
        ahead = with_future_rows(first[[SERIES_ID, TIMESTAMP, *columns]], scaler, steps)
        example = signature_example(ahead, columns, spec.timesteps + 2 + len(ahead) - len(first))
        levels = Intervals.from_json(read_json(run.intervals)).levels
        signature = forecaster_signature(columns, levels)
    hashes = hashes_of(artifacts)
    with tempfile.TemporaryDirectory(prefix="seriesflow-code-") as code:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SeriesForecaster(),
            artifacts=artifacts,
            code_paths=[str(bundle_code(Path(code)))],
            signature=signature,
            input_example=example,
            registered_model_name=model_name,
            pip_requirements=pip_requirements(),
            model_config={"model_version": ""},
        )
    return info, hashes
