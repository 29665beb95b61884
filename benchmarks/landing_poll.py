"""A poll over a landing folder full of files the ledger already knows.

    .venv/bin/python benchmarks/landing_poll.py [--files 5000] [--kib 20]

Files wait in landing until a run claims them, and a watcher polls them meanwhile. The
looks memoize hashes by each file's fingerprint (size, mtime, inode, ctime), so such a
poll reads none of them; this prints the time of one poll with and without the
memo (best of --repeat, warm page cache: a cold cache makes the unmemoized poll slower).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.docs_table import measured, variant, write_block  # noqa: E402
from seriesflow.workspace.ledger import (  # noqa: E402
    INGESTED,
    append_ledger,
    find_new,
    ledger_rows,
    load_ledger,
    scan_landing,
)


def best(repeat: int, poll) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        poll()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--kib", type=int, default=20, help="size of each file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        landing.mkdir()
        body = b"x" * (args.kib * 1024)
        for i in range(args.files):
            (landing / f"f{i:06d}.csv").write_bytes(body + str(i).encode())
        ledger_path = Path(tmp) / "ledger.parquet"
        looks = Path(tmp) / "looks.json"
        listed = scan_landing(landing, 0, state=looks)  # the first look hashes them all
        append_ledger(ledger_path, ledger_rows(listed, INGESTED, "r1"))
        ledger = load_ledger(ledger_path)

        def without_memo():
            assert find_new(scan_landing(landing, 0), ledger) == []

        def with_memo():
            assert find_new(scan_landing(landing, 0, state=looks), ledger) == []

        size = args.files * args.kib / 1024
        lines = [
            f"poll over {args.files} ledgered files ({size:.0f} MiB)      seconds",
            f"  hashing every file (no memo)              {best(args.repeat, without_memo):8.3f}",
            f"  hash memo by (size, mtime, inode, ctime)  {best(args.repeat, with_memo):8.3f}",
        ]
        print("\n".join(lines))
    defaults = (args.files, args.kib) == (5000, 20)
    write_block(
        variant("landing_poll", "" if defaults else f"{args.files}x{args.kib}KiB"),
        measured(f"--files {args.files} --kib {args.kib} --repeat {args.repeat}, warm page cache")
        + "\n\n```\n" + "\n".join(lines) + "\n```",
    )  # fmt: skip


if __name__ == "__main__":
    main()
