"""Real series: does the pipeline's model beat the last value and classical models?

    make bench-real                      # installs the bench extra, then runs this
    .venv/bin/python benchmarks/real_series.py [--only elnino nile] [--set train.epochs=80]

Public series shipped inside packages (no download): statsmodels' ``elnino``
(monthly), ``nile`` (yearly) and ``macrodata`` (quarterly: realgdp, cpi, unemp);
pmdarima's ``lynx`` (yearly), ``woolyrnq`` and ``austres`` (quarterly) and ``msft``
(business-daily close, a near random walk: the control, where the last value is
hard to beat and the gate must refuse what does not beat it).

Each series is written as a CSV into a fresh workspace's landing folder and run
through the pipeline's own CLI, ``python -m flows.retrain --set
split.test_fraction=0.2`` (defaults otherwise), against one Prefect server started
here. From the run's ``predictions.parquet`` (one step ahead over the last 20%)
come the model, naive, seasonal-naive and the gate's ETS forecasts; on the same
target times, AutoETS and AutoARIMA (statsforecast) are fit on everything before
the test part and rolled forward one step at a time without refitting
(``forward(..., fitted=True)``). RMSE and MASE per series (MASE on the pipeline's
scale: the in-sample seasonal-naive MAE of the training part), then count lines.
"""

# ruff: noqa: E402  (thread limits must be set before numpy is imported)
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # the classical fits are small; threads only contend

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import seriesflow  # noqa: F401  (quiet, offline defaults)
from benchmarks.docs_table import measured, variant, write_block  # noqa: E402
from seriesflow.data.frequency import Frequency
from seriesflow.data.schema import ETS, MODEL, NAIVE, ROUTED, SEASONAL_NAIVE, THETA
from seriesflow.evaluation.tables import records_markdown
from seriesflow.workspace.files import read_parquet

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def _long(series_id: str, timestamps, values) -> pd.DataFrame:
    ts = pd.DatetimeIndex(timestamps)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return pd.DataFrame(
        {"series_id": series_id, "timestamp": ts, "value": np.asarray(values, dtype=float)}
    )


def load_elnino() -> pd.DataFrame:
    """Monthly Pacific sea surface temperature, 1950-2010 (a year x month table)."""
    import statsmodels.api as sm

    wide = sm.datasets.elnino.load_pandas().data
    long = wide.melt(id_vars="YEAR", value_vars=MONTHS, var_name="month", value_name="v")
    long["month"] = long["month"].map({m: i + 1 for i, m in enumerate(MONTHS)})
    long["ts"] = pd.to_datetime(
        {"year": long["YEAR"].astype(int), "month": long["month"], "day": 1}
    )
    long = long.sort_values("ts")
    return _long("elnino", long["ts"], long["v"])


def load_nile() -> pd.DataFrame:
    import statsmodels.api as sm

    data = sm.datasets.nile.load_pandas().data
    return _long("nile", pd.to_datetime(data["year"].astype(int).astype(str)), data["volume"])


def load_macrodata(column: str) -> pd.DataFrame:
    import statsmodels.api as sm

    data = sm.datasets.macrodata.load_pandas().data
    quarters = pd.PeriodIndex.from_fields(
        year=data["year"].astype(int), quarter=data["quarter"].astype(int), freq="Q"
    )
    return _long(column, quarters.to_timestamp(how="start"), data[column])


def load_lynx() -> pd.DataFrame:
    from pmdarima.datasets import load_lynx as load

    series = load(as_series=True)
    return _long("lynx", pd.to_datetime(series.index.astype(str), format="%Y"), series.to_numpy())


def load_woolyrnq() -> pd.DataFrame:
    from pmdarima.datasets import load_woolyrnq as load

    series = load(as_series=True)
    parts = series.index.str.extract(r"Q(\d) (\d{4})").astype(int)  # 'Q1 1965'
    quarters = pd.PeriodIndex.from_fields(year=parts[1], quarter=parts[0], freq="Q")
    return _long("woolyrnq", quarters.to_timestamp(), series.to_numpy())


def load_austres() -> pd.DataFrame:
    from pmdarima.datasets import load_austres as load

    values = load()  # R's ts(austres): start 1971 Q2, quarterly
    quarters = pd.period_range("1971Q2", periods=len(values), freq="Q")
    return _long("austres", quarters.to_timestamp(), values)


