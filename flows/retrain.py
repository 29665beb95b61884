"""The ``retrain`` flow: ingest -> validate -> normalize -> window -> train -> evaluate -> register.

Ad hoc:   python -m flows.retrain [--config FILE.yaml] [--set train.epochs=5 ...]
Deployed: see prefect.yaml (a trigger on new data, a nightly schedule, UI runs).

The last line printed by the CLI is one JSON object (the run summary); the exit
code is 0 for completed and skipped runs, 2 for rejected input, 1 for failures.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed, State

from flows.outcome import report_outcome
from tasks.accepted import commit_accepted
from tasks.config import PipelineConfig, add_config_arguments, load_config
from tasks.errors import DataRejected
from tasks.evaluate import evaluate as evaluate_task
from tasks.faults import fault_point
from tasks.ingest import ingest as ingest_task
from tasks.io import RunDir, Workspace
from tasks.manifest import Manifest
from tasks.normalize import normalize as normalize_task
from tasks.register import register as register_task
from tasks.report import metrics_text
from tasks.schema import CHAMPION
from tasks.train import train as train_task
from tasks.validate import validate as validate_task
from tasks.window import window as window_task

COMPLETED, SKIPPED, REJECTED, FAILED = "completed", "skipped", "rejected", "failed"
EXIT_CODES = {COMPLETED: 0, SKIPPED: 0, REJECTED: 2, FAILED: 1}


def summary(status: str, run: RunDir, **fields: Any) -> dict[str, Any]:
    """The run summary (the CLI's last line); every key present, null when not reached."""
    base = {
        "status": status,
        "run_dir": str(run.root),
        "rows": None,
        "series": None,
        "new_files": [],
        "rejected_files": [],
        "metrics": {},
        "model_name": None,
        "model_version": None,
        "promoted": False,
        "reason": None,
    }
    base.update(fields)
    return base


@flow(name="retrain", description="Retrain the LSTM forecaster on newly landed series data.")
def retrain(cfg: PipelineConfig = PipelineConfig()) -> State:  # noqa: B008 - Prefect form default
    logger = get_run_logger()
    workspace = Workspace(cfg.paths.workspace_path())
    run = workspace.new_run()
    manifest = Manifest(run, cfg.dump())
    tracking_uri = cfg.register.resolved_tracking_uri(workspace.root)
    logger.info(
        "Run folder %s; landing %s; MLflow %s", run.root, cfg.paths.landing_path(), tracking_uri
    )
    result: dict[str, Any]
    try:
        with manifest.timed("ingest"):
            ingested = ingest_task(
                workspace.root, run, cfg.paths.landing_path(), cfg.columns, cfg.ingest
            )
        fault_point("after:ingest")
        manifest.inputs = [
            {"name": f.name, "sha256": f.sha256, "bytes": f.bytes} for f in ingested.new_files
        ]
        if ingested.skip:
            result = summary(SKIPPED, run, reason="no new data in the landing folder")
            manifest.outcome = result
            manifest.write()
            report_outcome(result, cfg, run)
            logger.info("Nothing new in %s: skipped, no training", cfg.paths.landing_path())
            return Completed(message=result["reason"], data=result, name="Skipped")

        with manifest.timed("validate"):
            validated = validate_task(workspace.root, run, ingested, cfg, tracking_uri)
        fault_point("after:validate")
        with manifest.timed("normalize"):
            normalized = normalize_task(validated.path, run, cfg)
        fault_point("after:normalize")
        with manifest.timed("window"):
            windows = window_task(normalized, run, cfg)
        fault_point("after:window")
        with manifest.timed("train"):
            model_dir = train_task(windows, normalized, run, cfg, tracking_uri)
        fault_point("after:train")
        with manifest.timed("evaluate"):
            evaluation = evaluate_task(windows, normalized, model_dir, run, cfg, tracking_uri)
        fault_point("after:evaluate")
        accepted = [f for f in ingested.new_files if f.name in set(validated.accepted)]
        for item in manifest.inputs:
            item["status"] = "accepted" if item["name"] in validated.accepted else "rejected"
        with manifest.timed("register"):
            registration = register_task(run, evaluation, cfg, tracking_uri, manifest.to_dict())
        fault_point("before:commit")
        commit_accepted(workspace, run, accepted)

        # model + baselines: naive and seasonal naive, or majority and naive (classification)
        reported = dict(evaluation.scores)
        if CHAMPION in evaluation.head_to_head:
            reported[CHAMPION] = evaluation.head_to_head[CHAMPION]
        result = summary(
            COMPLETED,
            run,
            rows=validated.rows,
            series=validated.series,
            new_files=validated.accepted,
            rejected_files=[r["name"] for r in validated.rejected],
            metrics=reported,
            model_name=registration.model_name,
            model_version=registration.model_version,
            promoted=registration.promoted,
            reason=registration.reason,
            gate_rule=registration.rule,
            champion_note=evaluation.champion_note,
        )
        manifest.outcome = result
        manifest.write()
        report_outcome(result, cfg, run)
        return Completed(message=result["reason"], data=result)
    except DataRejected as exc:
        logger.error("Input rejected:\n%s", exc)
        result = summary(
            REJECTED, run, reason=str(exc), rejected_files=sorted({f.file for f in exc.failures})
        )
    except Exception as exc:  # noqa: BLE001 - any failure ends the run with a summary
        logger.error("Run failed: %s\n%s", exc, traceback.format_exc())
        result = summary(FAILED, run, reason=f"{type(exc).__name__}: {exc}")
    manifest.outcome = result
    manifest.write()
    report_outcome(result, cfg, run)
    # A rejected arrival is a Failed state named Rejected: bad input, not a broken pipeline
    # (automations and the UI tell the two apart; prefect.flow-run.Rejected is its event).
    name = "Rejected" if result["status"] == REJECTED else "Failed"
    return Failed(message=result["reason"], data=result, name=name)


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
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
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
    print(
        f"Status: {result['status']}" + (f" — {result['reason']}" if result.get("reason") else "")
    )
    if result.get("run_dir"):
        print(f"Run folder: {result['run_dir']}")
    print(json.dumps(result, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
