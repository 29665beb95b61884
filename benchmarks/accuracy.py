"""Forecast accuracy: the LSTM vs the naive and seasonal-naive baselines, per series.

    .venv/bin/python benchmarks/accuracy.py [--epochs 30] [--hours 6000] [--horizon 1]

Two data sets, each through the pipeline's own stage functions (normalize ->
windows -> fit -> score; no Prefect, no MLflow): the shipped sample
(``data/sample/``: three hourly series, 2000 points each) and longer generated
hourly series with a trend, daily and weekly seasonality and noise of three
kinds. The model is the default config (LSTM(50), the ``auto`` input of four
seasons: 96 hourly steps, batch 256 with XLA, early stopping on the validation part)
with the epochs capped by ``--epochs``. Scores are on each series' test part (the
last 15%), in original units; MASE divides by the in-sample (training part) seasonal-naive MAE with
the season inferred from the step (hourly -> 24), so a MASE below 1 beats that
in-sample baseline. Prints one table and the seconds each data set took, and writes
the table to docs/benchmarks.md (block ``accuracy``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import seriesflow  # noqa: E402,F401  (quiet, offline defaults)
from benchmarks.docs_table import measured, variant, write_block  # noqa: E402
from seriesflow.config.pipeline import PipelineConfig  # noqa: E402
from seriesflow.data.reading import read_series_file  # noqa: E402
from seriesflow.data.schema import MODEL, NAIVE, SEASONAL_NAIVE, SERIES_ID, TEST, VALUE  # noqa: E402
from seriesflow.evaluation.scoring import score_split, scorer_for  # noqa: E402
from seriesflow.evaluation.tables import records_markdown  # noqa: E402
from seriesflow.model.lstm import seed_everything  # noqa: E402
from seriesflow.model.normalize import normalize_series  # noqa: E402
from seriesflow.model.saved_model import forecast_windows  # noqa: E402
from seriesflow.model.training import fit_windows  # noqa: E402
from seriesflow.model.windows import (  # noqa: E402  # noqa: E402
    SeriesArrays,
    resolve_timesteps,
    windows_from_table,
    windows_table,
)

START = pd.Timestamp("2024-01-01T00:00:00Z")

# name: (level, trend per day, daily amplitude, weekly amplitude, noise sd, noise kind)
GENERATED = {
    "gen-smooth": (100.0, 0.2, 20.0, 8.0, 1.0, "gaussian"),
    "gen-noisy": (50.0, -0.05, 10.0, 4.0, 4.0, "gaussian"),
    "gen-ar-trend": (300.0, 1.0, 30.0, 15.0, 3.0, "ar1"),
}


def sample_frame(cfg: PipelineConfig) -> pd.DataFrame:
    files = sorted((ROOT / "data" / "sample").glob("*.csv")) + sorted(
        (ROOT / "data" / "sample").glob("*.parquet")
    )
    return pd.concat(
        [read_series_file(path, cfg.columns, cfg.ingest) for path in files], ignore_index=True
    )


def generated_frame(hours: int, seed: int = 7) -> pd.DataFrame:
    """Hourly series: level + trend + daily and weekly cycles + white or AR(1) noise."""
    t = np.arange(hours)
    parts = []
    for k, (name, (level, trend, daily, weekly, sd, kind)) in enumerate(GENERATED.items()):
        rng = np.random.default_rng([seed, k])
        shocks = rng.normal(0, sd, hours)
        if kind == "ar1":  # persistent noise: what the last value knows and a season does not
            noise = np.empty(hours)
            noise[0] = shocks[0]
            for i in range(1, hours):
                noise[i] = 0.8 * noise[i - 1] + shocks[i]
        else:
            noise = shocks
        value = (
            level
            + trend * t / 24
            + daily * np.sin(2 * np.pi * (t + 3 * k) / 24)
            + weekly * np.sin(2 * np.pi * t / (24 * 7))
            + noise
        )
        parts.append(
            pd.DataFrame(
                {SERIES_ID: name, "timestamp": START + pd.to_timedelta(t, unit="h"), VALUE: value}
            )
        )
    return pd.concat(parts, ignore_index=True)


def evaluate_frame(frame: pd.DataFrame, cfg: PipelineConfig) -> pd.DataFrame:
    """Fit the configured model on the train part; per-series test metrics of all three."""
    normalized, scaler = normalize_series(frame, cfg)
    arrays = SeriesArrays.from_frame(normalized, list(scaler.columns))
    timesteps = resolve_timesteps(cfg, scaler, arrays)
    data = windows_from_table(windows_table(arrays, timesteps, cfg.window.horizon), arrays)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    fitted = fit_windows(data, cfg.train, scaler)
    test = data.subset(TEST)
    outputs = forecast_windows(fitted.model, fitted.spec, scaler, test)
    metrics = score_split(test, outputs, scorer_for(data, scaler, cfg.evaluate)).metrics
    wide = metrics.pivot(index=SERIES_ID, columns="model", values=["mase", "rmse"])
    table = pd.DataFrame(
        {
            "windows": metrics[metrics["model"] == MODEL].set_index(SERIES_ID)["windows"],
            "epochs": len(fitted.epochs),
        }
    )
    for metric in ("mase", "rmse"):
        for name, label in ((MODEL, "lstm"), (NAIVE, "naive"), (SEASONAL_NAIVE, "snaive")):
            table[f"{metric}_{label}"] = wide[(metric, name)]
    return table.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="epoch cap (early stopping too)")
    parser.add_argument("--hours", type=int, default=6000, help="points per generated series")
    parser.add_argument("--horizon", type=int, default=1, help="steps forecast at once")
    args = parser.parse_args()
    cfg = PipelineConfig.model_validate(
        {"train": {"epochs": args.epochs}, "window": {"horizon": args.horizon}}
    )
    print(
        f"LSTM(units={cfg.train.units}, layers={cfg.train.layers}), timesteps "
        f"{cfg.window.timesteps}, horizon {cfg.window.horizon}, batch {cfg.train.batch_size}, "
        f"at most {cfg.train.epochs} epochs; test part = last {cfg.split.test_fraction:.0%}"
    )
    rows = []
    for dataset, build in (
        ("sample", lambda: sample_frame(cfg)),
        (f"generated ({args.hours} h)", lambda: generated_frame(args.hours)),
    ):
        started = time.perf_counter()
        table = evaluate_frame(build(), cfg).assign(data=dataset)
        seconds = time.perf_counter() - started
        print(f"{dataset}: {seconds:.0f} s", flush=True)
        rows.append(table)
    result = pd.concat(rows, ignore_index=True)
    result = result[
        ["data", SERIES_ID] + [c for c in result.columns if c not in ("data", SERIES_ID)]
    ]
    markdown = records_markdown(result.to_dict("records"), digits=".3f")
    print()
    print(markdown)
    settings = (
        f"--epochs {args.epochs} --hours {args.hours} --horizon {args.horizon}; default model, "
        f"timesteps {cfg.window.timesteps}, batch {cfg.train.batch_size}"
    )
    defaults = (args.epochs, args.hours, args.horizon) == (30, 6000, 1)
    extra = "" if defaults else f"e{args.epochs}-h{args.hours}-H{args.horizon}"
    write_block(variant("accuracy", extra), measured(settings) + "\n\n" + markdown)


if __name__ == "__main__":
    main()
