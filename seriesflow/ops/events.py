"""The events the pipeline emits: names, resources and payloads (pure; flows emit them).

``series.data.arrived`` (the watcher): resource ``seriesflow.landing.<landing>``; payload
``files`` (a bounded list), ``count``, ``bytes``, ``truncated``.

What a retrain run tells the world when it ends (the retrain flow emits them):

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
      ``Rejected``), ``reason`` (file, check, column, count: never a data row), ``run_id``

Prefect adds the flow run, flow and deployment as related resources.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.errors import CheckFailure
from seriesflow.workspace.files import RunDir, read_json
from seriesflow.workspace.ledger import LandedFile

EVENT_NAME = "series.data.arrived"
RESOURCE_PREFIX = "seriesflow.landing."
# An event must stay under the server's 1.5 MB limit (PREFECT_EVENTS_MAXIMUM_SIZE_BYTES);
# one listed file costs ~150 bytes, so list the first ones and keep exact totals.
MAX_LISTED_FILES = 500


def landing_resource_id(landing: Path | str) -> str:
    """The event's resource id for a landing folder or URL (the trigger matches on it)."""
    return f"{RESOURCE_PREFIX}{landing}"


def arrival_resource(landing: Path | str, workspace: Path, model_name: str) -> dict[str, str]:
    return {
        "prefect.resource.id": landing_resource_id(landing),
        "prefect.resource.name": f"landing folder {landing}",
        "seriesflow.landing": str(landing),
        "seriesflow.workspace": str(workspace),
        "seriesflow.model": model_name,
    }


def arrival_payload(new: list[LandedFile]) -> dict[str, Any]:
    """What the event says about the new files: a bounded list plus exact totals."""
    listed = new[:MAX_LISTED_FILES]
    return {
        "files": [{"name": f.name, "sha256": f.sha256, "bytes": f.bytes} for f in listed],
        "count": len(new),
        "bytes": sum(f.bytes for f in new),
        "truncated": len(listed) < len(new),
    }


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


def _reason(item: dict[str, Any]) -> str:
    """The first file's failed checks as the run's reason says them, without example rows:
    an event's payload goes to automations and webhooks (not the run's own reason, which
    quotes a row)."""
    failures = item.get("failures", [])[:MAX_CHECKS]
    if not failures:
        return f"{item['name']}: rejected"
    fields = ("file", "check", "column", "message", "unexpected_count")
    return "\n".join(
        CheckFailure(**{k: f.get(k) for k in fields}).describe(examples=False) for f in failures
    )


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
                    {k: f.get(k) for k in ("check", "column", "message", "unexpected_count")}
                    for f in item.get("failures", [])[:MAX_CHECKS]
                ],
            }
            for item in quarantined[:MAX_FILES]
        ]
        payload = {
            "files": files,
            "count": len(quarantined),
            "arrival_rejected": result["status"] == "rejected",
            "reason": _reason(quarantined[0]),
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
