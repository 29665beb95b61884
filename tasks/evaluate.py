"""Evaluate: score the model, the baselines and the current champion on the test windows.

All scores are in original units. The champion is re-scored on the *same*
windows (its own scaler maps the inputs, so a champion trained on older data
is judged fairly); series it has never seen are left out of that comparison.

Regression: MSE, MAE, RMSE, MAPE and MASE against the naive (last value) and
seasonal-naive baselines; MASE divides by each series' in-sample (training
part) seasonal-naive MAE. Classification: accuracy and macro precision, recall
and F1 against the majority class (per series, from the training windows) and
the naive class (the latest class already known at the window's origin).

Backtest (``evaluate.backtest_folds`` = K > 0): a rolling-origin evaluation
without re-estimation. Each series' test windows, in origin order, are cut
into K consecutive folds; every forecast in a fold uses the actual history up
to its own origin, and the model (fit once, on the training part) is re-scored
on each fold rather than refit -- refitting K times would multiply the cost
of a retrain by K. The table shows how the errors move across the test period
(one good stretch can carry a single holdout number); the promotion gate uses
the whole holdout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from tasks.config import EvaluateConfig, PipelineConfig
from tasks.io import RunDir, read_parquet, write_parquet
from tasks.metrics import (
    CLASS_METRICS,
    MAJORITY,
    METRICS,
    class_metrics_table,
    infer_season_length,
    majority_classes,
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
    LABEL,
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
from tasks.train import SPEC_FILE, ModelSpec, predict
from tasks.window import CLASSIFICATION, Windows, direction_labels, load_windows

ALL_WINDOWS, CHAMPION_WINDOWS = "all", "champion_windows"
BACKTEST_FILE = "06_backtest.parquet"
FOLD = "fold"


@dataclass(frozen=True)
class SeriesContext:
    """What evaluation needs of each series besides the windows."""

    values: dict[str, np.ndarray]  # original-unit values, [steps]
    times: dict[str, np.ndarray]  # timestamps, [steps]
    scale: dict[str, float]  # in-sample seasonal-naive MAE on the training part
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # class per step, if labelled

    @classmethod
    def from_normalized(cls, frame: pd.DataFrame, season_length: int) -> SeriesContext:
        values, times, scale, labels = {}, {}, {}, {}
        for sid, group in frame.groupby(SERIES_ID, sort=True):
            sid = str(sid)
            values[sid] = group[VALUE_ORIGINAL].to_numpy(dtype=float)
            # naive datetime64 in UTC: numpy has no timezones
            times[sid] = group[TIMESTAMP].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
            train_values = group.loc[group[SPLIT] == TRAIN, VALUE_ORIGINAL].to_numpy(float)
            scale[sid] = seasonal_naive_scale(train_values, season_length)
            if LABEL in group:
                labels[sid] = group[LABEL].astype(str).to_numpy(dtype=object)
        return cls(values, times, scale, labels)


def season_length_of(cfg: EvaluateConfig, scaler: Scaler) -> int:
    """The configured season, else one inferred from the series' (smallest) sampling step."""
    steps = sorted(set(scaler.step_seconds.values()))
    return cfg.season_length or infer_season_length(steps[0] if steps else 0)


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


def champion_spec(champion: Champion) -> ModelSpec:
    if champion.spec is not None:
        return ModelSpec.from_json(champion.spec)
    return ModelSpec.infer(champion.model, list(champion.scaler["columns"]))


def rescore_champion(
    champion: Champion, windows: Windows, scaler: Scaler, spec: ModelSpec | None = None
) -> tuple[np.ndarray, str]:
    """The champion's outputs for ``windows`` (NaN rows where it cannot score) + a note.

    Regression: forecasts [windows, horizon] in original units. Classification:
    class probabilities [windows, classes].
    """
    spec = spec or ModelSpec.of_windows(windows, per_series=False)
    nan = np.full((len(windows), spec.outputs), np.nan)
    theirs = champion_spec(champion)
    why = spec.comparable(theirs)
    if why is not None:
        return nan, f"champion v{champion.version} is not comparable: {why}"
    c_scaler = Scaler.from_json(champion.scaler)
    if c_scaler.columns != windows.features:
        return nan, (
            f"champion v{champion.version} used features {c_scaler.columns}, this run "
            f"{windows.features}: not comparable"
        )
    known = np.isin(windows.series_id, list(c_scaler.minimum))
    if theirs.per_series:
        known &= np.isin(windows.series_id, theirs.series)
    out = nan.copy()
    for sid in np.unique(windows.series_id[known]):
        mask = windows.series_id == sid
        low, span = scaler._bounds(str(sid))
        original = windows.x[mask].astype(float) * span + low  # [w, timesteps, features]
        champion_input = c_scaler.transform(str(sid), original).astype(np.float32)
        outputs = predict(champion.model, theirs, champion_input, windows.series_id[mask])
        if spec.task == CLASSIFICATION:
            out[mask] = outputs  # [w, classes] probabilities: no units to map back
        else:
            out[mask] = c_scaler.inverse(str(sid), outputs)
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


