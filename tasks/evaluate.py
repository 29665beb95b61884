"""Evaluate: score the model, the baselines and the current champion on the test windows.

All scores are in original units. The champion is re-scored on the *same*
windows (its own scaler maps the inputs, so a champion trained on older data
is judged fairly); series it has never seen are left out of that comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from tasks.config import PipelineConfig
from tasks.io import RunDir, read_parquet, write_parquet
from tasks.metrics import (
    METRICS,
    infer_season_length,
    metrics_table,
    naive_forecast,
    seasonal_naive_forecast,
    seasonal_naive_scale,
)
from tasks.normalize import Scaler
from tasks.registry import Champion, load_champion, use_tracking
from tasks.runtime import stage_logger
from tasks.schema import (
    ALL_SERIES,
    CHAMPION,
    MODEL,
    NAIVE,
    SEASONAL_NAIVE,
    SERIES_ID,
    SPLIT,
    TEST,
    TIMESTAMP,
    TRAIN,
    VALUE_ORIGINAL,
)
from tasks.window import Windows, load_windows

ALL_WINDOWS, CHAMPION_WINDOWS = "all", "champion_windows"


@dataclass(frozen=True)
class SeriesContext:
    """What evaluation needs of each series besides the windows."""

    values: dict[str, np.ndarray]  # original-unit values, [steps]
    times: dict[str, np.ndarray]  # timestamps, [steps]
    scale: dict[str, float]  # in-sample seasonal-naive MAE on the training part

    @classmethod
    def from_normalized(cls, frame: pd.DataFrame, season_length: int) -> SeriesContext:
        values, times, scale = {}, {}, {}
        for sid, group in frame.groupby(SERIES_ID, sort=True):
            sid = str(sid)
            values[sid] = group[VALUE_ORIGINAL].to_numpy(dtype=float)
            # naive datetime64 in UTC: numpy has no timezones
            times[sid] = group[TIMESTAMP].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
            train_values = group.loc[group[SPLIT] == TRAIN, VALUE_ORIGINAL].to_numpy(float)
            scale[sid] = seasonal_naive_scale(train_values, season_length)
        return cls(values, times, scale)


def _per_window(windows: Windows, context: SeriesContext, horizon: int, fn) -> np.ndarray:
    out = np.full((len(windows), horizon), np.nan)
    for sid in np.unique(windows.series_id):
        mask = windows.series_id == sid
        out[mask] = fn(context.values[sid], windows.origin[mask])
    return out


def actuals(windows: Windows, context: SeriesContext) -> np.ndarray:
    horizon = windows.y.shape[1]
    steps = np.arange(1, horizon + 1)
    return _per_window(windows, context, horizon, lambda v, o: v[o[:, None] + steps[None, :]])


def baselines(
    windows: Windows, context: SeriesContext, season_length: int
) -> dict[str, np.ndarray]:
    horizon = windows.y.shape[1]
    return {
        NAIVE: _per_window(windows, context, horizon, lambda v, o: naive_forecast(v, o, horizon)),
        SEASONAL_NAIVE: _per_window(
            windows,
            context,
            horizon,
            lambda v, o: seasonal_naive_forecast(v, o, horizon, season_length),
        ),
    }


def inverse_predictions(windows: Windows, scaled: np.ndarray, scaler: Scaler) -> np.ndarray:
    """Model outputs [windows, horizon] in [0, 1] -> original units, per series."""
    out = np.empty_like(scaled, dtype=float)
    for sid in np.unique(windows.series_id):
        mask = windows.series_id == sid
        out[mask] = scaler.inverse(str(sid), scaled[mask].astype(float))
    return out


def rescore_champion(
    champion: Champion, windows: Windows, scaler: Scaler
) -> tuple[np.ndarray, str]:
    """The champion's forecasts for ``windows`` (NaN rows where it cannot score) + a note."""
    horizon = windows.y.shape[1]
    nan = np.full((len(windows), horizon), np.nan)
    _, c_steps, c_features = champion.model.input_shape
    c_horizon = champion.model.output_shape[-1]
    shape = (windows.x.shape[1], windows.x.shape[2], horizon)
    if (c_steps, c_features, c_horizon) != shape:
        return nan, (
            f"champion v{champion.version} takes (timesteps, features) = "
            f"({c_steps}, {c_features}) -> horizon {c_horizon}; this run uses "
            f"({shape[0]}, {shape[1]}) -> {shape[2]}: not comparable"
        )
    c_scaler = Scaler.from_json(champion.scaler)
    if c_scaler.columns != windows.features:
        return nan, (
            f"champion v{champion.version} used features {c_scaler.columns}, this run "
            f"{windows.features}: not comparable"
        )
    known = np.isin(windows.series_id, list(c_scaler.minimum))
    out = nan.copy()
    for sid in np.unique(windows.series_id[known]):
        mask = windows.series_id == sid
        low, span = scaler._bounds(str(sid))
        original = windows.x[mask].astype(float) * span + low  # [w, timesteps, features]
        champion_input = c_scaler.transform(str(sid), original).astype(np.float32)
        predicted = champion.model.predict(champion_input, verbose=0)
        out[mask] = c_scaler.inverse(str(sid), np.asarray(predicted, dtype=float))
    unknown = sorted(set(windows.series_id[~known]))
    note = f"champion v{champion.version} re-scored on {int(known.sum())} test windows"
    if unknown:
        note += f" (series it never saw, left out of the comparison: {unknown})"
    return out, note