def load_msft() -> pd.DataFrame:
    from pmdarima.datasets import load_msft as load

    data = load()  # traded days: exchange holidays are gaps on the business-day grid
    return _long("msft", pd.to_datetime(data["Date"], format="%Y-%m-%d"), data["Close"])


# name: (loader, what it is, extra --set for the pipeline)
SERIES: dict[str, tuple[Callable[[], pd.DataFrame], str, list[str]]] = {
    "elnino": (load_elnino, "statsmodels, monthly", []),
    "nile": (load_nile, "statsmodels, yearly", []),
    "realgdp": (lambda: load_macrodata("realgdp"), "statsmodels macrodata, quarterly", []),
    "cpi": (lambda: load_macrodata("cpi"), "statsmodels macrodata, quarterly", []),
    "unemp": (lambda: load_macrodata("unemp"), "statsmodels macrodata, quarterly", []),
    "lynx": (load_lynx, "pmdarima, yearly", []),
    "woolyrnq": (load_woolyrnq, "pmdarima, quarterly", []),
    "austres": (load_austres, "pmdarima, quarterly", []),
    # 9/11 closed the exchange for 4 business days: allow that gap (filled, never scored)
    "msft": (load_msft, "pmdarima, business-daily close (control)", ["validation.max_gap_steps=5"]),
}
CONTROL = "msft"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_prefect(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
         "--port", str(port), "--analytics-off"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    import urllib.request

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError("the Prefect server did not start")


def run_pipeline(
    name: str, frame: pd.DataFrame, root: Path, api: str, sets: list[str]
) -> tuple[dict, Path]:
    """The pipeline's CLI on one series in a fresh workspace: (summary, run folder)."""
    workspace = root / name / "work"
    landing = root / name / "landing"  # apart from the workspace (the config refuses nesting)
    landing.mkdir(parents=True)
    out = frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out.to_csv(landing / f"{name}.csv", index=False)
    command = [
        sys.executable, "-m", "flows.retrain",
        "--set", f"paths.workspace={workspace}", "--set", f"paths.landing={landing}",
        "--set", "ingest.settle_seconds=0", "--set", "split.test_fraction=0.2",
        "--set", f"register.model_name=bench-{name}",
    ]  # fmt: skip
    for item in sets:
        command += ["--set", item]
    env = {**os.environ, "PREFECT_API_URL": api}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if summary.get("status") != "completed":
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
    return summary, Path(summary["run_dir"]) if summary.get("run_dir") else workspace


def anchors(frame: pd.DataFrame, targets: pd.Series, season: int) -> dict[str, np.ndarray]:
    """AutoETS and AutoARIMA fit before the first target, rolled one step at a time."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    values = frame["value"].to_numpy(dtype=float)
    times = pd.DatetimeIndex(frame["timestamp"])
    first = int(times.get_indexer([targets.min()])[0])
    at = times.get_indexer(pd.DatetimeIndex(targets))
    found = {}
    for label, model in (
        ("auto_ets", AutoETS),
        ("auto_theta", AutoTheta),
        ("auto_arima", AutoARIMA),
    ):
        fitted = model(season_length=season).fit(values[:first])
        one_step = fitted.forward(y=values, h=1, fitted=True)["fitted"]  # [steps]: t from t-1
        found[label] = np.asarray(one_step)[at]
    return found


def score_series(name: str, summary: dict, run: Path, frame: pd.DataFrame) -> dict:
    predictions = read_parquet(run / "predictions.parquet")
    one = predictions[predictions["step"] == 1].sort_values("target_time")
    metrics = read_parquet(run / "06_evaluation.parquet")
    pooled = metrics[(metrics["series_id"] == "__all__") & (metrics["scope"] == "all")]
    model_row = pooled[pooled["model"] == MODEL].iloc[0]
    scale = float(model_row["mae"] / model_row["mase"])  # the pipeline's MASE denominator
    scaler = json.loads((run / "scaler.json").read_text())
    frequency = Frequency(next(iter(scaler["series"].values()))["frequency"])
    names = (MODEL, ROUTED, NAIVE, SEASONAL_NAIVE, ETS, THETA)
    forecasts = {k: one[k].to_numpy() for k in names if k in one}
    forecasts |= anchors(frame, one["target_time"], frequency.season_length())
    actual = one["actual"].to_numpy()
    row = {
        "series": name,
        "frequency": frequency.code,
        "points": len(frame),
        "test": len(one),
        "epochs": None,
        "promoted": summary.get("promoted"),
    }
    for label, values in forecasts.items():
        error = values - actual
        row[f"rmse_{label}"] = float(np.sqrt(np.mean(error**2)))
        row[f"mase_{label}"] = float(np.mean(np.abs(error)) / scale)
    epochs = run / "05_model" / "epochs.parquet"
    if epochs.exists():
        row["epochs"] = len(read_parquet(epochs))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(SERIES), help="series to run")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="pipeline setting for every run"
    )
    parser.add_argument("--keep", help="keep the workspaces in this folder")
    args = parser.parse_args()
    try:
        import pmdarima  # noqa: F401
        import statsforecast  # noqa: F401
    except ImportError:
        print("needs the bench extra: .venv/bin/pip install -e '.[bench]' (make bench-real)")
        return 2
    root = Path(args.keep or tempfile.mkdtemp(prefix="seriesflow-real-"))
    root.mkdir(parents=True, exist_ok=True)
    server, api = start_prefect(root / "prefect")
    rows, started = [], time.perf_counter()
    try:
        for name in args.only:
            load, _, extra = SERIES[name]
            frame = load()
            tic = time.perf_counter()
            summary, run = run_pipeline(name, frame, root, api, [*extra, *args.sets])
            if summary.get("status") != "completed":
                rows.append({"series": name, "status": summary.get("status")})
                print(f"{name}: {summary.get('status')}: {summary.get('reason')}", flush=True)
                continue
            row = score_series(name, summary, run, frame)
            row["seconds"] = round(time.perf_counter() - tic)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    done = [r for r in rows if "rmse_model" in r]
    table = [
        {
            "series": r["series"],
            "freq": r["frequency"],
            "n": r["points"],
            "test": r["test"],
            "rmse lstm": r["rmse_model"],
            "routed": r.get("rmse_routed", float("nan")),
            "naive": r["rmse_naive"],
            "snaive": r["rmse_seasonal_naive"],
            "AutoETS": r["rmse_auto_ets"],
            "AutoTheta": r["rmse_auto_theta"],
            "AutoARIMA": r["rmse_auto_arima"],
            "mase lstm": r["mase_model"],
            "mase routed": r.get("mase_routed", float("nan")),
            "mase AutoETS": r["mase_auto_ets"],
            "mase AutoTheta": r["mase_auto_theta"],
            "promoted": r["promoted"],
        }
        for r in done
    ]
    print()
    print(records_markdown(table, digits=".4g"))
    others = [r for r in done if r["series"] != CONTROL]
    beats = [r["series"] for r in others if r["rmse_model"] < r["rmse_naive"]]
    beats_ets = [r["series"] for r in done if r["rmse_model"] < r["rmse_auto_ets"]]
    routed_ets = [r["series"] for r in done if r.get("rmse_routed", np.inf) < r["rmse_auto_ets"]]
    routed_theta = [
        r["series"] for r in done if r.get("rmse_routed", np.inf) < r["rmse_auto_theta"]
    ]
    print()
    print(f"{len(done)} of {len(rows)} series accepted, trained and scored")
    print(f"LSTM beats naive (RMSE) on {len(beats)} of {len(others)} non-control series: {beats}")
    print(f"LSTM beats AutoETS (RMSE) on {len(beats_ets)} of {len(done)}: {beats_ets}")
    print(f"routed beats AutoETS on {len(routed_ets)} of {len(done)}: {routed_ets}")
    print(f"routed beats AutoTheta on {len(routed_theta)} of {len(done)}: {routed_theta}")
    control = [r for r in done if r["series"] == CONTROL]
    if control:
        c = control[0]
        print(
            f"control {CONTROL}: LSTM {c['rmse_model']:.4g} vs naive {c['rmse_naive']:.4g}, "
            f"promoted={c['promoted']}"
        )
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")
    settings = (
        f"python -m flows.retrain --set split.test_fraction=0.2 {' '.join(args.sets)}".rstrip()
        + f", one-step forecasts over the last 20%, {len(rows)} series in {total:.0f} s"
    )
    summary = (
        f"LSTM beats naive (RMSE) on {len(beats)} of {len(others)} non-control series; "
        f"beats AutoETS on {len(beats_ets)} of {len(done)}. The routed champion beats AutoETS "
        f"on {len(routed_ets)} and AutoTheta on {len(routed_theta)} of {len(done)}."
    )
    everything = sorted(args.only) == sorted(SERIES)
    write_block(
        variant("real_series", *([] if everything else args.only), *args.sets),
        measured(settings) + "\n\n" + records_markdown(table, digits=".4g") + "\n\n" + summary,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
