"""Live accuracy: issued forecasts scored against the actuals that arrived since (pure + files).

Every forecast the ``forecast`` flow issues is kept (``forecasts/<run-id>/forecasts.parquet``).
After a retrain run commits new data, ``score_new_actuals`` finds the forecast points whose
target time now has an actual in the accepted history and that were not scored before,
and scores them: MASE (on the series' in-sample seasonal-naive scale, as at training),
the same for the naive forecast issued at the same origin (the last value then known),
and the coverage of each interval level. The scored points go to ``live_points.parquet``
(so a point is scored once), one row per series and scoring (+ ``__all__``) to
``live_accuracy.parquet``. ``degraded`` says when live MASE stayed above a threshold for
N consecutive scorings of one model version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from seriesflow.data.schema import ALL_SERIES, SERIES_ID, TIMESTAMP, VALUE
from seriesflow.workspace.files import Workspace, read_parquet, utcnow, write_parquet

FORECAST_RUN = "forecast_run"
POINT_KEY = [FORECAST_RUN, SERIES_ID, TIMESTAMP, "level"]


def forecasts_root(workspace: Workspace) -> Path:
    return workspace.root / "forecasts"


def points_path(workspace: Workspace) -> Path:
    return workspace.root / "live_points.parquet"


def accuracy_path(workspace: Workspace) -> Path:
    return workspace.root / "live_accuracy.parquet"


def issued_forecasts(workspace: Workspace) -> pd.DataFrame:
    """Every forecast issued so far, tagged by the forecast run that issued it."""
    parts = []
    for path in sorted(forecasts_root(workspace).glob("*/forecasts.parquet")):
        parts.append(read_parquet(path).assign(**{FORECAST_RUN: path.parent.name}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def new_points(
    forecasts: pd.DataFrame, history: pd.DataFrame, scored: pd.DataFrame
) -> pd.DataFrame:
    """Forecast points whose actual is now known and that were not scored yet (+ ``actual``)."""
    if forecasts.empty or history.empty:
        return pd.DataFrame()
    actuals = history[[SERIES_ID, TIMESTAMP, VALUE]].rename(columns={VALUE: "actual"})
    actuals = actuals.assign(**{SERIES_ID: actuals[SERIES_ID].astype(str)})
    joined = forecasts.assign(**{SERIES_ID: forecasts[SERIES_ID].astype(str)}).merge(
        actuals, on=[SERIES_ID, TIMESTAMP], how="inner"
    )
    if len(scored):
        done = scored[POINT_KEY].assign(_seen=True)
        joined = joined.merge(done, on=POINT_KEY, how="left")
        joined = joined[joined["_seen"].isna()].drop(columns="_seen")
    return joined.reset_index(drop=True)


def _summary(points: pd.DataFrame, levels: list[int]) -> dict[str, float]:
    one = points.drop_duplicates([FORECAST_RUN, SERIES_ID, TIMESTAMP])  # one row per point
    scale = one["scale"].where(one["scale"] > 0)
    row = {
        "points": int(len(one)),
        "mae": float((one["forecast"] - one["actual"]).abs().mean()),
        "mase": float(((one["forecast"] - one["actual"]).abs() / scale).mean()),
        "naive_mase": float(((one["last_value"] - one["actual"]).abs() / scale).mean()),
    }
    for level in levels:
        mine = points[points["level"] == level]
        inside = (mine["actual"] >= mine["lower"]) & (mine["actual"] <= mine["upper"])
        row[f"coverage_{level}"] = float(inside.mean()) if len(mine) else math.nan
    return row


def accuracy_rows(points: pd.DataFrame, scored_at: pd.Timestamp, run_id: str) -> pd.DataFrame:
    """One row per (model version, series) and per version over all series (``__all__``)."""
    levels = sorted(int(v) for v in points["level"].unique())
    rows = []
    for version, part in points.groupby("model_version", sort=True):
        groups = [(ALL_SERIES, part)] + list(part.groupby(SERIES_ID, sort=True))
        for sid, mine in groups:
            rows.append(
                {
                    "scored_at": scored_at,
                    "retrain_run_id": run_id,
                    "model_version": str(version),
                    SERIES_ID: str(sid),
                    **_summary(mine, levels),
                }
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class LiveScoring:
    points: int
    rows: pd.DataFrame  # this scoring's accuracy rows (empty when nothing new)
    # every scoring's rows, as appended to live_accuracy.parquet (empty when nothing new)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)


def score_new_actuals(
    workspace: Workspace,
    history: pd.DataFrame,
    run_id: str,
    forecasts: pd.DataFrame | None = None,
) -> LiveScoring:
    """Score what became scorable; append to the live files (atomically).

    ``history``: the accepted rows (at least those at the forecasts' times); ``forecasts``:
    ``issued_forecasts``, when read already. Returns this scoring's rows and the whole
    accuracy table it appended them to."""
    forecasts = issued_forecasts(workspace) if forecasts is None else forecasts
    scored = read_parquet(points_path(workspace)) if points_path(workspace).exists() else None
    fresh = new_points(forecasts, history, scored if scored is not None else pd.DataFrame())
    if fresh.empty:
        return LiveScoring(0, pd.DataFrame())
    now = utcnow()
    rows = accuracy_rows(fresh, pd.Timestamp(now), run_id)
    all_points = fresh if scored is None else pd.concat([scored, fresh], ignore_index=True)
    write_parquet(all_points, points_path(workspace))
    old = read_parquet(accuracy_path(workspace)) if accuracy_path(workspace).exists() else None
    table = rows if old is None else pd.concat([old, rows], ignore_index=True)
    write_parquet(table, accuracy_path(workspace))
    return LiveScoring(int(fresh.drop_duplicates(POINT_KEY[:3]).shape[0]), rows, table)


def degraded(history: pd.DataFrame, version: str, threshold: float, times: int) -> bool:
    """True when the last ``times`` scorings of ``version`` all had live MASE > threshold."""
    mine = history[(history["model_version"] == str(version)) & (history[SERIES_ID] == ALL_SERIES)]
    last = mine.sort_values("scored_at").tail(times)["mase"].to_numpy()
    return len(last) >= times and bool(np.all(last > threshold))
