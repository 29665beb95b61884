"""Peak memory and time of evaluate: a chunk of series at a time vs every window at once.

    .venv/bin/python benchmarks/evaluate_memory.py [--series 250 1000] [--points 10000]

For each size: one normalized table (``--series`` hourly series x ``--points`` points,
through ``normalize_series``), its window index and ``.npy`` arrays (as the window stage
writes them), an LSTM as train builds it (not trained: what is measured is the scoring,
whose cost does not depend on the weights) and the AutoETS and AutoTheta fits of every
series (fit once, as ``BackgroundFits`` does beside training). Then, in a fresh process
each, ``evaluate_regression`` as the evaluate stage calls it, with the predictions written
to a file:

- ``chunk_windows`` = the default (16,384 validation and test windows at a time);
- ``chunk_windows`` = 10^9: every window in one chunk, as evaluate was before chunks.

Each process reports its peak RSS over what it held after loading (``ru_maxrss`` minus the
RSS before scoring), the seconds, and the pooled routed MASE; the two settings must agree.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ONE_CHUNK = 10**9


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare(folder: Path, series: int, points: int) -> None:
    """The normalized table, the windows, an LSTM and every series' classical fits."""
    from benchmarks.window_memory import make_normalized, window_step
    from seriesflow.config.pipeline import PipelineConfig
    from seriesflow.evaluation.scoring import fit_classical_models, fits_to_json, scorer_for
    from seriesflow.model.lstm import build_model
    from seriesflow.model.saved_model import ModelSpec
    from seriesflow.model.scaler import Scaler
    from seriesflow.model.windows import load_windows
    from seriesflow.workspace.files import write_json

    make_normalized(folder, series, points)
    window_step(folder, True)
    config = PipelineConfig()
    windows = load_windows(folder / "04_windows.parquet", folder / "03_normalized.parquet")
    scaler = Scaler.load(folder / "scaler.json")
    model = build_model(windows.timesteps, len(windows.features), windows.horizon, config.train)
    model.save(folder / "model.keras")
    spec = ModelSpec("regression", windows.timesteps, list(windows.features), windows.horizon)
    write_json(spec.to_json(), folder / "spec.json")
    context = scorer_for(windows, scaler, config.evaluate, classical=("ets", "theta")).context
    fits = fit_classical_models(context, ("ets", "theta"), n_jobs=-1)
    write_json(fits_to_json(fits), folder / "fits.json")


def evaluate_step(folder: Path, chunk_windows: int) -> dict:
    import keras

    from seriesflow.config.pipeline import PipelineConfig
    from seriesflow.data.schema import ALL_SERIES, ROUTED, SERIES_ID
    from seriesflow.evaluation.routed import evaluate_regression
    from seriesflow.evaluation.scoring import classical_baselines, fits_from_json, scorer_for
    from seriesflow.model.saved_model import ModelSpec
    from seriesflow.model.scaler import Scaler
    from seriesflow.model.windows import load_windows
    from seriesflow.workspace.files import read_json

    config = PipelineConfig.model_validate({"evaluate": {"chunk_windows": chunk_windows}})
    windows = load_windows(folder / "04_windows.parquet", folder / "03_normalized.parquet")
    scaler = Scaler.load(folder / "scaler.json")
    model = keras.models.load_model(folder / "model.keras")
    spec = ModelSpec.from_json(read_json(folder / "spec.json"))
    fits = fits_from_json(read_json(folder / "fits.json"))
    classical = classical_baselines(config, len(set(windows.series_id)))
    before = rss_mib()
    start = time.perf_counter()
    scorer = scorer_for(windows, scaler, config.evaluate, classical=classical)
    found = evaluate_regression(
        model,
        spec,
        scaler,
        windows,
        config,
        scorer,
        classical,
        None,
        fits,
        folder / f"predictions-{chunk_windows}.parquet",
    )
    seconds = time.perf_counter() - start
    metrics = found.scored.metrics
    pooled = metrics[(metrics[SERIES_ID] == ALL_SERIES) & (metrics["model"] == ROUTED)]
    return {
        "chunks": found.origins["chunks"],
        "windows": found.origins["val_windows"] + found.origins["test_windows"],
        "seconds": seconds,
        "peak over loading": peak_mib() - before,
        "mase": float(pooled[pooled["scope"] == "all"]["mase"].iloc[0]),
        "parts": found.seconds,
    }


def child(step: str, folder: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", step, folder, *args],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, nargs="+", default=[250, 1000])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if args.child:
        step, folder, *rest = args.child
        if step == "prepare":
            prepare(Path(folder), int(rest[0]), int(rest[1]))
            print(json.dumps({}))
        else:
            print(json.dumps(evaluate_step(Path(folder), int(rest[0]))))
        return
    from benchmarks.docs_table import measured, write_block
    from seriesflow.config.pipeline import EvaluateConfig
    from seriesflow.evaluation.tables import records_markdown

    default = EvaluateConfig().chunk_windows
    rows = []
    for series in args.series:
        with tempfile.TemporaryDirectory() as tmp:
            child("prepare", tmp, str(series), str(args.points))
            found = {}
            for label, chunk in (("one chunk (before)", ONE_CHUNK), ("chunks (default)", default)):
                found[label] = child("evaluate", tmp, str(chunk))
                result = found[label]
                rows.append(
                    {
                        "series": f"{series:,}",
                        "rows": f"{series * args.points:,}",
                        "val + test windows": f"{result['windows']:,}",
                        "evaluate": label,
                        "chunks": result["chunks"],
                        "peak over loading MiB": round(result["peak over loading"]),
                        "seconds": round(result["seconds"], 1),
                        "pooled routed MASE": round(result["mase"], 6),
                    }
                )
                print(rows[-1], result["parts"], flush=True)
            mase = [r["mase"] for r in found.values()]
            if abs(mase[0] - mase[1]) > 1e-9 * abs(mase[0]):
                raise SystemExit(f"the chunked evaluation scored otherwise: {mase}")
    table = records_markdown(rows)
    print(table)
    if not args.no_docs:
        settings = (
            f"{', '.join(str(s) for s in args.series)} hourly series x {args.points} points, "
            "default config (64 val and 64 test origins per series), an untrained LSTM, "
            "AutoETS and AutoTheta fit beforehand; each evaluation in a fresh process"
        )
        write_block("evaluate-memory", measured(settings) + "\n\n" + table)


if __name__ == "__main__":
    main()
