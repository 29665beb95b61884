"""Apply ``automations.yaml``: notifications for failed, crashed and rejected retrains and for
promotions, through a Prefect notification block whose target is a setting; and the
automation that sets a retrain Crashed when its heartbeats stop, which needs no target.

    seriesflow alerts apply [automations.yaml]      (make serve runs it; flows/cli.py)

The target, from the environment:

- ``SERIESFLOW_ALERT_WEBHOOK_URL``: any URL that takes a JSON POST. ``apply`` saves it
  as a secret of the Custom Webhook block ``seriesflow-alerts`` (created or updated), so
  the UI and the API never show it.
- ``SERIESFLOW_ALERT_BLOCK``: or an existing notification block, ``<type-slug>/<name>``
  (e.g. ``slack-webhook/team-alerts`` made in the UI).
- neither: nothing is sent. ``apply`` creates no notification and pauses those that an
  earlier ``apply`` created.

An automation without the ``ALERT_BLOCK`` placeholder (the heartbeat one) is applied and
enabled whatever the target. Its ``within`` comes from ``SERIESFLOW_HEARTBEAT_WINDOW`` when
set (seconds; ``make serve`` sets it), which must leave room for two heartbeats
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, the interval of the worker's runs).

``prefect automation create --from-file`` creates a second copy each time it runs; this
upserts by name instead (and deletes extra copies of a name), so ``make serve`` can apply
the file on every start.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

BLOCK_PLACEHOLDER = "ALERT_BLOCK"
WEBHOOK_BLOCK = "seriesflow-alerts"
WEBHOOK_ENV = "SERIESFLOW_ALERT_WEBHOOK_URL"
BLOCK_ENV = "SERIESFLOW_ALERT_BLOCK"
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
WINDOW_ENV = "SERIESFLOW_HEARTBEAT_WINDOW"
FREQUENCY_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "automations.yaml"
# What the webhook receives: the automation's subject and body (a `text` as well, the
# field chat webhooks read).
WEBHOOK_JSON = {
    "subject": "{{subject}}",
    "body": "{{body}}",
    "text": "{{subject}}\n{{body}}",
    "source": "{{name}}",
}


def load_automations(path: Path) -> list[dict[str, Any]]:
    """The automations of a file in ``prefect automation create --from-file``'s format."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    items = data.get("automations", data) if isinstance(data, dict) else data
    items = items if isinstance(items, list) else [items]
    names = [item["name"] for item in items]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: automation names must be unique (they are the upsert key)")
    return items


def with_block(items: list[dict[str, Any]], block_id: UUID) -> list[dict[str, Any]]:
    """The automations with every ``ALERT_BLOCK`` placeholder replaced by ``block_id``."""
    items = copy.deepcopy(items)
    for item in items:
        for action in item.get("actions", []):
            if action.get("block_document_id") == BLOCK_PLACEHOLDER:
                action["block_document_id"] = str(block_id)
    return items


def target_from_env(env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """("webhook", url) or ("block", "slug/name") from the environment; None: alerts off."""
    env = os.environ if env is None else env
    url, block = env.get(WEBHOOK_ENV, "").strip(), env.get(BLOCK_ENV, "").strip()
    if url and block:
        raise ValueError(f"set {WEBHOOK_ENV} or {BLOCK_ENV}, not both")
    if url:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{WEBHOOK_ENV} must be an http(s) URL")
        return "webhook", url
    if block:
        if block.count("/") != 1:
            raise ValueError(f"{BLOCK_ENV} must be '<block-type-slug>/<block-name>', got {block!r}")
        return "block", block
    return None


def needs_target(item: dict[str, Any]) -> bool:
    """Whether the automation sends notifications (an action names ``ALERT_BLOCK``)."""
    return any(a.get("block_document_id") == BLOCK_PLACEHOLDER for a in item.get("actions", []))


def watches_heartbeats(item: dict[str, Any]) -> bool:
    return HEARTBEAT_EVENT in item.get("trigger", {}).get("after", [])


def with_heartbeat_window(
    items: list[dict[str, Any]], env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The automations with the heartbeat ones' ``within`` from ``SERIESFLOW_HEARTBEAT_WINDOW``
    (unset: the file's); refused when it leaves no room for two heartbeats."""
    env = os.environ if env is None else env
    window_text = env.get(WINDOW_ENV, "").strip()
    frequency_text = env.get(FREQUENCY_ENV, "").strip()
    items = copy.deepcopy(items)
    for item in filter(watches_heartbeats, items):
        trigger = item["trigger"]
        if window_text:
            try:
                trigger["within"] = float(window_text)
            except ValueError:
                raise ValueError(f"{WINDOW_ENV} must be a number of seconds") from None
        if frequency_text:
            frequency = float(frequency_text)
            if float(trigger["within"]) < 2 * frequency:
                raise ValueError(
                    f"{item['name']!r}: no heartbeat for {trigger['within']} s marks a run "
                    f"Crashed, but runs send one every {frequency:g} s ({FREQUENCY_ENV}): one "
                    f"late heartbeat would crash a live run; set {WINDOW_ENV} to at least "
                    f"{2 * frequency:g}"
                )
    return items
