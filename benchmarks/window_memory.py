"""Peak memory of window + train: windows held in memory vs memory-mapped .npy files.

    .venv/bin/python benchmarks/window_memory.py [--series 200] [--points 10000] [--epochs 1]

One normalized table (``--series`` hourly series x ``--points`` points, through
``normalize_series``), then, for each mode, two fresh processes as the retrain runs them:

- window: the normalized table read, the window index written (and, after, the values and
  the index as ``04_windows.arrays/*.npy``);
- train: ``load_windows`` (after: the values and index memory-mapped), then ``--epochs``
  of a real Keras fit over the train windows' PyDataset (at most ``--max-windows`` windows
  an epoch) with the val windows for the loss.

Each process reports its peak RSS (``ru_maxrss``). "before" hides the .npy files, so
``load_windows`` holds everything in memory as it did before them.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_normalized(folder: Path, series: int, points: int) -> None:
    import seriesflow  # noqa: F401
    from seriesflow.config.pipeline import PipelineConfig
    from seriesflow.model.normalize import normalize_series
    from seriesflow.workspace.files import write_json, write_parquet

    rng = np.random.default_rng(0)
    times = pd.date_range("2020-01-01", periods=points, freq="h", tz="UTC")
    values = rng.uniform(10, 100, (series, 1)) + 5 * np.sin(np.arange(points) * 2 * np.pi / 24)
    frame = pd.DataFrame(
        {
            "series_id": np.repeat([f"s{k:04d}" for k in range(series)], points),
            "timestamp": np.tile(times, series),
            "value": (values + rng.normal(0, 0.5, values.shape)).ravel(),
        }
    )
    normalized, scaler = normalize_series(frame, PipelineConfig())
    write_parquet(normalized, folder / "03_normalized.parquet")
    write_json(scaler.to_json(), folder / "scaler.json")


def window_step(folder: Path, mapped: bool) -> dict:
    import seriesflow  # noqa: F401
    from seriesflow.config.pipeline import PipelineConfig
    from seriesflow.model.scaler import Scaler
    from seriesflow.model.windows import (
        SeriesArrays,
        resolve_timesteps,
        windows_from_table,
        windows_table,
        write_window_arrays,
    )
    from seriesflow.workspace.files import write_table

    start = time.perf_counter()
    config = PipelineConfig()
    scaler = Scaler.load(folder / "scaler.json")
    normalized = folder / "03_normalized.parquet"
    arrays = SeriesArrays.load(normalized, list(scaler.columns))
    table = windows_table(arrays, resolve_timesteps(config, scaler, arrays), 1)
    write_table(table, folder / "04_windows.parquet")
    if mapped:
        write_window_arrays(
            windows_from_table(table, arrays), folder / "04_windows.parquet", normalized
        )
    return {"windows": table.num_rows, "seconds": time.perf_counter() - start, "peak": peak_mib()}


def train_step(folder: Path, epochs: int, max_windows: int) -> dict:
    import seriesflow  # noqa: F401
    from seriesflow.config.pipeline import TrainConfig
    from seriesflow.model.lstm import build_model, window_batches
    from seriesflow.model.scaler import Scaler
    from seriesflow.model.training import training_windows
    from seriesflow.model.windows import load_windows

    start = time.perf_counter()
    data = load_windows(folder / "04_windows.parquet", folder / "03_normalized.parquet")
    scaler = Scaler.load(folder / "scaler.json")
    cfg = TrainConfig(epochs=epochs, batch_size=1024)
    train, val = training_windows(data, cfg)
    model = build_model(data.timesteps, len(data.features), data.horizon, cfg)
    fit_train = window_batches(train, scaler, 1024, True, 0, max_windows=max_windows)
    fit_val = window_batches(val, scaler, 1024, False, 0, max_windows=max_windows // 4)
    model.fit(fit_train, validation_data=fit_val, epochs=epochs, verbose=0)
    return {
        "mapped": isinstance(data.arrays.values, np.memmap),
        "train windows": len(train),
        "seconds": time.perf_counter() - start,
        "peak": peak_mib(),
    }


def child(step: str, folder: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", step, folder, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-windows", type=int, default=20_000)
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if args.child:
        step, folder, *rest = args.child
        if step == "window":
            result = window_step(Path(folder), rest[0] == "1")
        else:
            result = train_step(Path(folder), int(rest[0]), int(rest[1]))
        print(json.dumps(result))
        return
    from benchmarks.docs_table import measured, write_block
    from seriesflow.evaluation.tables import records_markdown

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_normalized(folder, args.series, args.points)
        for mode, mapped in (("before: in memory", False), ("after: memory-mapped", True)):
            shutil.rmtree(folder / "04_windows.arrays", ignore_errors=True)
            window = child("window", str(folder), "1" if mapped else "0")
            train = child("train", str(folder), str(args.epochs), str(args.max_windows))
            assert train["mapped"] == mapped, train
            rows.append(
                {
                    "mode": mode,
                    "rows": f"{args.series * args.points:,}",
                    "windows": f"{window['windows']:,}",
                    "window peak RSS MiB": round(window["peak"]),
                    "train peak RSS MiB": round(train["peak"]),
                    "window s": round(window["seconds"], 1),
                    "train s": round(train["seconds"], 1),
                }
            )
            print(rows[-1], flush=True)
    table = records_markdown(rows)
    print(table)
    if not args.no_docs:
        settings = (
            f"{args.series} hourly series x {args.points} points, {args.epochs} epoch(s) of at "
            f"most {args.max_windows} windows, batch 1024"
        )
        write_block("window-memory", measured(settings) + "\n\n" + table)


if __name__ == "__main__":
    main()
