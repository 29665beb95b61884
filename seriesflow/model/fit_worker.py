"""A worker process that fits the classical models of many series (``BackgroundFits``).

    python -m seriesflow.model.fit_worker FOLDER

``FOLDER`` holds shares of the series, one subfolder each: ``jobs.json`` and
``values.npy`` (the share's training values, one series after another). The worker takes
a share by renaming its ``jobs.json`` to ``taken.json`` (atomic: each share goes to one
process), fits it, writes ``fits.json`` (``{series: {model: ClassicalFit JSON}}``, whole
or absent), and takes the next until none is left. Any process can take shares the same
way (``work``): the retrain's own process does once training no longer needs its core.

A fresh interpreter that imports this light module only (numpy, and statsforecast when a
fit runs): a ``multiprocessing`` worker would import the parent's ``__main__`` again, which
for ``python -m flows.retrain`` is Prefect and TensorFlow (786 MiB and 3 s a worker,
measured). Data goes through files as numbers and JSON, never pickles.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from seriesflow.model.classical import SeriesJob, fit_series

JOBS, VALUES, FITS, TAKEN = "jobs.json", "values.npy", "fits.json", "taken.json"


def write_jobs(folder: Path, jobs: list[SeriesJob]) -> None:
    """The jobs as ``jobs.json`` (everything but the values) and ``values.npy``."""
    folder.mkdir(parents=True, exist_ok=True)
    lengths = [len(job[1]) for job in jobs]
    values = np.concatenate([np.asarray(job[1], dtype=float) for job in jobs]) if jobs else []
    np.save(folder / VALUES, np.asarray(values, dtype=float), allow_pickle=False)
    rows = [
        {"sid": sid, "length": n, "n_fit": int(n_fit), "season": int(season),
         "names": list(names), "seasons": int(seasons)}
        for (sid, _, n_fit, season, names, seasons), n in zip(jobs, lengths, strict=True)
    ]  # fmt: skip
    (folder / JOBS).write_text(json.dumps(rows))


def read_jobs(folder: Path, name: str = JOBS) -> list[SeriesJob]:
    rows = json.loads((folder / name).read_text())
    values = np.load(folder / VALUES, allow_pickle=False)
    jobs, start = [], 0
    for row in rows:
        part = values[start : start + row["length"]]
        start += row["length"]
        jobs.append(
            (row["sid"], part, row["n_fit"], row["season"], tuple(row["names"]), row["seasons"])
        )
    return jobs


def take(share: Path) -> bool:
    """Whether this process got ``share`` (no other process can get it after this)."""
    try:
        os.rename(share / JOBS, share / TAKEN)
    except FileNotFoundError:
        return False
    return True


def fit_share(share: Path) -> None:
    """Fit a taken share; its ``fits.json``, written whole."""
    found = fit_series(read_jobs(share, TAKEN))
    out = {
        sid: {name: fit.to_json() for name, fit in models.items()} for sid, models in found.items()
    }
    temporary = share / f".{FITS}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(out))
    os.replace(temporary, share / FITS)  # whole or absent


def shares(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir())


def work(folder: Path) -> int:
    """Fit every share of ``folder`` no other process has taken; how many this one fit."""
    done = 0
    for share in shares(folder):
        if take(share):
            fit_share(share)
            done += 1
    return done


def main(argv: list[str] | None = None) -> int:
    work(Path((argv or sys.argv[1:])[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
