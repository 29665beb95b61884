"""``seriesflow``: one command for the pipeline's CLIs (installed by ``make install``).

    seriesflow retrain [--config FILE] [--set key=value ...]   python -m flows.retrain
    seriesflow forecast ...                                     python -m flows.forecast
    seriesflow watch   [--config FILE] [--set key=value ...]   python -m flows.watch
    seriesflow tune    [--config FILE] [--set key=value ...]   python -m flows.tune
    seriesflow repair  [--config FILE] [--rollback|--finish]   a commit journal left behind
    seriesflow history [--as-of-version N | --model-version V] [--output FILE]
                                                                the accepted rows, time travel
    seriesflow alerts apply [automations.yaml]                 notifications (automations)
    seriesflow serve                                           make serve (scripts/serve.sh)

Each subcommand hands the rest of the command line to that module's ``main`` (its
``--help`` says more) and exits with its code. Modules are imported only when their
subcommand runs: ``seriesflow --help`` answers at once, without TensorFlow or Prefect.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from seriesflow.ops.alerts import (
    BLOCK_ENV,
    DEFAULT_FILE,
    WEBHOOK_BLOCK,
    WEBHOOK_ENV,
    WEBHOOK_JSON,
    load_automations,
    needs_target,
    target_from_env,
    with_block,
    with_heartbeat_window,
)

if TYPE_CHECKING:
    from seriesflow.config.pipeline import PipelineConfig

# subcommand -> (module with a ``main(argv) -> int``, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "retrain": (
        "flows.retrain",
        "retrain once on what has landed (the summary JSON last)",
    ),
    "forecast": ("flows.forecast", "batch forecasts from the champion"),
    "watch": ("flows.watch", "look at the landing folder once; announce new files"),
    "tune": ("flows.tune", "hyperparameter search, one Prefect task per trial"),
    "repair": ("flows.cli:repair_main", "show, roll back or finish an interrupted commit"),
    "history": ("flows.cli:history_main", "the accepted rows as of a table or model version"),
    "alerts": ("flows.cli:alerts_main", "apply automations.yaml (notifications) to the server"),
    "serve": ("", "Prefect server + deployments + worker + reports server (make serve)"),
}
NOT_INSTALLED = 3


# --------------------------------------------------------------------------- alerts
# ``seriesflow alerts apply``: the Prefect client side of seriesflow/ops/alerts.py (the
# automations file, the block target); Prefect is imported only when it runs.


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
    """Upsert the automations of ``path``: those that need no target always; the
    notifications with ``target``, or, without one, pause them. One line per action."""
    from prefect.client.orchestration import get_client

    items = with_heartbeat_window(load_automations(path))
    notifications = [item for item in items if needs_target(item)]
    done = []
    with get_client(sync_client=True) as client:
        for item in items:
            if not needs_target(item):
                done.append(upsert(client, item, "no target needed"))
        if target is None:
            for item in notifications:
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
        for item in with_block(notifications, block_id):
            done.append(upsert(client, item, target_text))
    return done


def upsert(client, item: dict[str, Any], target_text: str) -> str:
    """Create the automation, or update the one of its name (and delete extra copies)."""
    from prefect.events.schemas.automations import AutomationCore

    automation = AutomationCore.model_validate(item)
    found = client.read_automations_by_name(automation.name)
    if found:
        client.update_automation(found[0].id, automation)
        for extra in found[1:]:
            client.delete_automation(extra.id)
        return f"updated {automation.name!r} -> {target_text}"
    client.create_automation(automation)
    return f"created {automation.name!r} -> {target_text}"


def alerts_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seriesflow alerts", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    apply_cmd = commands.add_parser("apply", help="create or update the automations of a file")
    apply_cmd.add_argument(
        "file", nargs="?", type=Path, default=DEFAULT_FILE, help="the automations file"
    )
    args = parser.parse_args(argv)
    try:
        for line in apply(args.file, target_from_env()):
            print(line)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- repair
# ``seriesflow repair``: the commit journal (<workspace>/commit.json) a run left behind, under
# the workspace lock (seriesflow/workspace/commit.py has the rules; docs/operations.md).


def repair_main(argv: list[str] | None = None) -> int:
    from seriesflow.config.file import add_config_arguments
    from seriesflow.config.pipeline import load_config

    parser = argparse.ArgumentParser(
        prog="seriesflow repair",
        description="Show the commit journal a run left in the workspace (exit 1 if it is "
        "damaged); --rollback drops the commit (a damaged journal is set aside once history "
        "and the ledger agree), --finish completes it when its model version exists.",
    )
    add_config_arguments(parser)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--rollback", action="store_true", help="drop the commit in progress")
    action.add_argument("--finish", action="store_true", help="finish it (its version exists)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, list(args.overrides))
    except (OSError, ValueError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    try:
        return repair(cfg, "rollback" if args.rollback else "finish" if args.finish else None)
    except RuntimeError as exc:  # refusals and damage: the message says what to do
        print(f"seriesflow repair: {exc}", file=sys.stderr)
        return 1


def repair(cfg: PipelineConfig, action: str | None) -> int:
    """Under the workspace lock: show the journal, or roll it back / finish it."""
    import json

    from seriesflow.ops.secrets import redact_url
    from seriesflow.tracking.registry import claim_model, use_tracking
    from seriesflow.workspace import commit
    from seriesflow.workspace.files import Workspace
    from seriesflow.workspace.lock import workspace_lock

    workspace = Workspace(cfg.paths.workspace_path())
    uri = cfg.register.resolved_tracking_uri(workspace.root)
    with workspace_lock(workspace.root, "seriesflow repair", wait=False) as crashed:
        try:
            journal, damage = commit.load(workspace), None
        except commit.JournalDamaged as exc:
            journal, damage = None, exc
        if damage is not None:
            print(f"{exc_text(damage)}\n--- {workspace.journal} ---")
            print(workspace.journal.read_text(encoding="utf-8", errors="replace")[:4000])
        elif journal is not None:
            print(f"{workspace.journal} (state {journal['state']}):")
            print(json.dumps(journal, indent=2))
        else:
            print(f"no commit in progress in {workspace.root}")
        if action is None and not (crashed and journal is None and damage is None):
            return 1 if damage is not None else 0
        # a registry to act on (a crashed holder's MLflow leftovers are tidied as well)
        print(f"MLflow: {redact_url(uri)}")
        use_tracking(uri, cfg.register.experiment, workspace.root)
        claim_model(cfg.register.model_name, workspace, cfg.register.shared_model)
        name = cfg.register.model_name
        if action == "finish":
            notes = commit.repair_finish(workspace, uri, name, print)
        else:
            notes = commit.repair_rollback(workspace, uri, name, print)
        if not notes:
            print("nothing to do")
    return 0


# --------------------------------------------------------------------------- history
# ``seriesflow history``: the accepted rows as they were at a Delta table version -- what a
# model version trained on (its ``seriesflow.history_version`` tag). Reads only: no lock.


def history_main(argv: list[str] | None = None) -> int:
    from seriesflow.config.file import add_config_arguments
    from seriesflow.config.pipeline import load_config

    parser = argparse.ArgumentParser(
        prog="seriesflow history",
        description="The accepted history as of a Delta table version (time travel): a "
        "summary, and with --output the rows (Parquet or CSV by the file's suffix).",
    )
    add_config_arguments(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--as-of-version", type=int, help="the history table's version N")
    which.add_argument(
        "--model-version",
        help="the version a registered model version trained on (its "
        "seriesflow.history_version tag); 'champion' for the champion's",
    )
    parser.add_argument("--series", help="only this series (reads its bucket alone)")
    parser.add_argument("--output", type=Path, help="write the rows here (.parquet or .csv)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, list(args.overrides))
        version = args.as_of_version
        if args.model_version is not None:
            version = model_history_version(cfg, args.model_version)
        rows = history_rows(cfg, version, args.series)
    except (OSError, ValueError, LookupError) as exc:
        print(f"seriesflow history: {exc}", file=sys.stderr)
        return 1
    label = "latest" if version is None else str(version)
    print(f"history version {label}: {len(rows)} rows, {rows['series_id'].nunique()} series")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        if args.output.suffix.lower() == ".csv":
            rows.to_csv(args.output, index=False)
        else:
            rows.to_parquet(args.output, index=False)
        print(f"written to {args.output}")
    else:
        print(rows.to_string(max_rows=20))
    return 0


def model_history_version(cfg: PipelineConfig, model_version: str) -> int:
    """The table version ``model_version`` (a number or 'champion') trained on, by its tag."""
    from seriesflow.tracking.registry import history_version_of, use_tracking
    from seriesflow.workspace.files import Workspace

    workspace = Workspace(cfg.paths.workspace_path())
    use_tracking(
        cfg.register.resolved_tracking_uri(workspace.root), cfg.register.experiment, workspace.root
    )
    from mlflow.exceptions import MlflowException

    wanted = None if model_version == "champion" else model_version
    try:
        found = history_version_of(cfg.register.model_name, wanted)
    except MlflowException as exc:  # no such model or version
        raise LookupError(f"{cfg.register.model_name} {model_version}: {exc}") from exc
    if found is None:
        raise LookupError(
            f"{cfg.register.model_name} {model_version} has no seriesflow.history_version tag "
            "(no such version, or registered before the history was a Delta table)"
        )
    return found


def history_rows(cfg: PipelineConfig, version: int | None, series: str | None):
    from seriesflow.workspace.files import Workspace
    from seriesflow.workspace.history import load_history, load_series

    workspace = Workspace(cfg.paths.workspace_path())
    if series is not None:
        return load_series(workspace, series, version)
    return load_history(workspace, cfg.columns, version)


def exc_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def usage(commands: Mapping[str, tuple[str, str]] = COMMANDS) -> str:
    lines = ["usage: seriesflow COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10}{text}" for name, (_, text) in commands.items()]
    lines += ["", "seriesflow COMMAND --help shows a command's options."]
    return "\n".join(lines)


def serve_script() -> Path:
    """scripts/serve.sh of the checkout: $SERIESFLOW_HOME, else the one this module is in."""
    home = os.environ.get("SERIESFLOW_HOME") or Path(__file__).resolve().parents[1]
    return Path(home) / "scripts" / "serve.sh"


def serve(argv: list[str]) -> int:
    script = serve_script()
    if not script.is_file():
        print(
            f"seriesflow serve: {script} not found. It runs from a checkout of seriesflow "
            "(pip install -e .); set SERIESFLOW_HOME to that checkout.",
            file=sys.stderr,
        )
        return NOT_INSTALLED
    os.execv("/usr/bin/env", ["env", "bash", str(script), *argv])  # serve.sh owns the process
    return 0  # not reached


def load_main(module: str) -> Callable[[list[str]], int] | None:
    """``module.main``, or None when the module is not part of this installation."""
    module, _, function = module.partition(":")
    try:
        return getattr(importlib.import_module(module), function or "main")
    except ModuleNotFoundError as exc:
        if exc.name != module:  # the module exists but something it imports is missing
            raise
        return None


def main(argv: list[str] | None = None, commands: Mapping[str, tuple[str, str]] = COMMANDS) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(commands))
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in commands:
        print(f"seriesflow: unknown command {name!r}\n\n{usage(commands)}", file=sys.stderr)
        return 2
    module = commands[name][0]
    if not module:
        return serve(rest)
    run = load_main(module)
    if run is None:
        print(
            f"seriesflow {name}: not available in this version ({module} is not installed).",
            file=sys.stderr,
        )
        return NOT_INSTALLED
    sys.argv = [f"seriesflow {name}", *rest]  # argparse's prog in messages
    return int(run(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
