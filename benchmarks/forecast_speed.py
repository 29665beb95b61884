"""Forecast speed: every series forecast from the champion, LSTM only and routed.

    .venv/bin/python benchmarks/forecast_speed.py [--series 1000] [--points 400]
                                                  [--steps 24] [--refit-sample 20]

A workspace of ``--series`` daily series (a weekly season, a trend, noise, a per-series
level) is retrained once (one epoch, ``python -m flows.retrain`` against a Prefect server
started for the benchmark), then the champion's forecast of ``--steps`` steps is timed
in this process through ``forecast_frame`` (what the forecast flow and the registered
pyfunc call), on the accepted history:

- ``lstm only``: every series by the LSTM (``forecast.route: false``): one batched model
  call per block of horizon steps for all series at once;
- ``routed``: each series by its router's model (by default the combination of the LSTM,
  AutoETS and AutoTheta): the classical models run forward from the parameters kept in
  ``router.json`` at registration, no refit;
- ``routed, refit``: the way forecasts were made before the router kept its fits (AutoETS
  and AutoTheta refit per series at forecast time), timed on ``--refit-sample`` series and
  scaled to all of them (a full run takes minutes per thousand series).

Prints a table and writes it into docs/benchmarks.md. Absolute times on a shared 2-core
machine are noisy (+-30%).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.docs_table import measured, variant, write_block  # noqa: E402
from benchmarks.real_series import start_prefect  # noqa: E402

RETRAIN_SETTINGS = (
    "train.epochs=1",
    "train.final_epochs=0",
    "train.batch_size=1024",
    "validation.build_data_docs=false",
    "evaluate.baselines=[]",
    "evaluate.make_plots=false",
    "ingest.settle_seconds=0",
    "retention.landed=delete",
)


def daily_series(count: int, points: int, seed: int = 7) -> pd.DataFrame:
    """``count`` daily series of ``points`` days, long format."""
    rng = np.random.default_rng(seed)
    step = np.arange(points)
    level = rng.uniform(50, 150, size=(count, 1))  # [series, 1]
    phase = rng.uniform(0, 2 * np.pi, size=(count, 1))
    trend = rng.uniform(-0.02, 0.05, size=(count, 1))
    values = (
        level
        + trend * step
        + 8 * np.sin(2 * np.pi * step / 7 + phase)
        + rng.standard_normal((count, points))
    )  # [series, points]
    ids = np.array([f"d{k:05d}" for k in range(count)])
    times = pd.date_range("2023-01-01", periods=points, freq="D", tz="UTC")
    return pd.DataFrame(
        {
            "series_id": np.repeat(ids, points),
            "timestamp": np.tile(times, count),
            "value": values.ravel(),
        }
    )


def retrain(frame: pd.DataFrame, root: Path, api: str, sets: list[str]) -> list[str]:
    """One retrain on ``frame`` in a fresh workspace; returns the config overrides used."""
    workspace, landing = root / "work", root / "landing"
    landing.mkdir(parents=True)
    frame.to_parquet(landing / "series.parquet", index=False)
    overrides = [
        f"paths.workspace={workspace}",
        f"paths.landing={landing}",
        "register.model_name=forecast-speed",
        *RETRAIN_SETTINGS,
        *sets,
    ]
    command = [sys.executable, "-m", "flows.retrain"]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "PREFECT_API_URL": api}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if summary.get("status") != "completed":
        tail = done.stdout[-3000:] + done.stderr[-3000:]
        raise RuntimeError(f"the retrain did not complete:\n{tail}")
    return overrides


def timed(fn, repeat: int = 3) -> tuple[float, float, object]:
    """The fastest of ``repeat`` runs: (wall seconds, CPU seconds of this process, result).

    CPU seconds count every thread of this process (TensorFlow uses more than one), and
    nothing of other processes: on a shared machine they say what the work costs when the
    wall clock also counts the neighbours' load."""
    best, cpu, out = float("inf"), float("nan"), None
    for _ in range(repeat):
        started, used = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - started
        if wall < best:
            best, cpu = wall, time.process_time() - used
    return best, cpu, out


