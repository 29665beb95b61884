"""Live accuracy: issued forecasts scored once, when their actuals arrive, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.data.schema import SERIES_ID, TIMESTAMP, VALUE
from seriesflow.evaluation.live_accuracy import accuracy_path, degraded, score_new_actuals
from seriesflow.workspace.files import Workspace, read_parquet, write_parquet

T0 = pd.Timestamp("2026-05-01", tz="UTC")


def issued(workspace: Workspace, run: str, version: str = "3") -> None:
    """A forecast of series a: 3 hourly steps after T0, last value 10, scale 2."""
    rows = []
    for level, half in ((80, 1.0), (95, 3.0)):
        for k, forecast in enumerate([11.0, 12.0, 13.0], start=1):
            rows.append(
                {
                    SERIES_ID: "a",
                    TIMESTAMP: T0 + pd.Timedelta(hours=k),
                    "step": k,
                    "forecast": forecast,
                    "lower": forecast - half,
                    "upper": forecast + half,
                    "level": level,
                    "model_version": version,
                    "created_at": T0,
                    "last_value": 10.0,
                    "scale": 2.0,
                }
            )
    write_parquet(pd.DataFrame(rows), workspace.root / "forecasts" / run / "forecasts.parquet")


def actuals(values: list[float]) -> pd.DataFrame:
    times = [T0 + pd.Timedelta(hours=k) for k in range(len(values))]
    return pd.DataFrame({SERIES_ID: "a", TIMESTAMP: times, VALUE: values})


def test_forecasts_are_scored_against_new_actuals_once(tmp_path):
    workspace = Workspace(tmp_path)
    issued(workspace, "f1")
    # T0 (the origin) and two of the three forecast steps have actuals: 12 and 11
    first = score_new_actuals(workspace, actuals([10.0, 12.0, 11.0]), "r1")
    assert first.points == 2
    row = first.rows.set_index(SERIES_ID).loc["__all__"]
    # errors |11-12|, |12-11| = 1, 1 -> MAE 1, MASE 0.5; naive (10): 2, 1 -> MASE 0.75
    assert (row["points"], row["mae"], row["mase"]) == (2, 1.0, 0.5)
    assert row["naive_mase"] == pytest.approx(0.75)
    assert (row["coverage_80"], row["coverage_95"]) == (1.0, 1.0)  # |1| <= 1 and <= 3
    # the same actuals again: nothing new
    assert score_new_actuals(workspace, actuals([10.0, 12.0, 11.0]), "r2").points == 0
    # the third step's actual arrives (20: outside both intervals)
    third = score_new_actuals(workspace, actuals([10.0, 12.0, 11.0, 20.0]), "r3")
    row = third.rows.set_index(SERIES_ID).loc["__all__"]
    assert third.points == 1 and row["mase"] == pytest.approx(7 / 2)
    assert (row["coverage_80"], row["coverage_95"]) == (0.0, 0.0)
    history = read_parquet(accuracy_path(workspace))
    assert history["retrain_run_id"].tolist() == ["r1", "r1", "r3", "r3"]  # __all__ + a each


def test_degraded_needs_the_last_n_scorings_above_the_threshold():
    rows = pd.DataFrame(
        {
            "scored_at": pd.date_range("2026-01-01", periods=4, freq="D"),
            "model_version": "3",
            SERIES_ID: "__all__",
            "mase": [0.5, 1.4, 1.3, 1.2],
        }
    )
    assert degraded(rows, "3", 1.0, 3)
    assert not degraded(rows, "3", 1.0, 4)  # the first scoring was fine
    assert not degraded(rows, "3", 1.25, 3)  # 1.2 is below
    assert not degraded(rows, "4", 1.0, 1)  # another version has no scorings
    assert np.isfinite(rows["mase"]).all()
