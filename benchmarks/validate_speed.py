"""Validation speed: new rows per second against a large accepted history.

    .venv/bin/python benchmarks/validate_speed.py [--series 1000] [--points 10000]
                                                  [--new 0.01 0.1 1.0] [--no-before]

An accepted history of ``--series`` hourly series x ``--points`` points, then one arriving
file with the next ``new x points`` points of every series. Both paths run in one process
on the same frames, after one warm-up, through the library's own functions:

- before: ``validate_arrival_full`` -- every file merged into the whole history, and the
  series suite run on the profile of all its rows (what validation did up to 0.x);
- after: ``validate_arrival`` -- the new rows against the history's per-series profile
  (``seriesflow/data/profile.py``), the merged rows built once; the profile of the merged
  rows it hands on is included.

rows/s = the arrival's rows / validate seconds (GX row and series suites, outliers, merge
rules, merge). Both must accept the file and give the same merged rows (checked). The
one-off profile build of a workspace that has none is reported apart. Default config (Data
Docs off: the run writes them in the task, not here).
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import seriesflow  # noqa: F401  (quiet, offline defaults)
from benchmarks.docs_table import measured, write_block
from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.arrival import validate_arrival, validate_arrival_full
from seriesflow.data.expectations import GxSession
from seriesflow.data.profile import build_profile
from seriesflow.data.reading import stack_with_history
from seriesflow.data.schema import SERIES_ID, TIMESTAMP, VALUE
from seriesflow.evaluation.tables import records_markdown
from seriesflow.workspace.history import HISTORY_SOURCE


def frames(series: int, points: int, new: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, arriving rows): smooth daily cycles with noise, the arrival right after."""
    rng = np.random.default_rng(seed)
    total = points + new
    ids = np.repeat([f"s{k:05d}" for k in range(series)], total)
    times = pd.date_range("2020-01-01", periods=total, freq="h", tz="UTC")
    level = rng.uniform(10, 100, (series, 1))
    values = level + np.sin(np.arange(total)[None, :] * 2 * np.pi / 24) * 5
    values = values + rng.normal(0, 0.5, (series, total))
    frame = pd.DataFrame(
        {
            SERIES_ID: pd.array(ids, dtype="str"),
            TIMESTAMP: np.tile(times, series),
            VALUE: values.ravel(),
        }
    )
    position = np.tile(np.arange(total), series)
    history = frame[position < points].reset_index(drop=True)
    return history, frame[position >= points].reset_index(drop=True)


def timed(run):
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--new", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--no-before", action="store_true", help="skip the full path")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args()
    config = PipelineConfig()
    session = GxSession()
    warm_history, warm_new = frames(5, 300, 30)
    warm = stack_with_history(warm_history, [("new.csv", warm_new)])
    validate_arrival(warm, ["new.csv"], config, HISTORY_SOURCE, session)
    validate_arrival_full(warm, ["new.csv"], config, HISTORY_SOURCE, session)

    out = []
    for share in args.new:
        new_points = max(1, int(round(args.points * share)))
        history, arriving = frames(args.series, args.points, new_points)
        stacked = stack_with_history(history, [("new.csv", arriving)])
        build_seconds, profile = timed(lambda h=history: build_profile(h, None))
        after, fast = timed(
            lambda s=stacked, p=profile: validate_arrival(
                s, ["new.csv"], config, HISTORY_SOURCE, session, profile=p
            )
        )
        assert fast.accepted == ["new.csv"], fast.rejected
        row = {
            "history rows": f"{len(history):,}",
            "new rows": f"{len(arriving):,} ({share:.0%})",
            "profile build (once) s": round(build_seconds, 2),
            "after s": round(after, 2),
            "after new rows/s": f"{len(arriving) / after:,.0f}",
        }
        if not args.no_before:
            before, full = timed(
                lambda s=stacked: validate_arrival_full(
                    s, ["new.csv"], config, HISTORY_SOURCE, session
                )
            )
            assert full.accepted == ["new.csv"], full.rejected
            pd.testing.assert_frame_equal(fast.merged, full.merged)
            row["before s"] = round(before, 2)
            row["before new rows/s"] = f"{len(arriving) / before:,.0f}"
            row["speed-up"] = f"{before / after:.1f}x"
        out.append(row)
        print(row, flush=True)
        del history, arriving, stacked, fast, profile
    table = records_markdown(out)
    print(table)
    if not args.no_docs:
        settings = f"{args.series} hourly series x {args.points} accepted points, one arriving file"
        write_block("validate-speed", measured(settings) + "\n\n" + table)


if __name__ == "__main__":
    main()
