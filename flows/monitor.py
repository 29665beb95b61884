"""Live accuracy, from the retrain flow: issued forecasts scored when their actuals arrive.

After a retrain run commits new data (``flows/retrain.py``), ``score_live`` scores every
issued forecast point whose actual is now in the accepted history
(``seriesflow/evaluation/live_accuracy.py``):
MASE and interval coverage per series and overall, against the naive forecast issued
at the same origin. It appends to ``live_accuracy.parquet``, logs ``live_*`` metrics on
the MLflow run of the model version that made the forecasts (and tags the version),
creates the ``live-accuracy`` table artifact, and emits ``seriesflow.accuracy.degraded``
when the champion's live MASE stayed above ``forecast.live_mase_alert`` for
``forecast.live_alert_after`` consecutive scorings. A deployment can retrain on that
event (docs/forecasts.md, "Live accuracy").
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.events import emit_event

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import ALL_SERIES, SERIES_ID, TIMESTAMP, VALUE
from seriesflow.evaluation.live_accuracy import degraded, issued_forecasts, score_new_actuals
from seriesflow.ops.events import model_resource
from seriesflow.ops.secrets import redact_text
from seriesflow.tracking.registry import champion_version, mlflow_module, tag_version
from seriesflow.workspace.context import RunContext
from seriesflow.workspace.history import load_history_since

ACCURACY_DEGRADED = "seriesflow.accuracy.degraded"


def score_live(cfg: PipelineConfig, context: RunContext) -> dict[str, Any]:
    """Score what became scorable; report it. Never raises (a run's outcome stands).

    MLflow is set up by ``context``; the champion is looked up again (the run's commit may
    just have moved it)."""
    try:
        return _score_live(cfg, context)
    except Exception as exc:  # noqa: BLE001 - monitoring must not fail a committed run
        get_run_logger().warning("Live accuracy not scored: %s", redact_text(str(exc)))
        return {}


def _score_live(cfg: PipelineConfig, context: RunContext) -> dict[str, Any]:
    logger = get_run_logger()
    workspace, run = context.workspace, context.run
    forecasts = issued_forecasts(workspace)
    if forecasts.empty:
        return {}
    # only the rows at the forecasts' times, not all of history
    since = pd.to_datetime(forecasts[TIMESTAMP], utc=True).min()
    history = load_history_since(workspace, cfg.columns, since, [SERIES_ID, TIMESTAMP, VALUE])
    scoring = score_new_actuals(workspace, history, run.run_id, forecasts)
    if not scoring.points:
        return {}
    rows = scoring.rows
    overall = rows[rows[SERIES_ID] == ALL_SERIES]
    for _, row in overall.iterrows():
        logger.info(
            "Live accuracy of v%s on %d new actuals: MASE %.3f (naive %.3f); coverage %s",
            row["model_version"],
            row["points"],
            row["mase"],
            row["naive_mase"],
            ", ".join(f"{c[9:]}% {row[c]:.0%}" for c in rows.columns if c.startswith("coverage_")),
        )
    create_table_artifact(
        key="live-accuracy",
        table=[{k: _plain(v) for k, v in r.items()} for r in rows.to_dict("records")],
        description=f"Issued forecasts scored on the actuals run {run.run_id} committed",
    )
    log_to_versions(cfg.register.model_name, overall)
    result = {
        "points": scoring.points,
        "by_version": {
            str(r["model_version"]): {
                k: _plain(r[k])
                for k in r.index
                if k in ("mase", "naive_mase") or k.startswith("coverage_")
            }
            for _, r in overall.iterrows()
        },
    }
    champion = champion_version(cfg.register.model_name)
    every = scoring.table  # as appended to live_accuracy.parquet
    if champion is not None and degraded(
        every, str(champion.version), cfg.forecast.live_mase_alert, cfg.forecast.live_alert_after
    ):
        mine = every[
            (every["model_version"] == str(champion.version)) & (every[SERIES_ID] == ALL_SERIES)
        ]
        recent = mine.sort_values("scored_at").tail(cfg.forecast.live_alert_after)["mase"]
        payload = {
            "model_name": cfg.register.model_name,
            "version": str(champion.version),
            "live_mase": [round(float(v), 4) for v in recent],
            "threshold": cfg.forecast.live_mase_alert,
            "scorings": cfg.forecast.live_alert_after,
            "run_id": run.run_id,
        }
        emit_event(
            event=ACCURACY_DEGRADED,
            resource=model_resource(cfg.register.model_name, workspace.root),
            payload=payload,
        )
        logger.warning(
            "Live MASE of champion v%s above %s for %d scorings: emitted %s",
            champion.version,
            cfg.forecast.live_mase_alert,
            cfg.forecast.live_alert_after,
            ACCURACY_DEGRADED,
        )
        result["degraded"] = True
    return result


def log_to_versions(model_name: str, overall: pd.DataFrame) -> None:
    """``live_*`` metrics on each forecasting version's MLflow run, and tags on the version."""
    client = mlflow_module().MlflowClient()
    for _, row in overall.iterrows():
        version = str(row["model_version"])
        if not version:
            continue
        run_id = client.get_model_version(model_name, version).run_id
        step = len(client.get_metric_history(run_id, "live_mase"))
        metrics = {f"live_{k}": row[k] for k in row.index if k in ("mase", "naive_mase", "mae")}
        metrics |= {f"live_{k}": row[k] for k in row.index if k.startswith("coverage_")}
        for key, value in metrics.items():
            if value is not None and math.isfinite(float(value)):
                client.log_metric(run_id, key, float(value), step=step)
        tag_version(model_name, version, {"live_mase": f"{row['mase']:.4f}"})


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value
