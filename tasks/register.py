"""Register: log the run to MLflow and add a model version, decided by the gate.

Every version is registered; the promotion gate (``seriesflow/evaluation/gate.py``) decides
whether the ``champion`` alias is to move to it. The rule that decided, the reason
and every rule's outcome are written to ``gate.json``, logged as tags and
artifacts (``seriesflow/tracking/version.py``), and returned. The alias itself moves only
after the run's data is committed (``seriesflow/workspace/commit.py``): register records
each step in the commit journal and leaves the version tagged ``seriesflow.commit=pending``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.evaluation.gate import Decision, decide
from seriesflow.evaluation.report import promotion_markdown
from seriesflow.evaluation.router import share_note
from seriesflow.ops.retries import NotRetried
from seriesflow.tracking.registry import champion_version
from seriesflow.tracking.version import log_version
from seriesflow.workspace.context import RunContext
from seriesflow.workspace.files import read_parquet, write_json
from seriesflow.workspace.results import EvaluationResult, Registration
from tasks.stage import registry_lock, stage_logger, transient_only


class RegistryWriteFailed(NotRetried, RuntimeError):
    """The registry write stopped part way (an MLflow run resumed, perhaps a version added):
    never retried here, the next run's commit recovery finishes or rolls it back."""


# I/O: the registry reads and the registry lock (the Prefect API) are retried on a passing
# failure; the write itself is not (a second try could add a second version).
@task(name="register", cache_policy=NO_CACHE, retry_condition_fn=transient_only)
def register(
    evaluation: EvaluationResult,
    scaler_path: Path,
    config: PipelineConfig,
    context: RunContext,
    manifest: dict[str, Any],
    mlflow_run_id: str | None = None,
) -> Registration:
    """Register the model (the retrain's MLflow run ``mlflow_run_id``, or a new one).

    MLflow is set up by ``context``; the current champion is looked up again here, under
    the registry lock, so the gate sees one that moved while this run trained.
    """
    logger = stage_logger()
    cfg = config.register
    run = context.run
    metrics = read_parquet(evaluation.path)
    write_json(config.dump(), run.config)

    with registry_lock(cfg.resolved_concurrency_limit()):
        current = champion_version(cfg.model_name)
        current_version = None if current is None else str(current.version)
        decision = decide(
            metrics, cfg, current_version, evaluation.champion_version, evaluation.task
        )
        if evaluation.lstm_share is not None and cfg.models == "routed":
            decision = replace(
                decision, reason=f"{decision.reason}; {share_note(evaluation.lstm_share)}"
            )
        write_json(decision.to_json(), run.gate)
        write_json(manifest, run.manifest)
        try:
            version, run_id = log_version(
                context.workspace, run, scaler_path, config, evaluation, decision, mlflow_run_id
            )
        except Exception as exc:
            raise RegistryWriteFailed(
                f"registering {cfg.model_name} failed part way: {type(exc).__name__}: {exc}"
            ) from exc

    verb = "registered, to be promoted" if decision.promote else "registered, not promoted"
    logger.info("%s v%s %s: %s", cfg.model_name, version, verb, decision.reason)
    _report(decision, cfg.model_name, version, verb)
    return Registration(
        cfg.model_name,
        version,
        run_id,
        decision.promote,
        decision.rule,
        decision.reason,
        evaluation.champion_version,
        tuple(decision.table()),
    )


def _report(decision: Decision, model_name: str, version: str, verb: str) -> None:
    create_markdown_artifact(
        key="promotion", markdown=promotion_markdown(decision, model_name, version, verb)
    )
    create_table_artifact(
        key="promotion-gate",
        table=decision.table(),
        description=f"{model_name} v{version}: every rule of the promotion gate",
    )
