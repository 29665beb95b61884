"""Plots: each writes a PNG with the content it names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from seriesflow.data.schema import CHAMPION, FOLD, MODEL, NAIVE, SEASONAL_NAIVE, SERIES_ID
from seriesflow.evaluation.plots import plot_backtest, plot_classes, plot_forecasts, plot_loss

PNG = b"\x89PNG"


@dataclass
class Drawn:
    """What a plot function drew, read off its figure just before it was saved."""

    lines: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # label: x, y
    points: list[np.ndarray] = field(default_factory=list)  # scatter offsets, in drawing order
    titles: list[str] = field(default_factory=list)


@pytest.fixture
def drawn(monkeypatch) -> Drawn:
    from seriesflow.evaluation import plots

    record = Drawn()
    save = plots._save

    def recording_save(fig, path, *args, **kwargs):
        for ax in fig.axes:
            record.titles.append(ax.get_title())
            for line in ax.get_lines():
                record.lines[line.get_label()] = (
                    np.asarray(line.get_xdata()),
                    np.asarray(line.get_ydata(), dtype=float),
                )
            record.points += [np.asarray(c.get_offsets()) for c in ax.collections]
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(plots, "_save", recording_save)
    return record


def coloured_pixels(path) -> int:
    """Pixels of the saved PNG in a saturated colour: the data lines and markers (a blank
    figure's axes, ticks, labels and titles are black, grey or white)."""
    import matplotlib.image

    rgb = matplotlib.image.imread(path)[..., :3]
    return int(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.3).sum())


def test_the_backtest_plot_draws_each_column_per_fold(tmp_path, drawn):
    summary = pd.DataFrame(
        {MODEL: [1.0, 2.0], NAIVE: [1.5, 1.5]}, index=pd.Index([1, 2], name=FOLD)
    )
    path = plot_backtest(summary, "rmse", tmp_path / "b.png")
    assert path.read_bytes()[:4] == PNG
    assert set(drawn.lines) == {MODEL, NAIVE}
    for name in (MODEL, NAIVE):
        x, y = drawn.lines[name]
        assert x.tolist() == [1, 2] and y.tolist() == summary[name].tolist()
    assert coloured_pixels(path) > 100


def test_the_loss_plot_draws_training_and_validation_loss_per_series(tmp_path, drawn):
    history = pd.DataFrame(
        {
            SERIES_ID: ["a", "a", "b", "b"],
            "epoch": [1, 2, 1, 2],
            "loss": [0.5, 0.4, 0.6, 0.3],
            "val_loss": [0.6, 0.5, 0.7, 0.4],
        }
    )
    path = plot_loss(history, tmp_path / "l.png")
    assert path.read_bytes()[:4] == PNG
    for sid, part in history.groupby(SERIES_ID):
        for column, label in (("loss", "training loss"), ("val_loss", "validation loss")):
            x, y = drawn.lines[f"{label} [{sid}]"]
            assert x.tolist() == [1, 2] and y.tolist() == part[column].tolist()
    assert len(drawn.lines) == 4
    assert coloured_pixels(path) > 100


def test_the_class_plot_draws_the_actual_class_and_marks_right_and_wrong(tmp_path, drawn):
    predictions = pd.DataFrame(
        {
            SERIES_ID: ["a", "a"],
            "target_time": pd.date_range("2026-03-01", periods=2, freq="h", tz="UTC"),
            "actual": ["up", "down"],
            MODEL: ["up", "up"],
        }
    )
    path = plot_classes(predictions, ["down", "up"], tmp_path / "c.png")
    assert path.read_bytes()[:4] == PNG
    _, actual = drawn.lines["actual"]
    assert actual.tolist() == [1.0, 0.0]  # up, down as class codes
    right, wrong = drawn.points
    assert right[:, 1].tolist() == [1.0] and wrong[:, 1].tolist() == [0.0]
    assert drawn.titles == ["a: test part, predicted class (accuracy 50%)"]
    assert coloured_pixels(path) > 10


def test_forecast_plot_draws_one_panel_per_series(tmp_path, drawn):
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
    assert drawn.lines["actual"][1].tolist() == list(np.arange(6.0))
    assert drawn.lines["LSTM"][1].tolist() == list(np.arange(6.0) + 0.5)
    assert drawn.lines["seasonal naive"][1].tolist() == list(np.arange(6.0) - 1)
    assert "champion" not in drawn.lines  # all NaN: not drawn
    three = plot_forecasts(predictions, tmp_path / "three.png")
    assert [t.split(":")[0] for t in drawn.titles] == ["a", "a", "b", "c"]
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