def score(
    windows: Windows,
    model_pred: np.ndarray,
    context: SeriesContext,
    season_length: int,
    champion_pred: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics table and long predictions table for the test windows."""
    actual = actuals(windows, context)
    forecasts = {MODEL: model_pred, **baselines(windows, context, season_length)}
    scale = np.array([context.scale[str(s)] for s in windows.series_id])
    table = metrics_table(windows.series_id, actual, forecasts, scale).assign(scope=ALL_WINDOWS)
    parts = [table]
    if champion_pred is not None:
        mask = ~np.isnan(champion_pred).any(axis=1)
        if mask.any():
            both = {CHAMPION: champion_pred[mask], MODEL: model_pred[mask]}
            parts.append(
                metrics_table(windows.series_id[mask], actual[mask], both, scale[mask]).assign(
                    scope=CHAMPION_WINDOWS
                )
            )
    metrics = pd.concat(parts, ignore_index=True)
    metrics = metrics[["model", "scope", SERIES_ID, "windows", *METRICS]]

    horizon = actual.shape[1]
    steps = np.arange(1, horizon + 1)
    target_times = np.empty((len(windows), horizon), dtype="datetime64[us]")
    for sid in np.unique(windows.series_id):
        mask = windows.series_id == sid
        t = context.times[str(sid)]
        target_times[mask] = t[windows.origin[mask][:, None] + steps[None, :]]
    columns = {
        SERIES_ID: np.repeat(windows.series_id, horizon),
        "origin_index": np.repeat(windows.origin, horizon),
        "step": np.tile(steps, len(windows)),
        "target_time": pd.to_datetime(target_times.ravel(), utc=True),
        "actual": actual.ravel(),
    }
    for name, predicted in forecasts.items():
        columns[name] = predicted.ravel()
    if champion_pred is not None:
        columns[CHAMPION] = champion_pred.ravel()
    return metrics, pd.DataFrame(columns)


def overall(metrics: pd.DataFrame, scope: str = ALL_WINDOWS) -> dict[str, dict[str, float]]:
    """{model: {metric: value}} for the pooled ``__all__`` rows of one scope."""
    rows = metrics[(metrics[SERIES_ID] == ALL_SERIES) & (metrics["scope"] == scope)]
    return {r["model"]: {m: float(r[m]) for m in METRICS} for _, r in rows.iterrows()}


# --------------------------------------------------------------------------- plots


def plot_loss(history: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history["epoch"], history["loss"], label="training loss")
    ax.plot(history["epoch"], history["val_loss"], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled)")
    ax.set_yscale("log")
    if "learning_rate" in history:
        lr = ax.twinx()
        lr.step(
            history["epoch"],
            history["learning_rate"],
            where="post",
            color="grey",
            alpha=0.5,
            label="learning rate",
        )
        lr.set_ylabel("learning rate")
        lr.set_yscale("log")
    ax.legend(loc="upper right")
    ax.set_title("Model loss")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_forecasts(predictions: pd.DataFrame, path: Path, step: int = 1) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one = predictions[predictions["step"] == step]
    series = sorted(one[SERIES_ID].unique())
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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class EvaluationResult:
    path: Path
    predictions: Path
    season_length: int
    plots: list[Path] = field(default_factory=list)
    champion_version: str | None = None
    champion_note: str | None = None


def markdown_table(metrics: dict[str, dict[str, float]]) -> str:
    lines = ["| model | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for name, values in metrics.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.4g}" for m in METRICS) + " |")
    return "\n".join(lines)


@task(name="evaluate", cache_policy=NONE)
def evaluate(
    windows_path: Path,
    normalized: Path,
    model_dir: Path,
    run: RunDir,
    config: PipelineConfig,
    tracking_uri: str,
) -> EvaluationResult:
    import keras

    logger = stage_logger()
    scaler = Scaler.load(run.scaler)
    test = load_windows(windows_path).subset(TEST)
    steps = sorted(set(scaler.step_seconds.values()))
    season = config.evaluate.season_length or infer_season_length(steps[0] if steps else 0)
    context = SeriesContext.from_normalized(read_parquet(normalized), season)

    model = keras.models.load_model(run.model)
    model_pred = inverse_predictions(
        test, model.predict(test.x, batch_size=1024, verbose=0), scaler
    )

    use_tracking(tracking_uri, config.register.experiment, config.paths.workspace_path())
    champion = load_champion(config.register.model_name)
    champion_pred, note = None, None
    if champion is not None:
        champion_pred, note = rescore_champion(champion, test, scaler)
        logger.info("%s", note)
    metrics, predictions = score(test, model_pred, context, season, champion_pred)
    write_parquet(metrics, run.evaluation)
    write_parquet(predictions, run.predictions)

    plots = []
    if config.evaluate.make_plots:
        history = read_parquet(run.history)
        plots = [
            plot_loss(history, run.plots / "loss_curve.png"),
            plot_forecasts(predictions, run.plots / "forecast_vs_actual.png"),
        ]

    table = overall(metrics)
    champion_rows = overall(metrics, CHAMPION_WINDOWS)
    create_table_artifact(
        key="evaluation-metrics",
        table=[{"model": k, **{m: round(v[m], 6) for m in METRICS}} for k, v in table.items()],
        description=f"Test metrics in original units, {len(test)} windows, season {season}",
    )
    text = [
        f"# Evaluation of run {run.run_id}",
        "",
        f"Test windows: {len(test)}; season length: {season}.",
        "",
        markdown_table(table),
    ]
    if champion_rows:
        text += ["", f"## On the champion's windows ({note})", "", markdown_table(champion_rows)]
    elif note:
        text += ["", f"Champion: {note}"]
    text += ["", "Plots: " + ", ".join(str(p) for p in plots)]
    create_markdown_artifact(key="evaluation-report", markdown="\n".join(text))
    logger.info(
        "Test RMSE: model %.4f, naive %.4f, seasonal naive %.4f",
        table[MODEL]["rmse"],
        table[NAIVE]["rmse"],
        table[SEASONAL_NAIVE]["rmse"],
    )
    return EvaluationResult(
        run.evaluation, run.predictions, season, plots, champion.version if champion else None, note
    )
