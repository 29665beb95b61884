"""Announce new series files: the ``watch`` flow.

``watch`` compares the landing folder with the ingest ledger by content hash and,
when something is new, emits one Prefect event, ``series.data.arrived``. It does
nothing else: the ``retrain/on-new-data`` deployment's trigger (``prefect.yaml``)
turns the event into a retrain run, and the retrain run reads the landing folder
itself, so the event is a nudge, not a work order.

The event (the contract upstream jobs may emit themselves, see docs/operations.md,
"Announcing new data from an upstream job"):

- ``event``: ``series.data.arrived``
- ``resource``: ``prefect.resource.id`` = ``seriesflow.landing.<landing>``, where
  ``<landing>`` is the absolute landing path as ``PathsConfig.landing_location()``
  resolves it (symlinks resolved, no trailing slash) or, for an object store, the URL as
  configured without a trailing slash (``seriesflow.landing.s3://bucket/prefix``); plus
  the labels ``seriesflow.landing`` (the same), ``seriesflow.workspace`` and
  ``seriesflow.model``.
- ``payload``: ``files`` (``name``, ``sha256``, ``bytes``; at most ``MAX_LISTED_FILES``
  of them, oldest first), ``count`` and ``bytes`` (totals over all new files), and
  ``truncated`` (True when ``files`` lists fewer than ``count``).

A file counts once it has settled: two looks at least ``ingest.settle_seconds`` apart
saw the same size and modification time (the looks are kept in the workspace, so the
previous poll is the first look; with ``ingest.second_look`` a poll that sees a file
for the first time looks again itself, ``settle_seconds`` later). Hashes are memoized
by name, size and mtime, so a poll over known files reads none of them.

The watcher is level-triggered: a file stays "new" until a retrain run records it
in the ledger, so every look re-announces it. That is what makes it safe for the
trigger to coalesce a burst of events into one run (an event it drops is repeated
by the next poll).

Ad hoc: ``python -m flows.watch [--config FILE] [--set key=value ...]`` looks once
and prints a JSON summary as its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.settings import get_current_settings

from seriesflow.config.pipeline import PipelineConfig, add_config_arguments, load_config
from seriesflow.ops.events import EVENT_NAME, arrival_payload, arrival_resource
from seriesflow.workspace.claims import pending_claims
from seriesflow.workspace.files import Workspace
from seriesflow.workspace.landing import Landing
from seriesflow.workspace.ledger import LandedFile, find_new, known_hashes, load_ledger, settle
from tasks.stage import flow_limit, limited, transient_only

# The flow's default parameter (frozen, so one shared instance is safe).
DEFAULT_CONFIG = PipelineConfig()


# The result depends on the folder's contents, not on the arguments: never cache it. I/O:
# listing the landing area retries on a passing failure.
@task(cache_policy=NO_CACHE, retry_condition_fn=transient_only)
def find_arrivals(
    landing: str,
    workspace: Path,
    settle_seconds: float,
    second_look: bool = True,
    patterns: list[str] | None = None,
) -> list[LandedFile]:
    """Settled files in ``landing`` (names matching ``patterns``) whose content hash the
    ledger does not hold, and files a dead run claimed but never committed (the next run
    takes them over: announcing them is what gets that run started)."""
    place = Landing(landing, patterns)
    if not place.exists():
        raise FileNotFoundError(
            f"landing folder {place.display} does not exist: create it (scripts/serve.sh does) "
            "or point paths.landing (SERIESFLOW_LANDING for the deployments) at the folder "
            "where series files land"
        )
    ledger = load_ledger(Workspace(workspace).ledger)
    pending = pending_claims(Workspace(workspace), known_hashes(ledger))
    scan = settle(place, settle_seconds, Workspace(workspace).looks, second_look)
    new = find_new(pending + scan.files, ledger)
    logger = get_run_logger()
    logger.info("%d new file(s) in %s", len(new), place.display)
    if scan.waiting:
        logger.info("Not settled yet: %s", scan.waiting)
    return new


# I/O: the Prefect API (events); the watcher announces the same files again if it fails.
@task(cache_policy=NO_CACHE, retry_condition_fn=transient_only)
def announce(resource: dict[str, str], payload: dict[str, Any]) -> str:
    """Emit ``series.data.arrived``; returns the event id."""
    event = emit_event(event=EVENT_NAME, resource=resource, payload=payload)
    if event is None:
        # emit_event returns None when no events client is configured (no API).
        raise RuntimeError(
            f"{EVENT_NAME} was not emitted: no Prefect API is configured. "
            "Set PREFECT_API_URL or run the watcher through its deployment."
        )
    get_run_logger().info(
        "emitted %s for %s: %d file(s), %d bytes",
        EVENT_NAME,
        resource["prefect.resource.id"],
        payload["count"],
        payload["bytes"],
    )
    return str(event.id)


@flow(name="watch", log_prints=False)
def watch(cfg: PipelineConfig = DEFAULT_CONFIG) -> dict[str, Any]:
    """Look at the landing folder once; announce new files with one event."""
    landing = cfg.paths.landing_location()
    workspace = cfg.paths.workspace_path()
    with flow_limit(cfg.limits, "watch"):
        return _watch(cfg, landing, workspace)


def _watch(cfg: PipelineConfig, landing: str, workspace: Path) -> dict[str, Any]:
    new = limited(find_arrivals, cfg.limits, "watch")(
        landing,
        workspace,
        cfg.ingest.settle_seconds,
        cfg.ingest.second_look,
        cfg.ingest.landing_patterns,
    )
    summary: dict[str, Any] = {
        "status": "nothing-new",
        "landing": landing,
        "count": len(new),
        "bytes": sum(f.bytes for f in new),
        "event_id": None,
    }
    if new:
        resource = arrival_resource(landing, workspace, cfg.register.model_name)
        summary["event_id"] = limited(announce, cfg.limits, "watch")(resource, arrival_payload(new))
        summary["status"] = "announced"
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.watch",
        description=f"Look at the landing folder once and emit {EVENT_NAME} if anything is new.",
    )
    add_config_arguments(parser, example="paths.landing=/data/in")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if not get_current_settings().api.url:
        print(
            "warning: PREFECT_API_URL is not set, so the event goes to a temporary Prefect "
            "server and starts nothing. Point PREFECT_API_URL at the server that runs the "
            "deployments (make serve prints it: http://127.0.0.1:4200/api by default).",
            file=sys.stderr,
        )
    summary = watch(cfg)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
