"""Tiny deterministic data and configs for tests (seconds, not minutes, per run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import SERIES_ID, TEST, TIMESTAMP, VALUE, VALUE_ORIGINAL
from seriesflow.model.normalize import normalize_series
from seriesflow.model.windows import Windows

START = pd.Timestamp("2026-03-01T00:00:00Z")
TIMES = np.array(pd.date_range("2026-03-01", periods=60, freq="h").to_numpy())


def series_frame(
    series: tuple[str, ...] = ("a", "b"),
    n: int = 240,
    start: int = 0,
    period: int = 12,
    seed: int = 0,
    freq: str = "h",
    covariate: str | None = None,
) -> pd.DataFrame:
    """Long frame of smooth periodic series (+ small noise), deterministic per (series, index)."""
    parts = []
    for k, sid in enumerate(series):
        idx = np.arange(start, start + n)
        rng = np.random.default_rng([seed, k])
        noise = rng.standard_normal(start + n)[start:]
        value = 10 * (k + 1) + 5 * np.sin(2 * np.pi * idx / period) + 0.02 * idx + 0.1 * noise
        frame = pd.DataFrame(
            {
                "series_id": sid,
                "timestamp": START + pd.to_timedelta(idx, unit=freq),
                "value": value,
            }
        )
        if covariate:
            frame[covariate] = np.cos(2 * np.pi * idx / period)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.copy()
    if "timestamp" in out and pd.api.types.is_datetime64_any_dtype(out["timestamp"]):
        out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def fast_settings(
    workspace: Path, model_name: str = "test-lstm", **sections: dict[str, Any]
) -> dict[str, Any]:
    """The one definition of the tests' fast settings, as a plain dict (a deployment's ``cfg``
    parameter takes it as it is): small windows, few units, few epochs; the registry in
    ``workspace``. ``sections`` update single keys (``train={"epochs": 30}``)."""
    tree: dict[str, Any] = {
        "ingest": {"settle_seconds": 0},
        "window": {"timesteps": 12, "horizon": 1},
        # Beats the naive baseline on series_frame(period=10) within ~30 epochs (~6 s).
        "train": {
            "units": 16,
            "epochs": 2,
            "batch_size": 16,
            "early_stopping_patience": 10,
            "reduce_lr_patience": 3,
            "learning_rate": 0.01,
            # XLA's compile costs seconds per training, more than the few tiny epochs it speeds
            # up; test_retrain's end-to-end run and tests/tasks/test_train.py keep it on.
            "jit_compile": False,
        },
        # The value (and listed covariates) only, as the flow tests' assertions expect; the
        # end-to-end run in tests/flows/test_retrain.py turns the calendar on (the default).
        "features": {"calendar": False},
        "evaluate": {"make_plots": True},
        "register": {
            "model_name": model_name,
            "tracking_uri": f"sqlite:///{workspace / 'mlflow.db'}",
        },
    }
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    return tree


def over(base: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``base`` (e.g. a deployed cfg) with each section updated by ``settings``, validated."""
    merged = {key: dict(value) for key, value in base.items()}
    for section, values in settings.items():
        merged.setdefault(section, {}).update(values)
    PipelineConfig.model_validate(merged)  # fail here, not silently in a triggered run
    return merged


def tiny_config(workspace: Path, landing: Path, **sections: dict[str, Any]) -> PipelineConfig:
    """A config that trains in seconds (``fast_settings``) on ``landing``."""
    paths = {"workspace": str(workspace), "landing": str(landing), **sections.pop("paths", {})}
    return PipelineConfig.model_validate(fast_settings(workspace, paths=paths, **sections))


def window_set(
    origins: list[int],
    series: list[str] | None = None,
    horizon: int = 2,
    timesteps: int = 3,
    labels: list[str] | None = None,
    values: dict[str, np.ndarray] | None = None,
) -> Windows:
    """Hand-made test windows over series on ``TIMES`` (``values``: scaled, default zeros)."""
    from seriesflow.model.windows import SeriesArrays

    n = len(origins)
    series = series or ["a"] * n
    names = sorted(set(series) | set(values or {}))
    values = {sid: np.zeros(len(TIMES)) for sid in names} | dict(values or {})
    lengths = np.array([len(values[sid]) for sid in names])
    start = np.r_[0, np.cumsum(lengths)[:-1]]
    joined = np.concatenate([values[sid] for sid in names])
    arrays = SeriesArrays(
        series=names,
        start=start,
        length=lengths,
        values=joined.astype(np.float32)[:, None],
        original=joined.astype(float),
        times=np.concatenate([TIMES[: len(values[sid])] for sid in names]).astype("datetime64[us]"),
        split=np.full(len(joined), 2, dtype=np.int8),
        features=["value"],
    )
    code = np.array([names.index(sid) for sid in series])
    return Windows(
        arrays=arrays,
        row=start[code] + np.array(origins),
        code=code,
        split=np.array(["test"] * n, dtype=object),
        timesteps=timesteps,
        horizon=horizon,
        labels=None if labels is None else np.array(labels, dtype=object),
        classes=("down", "up") if labels is not None else (),
    )