def measure(overrides: list[str], steps: int, refit_sample: int = 0) -> list[dict]:
    """Seconds to forecast every series of the workspace ``overrides`` name from its
    champion: LSTM only, routed, and (``refit_sample`` > 0) routed with refits, scaled."""
    from seriesflow.config.pipeline import load_config
    from seriesflow.evaluation.champion import champion_of
    from seriesflow.model.forecasting import ForecastSettings, forecast_frame
    from seriesflow.workspace.files import Workspace
    from seriesflow.workspace.history import load_history

    cfg = load_config(None, overrides)
    champion, why = champion_of(cfg, cfg.register.resolved_tracking_uri(cfg.paths.workspace_path()))
    if champion is None:
        raise RuntimeError(f"no champion: {why}")
    history = load_history(Workspace(cfg.paths.workspace_path()), cfg.columns)
    settings = ForecastSettings(steps, list(cfg.forecast.levels), cfg.validation.max_gap_steps)

    def run(router, frame=history):
        return forecast_frame(
            champion.model,
            champion.spec,
            champion.scaler_object,
            champion.intervals,
            frame,
            settings,
            steps=steps,
            router=router,
        )

    series = history["series_id"].nunique()
    run(None)  # warm up: the model's predict function, numba's compilation
    rows = []
    seconds, cpu, (frame, skipped) = timed(lambda: run(None))
    rows.append(("lstm only", series, frame, skipped, seconds, cpu, "measured"))
    router = champion.router
    run(router)
    seconds, cpu, (frame, skipped) = timed(lambda: run(router))
    rows.append((f"routed ({router.describe()})", series, frame, skipped, seconds, cpu, "measured"))
    if refit_sample > 0:
        ids = sorted(history["series_id"].unique())[:refit_sample]
        sample = history[history["series_id"].isin(ids)]
        refit = replace(router, fits={})
        seconds, cpu, (frame, skipped) = timed(lambda: run(refit, sample), repeat=1)
        factor = series / len(ids)
        note = f"{seconds:.1f} s on {len(ids)} series, scaled x{factor:.0f}"
        rows.append(
            ("routed, refit per series (before)", series, frame, skipped, seconds * factor,
             cpu * factor, note)
        )  # fmt: skip
    out = []
    for name, count, frame, skipped, seconds, cpu, how in rows:
        out.append(
            {
                "forecast": name,
                "series": count,
                "forecast series": int(frame["series_id"].nunique()),
                "skipped": len(skipped),
                "steps": int(frame["step"].max()) if len(frame) else 0,
                "seconds": seconds,
                "per 1,000 series s": seconds * 1000 / count,
                "CPU s": cpu,
                "how": how,
            }
        )
    return out


def table(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=400)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--refit-sample", type=int, default=20)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--root", type=Path, help="where the workspace goes (default: temp)")
    parser.add_argument(
        "--reuse", action="store_true", help="time the workspace already in --root (no retrain)"
    )
    args = parser.parse_args()
    if args.reuse:
        if args.root is None:
            parser.error("--reuse needs --root")
        case = args.root / "case"
        overrides = [
            f"paths.workspace={case / 'work'}",
            f"paths.landing={case / 'landing'}",
            "register.model_name=forecast-speed",
            *RETRAIN_SETTINGS,
            *args.sets,
        ]
        report(args, measure(overrides, args.steps, args.refit_sample))
        return

    root = args.root or Path(tempfile.mkdtemp(prefix="seriesflow-forecast-speed-"))
    (root / "prefect").mkdir(parents=True, exist_ok=True)
    server, api = start_prefect(root / "prefect")
    try:
        started = time.perf_counter()
        overrides = retrain(daily_series(args.series, args.points), root / "case", api, args.sets)
        print(f"retrain: {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    try:
        rows = measure(overrides, args.steps, args.refit_sample)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    report(args, rows)


def report(args: argparse.Namespace, rows: list[dict]) -> None:
    settings = (
        f"{args.series} daily series x {args.points} points, {args.steps} steps, "
        f"{', '.join((*RETRAIN_SETTINGS, *args.sets))}; fastest of 3; machine load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when timed"
    )
    print(f"Settings: {settings}")
    print(table(rows))
    name = variant("forecast-speed", *args.sets, "" if args.series == 1000 else f"{args.series}s")
    write_block(name, measured(settings) + "\n\n" + table(rows))


if __name__ == "__main__":
    main()
