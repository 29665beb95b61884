"""What a retrain run tells the world when it ends: one artifact and its events.

- The flow run's own markdown artifact ``retrain-outcome``: what the run decided and why
  (the run summary as prose), on the run's page in the Prefect UI.
- Events, for automations (``automations.yaml``) and for anyone watching the event feed:

  ``seriesflow.model.promoted``  a new version became champion
  ``seriesflow.model.rejected``  a new version was registered but the gate kept the champion
      resource ``seriesflow.model.<model name>``; payload ``model_name``, ``version``,
      ``promoted``, ``rule``, ``reason`` (the gate's), ``metrics`` (the model's test
      metrics), ``run_id``, ``run_dir``
  ``seriesflow.data.rejected``   files of the arrival failed validation and were quarantined
      resource ``seriesflow.landing.<landing path or URL>`` (the watcher's); payload ``files``
      (``name``, ``sha256``, ``quarantined_to``, ``checks``: check, column, message),
      ``count``, ``arrival_rejected`` (True when nothing usable was left: the run ends
      ``Rejected``), ``reason``, ``run_id``

Prefect adds the flow run, flow and deployment as related resources.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from seriesflow.flows.watch import arrival_resource
from seriesflow.tasks.artifacts import outcome_markdown, reports_link
from seriesflow.tasks.config import PipelineConfig
from seriesflow.tasks.io import RunDir, Workspace, read_json

MODEL_PROMOTED = "seriesflow.model.promoted"
MODEL_REJECTED = "seriesflow.model.rejected"
DATA_REJECTED = "seriesflow.data.rejected"
OUTCOME_ARTIFACT = "retrain-outcome"
MAX_FILES = 50  # events stay far below the server's size limit
MAX_CHECKS = 5


def model_resource(model_name: str, workspace: Path) -> dict[str, str]:
    return {
        "prefect.resource.id": f"seriesflow.model.{model_name}",
        "prefect.resource.name": model_name,
        "seriesflow.model": model_name,
        "seriesflow.workspace": str(workspace),
    }


def quarantined_files(run: RunDir) -> list[dict[str, Any]]:
    """The files this run quarantined, as validate recorded them (``validation.json``)."""
    path = run.validation_dir / "validation.json"
    return list(read_json(path).get("rejected", [])) if path.exists() else []


def outcome_events(
    result: dict[str, Any],
    cfg: PipelineConfig,
    run: RunDir,
    quarantined: list[dict[str, Any]],
) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """(event, resource, payload) for each thing worth announcing about this run."""
    workspace = cfg.paths.workspace_path()
    events = []
    if quarantined:
        files = [
            {
                "name": item["name"],
                "sha256": item.get("sha256"),
                "quarantined_to": item.get("quarantined_to"),
                "checks": [
                    {k: f.get(k) for k in ("check", "column", "message")}
                    for f in item.get("failures", [])[:MAX_CHECKS]
                ],
            }
            for item in quarantined[:MAX_FILES]
        ]
        first = files[0]["checks"][0] if files[0]["checks"] else {}
        reason = result["reason"] if result["status"] == "rejected" else None
        payload = {
            "files": files,
            "count": len(quarantined),
            "arrival_rejected": result["status"] == "rejected",
            "reason": reason or f"{files[0]['name']}: {first.get('message', 'rejected')}",
            "run_id": run.run_id,
        }
        resource = arrival_resource(
            cfg.paths.landing_location(), workspace, cfg.register.model_name
        )
        events.append((DATA_REJECTED, resource, payload))
    # a run that reused an earlier version's decision trained and decided nothing new
    if result["status"] == "completed" and result.get("model_version") and not result.get("reused"):
        payload = {
            "model_name": result["model_name"],
            "version": result["model_version"],
            "promoted": bool(result["promoted"]),
            "rule": result.get("gate_rule"),
            "reason": result.get("reason"),
            "metrics": {
                k: v
                for k, v in (result.get("metrics") or {}).get("model", {}).items()
                if isinstance(v, int | float) and math.isfinite(v)
            },
            "run_id": run.run_id,
            "run_dir": str(run.root),
        }
        name = MODEL_PROMOTED if result["promoted"] else MODEL_REJECTED
        events.append((name, model_resource(result["model_name"], workspace), payload))
    return events


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
