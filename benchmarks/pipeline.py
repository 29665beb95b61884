"""Speed and memory of the data stages, measured side by side in one run.

    .venv/bin/python benchmarks/pipeline.py [--rows 1000000] [--series 100]

Prints one table: stage, rows, seconds (best of --repeat), peak Python memory
(tracemalloc), and for windowing the ratio against the seed's Python loop.
Absolute times on a shared 2-core machine are noisy; compare rows of one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.docs_table import measured, variant, write_block  # noqa: E402
from seriesflow.config.pipeline import ColumnsConfig, IngestConfig, PipelineConfig  # noqa: E402
from seriesflow.data.arrival import validate_arrival  # noqa: E402
from seriesflow.data.expectations import GxSession  # noqa: E402
from seriesflow.data.reading import read_series_file, stack_with_history  # noqa: E402
from seriesflow.model.normalize import normalize_series  # noqa: E402
from seriesflow.model.windows import make_windows, window_origins  # noqa: E402
from seriesflow.workspace.history import HISTORY_SOURCE  # noqa: E402


def frame(rows: int, series: int) -> pd.DataFrame:
    per = rows // series
    idx = np.arange(per)
    rng = np.random.default_rng(0)
    parts = [
        pd.DataFrame(
            {
                "series_id": f"s{k:04d}",
                "timestamp": pd.Timestamp("2020-01-01T00:00Z") + pd.to_timedelta(idx, unit="h"),
                "value": 100 + 10 * np.sin(2 * np.pi * idx / 24) + rng.standard_normal(per),
            }
        )
        for k in range(series)
    ]
    return pd.concat(parts, ignore_index=True)


def seed_loop_windows(data: np.ndarray, timesteps: int) -> tuple[np.ndarray, np.ndarray]:
    """The seed's create_sequences: a Python loop over rows."""
    x, y = [], []
    for i in range(len(data) - timesteps):
        x.append(data[i : i + timesteps])
        y.append(data[i + timesteps])
    return np.array(x), np.array(y)


def measure(fn, repeat: int) -> tuple[float, float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    rows_out = []
    data = frame(args.rows, args.series)
    config = PipelineConfig()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, pq_path = Path(tmp) / "big.csv", Path(tmp) / "big.parquet"
        data.assign(timestamp=data["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
            csv_path, index=False
        )
        data.to_parquet(pq_path, index=False)
        for label, path in (
            ("ingest: read+coerce CSV", csv_path),
            ("ingest: read+coerce Parquet", pq_path),
        ):
            seconds, mem, _ = measure(
                lambda p=path: read_series_file(p, ColumnsConfig(), IngestConfig()), args.repeat
            )
            rows_out.append((label, len(data), seconds, mem, ""))

    stacked = stack_with_history(data.iloc[:0], [("big.csv", data)])
    session = GxSession()
    validate_arrival(stacked.head(1000), ["big.csv"], config, HISTORY_SOURCE, session)  # warm GX
    seconds, mem, arrival = measure(
        lambda: validate_arrival(stacked, ["big.csv"], config, HISTORY_SOURCE, session), args.repeat
    )
    assert arrival.accepted == ["big.csv"], arrival.rejected
    rows_out.append(("validate: GX rows + series suites, merge", len(data), seconds, mem, ""))

    seconds, mem, _ = measure(lambda: normalize_series(data, config), args.repeat)
    rows_out.append(("normalize: grids, gaps, split, scaler fit", len(data), seconds, mem, ""))

    one = data[data["series_id"] == data["series_id"].iloc[0]]["value"].to_numpy(np.float32)
    one = np.tile(one, max(1, 100_000 // len(one)))[:100_000]
    codes = np.zeros(len(one), dtype=int)
    fast, fast_mem, (wx, wy, _) = measure(
        lambda: make_windows(one[:, None], codes, 24, 1), args.repeat
    )
    index, index_mem, w = measure(lambda: window_origins(codes, 24, 1), args.repeat)
    slow, slow_mem, (x, y) = measure(lambda: seed_loop_windows(one, 24), args.repeat)
    assert np.array_equal(wx[:, :, 0], x) and np.array_equal(wy[:, 0], y)
    assert np.array_equal(w.origin, np.arange(23, len(one) - 1))  # origin: the last input row
    rows_out.append(("window: seed's Python loop", len(one), slow, slow_mem, "1.0x"))
    rows_out.append(
        ("window: vectorized, materialized", len(one), fast, fast_mem, f"{slow / fast:.0f}x faster")
    )
    rows_out.append(
        ("window: by index (what the pipeline keeps)", len(one), index, index_mem,
         f"{slow / index:.0f}x faster")
    )  # fmt: skip

    lines = [f"{'stage':<44}{'rows':>10}{'seconds':>10}{'peak MiB':>10}  note"]
    for label, n, seconds, mem, note in rows_out:
        lines.append(f"{label:<44}{n:>10,}{seconds:>10.3f}{mem:>10.1f}  {note}")
    print("\n".join(lines))
    settings = f"--rows {args.rows} --series {args.series} --repeat {args.repeat} (best of repeats)"
    defaults = (args.rows, args.series) == (1_000_000, 100)
    write_block(
        variant("pipeline", "" if defaults else f"{args.rows}rows-{args.series}series"),
        measured(settings) + "\n\n```\n" + "\n".join(lines) + "\n```",
    )


if __name__ == "__main__":
    main()