def split_series(
    sid: str, value: np.ndarray, train: int, val: int, start: pd.Timestamp, first: int = 0
) -> pd.DataFrame:
    """One hourly series as the normalized table holds it, unscaled (``identity_scaler``):
    ``value`` from hour ``first`` after ``start`` on, its first ``train`` points the training
    part, up to ``val`` validation, the rest test."""
    n = len(value)
    return pd.DataFrame(
        {
            SERIES_ID: sid,
            TIMESTAMP: start + pd.to_timedelta(np.arange(first, first + n), unit="h"),
            VALUE: value,
            VALUE_ORIGINAL: value,
            "split": ["train"] * train + ["val"] * (val - train) + ["test"] * (n - val),
        }
    )


def windows_of(frame, features=("value",), timesteps=6, horizon=1, task="regression"):
    """The window set of a normalized frame, as the window stage would index it."""
    from seriesflow.model.windows import SeriesArrays, windows_from_table, windows_table

    arrays = SeriesArrays.from_frame(frame, list(features))
    return windows_from_table(windows_table(arrays, timesteps, horizon, task), arrays)


def identity_scaler(windows, method: str = "minmax"):
    """A scaler that leaves the (already scaled) test values as they are."""
    from seriesflow.model.scaler import Scaler

    series = windows.arrays.series
    features = windows.features

    def each(value):
        return {sid: value for sid in series}

    return Scaler(
        features,
        each([0.0] * len(features)),
        each([1.0] * len(features)),
        each("h"),
        each(""),
        each(""),
        method=method,
    )


def zigzag_frame(
    series: tuple[str, ...] = ("a", "b"), n: int = 120, start: int = 0
) -> pd.DataFrame:
    """Series that flip up and down every step: any model that has seen them beats the naive
    (last value) and an odd-season seasonal-naive forecast, even after one epoch -- so crash
    tests can train for one epoch and still have a model the gate promotes."""
    parts = []
    for k, sid in enumerate(series):
        idx = np.arange(start, start + n)
        rng = np.random.default_rng([7, k])
        noise = rng.standard_normal(start + n)[start:]
        value = 20.0 * (k + 1) + 5.0 * np.where(idx % 2 == 0, 1.0, -1.0) + 0.05 * noise
        parts.append(
            pd.DataFrame(
                {
                    "series_id": sid,
                    "timestamp": START + pd.to_timedelta(idx, unit="h"),
                    "value": value,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def crash_config(workspace: Path, landing: Path, **sections: dict[str, Any]) -> PipelineConfig:
    """tiny_config for crash and concurrency tests: one epoch on zigzag data, season 3."""
    tree: dict[str, Any] = {
        "train": {"epochs": 1},
        "evaluate": {"make_plots": False, "season_length": 3},
        "validation": {"build_data_docs": False},
    }
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    return tiny_config(workspace, landing, **tree)


PROMO_NOISE = 0.2  # the generated series' noise: the floor of any model's error


def promo_frame(n: int = 240) -> pd.DataFrame:
    """Two hourly series: a level + 2 x a known-ahead covariate (white noise) + noise."""
    parts = []
    for k, sid in enumerate(("a", "b")):
        rng = np.random.default_rng([5, k])
        promo = rng.standard_normal(n)
        parts.append(
            pd.DataFrame(
                {
                    SERIES_ID: sid,
                    TIMESTAMP: pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
                    VALUE: 20 + 5 * k + 2 * promo + rng.normal(0, PROMO_NOISE, n),
                    "promo": promo,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def promo_config(future: bool) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "columns": {"future": ["promo"] if future else []},
            "features": {"calendar": False},
            "normalize": {"method": "minmax"},
            "window": {"timesteps": 6, "horizon": 2},
            "train": {
                "units": 16,
                "epochs": 10,
                "batch_size": 32,
                "learning_rate": 0.01,
                "jit_compile": False,
            },
        }
    )


def fit_promo(future: bool):
    """(fitted, scaler, test RMSE) of the model with or without the future covariate."""
    from seriesflow.model.lstm import seed_everything
    from seriesflow.model.saved_model import forecast_windows
    from seriesflow.model.training import fit_windows
    from seriesflow.model.windows import SeriesArrays, windows_from_table, windows_table

    cfg = promo_config(future)
    normalized, scaler = normalize_series(promo_frame(), cfg)
    arrays = SeriesArrays.from_frame(normalized, list(scaler.columns))
    data = windows_from_table(windows_table(arrays, 6, 2), arrays)
    seed_everything(0)
    fitted = fit_windows(data, cfg.train, scaler)
    test = data.subset(TEST)
    forecast = forecast_windows(fitted.model, fitted.spec, scaler, test)  # [w, 2]
    actual = test.arrays.original[test.row[:, None] + np.arange(1, 3)[None, :]]
    return fitted, scaler, float(np.sqrt(np.mean((forecast - actual) ** 2)))
