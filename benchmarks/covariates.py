"""Covariates: the LSTM with no covariates, calendar, calendar + holidays, a future covariate.

    .venv/bin/python benchmarks/covariates.py [--epochs 20] [--data sample taylor generated]

Each data set runs through the pipeline's own stage functions (normalize -> windows ->
fit -> forecast; no Prefect, no MLflow), every variant on the same test windows (the
windows of each series' last 15%, the same origins whatever the features):

- ``sample``: the shipped sample (three hourly plants, temperature as a past covariate in
  every variant; holidays: US). Its "future covariate" variant treats temperature as known
  ahead (a weather forecast that is exact): an upper bound for a good weather forecast.
- ``taylor``: pmdarima's ``load_taylor``, half-hourly electricity demand in England and
  Wales, June-August 2000 (4,032 points; shipped offline with pmdarima; holidays: GB).
  A strong daily and weekly calendar effect; no covariate (no future variant).
- ``generated``: two hourly series whose value is a smooth daily cycle + 3 x a
  known-ahead covariate (white noise, like a planned promotion) + noise of sd 0.5: only a
  model that reads the covariate for each target step can get near the noise floor.

Scores: MAE and RMSE on the test windows in original units, every horizon step; the
``vs none`` column is the variant's MAE over the no-covariate model's. Prints the table
and writes it to docs/benchmarks.md (block ``covariates``).
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
from seriesflow.data.schema import SERIES_ID, TEST, TIMESTAMP, VALUE  # noqa: E402
from seriesflow.evaluation.tables import records_markdown  # noqa: E402
from seriesflow.model.lstm import seed_everything  # noqa: E402
from seriesflow.model.normalize import normalize_series  # noqa: E402
from seriesflow.model.saved_model import forecast_windows  # noqa: E402
from seriesflow.model.training import fit_windows  # noqa: E402
from seriesflow.model.windows import SeriesArrays, windows_from_table, windows_table  # noqa: E402

NOISE_SD = 0.5  # the generated series' noise: the floor of any model's RMSE there
EFFECT = 3.0  # the generated covariate's effect on the value


def sample_frame() -> pd.DataFrame:
    cfg = PipelineConfig.model_validate({"columns": {"past": ["temperature"]}})
    files = sorted((ROOT / "data" / "sample").glob("*.csv"))
    return pd.concat([read_series_file(p, cfg.columns, cfg.ingest) for p in files])


def taylor_frame() -> pd.DataFrame:
    from pmdarima.datasets import load_taylor

    values = np.asarray(load_taylor(), dtype=float)  # half-hourly, from Monday 5 June 2000
    times = pd.date_range("2000-06-05", periods=len(values), freq="30min", tz="UTC")
    return pd.DataFrame({SERIES_ID: "taylor", TIMESTAMP: times, VALUE: values})


def generated_frame(hours: int = 1500, seed: int = 3) -> pd.DataFrame:
    parts = []
    for k, sid in enumerate(("gen-a", "gen-b")):
        rng = np.random.default_rng([seed, k])
        t = np.arange(hours)
        promo = rng.standard_normal(hours)
        value = (
            50
            + 10 * k
            + 5 * np.sin(2 * np.pi * t / 24)
            + EFFECT * promo
            + rng.normal(0, NOISE_SD, hours)
        )
        times = pd.date_range("2026-01-01", periods=hours, freq="h", tz="UTC")
        parts.append(pd.DataFrame({SERIES_ID: sid, TIMESTAMP: times, VALUE: value, "promo": promo}))
    return pd.concat(parts, ignore_index=True)


# data set: (frame, past columns, future column for the future variant, holiday country)
DATA = {
    "sample": (sample_frame, ["temperature"], "temperature", "US"),
    "taylor": (taylor_frame, [], None, "GB"),
    "generated": (generated_frame, [], "promo", "US"),
}


def variants(past: list[str], future: str | None, country: str) -> dict[str, dict]:
    """name -> config sections of each variant."""
    found = {
        "none": {"columns": {"past": past}, "features": {"calendar": False}},
        "calendar": {"columns": {"past": past}, "features": {"calendar": True}},
        "calendar+holidays": {
            "columns": {"past": past},
            "features": {"calendar": True, "holidays": {"country": country}},
        },
    }
    if future is not None:
        kept = [c for c in past if c != future]
        found["future covariate"] = {
            "columns": {"past": kept, "future": [future]},
            "features": {"calendar": False},
        }
        found["calendar+future"] = {
            "columns": {"past": kept, "future": [future]},
            "features": {"calendar": True},
        }
    return found


def score(frame: pd.DataFrame, sections: dict, common: dict) -> dict[str, float]:
    cfg = PipelineConfig.model_validate({**common, **sections})
    normalized, scaler = normalize_series(frame, cfg)
    arrays = SeriesArrays.from_frame(normalized, list(scaler.columns))
    timesteps, horizon = int(cfg.window.timesteps), int(cfg.window.horizon)
    data = windows_from_table(windows_table(arrays, timesteps, horizon), arrays)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    started = time.perf_counter()
    fitted = fit_windows(data, cfg.train, scaler)
    test = data.subset(TEST)
    forecast = forecast_windows(fitted.model, fitted.spec, scaler, test)  # [w, horizon]
    rows = test.row[:, None] + np.arange(1, horizon + 1)[None, :]
    error = forecast - test.arrays.original[rows]
    return {
        "features": len(scaler.columns),
        "epochs": len(fitted.epochs),
        "test windows": len(test),
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epoch cap (early stopping too)")
    parser.add_argument("--horizon", type=int, default=12, help="steps forecast at once")
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    args = parser.parse_args()
    common = {
        "window": {"timesteps": 4 * args.horizon, "horizon": args.horizon},
        "train": {"epochs": args.epochs, "units": 32, "jit_compile": False},
    }
    rows = []
    for name in args.data:
        build, past, future, country = DATA[name]
        frame = build()
        found = {}
        for label, sections in variants(past, future, country).items():
            found[label] = score(frame, sections, common)
            print(f"{name} / {label}: {found[label]}", flush=True)
        base = found["none"]["mae"]
        for label, result in found.items():
            rows.append(
                {"data": name, "variant": label, **result, "mae vs none": result["mae"] / base}
            )
    table = pd.DataFrame(rows)
    table["seconds"] = table["seconds"].round(0)
    markdown = records_markdown(table.to_dict("records"), digits=".3f")
    print()
    print(markdown)
    print(f"\n(generated: noise sd {NOISE_SD}, the RMSE floor)")
    settings = (
        f"--epochs {args.epochs} --horizon {args.horizon}; LSTM(32), timesteps "
        f"{4 * args.horizon}, seasonal_log windows; generated noise sd {NOISE_SD} (RMSE floor)"
    )
    extra = "" if (args.epochs, args.horizon) == (20, 12) and len(args.data) == 3 else "custom"
    write_block(variant("covariates", extra), measured(settings) + "\n\n" + markdown)


if __name__ == "__main__":
    main()
