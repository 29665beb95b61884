"""``seriesflow``: one command for the pipeline's CLIs (installed by ``make install``).

    seriesflow retrain [--config FILE] [--set key=value ...]   python -m flows.retrain
    seriesflow forecast ...                                     python -m flows.forecast
    seriesflow watch   [--config FILE] [--set key=value ...]   python -m flows.watch
    seriesflow tune    [--config FILE] [--set key=value ...]   python -m flows.tune
    seriesflow serve                                           make serve (scripts/serve.sh)

Each subcommand hands the rest of the command line to that module's ``main`` (its
``--help`` says more) and exits with its code. Modules are imported only when their
subcommand runs: ``seriesflow --help`` answers at once, without TensorFlow or Prefect.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# subcommand -> (module with a ``main(argv) -> int``, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "retrain": (
        "seriesflow.flows.retrain",
        "retrain once on what has landed (the summary JSON last)",
    ),
    "forecast": ("seriesflow.flows.forecast", "batch forecasts from the champion"),
    "watch": ("seriesflow.flows.watch", "look at the landing folder once; announce new files"),
    "tune": ("seriesflow.flows.tune", "hyperparameter search, one Prefect task per trial"),
    "serve": ("", "Prefect server + deployments + worker + reports server (make serve)"),
}
NOT_INSTALLED = 3


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
    try:
        return importlib.import_module(module).main
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
