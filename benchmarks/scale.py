"""Scale: the whole retrain on 10, 100 and 1,000 hourly series, one epoch each.

    .venv/bin/python benchmarks/scale.py [--sizes 10 100 1000] [--points 10000]
                                         [--set train.batch_size=1024 ...] [--root DIR]
                                         [--defaults] [--append-pct 1]

For each size: hourly series are generated (a daily sine + a weekly one + noise + a
per-series level), landed as Parquet files (``--series-per-file`` series each) in a fresh
workspace, and ``python -m flows.retrain`` runs in a subprocess against one Prefect
server started for the benchmark (so the server's memory is not counted). The peak RSS
is the largest sum of RSS over the retrain process and all its descendants, sampled
every 0.1 s with psutil, and never less than the flow process's own high-water (``VmHWM``
in its manifest, which catches a spike the sampling missed); beside it the peak of their anonymous
memory (RSS less file-backed pages: memory-mapped windows in the page cache count in RSS
but the kernel can drop them). Per-stage seconds come from the run manifest's
``timings_seconds``, the peak RSS of the flow's own process after each stage from its
``peak_rss_mib``; the disk is what the run folder holds when the run ends.

Benchmark settings (``BENCH_SETTINGS``; ``--set`` adds or overrides): 1 epoch, batch
1024, a window every 24 steps (``window.stride=24``), no Data Docs, no ETS baseline (a
statsmodels fit per series), no backtest. Plots stay on (the forecast plot draws a few
series, whatever the count). ``--defaults`` runs the configuration a user gets instead
(``DEFAULT_RUN``: only one epoch, no settle wait, landed files deleted): every window,
Data Docs, every baseline.

``--append-pct P`` then lands P% more points per series (the hours that follow) into the
same workspace and runs the retrain again: the cost of the next run after new data (the
history is appended to, not rewritten), as its own row.

Prints one table per size plus the growth between consecutive sizes: time ratio vs rows
ratio, RSS ratio. After each retrain the champion forecasts every series ``--forecast-steps``
(24) steps ahead in this process, LSTM only and routed (``benchmarks/forecast_speed.py``):
seconds per 1,000 series, next to the retrain figures. Absolute times on a shared 2-core
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
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.docs_table import measured, variant, write_block  # noqa: E402
from benchmarks.forecast_speed import measure  # noqa: E402
from benchmarks.real_series import start_prefect  # noqa: E402

BENCH_SETTINGS = (
    "train.epochs=1",
    # One window per series-day: one epoch over every window of 10M rows at the auto input
    # of 96 steps is ~70 min of training on 2 cores. The data stages' memory does not
    # depend on it; the window index (24 bytes a window) and the windows scored shrink 24x.
    "window.stride=24",
    "train.batch_size=1024",
    "validation.build_data_docs=false",
    "evaluate.baselines=[]",
    "evaluate.backtest_folds=0",
    "ingest.settle_seconds=0",
    "retention.landed=delete",
)
DEFAULT_RUN = ("train.epochs=1", "ingest.settle_seconds=0", "retention.landed=delete")
STAGES = ("ingest", "validate", "normalize", "window", "train", "evaluate", "register", "commit")


def series_frame(first: int, count: int, points: int, seed: int, offset: int = 0) -> pd.DataFrame:
    """``count`` hourly series (ids ``s{first..}``) of ``points`` steps from step ``offset``,
    long format (a series' level and phase do not depend on ``offset``)."""
    rng = np.random.default_rng(seed + first)
    step = np.arange(offset, offset + points)
    level = rng.uniform(50, 150, size=(count, 1))  # [series, 1]
    phase = rng.uniform(0, 2 * np.pi, size=(count, 1))
    values = (
        level
        + 10 * np.sin(2 * np.pi * step / 24 + phase)
        + 5 * np.sin(2 * np.pi * step / 168)
        + rng.standard_normal((count, points))
    )  # [series, points]
    ids = np.array([f"s{k:05d}" for k in range(first, first + count)])
    start = pd.Timestamp("2024-01-01T00:00Z")
    return pd.DataFrame(
        {
            "series_id": np.repeat(ids, points),
            "timestamp": np.tile(start + pd.to_timedelta(step, unit="h"), count),
            "value": values.ravel(),
        }
    )


def land(landing: Path, series: int, points: int, per_file: int, offset: int = 0) -> int:
    """Write the series as Parquet files of ``per_file`` series each; returns the files."""
    landing.mkdir(parents=True, exist_ok=True)
    files = 0
    for first in range(0, series, per_file):
        frame = series_frame(first, min(per_file, series - first), points, 12, offset)
        frame.to_parquet(landing / f"part-{offset:06d}-{first:05d}.parquet", index=False)
        files += 1
    return files


class TreePeak:
    """Largest sum of RSS over a process and its descendants, sampled on a thread; and the
    largest sum of their anonymous memory (RSS less the file-backed and shared pages:
    memory-mapped windows in the page cache count in RSS, but the kernel can drop them)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            total = anon = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            for proc in procs:
                try:
                    memory = proc.memory_info()
                except psutil.Error:
                    continue
                total += memory.rss
                anon += memory.rss - getattr(memory, "shared", 0)
            self.peak = max(self.peak, total)
            self.peak_anon = max(self.peak_anon, anon)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def settings_of(args: argparse.Namespace) -> tuple[str, ...]:
    return (*(DEFAULT_RUN if args.defaults else BENCH_SETTINGS), *args.sets)


def run_size(series: int, args: argparse.Namespace, api: str, root: Path, append: int = 0) -> dict:
    """One retrain of ``series`` series; ``append`` > 0: the next run, after that many new
    points per series landed into the workspace of the first."""
    case = root / f"s{series}"
    workspace, landing = case / "work", case / "landing"
    points = append or args.points
    files = land(landing, series, points, args.series_per_file, args.points if append else 0)
    command = [
        sys.executable, "-m", "flows.retrain",
        "--set", f"paths.workspace={workspace}", "--set", f"paths.landing={landing}",
        "--set", f"register.model_name=scale-{series}",
    ]  # fmt: skip
    for item in settings_of(args):
        command += ["--set", item]
    # not the MLflow store of the size before: timing its forecast (in this process) set
    # MLFLOW_TRACKING_URI, which a child would inherit over its workspace's own store
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PREFECT_API_URL"] = api
    log = case / ("retrain-append.log" if append else "retrain.log")
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreePeak(proc.pid)
        proc.wait()
        peak = sampler.stop()
    wall = time.perf_counter() - started
    lines = log.read_text().strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if summary.get("status") != "completed":
        tail = "\n".join(lines[-40:])
        raise RuntimeError(f"{series} series: the run did not complete (log {log}):\n{tail}")
    if summary["rows"] != series * (args.points + append) or summary["rejected_files"]:
        raise RuntimeError(f"{series} series: not every landed row was accepted: {summary}")
    run_dir = Path(summary["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    forecasts = {}
    if args.forecast_steps:  # the champion's forecast of every series, in this process
        overrides = [o for k, o in enumerate(command[3:]) if k % 2 == 1]  # the --set values
        for row in measure(overrides, args.forecast_steps):
            forecasts["lstm" if row["forecast"] == "lstm only" else "routed"] = row
    return {
        "series": series,
        "run": f"+{append / args.points:.0%} new" if append else "first",
        "files": files,
        "rows": summary["rows"],
        "wall": wall,
        "stages": manifest["timings_seconds"],
        "stage_rss": manifest.get("peak_rss_mib", {}),
        "resident": manifest.get("rss_mib", {}),
        # the sampled tree peak can miss a short spike: never below the flow process's own
        # high-water (its VmHWM after each stage; not ru_maxrss of the children, which Linux
        # carries across exec from this process, holding forecast timings' frames by then)
        "peak_rss": max(peak, max(manifest.get("peak_rss_mib", {}).values(), default=0) * 2**20),
        "sampled_rss": peak,
        "peak_anon": sampler.peak_anon,
        "run_bytes": folder_bytes(run_dir),
        "rmse": summary["metrics"].get("model", {}).get("rmse"),
        "forecasts": forecasts,
    }


def _io(result: dict) -> float:
    return sum(result["stages"].get(s, 0) for s in ("ingest", "validate", "commit"))


def table(results: list[dict]) -> str:
    stages = [s for s in STAGES if any(s in r["stages"] for r in results)]
    head = ["series", "run", "rows"] + [f"{s} s" for s in stages]
    head += ["evaluate / train", "total s", "peak RSS GiB", "peak anonymous GiB", "run folder MiB"]
    forecasts = any(r.get("forecasts") for r in results)
    if forecasts:
        head += ["forecast s per 1,000 series (lstm / routed)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [f"{r['series']:,}", r.get("run", "first"), f"{r['rows']:,}"]
        cells += [f"{r['stages'].get(s, 0):.1f}" for s in stages]
        train = r["stages"].get("train", 0)
        cells.append(f"{r['stages'].get('evaluate', 0) / train:.2f}" if train else "")
        gib, mib = r["peak_rss"] / 2**30, r["run_bytes"] / 2**20
        anon = r.get("peak_anon", 0) / 2**30
        cells += [f"{r['wall']:.0f}", f"{gib:.2f}", f"{anon:.2f}", f"{mib:.0f}"]
        if forecasts:
            found = r.get("forecasts", {})
            per = [found[k]["per 1,000 series s"] for k in ("lstm", "routed") if k in found]
            cells.append(" / ".join(f"{v:.1f}" for v in per))
        lines.append("| " + " | ".join(cells) + " |")
    if any(r["stage_rss"] for r in results):
        lines += ["", "Peak RSS of the flow's process after each stage (MiB, high-water mark):", ""]
        lines.append("| series | run | " + " | ".join(stages) + " |")
        lines.append("|" + "---|" * (len(stages) + 2))
        for r in results:
            cells = [f"{r['stage_rss'].get(s, 0):.0f}" for s in stages]
            lines.append(
                f"| {r['series']:,} | {r.get('run', 'first')} | " + " | ".join(cells) + " |"
            )
    if any(r.get("resident") for r in results):
        lines += ["", "RSS of the flow's process at the end of each stage (MiB, held then):", ""]
        lines.append("| series | run | " + " | ".join(stages) + " |")
        lines.append("|" + "---|" * (len(stages) + 2))
        for r in results:
            cells = [f"{(r['resident'].get(s) or 0):.0f}" for s in stages]
            lines.append(
                f"| {r['series']:,} | {r.get('run', 'first')} | " + " | ".join(cells) + " |"
            )
    firsts = [r for r in results if r.get("run", "first") == "first"]
    for r in results:
        if r.get("run", "first") != "first":
            base = next(f for f in firsts if f["series"] == r["series"])
            lines.append("")
            lines.append(
                f"{r['series']:,} series, the run after {r['run']}: {r['wall']:.0f} s against "
                f"{base['wall']:.0f} s for the first ({r['wall'] / base['wall']:.2f}x); ingest + "
                f"validate + commit {_io(r):.1f} s against {_io(base):.1f} s."
            )
    results = firsts
    if len(results) > 1:
        lines += ["", "| growth | rows x | time x | RSS x | run folder x |"]
        lines.append("|---|---|---|---|---|")
        for a, b in zip(results, results[1:], strict=False):
            lines.append(
                f"| {a['series']:,} -> {b['series']:,} | {b['rows'] / a['rows']:.1f} | "
                f"{b['wall'] / a['wall']:.1f} | {b['peak_rss'] / a['peak_rss']:.2f} | "
                f"{b['run_bytes'] / a['run_bytes']:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--series-per-file", type=int, default=100)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--root", type=Path, help="where workspaces go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces")
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="the configuration a user gets (one epoch), not the benchmark settings",
    )
    parser.add_argument(
        "--append-pct",
        type=float,
        default=0,
        help="then land this percentage of new points per series and run again",
    )
    parser.add_argument(
        "--forecast-steps",
        type=int,
        default=24,
        help="after each retrain, time the champion's forecast of every series this many "
        "steps ahead (benchmarks/forecast_speed.py; 0: off)",
    )
    args = parser.parse_args()

    root = args.root or Path(tempfile.mkdtemp(prefix="seriesflow-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    server, api = start_prefect(root / "prefect")
    results = []
    try:
        for series in args.sizes:
            appended = int(round(args.points * args.append_pct / 100))
            for append in (0, appended) if appended else (0,):
                results.append(run_size(series, args, api, root, append))
                r = results[-1]
                print(
                    f"{series} series x {args.points} points ({r['run']}): {r['wall']:.0f} s, "
                    f"peak RSS {r['peak_rss'] / 2**30:.2f} GiB (tree sampled "
                    f"{r['sampled_rss'] / 2**30:.2f} GiB), run folder "
                    f"{r['run_bytes'] / 2**20:.0f} MiB, test RMSE {r['rmse']:.3f}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    settings = f"{', '.join(settings_of(args))}; hourly, {args.points} points"
    print()
    print(f"Settings: {settings}")
    print(table(results))
    sizes = "" if args.sizes == [10, 100, 1000] else "sizes-" + "-".join(map(str, args.sizes))
    extra = (
        "defaults" if args.defaults else "",
        f"append-{args.append_pct:g}" if args.append_pct else "",
    )
    write_block(
        variant(
            "scale", *extra, *args.sets, sizes, "" if args.points == 10_000 else f"{args.points}pt"
        ),
        measured(settings) + "\n\n" + table(results),
    )


if __name__ == "__main__":
    main()
