"""``make mlflow-ui``: the MLflow UI on the registry the pipeline writes to.

The tracking URI is the pipeline's own (``register.tracking_uri``, else
``MLFLOW_TRACKING_URI``, else the SQLite file in the workspace). A local store gets a
local UI (``mlflow ui``); an http(s) tracking server already has one, so nothing is
started and its link is printed. Either way the link opens the experiment on its
training runs (``?workflowType=machine_learning``), not on MLflow 3's GenAI views.

    python -m seriesflow.ops.mlflow_ui [--config FILE] [--set key=value ...] [--port 5000]
"""

from __future__ import annotations

import argparse
import os
import sys

from seriesflow.config.pipeline import add_config_arguments, load_config

WORKFLOW = "workflowType=machine_learning"


def experiment_link(base_url: str, experiment_id: str | None) -> str:
    """The UI link that opens on an experiment's training runs."""
    base = base_url.rstrip("/")
    if experiment_id is None:  # nothing logged yet: the experiment list
        return f"{base}/#/experiments?{WORKFLOW}"
    return f"{base}/#/experiments/{experiment_id}/runs?{WORKFLOW}"


def find_experiment(tracking_uri: str, name: str) -> str | None:
    """The experiment's id, or None (not created yet, or the server does not answer)."""
    # A link is worth a few seconds, not MLflow's default two minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    import mlflow

    try:
        found = mlflow.MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(name)
    except Exception as exc:  # noqa: BLE001 - only the link depends on it
        print(f"(could not look up experiment {name!r} on {tracking_uri}: {exc})", file=sys.stderr)
        return None
    return None if found is None else found.experiment_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seriesflow.ops.mlflow_ui", description=__doc__)
    add_config_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    workspace = cfg.paths.workspace_path()
    uri = cfg.register.resolved_tracking_uri(workspace)
    experiment_id = find_experiment(uri, cfg.register.experiment)
    if uri.startswith(("http://", "https://")):
        print(f"MLflow tracking server {uri}: its UI is already there (nothing started here).")
        print(f"Training runs: {experiment_link(uri, experiment_id)}", flush=True)
        return 0
    link = experiment_link(f"http://{args.host}:{args.port}", experiment_id)
    print(f"MLflow UI on {uri}\nTraining runs: {link}  (Ctrl-C stops it)", flush=True)
    command = ["mlflow", "ui", "--backend-store-uri", uri, "--host", args.host]
    command += ["--port", str(args.port)]
    if uri.startswith("sqlite:"):  # where the pipeline keeps this store's artifacts
        command += ["--default-artifact-root", (workspace / "mlartifacts").as_uri()]
    mlflow_cli = os.path.join(os.path.dirname(sys.executable), "mlflow")
    os.execv(mlflow_cli, command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
