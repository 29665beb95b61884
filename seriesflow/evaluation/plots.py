"""Plots of a run: loss per epoch, forecasts vs actuals, classes, backtest errors (no Prefect).

Each function writes one PNG and returns its path; matplotlib runs headless (Agg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from seriesflow.data.schema import (
    CHAMPION,
    MODEL,
    SEASONAL_NAIVE,
    SERIES_ID,
    TIMESTAMP,
    branch_column,
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, dpi: int = 100) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_loss(epochs: pd.DataFrame, path: Path) -> Path:
    """Training vs validation loss per epoch (one pair of lines per series if per-series)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    column = branch_column(epochs)  # per-series or per-group branches
    groups = epochs.groupby(column, sort=True) if column in epochs else [(None, epochs)]
    for sid, part in groups:
        tag = f" [{sid}]" if sid is not None else ""
        line = ax.plot(part["epoch"], part["loss"], label=f"training loss{tag}")[0]
        ax.plot(
            part["epoch"],
            part["val_loss"],
            label=f"validation loss{tag}",
            color=line.get_color(),
            ls="--",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled)")
    ax.set_yscale("log")
    if "learning_rate" in epochs and column not in epochs:
        lr = ax.twinx()
        lr.step(
            epochs["epoch"],
            epochs["learning_rate"],
            where="post",
            color="grey",
            alpha=0.5,
            label="learning rate",
        )
        lr.set_ylabel("learning rate")
        lr.set_yscale("log")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title("Model loss")
    return _save(fig, path)


MAX_PLOTTED_SERIES = 6  # one panel each: 1,000 panels would be a 2,600-inch figure


def plot_forecasts(
    predictions: pd.DataFrame, path: Path, step: int = 1, max_series: int = MAX_PLOTTED_SERIES
) -> Path:
    """Forecast vs actual over the test part for the first ``max_series`` series (by id)."""
    plt = _pyplot()
    series = sorted(predictions[SERIES_ID].unique())[:max_series]
    one = predictions[(predictions["step"] == step) & predictions[SERIES_ID].isin(series)]
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 2.6 * len(series)), squeeze=False)
    for ax, sid in zip(axes[:, 0], series, strict=True):
        part = one[one[SERIES_ID] == sid]
        ax.plot(part["target_time"], part["actual"], label="actual", color="black", lw=1)
        ax.plot(part["target_time"], part[MODEL], label="LSTM", lw=1)
        ax.plot(
            part["target_time"], part[SEASONAL_NAIVE], label="seasonal naive", lw=0.8, alpha=0.6
        )
        if CHAMPION in part and part[CHAMPION].notna().any():
            ax.plot(part["target_time"], part[CHAMPION], label="champion", lw=0.8, ls="--")
        ax.set_title(f"{sid}: test part, {step}-step-ahead forecast")
        ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path, dpi=90)


def plot_classes(predictions: pd.DataFrame, classes: list[str], path: Path) -> Path:
    """Actual vs predicted class over the test part, per series."""
    plt = _pyplot()
    series = sorted(predictions[SERIES_ID].unique())[:MAX_PLOTTED_SERIES]
    code = {name: k for k, name in enumerate(classes)}
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 2.2 * len(series)), squeeze=False)
    for ax, sid in zip(axes[:, 0], series, strict=True):
        part = predictions[predictions[SERIES_ID] == sid]
        actual = part["actual"].map(code)
        ax.step(part["target_time"], actual, where="mid", color="black", lw=1, label="actual")
        hit = part[MODEL] == part["actual"]
        ax.scatter(part["target_time"][hit], actual[hit], s=8, color="tab:green", label="right")
        ax.scatter(part["target_time"][~hit], actual[~hit], s=8, color="tab:red", label="wrong")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_title(f"{sid}: test part, predicted class (accuracy {hit.mean():.0%})")
        ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path, dpi=90)


def plot_backtest(summary: pd.DataFrame, metric: str, path: Path) -> Path:
    """``metric`` per backtest fold for the model, the baselines and the champion."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in summary.columns:
        style = {"lw": 2} if name == MODEL else {"lw": 1, "ls": "--" if name == CHAMPION else ":"}
        ax.plot(summary.index, summary[name], marker="o", label=name, **style)
    ax.set_xticks(list(summary.index))
    ax.set_xlabel("fold (rolling origin, oldest to latest)")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"Backtest: {metric} per fold")
    ax.legend(fontsize="small")
    return _save(fig, path)


MAX_PLOTTED_SERIES = 12


def plot_forecast_bands(
    history: pd.DataFrame, forecasts: pd.DataFrame, path: Path, levels: list[int], tail: int = 0
) -> Path:
    """Each series' latest history, its forecast and the interval bands (widest lightest);
    the first ``MAX_PLOTTED_SERIES`` series in id order when there are more (a page of
    thousands of panels is neither readable nor a sane image size)."""
    plt = _pyplot()
    series = sorted(forecasts[SERIES_ID].unique())[:MAX_PLOTTED_SERIES]
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 2.6 * len(series)), squeeze=False)
    for ax, sid in zip(axes[:, 0], series, strict=True):
        mine = forecasts[forecasts[SERIES_ID] == sid]
        steps = int(mine["step"].max())
        past = history[history[SERIES_ID].astype(str) == sid].sort_values(TIMESTAMP)
        past = past.tail(tail or max(3 * steps, 48))
        ax.plot(past[TIMESTAMP], past["value"], color="black", lw=1, label="history")
        for alpha, level in zip((0.18, 0.32, 0.45), sorted(levels, reverse=True), strict=False):
            band = mine[mine["level"] == level]
            ax.fill_between(
                band[TIMESTAMP], band["lower"], band["upper"], alpha=alpha, color="tab:blue",
                lw=0, label=f"{level}% interval",
            )  # fmt: skip
        line = mine[mine["level"] == max(levels)]
        ax.plot(line[TIMESTAMP], line["forecast"], color="tab:blue", lw=1.5, label="forecast")
        ax.set_title(f"{sid}: the next {steps} steps")
        ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path, dpi=90)
