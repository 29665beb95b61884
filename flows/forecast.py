"""The ``forecast`` flow: the champion's forecasts of every series, with prediction intervals.

Ad hoc:   python -m flows.forecast [--config FILE.yaml] [--set forecast.steps=24 ...]
Deployed: prefect.yaml -- right after every promotion (``forecast/on-promotion``, on the
          event ``seriesflow.model.promoted``) and on a schedule (``forecast/scheduled``).

Loads the champion (``models:/<name>@champion``: model, scaler with each series'
calendar, spec, intervals) and the accepted history, and writes the next
``forecast.steps`` values of every series -- direct within the model's horizon,
recursive beyond -- to ``<workspace>/forecasts/<run-id>/forecasts.parquet``, then
points ``forecasts/latest.json`` at it (replaced atomically). A series too short or
unknown to the model is reported and skipped, not fatal. Every issued forecast is
kept: the retrain flow scores them against the actuals when they arrive (live accuracy).

The last line printed by the CLI is one JSON object (the summary); exit code 0 for
completed and skipped (no champion yet), 1 for failures.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from seriesflow.config.pipeline import PipelineConfig, add_config_arguments, load_config
from seriesflow.data.reading import read_future
from seriesflow.data.schema import SERIES_ID
from seriesflow.evaluation.champion import champion_of
from seriesflow.evaluation.plots import plot_forecast_bands
from seriesflow.evaluation.tables import records_markdown, status_line
from seriesflow.model.forecasting import ForecastSettings, forecast_frame
from seriesflow.ops.artifacts import plots_markdown
from seriesflow.ops.secrets import redact_text
from seriesflow.workspace.files import (
    Workspace,
    new_run_id,
    write_json,
    write_parquet,
    writing_as,
)
from seriesflow.workspace.history import load_history
from tasks.stage import flow_limit, limited, transient_only

COMPLETED, SKIPPED, FAILED = "completed", "skipped", "failed"
EXIT_CODES = {COMPLETED: 0, SKIPPED: 0, FAILED: 1}
LATEST = "latest.json"


def forecasts_root(cfg: PipelineConfig) -> Path:
    return Workspace(cfg.paths.workspace_path()).root / "forecasts"


# I/O first (the champion from MLflow), then compute: a passing failure retries the whole
# task, which writes only into its own run folder.
@task(name="forecast-series", cache_policy=NO_CACHE, retry_condition_fn=transient_only)
def forecast_series(cfg: PipelineConfig, folder: Path, tracking_uri: str) -> dict[str, Any]:
    """Forecast every series from the champion; write the table; return what happened."""
    logger = get_run_logger()
    champion, why = champion_of(cfg, tracking_uri)
    if champion is None:
        return {"status": SKIPPED, "reason": f"no champion to forecast with: {why}"}
    if champion.intervals is None:
        return {
            "status": SKIPPED,
            "reason": f"champion v{champion.version} was registered before forecasts existed "
            "(no intervals); retrain to get a forecasting champion",
        }
    spec = champion.spec
    if spec.task != "regression":
        return {"status": SKIPPED, "reason": "the champion is a classifier: nothing to forecast"}
    history = load_history(Workspace(cfg.paths.workspace_path()), cfg.columns)
    if cfg.forecast.future_path:  # future covariate values for the forecast steps
        future = read_future(Path(cfg.forecast.future_path), cfg.columns, cfg.ingest)
        history = pd.concat([history, future], ignore_index=True)
        logger.info("Future covariate rows from %s: %d", cfg.forecast.future_path, len(future))
    steps = None if cfg.forecast.steps == "auto" else int(cfg.forecast.steps)
    settings = ForecastSettings(
        steps, list(cfg.forecast.levels), cfg.validation.max_gap_steps, cfg.register.model_name
    )
    frame, skipped = forecast_frame(
        champion.model,
        spec,
        champion.scaler_object,
        champion.intervals,
        history,
        settings,
        model_version=champion.version,
        router=champion.router if cfg.forecast.route else None,
    )
    if champion.router is not None and cfg.forecast.route:
        logger.info("Served per series by the champion's router: %s", champion.router.describe())
    for sid, reason in sorted(skipped.items()):
        logger.warning("Series %s not forecast: %s", sid, reason)
    if frame.empty:
        return {
            "status": SKIPPED,
            "reason": "no series could be forecast",
            "skipped_series": skipped,
            "model_version": champion.version,
        }
    folder.mkdir(parents=True, exist_ok=True)
    path = write_parquet(frame, folder / "forecasts.parquet")
    logger.info(
        "Forecast %d series, %d steps at most, with v%s of %s: %s",
        frame[SERIES_ID].nunique(),
        int(frame["step"].max()),
        champion.version,
        cfg.register.model_name,
        path,
    )
    plot = plot_forecast_bands(history, frame, folder / "forecast.png", levels=settings.levels)
    return {
        "status": COMPLETED,
        "path": str(path),
        "plot": str(plot),
        "series": int(frame[SERIES_ID].nunique()),
        "steps": int(frame["step"].max()),
        "model_version": champion.version,
        "skipped_series": skipped,
    }


def point_latest(root: Path, run_id: str, path: str) -> Path:
    """Replace ``latest.json`` atomically: readers see the old or the new forecast, never half."""
    return write_json({"run_id": run_id, "path": path}, root / LATEST)


def report(result: dict[str, Any], frame: pd.DataFrame) -> None:
    table = frame[frame["level"] == frame["level"].max()].head(200)
    create_table_artifact(
        key="forecast",
        table=json.loads(table.to_json(orient="records", date_format="iso")),
        description=f"Forecasts of v{result['model_version']}, widest interval level "
        f"(first {len(table)} rows of {len(frame)})",
    )
    lines = [
        f"# Forecasts of {result['series']} series, up to {result['steps']} steps",
        "",
        f"Model version {result['model_version']}; table: `{result['path']}`.",
        "",
        *plots_markdown([Path(result["plot"])]),
    ]
    if result.get("skipped_series"):
        rows = [{"series": k, "why": v} for k, v in sorted(result["skipped_series"].items())]
        lines += ["## Not forecast", "", records_markdown(rows)]
    create_markdown_artifact(key="forecast-report", markdown="\n".join(lines))


@flow(name="forecast", description="Forecast every series with the champion, with intervals.")
def forecast(cfg: PipelineConfig = PipelineConfig()) -> State:  # noqa: B008 - Prefect form default
    run_id = new_run_id()
    # its temporaries are named for it: a retrain's recovery (this flow takes no lock) leaves
    # them alone while it writes
    with flow_limit(cfg.limits, "forecast"), writing_as("forecast", run_id):
        return _forecast(cfg, run_id)


def _forecast(cfg: PipelineConfig, run_id: str) -> State:
    logger = get_run_logger()
    root = forecasts_root(cfg)
    folder = root / run_id
    tracking_uri = cfg.register.resolved_tracking_uri(cfg.paths.workspace_path())
    base = {"status": FAILED, "forecast_dir": None, "model_name": cfg.register.model_name}
    try:
        found = limited(forecast_series, cfg.limits, "forecast")(cfg, folder, tracking_uri)
        result = {**base, **found}
        if result["status"] == COMPLETED:
            result["forecast_dir"] = str(folder)
            point_latest(root, run_id, result["path"])
            report(result, pd.read_parquet(result["path"]))
            return Completed(message=f"{result['series']} series forecast", data=result)
        logger.info("Forecast skipped: %s", result.get("reason"))
        return Completed(message=result.get("reason"), data=result, name="Skipped")
    except Exception as exc:  # noqa: BLE001 - any failure ends with a summary
        logger.error("Forecast failed: %s", redact_text(f"{exc}\n{traceback.format_exc()}"))
        result = {**base, "reason": redact_text(f"{type(exc).__name__}: {exc}")}
        return Failed(message=result["reason"], data=result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.forecast",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser, example="forecast.steps=24")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except (OSError, ValueError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        print(json.dumps({"status": FAILED, "reason": f"config error: {exc}"}))
        return 1
    state = forecast(cfg, return_state=True)
    result = state.result(raise_on_failure=False)
    if not isinstance(result, dict):
        result = {"status": FAILED, "reason": f"{state.name}: {state.message}"}
    print()
    print(status_line(result))
    if result.get("path"):
        print(f"Forecasts: {result['path']}")
    print(json.dumps(result, default=str))
    return EXIT_CODES.get(result.get("status"), 1)


if __name__ == "__main__":
    sys.exit(main())
