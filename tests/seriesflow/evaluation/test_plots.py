"""Plots: each writes a PNG with the content it names."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seriesflow.data.schema import CHAMPION, FOLD, MODEL, NAIVE, SEASONAL_NAIVE, SERIES_ID
from seriesflow.evaluation.plots import plot_backtest, plot_classes, plot_forecasts, plot_loss

PNG = b"\x89PNG"


def test_plots_are_png_files(tmp_path):
    png = b"\x89PNG"
    summary = pd.DataFrame(
        {MODEL: [1.0, 2.0], NAIVE: [1.5, 1.5]}, index=pd.Index([1, 2], name=FOLD)
    )
    assert plot_backtest(summary, "rmse", tmp_path / "b.png").read_bytes()[:4] == png
    history = pd.DataFrame(
        {
            SERIES_ID: ["a", "a", "b", "b"],
            "epoch": [1, 2, 1, 2],
            "loss": [0.5, 0.4, 0.6, 0.3],
            "val_loss": [0.6, 0.5, 0.7, 0.4],
        }
    )
    assert plot_loss(history, tmp_path / "l.png").read_bytes()[:4] == png
    predictions = pd.DataFrame(
        {
            SERIES_ID: ["a", "a"],
            "target_time": pd.date_range("2026-03-01", periods=2, freq="h", tz="UTC"),
            "actual": ["up", "down"],
            MODEL: ["up", "up"],
        }
    )
    assert plot_classes(predictions, ["down", "up"], tmp_path / "c.png").read_bytes()[:4] == png


def test_forecast_plot_draws_one_panel_per_series(tmp_path):
    import matplotlib.image

    times = pd.date_range("2026-03-01", periods=6, freq="h", tz="UTC")
    predictions = pd.concat(
        [
            pd.DataFrame(
                {
                    SERIES_ID: sid,
                    "step": 1,
                    "target_time": times,
                    "actual": np.arange(6.0),
                    MODEL: np.arange(6.0) + 0.5,
                    SEASONAL_NAIVE: np.arange(6.0) - 1,
                    CHAMPION: np.nan,
                }
            )
            for sid in ("a", "b", "c")
        ]
    )
    one = plot_forecasts(predictions[predictions[SERIES_ID] == "a"], tmp_path / "one.png")
    three = plot_forecasts(predictions, tmp_path / "three.png")
    assert one.read_bytes()[:4] == PNG
    # one panel per series, stacked: three series make a picture about three times as tall
    height_one = matplotlib.image.imread(one).shape[0]
    height_three = matplotlib.image.imread(three).shape[0]
    assert 2.5 < height_three / height_one < 3.5


def test_forecast_plot_draws_at_most_a_few_series(tmp_path):
    import matplotlib.image

    from seriesflow.evaluation.plots import MAX_PLOTTED_SERIES

    times = pd.date_range("2026-03-01", periods=6, freq="h", tz="UTC")

    def predictions(count: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                SERIES_ID: np.repeat([f"s{k:02d}" for k in range(count)], 6),
                "step": 1,
                "target_time": np.tile(times, count),
                "actual": 1.0,
                MODEL: 1.5,
                SEASONAL_NAIVE: 0.5,
            }
        )

    few = plot_forecasts(predictions(MAX_PLOTTED_SERIES), tmp_path / "few.png")
    many = plot_forecasts(predictions(40), tmp_path / "many.png")
    # 40 series draw as many panels as 6 do: the picture is no taller
    assert matplotlib.image.imread(many).shape == matplotlib.image.imread(few).shape
