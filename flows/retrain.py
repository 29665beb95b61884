"""The ``retrain`` flow: ingest -> validate -> normalize -> window -> train -> evaluate -> register.

Ad hoc:   python -m flows.retrain [--config FILE.yaml] [--set train.epochs=5 ...]
                                  [--no-wait] [--force]
Deployed: see prefect.yaml (a trigger on new data, a nightly schedule, UI runs).

One run at a time per workspace, whatever started it: a second one waits for the
first (--no-wait: it ends skipped, "workspace busy"). A run over the same data and
settings as an existing version reuses that version's decision (--force: trains).

The last line printed by the CLI is one JSON object (the run summary); the exit
code is 0 for completed and skipped runs, 2 for rejected input, 1 for failures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import traceback
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.flow_engine import FlowRunTimeoutError
from prefect.runtime import flow_run as prefect_flow_run
from prefect.states import Completed, Failed, State
from prefect.task_engine import TaskRunTimeoutError

from flows.fanout import train_split
from flows.monitor import score_live
from seriesflow.config.pipeline import PipelineConfig, add_config_arguments, load_config
from seriesflow.data.errors import DataRejected
from seriesflow.data.schema import CHAMPION
from seriesflow.evaluation.tables import metrics_text, status_line
from seriesflow.model.scaler import Scaler
from seriesflow.ops.artifacts import outcome_markdown, reports_link
from seriesflow.ops.events import OUTCOME_ARTIFACT, outcome_events, quarantined_files
from seriesflow.ops.faults import fault_point
from seriesflow.ops.secrets import redact_text, redact_url
from seriesflow.tracking.registry import (
    champion_run_folder,
    champion_version,
    claim_model,
    end_run,
    flatten,
    history_version_of,
    run_status,
    run_tags,
    start_training_run,
    use_tracking,
    version_for_inputs,
)
from seriesflow.workspace.claims import clear_attempts, validating
from seriesflow.workspace.commit import REGISTERED, JournalDamaged, commit, input_key, recover
from seriesflow.workspace.commit import begin as begin_commit
from seriesflow.workspace.commit import load as load_journal
from seriesflow.workspace.commit import update as update_journal
from seriesflow.workspace.context import RunContext, open_run_context
from seriesflow.workspace.files import RETRAIN as RETRAIN_WRITER
from seriesflow.workspace.files import RunDir, Workspace, writing_as
from seriesflow.workspace.history import history_version
from seriesflow.workspace.history import migrate as migrate_history
from seriesflow.workspace.landing import Landing
from seriesflow.workspace.ledger import load_ledger
from seriesflow.workspace.lock import WorkspaceBusy, workspace_lock
from seriesflow.workspace.manifest import Manifest
from seriesflow.workspace.retention import dispose_landed, prune_runs, tidy_claims, vacuum_history
from tasks.evaluate import evaluate as evaluate_task
from tasks.ingest import ingest as ingest_task
from tasks.normalize import normalize as normalize_task
from tasks.register import register as register_task
from tasks.stage import flow_limit
from tasks.stage import limited as stage
from tasks.train import train as train_task
from tasks.validate import validate as validate_task
from tasks.window import window as window_task

COMPLETED, SKIPPED, REJECTED, FAILED = "completed", "skipped", "rejected", "failed"
EXIT_CODES = {COMPLETED: 0, SKIPPED: 0, REJECTED: 2, FAILED: 1}


def summary(status: str, run: RunDir | None, **fields: Any) -> dict[str, Any]:
    """The run summary (the CLI's last line); every key present, null when not reached."""
    base = {
        "status": status,
        "run_dir": None if run is None else str(run.root),
        "rows": None,
        "series": None,
        "new_files": [],
        "rejected_files": [],
        "metrics": {},
        "model_name": None,
        "model_version": None,
        "promoted": False,
        "reused": False,
        "recovered": [],
        "live_accuracy": {},
        "lstm_share": None,
        "features": {},
        "reason": None,
    }
    base.update(fields)
    return base


def skipped(result: dict[str, Any]) -> State:
    return Completed(message=result["reason"], data=result, name="Skipped")


@flow(name="retrain", description="Retrain the LSTM forecaster on newly landed series data.")
def retrain(cfg: PipelineConfig = PipelineConfig()) -> State:  # noqa: B008 - Prefect form default
    """One writer per workspace: the whole run holds the workspace lock (workspace/lock.py)."""
    logger = get_run_logger()
    workspace = Workspace(cfg.paths.workspace_path())
    owner = f"retrain flow run {prefect_flow_run.name or prefect_flow_run.id or '(ad hoc)'}"
    # temporaries named for this run: the next lock holder's recovery knows them for a
    # retrain's (a dead one's) and leaves a live forecast's or tune's alone
    writer = str(prefect_flow_run.name or prefect_flow_run.id or f"pid{os.getpid()}")
    try:
        with (
            flow_limit(cfg.limits, "retrain"),
            writing_as(RETRAIN_WRITER, writer),
            workspace_lock(
                workspace.root, owner, wait=cfg.run.wait_for_workspace, log=logger.info
            ) as crashed,
        ):
            return retrain_locked(cfg, workspace, crashed)
    except WorkspaceBusy as exc:
        logger.info("%s: skipped (run.wait_for_workspace is off)", exc)
        return skipped(summary(SKIPPED, None, reason=str(exc)))


def retrain_locked(cfg: PipelineConfig, workspace: Workspace, crashed: str | None) -> State:
    logger = get_run_logger()
    tracking_uri = cfg.register.resolved_tracking_uri(workspace.root)
    run = workspace.new_run()
    manifest = Manifest(run, cfg.dump(), registry=redact_url(tracking_uri))
    result: dict[str, Any]
    recovered: list[str] = []
    mlflow_run_id: str | None = None
    name = "Failed"  # the final state's name when the run fails
    message: str | None = None  # the final state's, when it differs from the reason
    ingested = None
    try:
        landing = Landing(cfg.paths.landing_location())
        logger.info(
            "Run folder %s; landing %s; MLflow %s",
            run.root,
            landing.display,
            redact_url(tracking_uri),
        )
        # once: a workspace's history.parquet becomes the Delta table (workspace/history)
        migrated = migrate_history(workspace, cfg.history.buckets)
        if migrated:
            logger.warning("History: %s", migrated)
        recovered = recover_workspace(cfg, workspace, tracking_uri, crashed)
        # claimed copies a recovered (or earlier) commit recorded leave before the next claim
        tidy_claims(workspace, load_ledger(workspace.ledger), cfg.retention.landed, logger.warning)
        with manifest.timed("ingest"):
            ingested = stage(ingest_task, cfg.limits, "ingest")(
                workspace.root, run, landing.location, cfg.columns, cfg.ingest
            )
        fault_point("after:ingest")
        manifest.inputs = [
            {"name": f.name, "sha256": f.sha256, "bytes": f.bytes} for f in ingested.new_files
        ]
        if ingested.skip:
            shutil.rmtree(run.root, ignore_errors=True)  # a skipped run leaves no folder
            tidy_claims(workspace, load_ledger(workspace.ledger), cfg.retention.landed)
            result = summary(
                SKIPPED, None, reason="no new data in the landing folder", recovered=recovered
            )
            report_outcome(result, cfg, run)
            logger.info("Nothing new in %s: skipped, no training", landing.display)
            return skipped(result)

        # load once, pass down: MLflow set up once, the champion loaded once
        context = open_run_context(cfg, workspace, run, tracking_uri)
        # a crash in validate counts against the arrival's files (ingest.max_attempts)
        validating(workspace, [f.sha256 for f in ingested.new_files], run.run_id)
        with manifest.timed("validate"):
            validated = stage(validate_task, cfg.limits, "validate")(ingested, cfg, context)
        # read and validated without taking the process down: the files' attempts start over
        clear_attempts(workspace, [f.sha256 for f in ingested.new_files])
        fault_point("after:validate")
        accepted = [f for f in ingested.new_files if f.name in set(validated.accepted)]
        for item in manifest.inputs:
            item["status"] = "accepted" if item["name"] in validated.accepted else "rejected"
        key = input_key(validated.path, cfg)
        earlier = (
            None if cfg.run.force else version_for_inputs(cfg.register.model_name, key, workspace)
        )
        if earlier is not None:
            result = reuse_version(cfg, workspace, run, accepted, key, tracking_uri, earlier)
            manifest.history_version = history_version(workspace)
        else:
            # one MLflow run spans the training: params now, epochs as they run, then the
            # evaluation, the gate and the model (register ends it)
            mlflow_run_id = open_tracking_run(cfg, context)
            with manifest.timed("normalize"):
                normalized = stage(normalize_task, cfg.limits, "normalize")(
                    validated.path, run, cfg
                )
            scaler = run.scaler  # normalize wrote it, next to the normalized values
            fault_point("after:normalize")
            with manifest.timed("window"):
                windows = stage(window_task, cfg.limits, "window")(normalized, scaler, run, cfg)
            fault_point("after:window")
            with manifest.timed("train"):
                if cfg.train.splits:  # per series or per group: one task per branch
                    model_dir = train_split(
                        windows, normalized, scaler, validated.path, cfg, context, mlflow_run_id
                    )
                else:
                    model_dir = stage(train_task, cfg.limits, "train")(
                        windows, normalized, scaler, cfg, context, mlflow_run_id=mlflow_run_id
                    )
            fault_point("after:train")
            with manifest.timed("evaluate"):
                evaluation = stage(evaluate_task, cfg.limits, "evaluate")(
                    windows, normalized, scaler, model_dir, cfg, context
                )
            fault_point("after:evaluate")
            # register -> commit -> alias, journaled (seriesflow/workspace/commit.py)
            begin_commit(workspace, run, accepted, key, cfg, tracking_uri)
            with manifest.timed("register"):
                registration = stage(register_task, cfg.limits, "register")(
                    evaluation, scaler, cfg, context, manifest.to_dict(), mlflow_run_id
                )
            fault_point("before:commit")
            with manifest.timed("commit"):
                commit(workspace, load_journal(workspace), logger.info)
            manifest.history_version = history_version(workspace)

            # model + baselines: naive and seasonal naive, or majority and naive (classification)
            reported = dict(evaluation.scores)
            if CHAMPION in evaluation.head_to_head:
                reported[CHAMPION] = evaluation.head_to_head[CHAMPION]
            result = summary(
                COMPLETED,
                run,
                metrics=reported,
                model_name=registration.model_name,
                model_version=registration.model_version,
                promoted=registration.promoted,
                reason=registration.reason,
                gate_rule=registration.rule,
                champion_note=evaluation.champion_note,
                lstm_share=evaluation.lstm_share,
                # what the model reads: past, future, static covariates, calendar, holidays
                features=Scaler.load(scaler).feature_spec.described(),
            )
        result.update(
            rows=validated.rows,
            series=validated.series,
            new_files=validated.accepted,
            rejected_files=[r["name"] for r in validated.rejected],
            recovered=recovered,
            history_version=manifest.history_version,
            live_accuracy=score_live(cfg, context),
        )
        keep_tidy(cfg, workspace, run, landing, tracking_uri, accepted)
        manifest.outcome = result
        manifest.write()
        report_outcome(result, cfg, run)
        return Completed(message=result["reason"], data=result)
    except DataRejected as exc:
        logger.error("Input rejected:\n%s", exc)
        if ingested is not None:  # validate got through them (and quarantined them)
            clear_attempts(workspace, [f.sha256 for f in ingested.new_files])
        result = summary(
            REJECTED, run, reason=str(exc), rejected_files=sorted({f.file for f in exc.failures})
        )
        # the state's message goes out with alerts (automations.yaml): no example rows
        message = exc.summary()
        keep_tidy(cfg, workspace, run, landing, tracking_uri, [])
    except Exception as exc:  # noqa: BLE001 - any failure ends the run with a summary
        logger.error("Run failed: %s", redact_text(f"{exc}\n{traceback.format_exc()}"))
        result = summary(FAILED, run, reason=redact_text(f"{type(exc).__name__}: {exc}"))
        # past a time limit (limits.timeouts): Prefect's TimedOut, a failed state too
        if isinstance(exc, FlowRunTimeoutError | TaskRunTimeoutError):
            name = "TimedOut"
        result.update(pending_commit(workspace, run, result["reason"]))
        close_tracking_run(mlflow_run_id, result["reason"])
    result["recovered"] = recovered
    manifest.outcome = result
    manifest.write()
    report_outcome(result, cfg, run)
    # A rejected arrival is a Failed state named Rejected: bad input, not a broken pipeline
    # (automations and the UI tell the two apart; prefect.flow-run.Rejected is its event).
    if result["status"] == REJECTED:
        name = "Rejected"
    return Failed(message=message or result["reason"], data=result, name=name)


# --------------------------------------------------------------------------- around the chain


def open_tracking_run(cfg: PipelineConfig, context: RunContext) -> str:
    """The retrain's MLflow run, RUNNING from here to register (seriesflow/tracking/registry.py)."""
    params = flatten("", cfg.dump(), {})
    run, workspace = context.run, context.workspace
    return start_training_run(context.experiment_id, run.run_id, run_tags(run, workspace), params)


def close_tracking_run(mlflow_run_id: str | None, reason: str) -> None:
    """A failed retrain's MLflow run ends FAILED (one that registered has ended already)."""
    if mlflow_run_id is None:
        return
    try:
        if run_status(mlflow_run_id) == "RUNNING":
            end_run(mlflow_run_id, "FAILED", {"seriesflow.failure": reason[:5000]})
    except Exception as exc:  # noqa: BLE001 - the run's result stands; recovery tidies later
        get_run_logger().warning("Could not end MLflow run %s: %s", mlflow_run_id, exc)


def recover_workspace(
    cfg: PipelineConfig, workspace: Workspace, tracking_uri: str, crashed: str | None
) -> list[str]:
    """Before reading anything: finish or roll back what a crashed run left (workspace/commit)."""
    logger = get_run_logger()
    if crashed is None and load_journal(workspace) is None:
        return []
    if crashed is not None:
        logger.warning("The previous run, %s, died holding the workspace: recovering", crashed)
    use_tracking(tracking_uri, cfg.register.experiment, workspace.root)
    # before recovery touches any version: is the model name this workspace's to write?
    claim_model(cfg.register.model_name, workspace, cfg.register.shared_model)
    return recover(workspace, tracking_uri, cfg.register.model_name, crashed, logger.warning)


def reuse_version(
    cfg: PipelineConfig,
    workspace: Workspace,
    run: RunDir,
    accepted: list,
    key: str,
    tracking_uri: str,
    earlier: Any,
) -> dict[str, Any]:
    """Commit the data and report the earlier version's decision; register nothing."""
    logger = get_run_logger()
    version = str(earlier.version)
    decided = (earlier.tags or {}).get("gate_reason", "")
    was = "promoted" if (earlier.tags or {}).get("promoted") == "True" else "not promoted"
    reason = (
        f"same data and settings as version {version} (input key {key[:12]}): reused its "
        f"decision ({was}: {decided}); run.force=true trains anyway"
    )
    begin_commit(workspace, run, accepted, key, cfg, tracking_uri)
    # reused=True: a recovery of this commit adds the data and leaves the version alone
    journal = update_journal(
        workspace,
        state=REGISTERED,
        version=version,
        promote=False,
        rule="reused",
        reason=reason,
        reused=True,
    )
    commit(workspace, journal, logger.info)
    logger.info("%s v%s reused: %s", cfg.register.model_name, version, reason)
    return summary(
        COMPLETED,
        run,
        model_name=cfg.register.model_name,
        model_version=version,
        reused=True,
        reason=reason,
    )


def keep_tidy(
    cfg: PipelineConfig,
    workspace: Workspace,
    run: RunDir,
    landing: Landing,
    tracking_uri: str,
    taken: list,
) -> None:
    """Retention: the committed files' claimed copies are archived, deleted or kept; old run
    folders go (workspace/retention)."""
    logger = get_run_logger()
    try:
        mode = cfg.retention.landed
        gone = dispose_landed(workspace, taken, mode, logger.warning)
        gone += tidy_claims(workspace, load_ledger(workspace.ledger), mode, logger.warning)
        if gone:
            logger.info("Landed files, retention.landed=%s: %s", mode, gone)
        use_tracking(tracking_uri, cfg.register.experiment, workspace.root)
        protect = {run.run_id}
        journal = load_journal(workspace)  # damaged: raises, and nothing is pruned
        if journal is not None:  # a commit to finish needs its run folder
            protect.add(journal["run_id"])
        removed = prune_runs(
            workspace,
            cfg.retention.keep_runs,
            protect,
            # fails closed: a registry that cannot name the champion prunes nothing
            champion=lambda: champion_run_folder(cfg.register.model_name),
            log=logger.warning,
        )
        if removed:
            logger.info("Removed %d old run folder(s) (retention.keep_runs)", len(removed))
        vacuumed = vacuum_history(
            workspace,
            cfg.history.vacuum_hours,
            # fails closed: a champion whose training version is unknown vacuums nothing
            champion=lambda: champion_history(cfg.register.model_name),
            log=logger.warning,
        )
        if vacuumed:
            logger.info("Vacuumed %d history file(s) (history.vacuum_hours)", len(vacuumed))
    except Exception as exc:  # noqa: BLE001 - tidying never fails a run that committed
        logger.warning("Retention skipped: %s", redact_text(str(exc)))


def champion_history(model_name: str) -> tuple[bool, int | None]:
    """(is there a champion, the history version it trained on)."""
    if champion_version(model_name) is None:
        return False, None
    return True, history_version_of(model_name)


def pending_commit(workspace: Workspace, run: RunDir, reason: str) -> dict[str, Any]:
    """After a failure: say so when this run registered a version whose data is not yet
    committed (the next run's recovery finishes it)."""
    try:
        journal = load_journal(workspace)
    except JournalDamaged:  # the failure itself says so, naming the file and the repair
        return {}
    if journal is None or journal["run_id"] != run.run_id or not journal.get("version"):
        return {}
    return {
        "model_name": journal["model_name"],
        "model_version": journal["version"],
        "reason": f"{reason}; v{journal['version']} is registered but its data is not "
        "committed and the champion alias has not moved: the next run finishes the commit",
    }


def report_outcome(result: dict[str, Any], cfg: PipelineConfig, run: RunDir) -> list[str]:
    """Create the run's outcome artifact and emit its events; returns the event names.

    Never raises: telling about the outcome must not change it (a failure is logged)."""
    try:
        return _report_outcome(result, cfg, run)
    except Exception as exc:  # noqa: BLE001 - the run's result stands either way
        get_run_logger().warning("Could not report the outcome: %s: %s", type(exc).__name__, exc)
        return []


def _report_outcome(result: dict[str, Any], cfg: PipelineConfig, run: RunDir) -> list[str]:
    index = run.validation_dir / "data_docs" / "index.html"
    runs = Workspace(cfg.paths.workspace_path()).runs
    try:
        url = (
            reports_link(cfg.paths.resolved_reports_url(), runs, index) if index.exists() else None
        )
    except ValueError:  # validate logged why
        url = None
    create_markdown_artifact(
        key=OUTCOME_ARTIFACT,
        markdown=outcome_markdown(result, url),
        description=f"What retrain run {run.run_id} decided",
    )
    emitted = []
    for name, resource, payload in outcome_events(result, cfg, run, quarantined_files(run)):
        emit_event(event=name, resource=resource, payload=payload)
        emitted.append(name)
    return emitted


def run_cli(cfg: PipelineConfig) -> tuple[dict[str, Any], int]:
    state = retrain(cfg, return_state=True)
    data = state.result(raise_on_failure=False)
    if not isinstance(data, dict):  # the flow crashed before it could summarize
        data = {"status": FAILED, "run_dir": None, "reason": f"{state.name}: {state.message}"}
    return data, EXIT_CODES.get(data.get("status"), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.retrain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="if another run holds the workspace, end skipped instead of waiting",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="train even if a version was trained on the same data and settings",
    )
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    overrides += ["run.wait_for_workspace=false"] if args.no_wait else []
    overrides += ["run.force=true"] if args.force else []
    try:
        cfg = load_config(args.config, overrides)
    except (OSError, ValueError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        print(json.dumps({"status": FAILED, "run_dir": None, "reason": f"config error: {exc}"}))
        return 1
    result, code = run_cli(cfg)
    table = metrics_text(result.get("metrics") or {})
    print()
    if table:
        print("Test metrics (original units):")
        print(table)
        print()
    print(status_line(result))
    if result.get("run_dir"):
        print(f"Run folder: {result['run_dir']}")
    print(json.dumps(result, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
