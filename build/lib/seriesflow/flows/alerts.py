"""Apply ``automations.yaml``: notifications for failed, crashed and rejected retrains and for
promotions, through a Prefect notification block whose target is a setting.

    python -m flows.alerts apply [automations.yaml]      (make serve runs it)

The target, from the environment:

- ``SERIESFLOW_ALERT_WEBHOOK_URL``: any URL that takes a JSON POST. ``apply`` saves it
  as a secret of the Custom Webhook block ``seriesflow-alerts`` (created or updated), so
  the UI and the API never show it.
- ``SERIESFLOW_ALERT_BLOCK``: or an existing notification block, ``<type-slug>/<name>``
  (e.g. ``slack-webhook/team-alerts`` made in the UI).
- neither: nothing is sent. ``apply`` creates no automation and pauses the file's
  automations that an earlier ``apply`` created.

``prefect automation create --from-file`` creates a second copy each time it runs; this
upserts by name instead (and deletes extra copies of a name), so ``make serve`` can apply
the file on every start.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

BLOCK_PLACEHOLDER = "ALERT_BLOCK"
WEBHOOK_BLOCK = "seriesflow-alerts"
WEBHOOK_ENV = "SERIESFLOW_ALERT_WEBHOOK_URL"
BLOCK_ENV = "SERIESFLOW_ALERT_BLOCK"
DEFAULT_FILE = Path(__file__).resolve().parents[1] / "automations.yaml"
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


def save_webhook_block(url: str) -> UUID:
    """Create or update the Custom Webhook block ``seriesflow-alerts`` (the URL a secret)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name="seriesflow",
        url="{{webhook_url}}",
        secrets={"webhook_url": url},
        json_data=WEBHOOK_JSON,
        timeout=10,
    )
    return block.save(WEBHOOK_BLOCK, overwrite=True)


def existing_block(reference: str) -> UUID:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    slug, name = reference.split("/")
    with get_client(sync_client=True) as client:
        try:
            return client.read_block_document_by_name(name, block_type_slug=slug).id
        except ObjectNotFound:
            raise ValueError(f"{BLOCK_ENV}={reference}: no such block on the server") from None


def apply(path: Path, target: tuple[str, str] | None) -> list[str]:
    """Upsert (or, without a target, pause) the automations of ``path``; one line per action."""
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    items = load_automations(path)
    done = []
    with get_client(sync_client=True) as client:
        if target is None:
            for item in items:
                for automation in client.read_automations_by_name(item["name"]):
                    if automation.enabled:
                        client.pause_automation(automation.id)
                        done.append(f"paused {item['name']!r}")
            done.append(
                f"alerts are off: set {WEBHOOK_ENV} (or {BLOCK_ENV}) and run again to send them"
            )
            return done
        kind, value = target
        block_id = save_webhook_block(value) if kind == "webhook" else existing_block(value)
        target_text = f"block {WEBHOOK_BLOCK} (${WEBHOOK_ENV})" if kind == "webhook" else value
        for item in with_block(items, block_id):
            automation = AutomationCore.model_validate(item)
            found = client.read_automations_by_name(automation.name)
            if found:
                client.update_automation(found[0].id, automation)
                for extra in found[1:]:
                    client.delete_automation(extra.id)
                done.append(f"updated {automation.name!r} -> {target_text}")
            else:
                client.create_automation(automation)
                done.append(f"created {automation.name!r} -> {target_text}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.alerts", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    apply_cmd = commands.add_parser("apply", help="create or update the automations of a file")
    apply_cmd.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args(argv)
    try:
        for line in apply(args.file, target_from_env()):
            print(line)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
