"""What the Prefect UI shows: inline plots a browser renders, http links, the run's decision."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from seriesflow.data.schema import CHAMPION, MODEL, SEASONAL_NAIVE, SERIES_ID
from seriesflow.evaluation.plots import plot_forecasts
from seriesflow.ops.artifacts import (
    PLOT_WIDTH,
    data_docs_markdown,
    outcome_markdown,
    plots_markdown,
    png_data_uri,
    reports_link,
)


@pytest.fixture(scope="module")
def forecast_png(tmp_path_factory) -> Path:
    """A real forecast plot of three long series (the biggest plot a run makes)."""
    times = pd.date_range("2026-03-01", periods=600, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    frames = []
    for sid in ("a", "b", "c"):
        actual = np.sin(np.arange(600) / 4) * 10 + rng.normal(size=600)
        frames.append(
            pd.DataFrame(
                {
                    SERIES_ID: sid,
                    "step": 1,
                    "target_time": times,
                    "actual": actual,
                    MODEL: actual + rng.normal(size=600),
                    SEASONAL_NAIVE: np.roll(actual, 24),
                    CHAMPION: actual + rng.normal(size=600),
                }
            )
        )
    path = tmp_path_factory.mktemp("plots") / "forecast_vs_actual.png"
    return plot_forecasts(pd.concat(frames), path)


def decode(uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :])))


def test_a_plot_becomes_a_small_inline_png_of_the_same_picture(forecast_png):
    original = Image.open(forecast_png)
    assert original.width > PLOT_WIDTH  # 900 px: it is scaled down
    uri = png_data_uri(forecast_png)
    image = decode(uri)
    assert image.format == "PNG" and image.width == PLOT_WIDTH
    assert image.height == round(original.height * PLOT_WIDTH / original.width)
    assert len(uri) < 150_000, len(uri)  # the file itself is ~3x that
    # Same picture: the downscaled original and the palette PNG differ little per pixel.
    reference = original.convert("RGB").resize(image.size)
    diff = np.abs(np.asarray(reference, float) - np.asarray(image.convert("RGB"), float))
    assert diff.mean() < 6, diff.mean()


def test_plots_markdown_embeds_every_plot_and_shrinks_to_the_budget(forecast_png):
    lines = plots_markdown([forecast_png, forecast_png], max_bytes=40_000)
    images = [line for line in lines if line.startswith("![")]
    assert len(images) == 2 and all("](data:image/png;base64," in i for i in images)
    assert all(len(i) < 40_100 for i in images)
    assert decode(images[0][images[0].index("(") + 1 : -1]).width < PLOT_WIDTH
    assert "file://" not in "\n".join(lines)


def test_reports_link_is_http_under_the_base_url(tmp_path):
    runs = tmp_path / "runs"
    index = runs / "20260301T000000-abc123" / "02_validation" / "data docs" / "index.html"
    assert (
        reports_link("http://127.0.0.1:4201/", runs, index)
        == "http://127.0.0.1:4201/20260301T000000-abc123/02_validation/data%20docs/index.html"
    )
    assert reports_link(None, runs, index) is None
    with pytest.raises(ValueError, match="is not an http"):
        reports_link("file:///srv", runs, index)
    with pytest.raises(ValueError):  # not under the served folder
        reports_link("http://h", runs, tmp_path / "elsewhere.html")
    # $SERIESFLOW_REPORTS_URL is not validated like the config: a credential in it would be
    # in every link artifact Prefect keeps
    with pytest.raises(ValueError, match="holds credentials") as caught:
        reports_link("https://ops:hunter2@reports.internal", runs, index)
    with pytest.raises(ValueError, match="holds credentials"):
        reports_link("https://reports.internal/?token=hunter2", runs, index)
    assert "hunter2" not in str(caught.value)


def test_without_a_base_url_the_docs_are_named_not_linked(tmp_path):
    text = data_docs_markdown(None, tmp_path / "index.html")
    assert str(tmp_path / "index.html") in text and "SERIESFLOW_REPORTS_URL" in text
    assert "file://" not in text and "](" not in text
    assert data_docs_markdown("http://h/x/index.html", tmp_path) == (
        "[Great Expectations Data Docs](http://h/x/index.html)"
    )


def test_outcome_says_what_the_run_decided():
    promoted = outcome_markdown(
        {
            "status": "completed",
            "model_name": "m",
            "model_version": "3",
            "promoted": True,
            "gate_rule": "beats_champion",
            "reason": "rmse 1.0 beats the champion's 1.2 | by 17%",
            "rows": 600,
            "series": 2,
            "new_files": ["a.csv"],
            "rejected_files": ["b.csv"],
            "run_dir": "/w/runs/r1",
            "metrics": {"model": {"rmse": 1.0}, "naive": {"rmse": 2.0}},
        },
        data_docs_url="http://h/r1/02_validation/data_docs/index.html",
    )
    assert promoted.startswith("# m v3 promoted to champion\n")
    assert "**Why:** rmse 1.0 beats the champion's 1.2 | by 17%" in promoted
    assert "| promotion gate rule | beats_champion |" in promoted
    assert "| rows / series trained on | 600 / 2 |" in promoted
    assert "| files quarantined | b.csv |" in promoted
    assert "| Data Docs | [open](http://h/r1/02_validation/data_docs/index.html) |" in promoted
    assert "| model | 1 |" in promoted and "| naive | 2 |" in promoted

    kept = outcome_markdown(
        {"status": "completed", "model_name": "m", "model_version": "4", "promoted": False}
    )
    assert kept.startswith("# m v4 registered, not promoted\n")
    rejected = outcome_markdown(
        {"status": "rejected", "reason": "a|b", "rejected_files": ["x.csv"], "promoted": False}
    )
    assert rejected.startswith("# Rejected: no usable data arrived")
    assert "| files quarantined | x.csv |" in rejected and "Test metrics" not in rejected


def test_the_reports_url_is_a_setting_and_must_be_http(monkeypatch):
    from pydantic import ValidationError

    from seriesflow.config.pipeline import PathsConfig

    monkeypatch.delenv("SERIESFLOW_REPORTS_URL", raising=False)
    assert PathsConfig().resolved_reports_url() is None
    monkeypatch.setenv("SERIESFLOW_REPORTS_URL", "http://127.0.0.1:4201")
    assert PathsConfig().resolved_reports_url() == "http://127.0.0.1:4201"
    assert PathsConfig(reports_url="https://r.example").resolved_reports_url() == (
        "https://r.example"
    )
    with pytest.raises(ValidationError, match="must be an http"):
        PathsConfig(reports_url="127.0.0.1:4201")