# --------------------------------------------------------------------------- classification


def class_baselines(
    windows: Windows, context: SeriesContext, majority: dict[str, int]
) -> dict[str, np.ndarray]:
    """Majority class per series and the naive class: class indexes [windows] each.

    The naive class is the latest one known at the origin: the label at the
    origin (label column), or the direction over the ``horizon`` steps that end
    at the origin (derived direction); the majority class where neither exists.
    """
    classes = np.asarray(windows.classes, dtype=object)
    horizon = windows.y.shape[1]
    fallback = np.array([majority.get(str(s), 0) for s in windows.series_id])  # [windows]
    naive = fallback.copy()
    for sid in np.unique(windows.series_id):
        mask = windows.series_id == sid
        origins = windows.origin[mask]
        if context.labels:
            known = context.labels[str(sid)][origins]
        else:
            back = np.clip(origins - horizon, 0, None)
            known = direction_labels(context.values[str(sid)], back, horizon)
            known = np.where(origins >= horizon, known, None)
        found = np.array([k is not None and k in set(classes) for k in known], dtype=bool)
        codes = naive[mask]
        codes[found] = np.searchsorted(classes, known[found].astype(object))
        naive[mask] = codes
    return {MAJORITY: fallback, NAIVE: naive}


def score_classification(
    windows: Windows,
    model_prob: np.ndarray,
    context: SeriesContext,
    majority: dict[str, int],
    champion_prob: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics table and predictions table (one row per window) for class forecasts."""
    actual = windows.codes  # [windows]
    predicted = np.argmax(model_prob, axis=1)  # [windows]
    forecasts = {MODEL: predicted, **class_baselines(windows, context, majority)}
    table = class_metrics_table(windows.series_id, actual, forecasts).assign(scope=ALL_WINDOWS)
    parts = [table]
    if champion_prob is not None:
        mask = ~np.isnan(champion_prob).any(axis=1)
        if mask.any():
            both = {CHAMPION: np.argmax(champion_prob[mask], axis=1), MODEL: forecasts[MODEL][mask]}
            parts.append(
                class_metrics_table(windows.series_id[mask], actual[mask], both).assign(
                    scope=CHAMPION_WINDOWS
                )
            )
    metrics = pd.concat(parts, ignore_index=True)
    metrics = metrics[["model", "scope", SERIES_ID, "windows", *CLASS_METRICS]]

    classes = np.asarray(windows.classes, dtype=object)
    horizon = windows.y.shape[1]
    target_times = np.empty(len(windows), dtype="datetime64[us]")
    for sid in np.unique(windows.series_id):
        mask = windows.series_id == sid
        target_times[mask] = context.times[str(sid)][windows.origin[mask] + horizon]
    columns: dict[str, Any] = {
        SERIES_ID: windows.series_id,
        "origin_index": windows.origin,
        "target_time": pd.to_datetime(target_times, utc=True),
        "actual": classes[actual],
    }
    for name, codes in forecasts.items():
        columns[name] = classes[codes]
    for k, name in enumerate(classes):
        columns[f"p_{name}"] = model_prob[:, k]
    if champion_prob is not None:
        known = ~np.isnan(champion_prob).any(axis=1)
        picked = np.where(known, np.argmax(np.nan_to_num(champion_prob), axis=1), 0)
        columns[CHAMPION] = np.where(known, classes[picked], None)
    return metrics, pd.DataFrame(columns)


# --------------------------------------------------------------------------- backtest


def backtest_folds(windows: Windows, folds: int) -> np.ndarray:
    """Fold number 1..K of each window [windows]: each series' windows, in origin order,
    cut into K consecutive parts of (nearly) equal size; fold K is the latest."""
    if folds < 1:
        raise ValueError(f"evaluate.backtest_folds must be at least 1 here, got {folds}")
    out = np.zeros(len(windows), dtype=int)
    for sid in np.unique(windows.series_id):
        where = np.flatnonzero(windows.series_id == sid)
        if len(where) < folds:
            raise ValueError(
                f"evaluate.backtest_folds={folds}: series '{sid}' has only {len(where)} "
                "test windows; lower the number of folds"
            )
        ordered = where[np.argsort(windows.origin[where], kind="stable")]
        out[ordered] = np.arange(len(ordered)) * folds // len(ordered) + 1
    return out


def backtest(
    windows: Windows, fold: np.ndarray, scorer: Callable[[np.ndarray], pd.DataFrame]
) -> pd.DataFrame:
    """``scorer(mask)`` -> a metrics table for the windows in ``mask``, once per fold."""
    parts = []
    for k in sorted(set(fold.tolist())):
        mask = fold == k
        times = pd.to_datetime(windows.target_time[mask], utc=True)
        parts.append(scorer(mask).assign(**{FOLD: k, "start": times.min(), "end": times.max()}))
    table = pd.concat(parts, ignore_index=True)
    first = [FOLD, "start", "end"]
    return table[first + [c for c in table.columns if c not in first]]


def backtest_summary(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Pooled ``metric`` per fold (rows) and model (columns); the champion on its windows."""
    pooled = table[table[SERIES_ID] == ALL_SERIES]
    main = pooled[pooled["scope"] == ALL_WINDOWS].pivot(index=FOLD, columns="model", values=metric)
    head = pooled[(pooled["scope"] == CHAMPION_WINDOWS) & (pooled["model"] == CHAMPION)]
    if not head.empty:
        main[CHAMPION] = head.set_index(FOLD)[metric]
    return main


def overall(metrics: pd.DataFrame, scope: str = ALL_WINDOWS) -> dict[str, dict[str, float]]:
    """{model: {metric: value}} for the pooled ``__all__`` rows of one scope."""
    rows = metrics[(metrics[SERIES_ID] == ALL_SERIES) & (metrics["scope"] == scope)]
    names = [m for m in (*METRICS, *CLASS_METRICS) if m in metrics.columns]
    return {r["model"]: {m: float(r[m]) for m in names} for _, r in rows.iterrows()}


# --------------------------------------------------------------------------- plots


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


def plot_loss(history: pd.DataFrame, path: Path) -> Path:
    """Training vs validation loss per epoch (one pair of lines per series if per-series)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    groups = history.groupby(SERIES_ID, sort=True) if SERIES_ID in history else [(None, history)]
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
    if "learning_rate" in history and SERIES_ID not in history:
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
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title("Model loss")
    return _save(fig, path)


def plot_forecasts(predictions: pd.DataFrame, path: Path, step: int = 1) -> Path:
    plt = _pyplot()
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
    return _save(fig, path, dpi=90)


def plot_classes(predictions: pd.DataFrame, classes: list[str], path: Path) -> Path:
    """Actual vs predicted class over the test part, per series."""
    plt = _pyplot()
    series = sorted(predictions[SERIES_ID].unique())
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


# --------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class EvaluationResult:
    path: Path
    predictions: Path
    season_length: int
    plots: list[Path] = field(default_factory=list)
    champion_version: str | None = None
    champion_note: str | None = None
    task: str = "regression"
    backtest: Path | None = None


def markdown_table(metrics: dict[str, dict[str, float]], first: str = "model") -> str:
    names = list(next(iter(metrics.values()))) if metrics else list(METRICS)
    lines = [f"| {first} | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for name, values in metrics.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.4g}" for m in names) + " |")
    return "\n".join(lines)


def load_spec(model_dir: Path, model: Any, scaler: Scaler) -> ModelSpec:
    path = model_dir / SPEC_FILE
    return ModelSpec.load(path) if path.exists() else ModelSpec.infer(model, scaler.columns)


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
    windows = load_windows(windows_path)
    test = windows.subset(TEST)
    season = season_length_of(config.evaluate, scaler)
    context = SeriesContext.from_normalized(read_parquet(normalized), season)

    model = keras.models.load_model(run.model)
    spec = load_spec(Path(model_dir), model, scaler)
    classify = spec.task == CLASSIFICATION
    outputs = predict(model, spec, test.x, test.series_id)  # [windows, horizon or classes]

    use_tracking(tracking_uri, config.register.experiment, config.paths.workspace_path())
    champion = load_champion(config.register.model_name)
    champion_out, note = None, None
    if champion is not None:
        champion_out, note = rescore_champion(champion, test, scaler, spec)
        logger.info("%s", note)

    if classify:
        train_windows = windows.subset(TRAIN)
        majority = majority_classes(
            train_windows.series_id, train_windows.codes, len(windows.classes)
        )

        def scorer(mask: np.ndarray) -> pd.DataFrame:
            champ = None if champion_out is None else champion_out[mask]
            return score_classification(test.select(mask), outputs[mask], context, majority, champ)[
                0
            ]

        metrics, predictions = score_classification(test, outputs, context, majority, champion_out)
        gate_metric = config.register.classification_metric
    else:
        model_pred = inverse_predictions(test, outputs, scaler)

        def scorer(mask: np.ndarray) -> pd.DataFrame:
            champ = None if champion_out is None else champion_out[mask]
            return score(test.select(mask), model_pred[mask], context, season, champ)[0]

        metrics, predictions = score(test, model_pred, context, season, champion_out)
        gate_metric = config.register.metric
    write_parquet(metrics, run.evaluation)
    write_parquet(predictions, run.predictions)

    backtest_path, folds_summary = None, None
    if config.evaluate.backtest_folds > 0:
        table = backtest(test, backtest_folds(test, config.evaluate.backtest_folds), scorer)
        backtest_path = write_parquet(table, run.root / BACKTEST_FILE)
        folds_summary = backtest_summary(table, gate_metric)
        logger.info("Backtest %s per fold:\n%s", gate_metric, folds_summary.to_string())

    plots = []
    if config.evaluate.make_plots:
        history = read_parquet(run.history)
        plots.append(plot_loss(history, run.plots / "loss_curve.png"))
        if classify:
            plots.append(
                plot_classes(predictions, list(windows.classes), run.plots / "classes.png")
            )
        else:
            plots.append(plot_forecasts(predictions, run.plots / "forecast_vs_actual.png"))
        if folds_summary is not None:
            plots.append(
                plot_backtest(folds_summary, gate_metric, run.plots / "backtest_errors.png")
            )

    table = overall(metrics)
    champion_rows = overall(metrics, CHAMPION_WINDOWS)
    names = list(next(iter(table.values())))
    create_table_artifact(
        key="evaluation-metrics",
        table=[{"model": k, **{m: round(v[m], 6) for m in names}} for k, v in table.items()],
        description=f"Test metrics ({spec.task}), {len(test)} windows, season {season}",
    )
    text = [
        f"# Evaluation of run {run.run_id}",
        "",
        f"Task: {spec.task}; test windows: {len(test)}; season length: {season}.",
        "",
        markdown_table(table),
    ]
    if champion_rows:
        text += ["", f"## On the champion's windows ({note})", "", markdown_table(champion_rows)]
    elif note:
        text += ["", f"Champion: {note}"]
    if folds_summary is not None:
        text += [
            "",
            f"## Backtest: {gate_metric} per fold (rolling origin, model re-scored, not refit)",
            "",
            markdown_table(
                {f"{k}": row.to_dict() for k, row in folds_summary.iterrows()}, first=FOLD
            ),
        ]
    text += ["", "## Plots", ""] + [f"- ![{p.stem}]({p.resolve().as_uri()}) `{p}`" for p in plots]
    create_markdown_artifact(key="evaluation-report", markdown="\n".join(text))
    if classify:
        logger.info(
            "Test %s: model %.4f, majority %.4f, naive %.4f",
            gate_metric,
            table[MODEL][gate_metric],
            table[MAJORITY][gate_metric],
            table[NAIVE][gate_metric],
        )
    else:
        logger.info(
            "Test RMSE: model %.4f, naive %.4f, seasonal naive %.4f; MASE %.3f",
            table[MODEL]["rmse"],
            table[NAIVE]["rmse"],
            table[SEASONAL_NAIVE]["rmse"],
            table[MODEL]["mase"],
        )
    return EvaluationResult(
        run.evaluation,
        run.predictions,
        season,
        plots,
        champion.version if champion else None,
        note,
        spec.task,
        backtest_path,
    )
