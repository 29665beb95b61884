"""The cost of a commit of 1% new rows: a Delta append vs the old rewrite of history.parquet.

    .venv/bin/python benchmarks/history_commit.py [--series 1000] [--points 5000] [--new 0.01]

History of ``--series`` x ``--points`` hourly rows; then ``--new`` of that arrives (the next
points of every series). The old commit copied the run's whole validated file (history +
new) over ``history.parquet`` (durably: fsync, rename); the new one appends the new rows to
the Delta table in one transaction (``seriesflow/workspace/history.py``). Also timed: how
validate finds the new rows, and a full read of each (what ingest does). Best of --repeat,
each on a fresh copy of the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.docs_table import measured, write_block  # noqa: E402
from seriesflow.config.pipeline import ColumnsConfig  # noqa: E402
from seriesflow.workspace.files import Workspace, atomic_path, write_parquet  # noqa: E402
from seriesflow.workspace.history import (  # noqa: E402
    accepted_schema,
    append_rows,
    load_history,
    new_rows,
)

COLUMNS = ColumnsConfig()
SCHEMA = accepted_schema(COLUMNS)


def frame(series: int, start: int, points: int) -> pd.DataFrame:
    ids = np.repeat([f"s{k:05d}" for k in range(series)], points)
    steps = np.tile(np.arange(start, start + points), series)
    times = pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(steps, unit="h")
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {"series_id": ids, "timestamp": times.as_unit("us"), "value": rng.normal(size=len(ids))}
    )


def timed(action, repeat: int, setup=lambda: None) -> float:
    best = float("inf")
    for _ in range(repeat):
        setup()
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--new", type=float, default=0.01, help="share of new rows")
    parser.add_argument("--buckets", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args()
    fresh_points = max(1, round(args.points * args.new))
    history = frame(args.series, 0, args.points)
    fresh = frame(args.series, args.points, fresh_points)
    merged = pd.concat([history, fresh]).sort_values(["series_id", "timestamp"], ignore_index=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        validated = write_parquet(merged, root / "02_validated.parquet", SCHEMA)
        write_parquet(history, root / "history.parquet", SCHEMA)
        base = Workspace(root / "base")
        append_rows(base, history, SCHEMA, "r0", args.buckets)
        work = Workspace(root / "work")

        def copy_table():
            shutil.rmtree(work.history, ignore_errors=True)
            shutil.copytree(base.history, work.history)
            os.sync()

        def rewrite():  # the old commit: the validated file over history.parquet
            with atomic_path(root / "history.parquet") as out:
                shutil.copyfile(validated, out)

        def append():
            append_rows(work, fresh, SCHEMA, "r1", args.buckets)

        appended = []
        times = {
            "rewrite": timed(rewrite, args.repeat, os.sync),
            "append": timed(append, args.repeat, copy_table),
            "find": timed(
                lambda: appended.append(new_rows(history, merged, False)[0]), args.repeat
            ),
            "read_parquet": timed(lambda: pd.read_parquet(root / "history.parquet"), args.repeat),
            "read_delta": timed(lambda: load_history(work, COLUMNS), args.repeat),
        }
        assert len(appended[-1]) == len(fresh)
        assert len(load_history(work, COLUMNS)) == len(merged)
    rows, new = len(history), len(fresh)
    table = "\n".join(
        [
            "```",
            f"commit of {new:,} new rows onto {rows:,} ({args.series} series)   seconds",
            f"  old: rewrite history.parquet (copy + fsync)        {times['rewrite']:10.3f}",
            f"  new: Delta append (one transaction)                {times['append']:10.3f}",
            f"  append / rewrite                                   {times['append'] / times['rewrite']:10.2f}",  # noqa: E501
            f"validate: finding the new rows                       {times['find']:10.3f}",
            f"full read: history.parquet                           {times['read_parquet']:10.3f}",
            f"full read: Delta table (sorted, as readers get it)   {times['read_delta']:10.3f}",
            "```",
        ]
    )
    print(table)
    if not args.no_docs:
        settings = (
            f"--series {args.series} --points {args.points} --new {args.new} "
            f"--buckets {args.buckets} --repeat {args.repeat}, best of repeat"
        )
        write_block("history_commit", f"{measured(settings)}\n\n{table}")


if __name__ == "__main__":
    main()
