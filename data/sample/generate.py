"""Generate the deterministic sample data set, or the next chunk of it.

Three hourly series with a daily cycle, a slow trend, a weekly ripple and
noise, plus a ``temperature`` covariate. Every point is a pure function of
(series, hour index), so the base files and every later chunk line up exactly,
on any machine.

    python data/sample/generate.py                      # rewrite data/sample/
    python data/sample/generate.py --next-chunk         # next week into the landing folder
    python data/sample/generate.py --next-chunk --landing DIR --hours 168

The base set is one CSV (two series) and one Parquet file (one series), so both
input formats are exercised from the first run.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
START = pd.Timestamp("2026-01-01T00:00:00Z")
BASE_HOURS = 2000  # ~83 days per series
CHUNK_HOURS = 168  # one week per chunk
SEED = 20260101

# name: (level, daily amplitude, trend per day, noise sd, phase in hours)
SERIES = {
    "plant-north": (120.0, 25.0, 0.30, 2.0, 0),
    "plant-south": (80.0, 15.0, -0.10, 1.5, 5),
    "plant-east": (200.0, 40.0, 0.50, 3.0, 11),
}
CSV_SERIES = ("plant-north", "plant-south")
PARQUET_SERIES = ("plant-east",)


def series_values(name: str, start: int, stop: int) -> pd.DataFrame:
    """Rows for hour indexes [start, stop) of one series (deterministic per index)."""
    level, amplitude, trend, noise_sd, phase = SERIES[name]
    hours = np.arange(start, stop)
    series_no = list(SERIES).index(name)
    noise = np.array(
        [np.random.default_rng([SEED, series_no, int(h)]).standard_normal(2) for h in hours]
    ).reshape(len(hours), 2)
    daily = np.sin(2 * np.pi * (hours + phase) / 24)
    weekly = 0.3 * np.sin(2 * np.pi * hours / (24 * 7))
    temperature = 10 + 8 * np.sin(2 * np.pi * (hours - 4) / 24) + noise[:, 1]
    value = level + amplitude * (daily + weekly) + trend * hours / 24 + noise_sd * noise[:, 0]
    return pd.DataFrame(
        {
            "series_id": name,
            "timestamp": START + pd.to_timedelta(hours, unit="h"),
            "value": np.round(value, 3),
            "temperature": np.round(temperature, 2),
        }
    )


def frame_for(names: tuple[str, ...], start: int, stop: int) -> pd.DataFrame:
    return pd.concat([series_values(n, start, stop) for n in names], ignore_index=True)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    tmp = path.with_name(f".{path.name}.tmp")
    out.to_csv(tmp, index=False)
    tmp.replace(path)


def write_base(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "plants_2026q1.csv"
    parquet_path = folder / "plant_east_2026q1.parquet"
    _write_csv(frame_for(CSV_SERIES, 0, BASE_HOURS), csv_path)
    tmp = parquet_path.with_name(f".{parquet_path.name}.tmp")
    frame_for(PARQUET_SERIES, 0, BASE_HOURS).to_parquet(tmp, index=False)
    tmp.replace(parquet_path)
    return [csv_path, parquet_path]


_CHUNK = re.compile(r"^(?:[0-9a-f]{12}-)?chunk_(\d{4})\.csv$")


def next_chunk_number(landing: Path, archive: Path | None = None) -> int:
    """One more than the last chunk in landing or (once ingested) in the archive."""
    paths = list(landing.glob("chunk_*.csv"))
    if archive is not None:
        paths += archive.glob("*/*chunk_*.csv")
    numbers = [int(m.group(1)) for p in paths if (m := _CHUNK.match(p.name))]
    return max(numbers, default=0) + 1


def write_chunk(
    landing: Path, number: int | None = None, hours: int = CHUNK_HOURS, archive: Path | None = None
) -> Path:
    """Chunk k holds hours [BASE + (k-1)*hours, BASE + k*hours) of every series."""
    landing.mkdir(parents=True, exist_ok=True)
    number = number or next_chunk_number(landing, archive)
    start = BASE_HOURS + (number - 1) * hours
    path = landing / f"chunk_{number:04d}.csv"
    _write_csv(frame_for(tuple(SERIES), start, start + hours), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--next-chunk", action="store_true", help="write the next chunk")
    parser.add_argument("--landing", default="data/landing", help="landing folder")
    parser.add_argument(
        "--archive", default="data/work/archive", help="where ingested files are archived"
    )
    parser.add_argument("--hours", type=int, default=CHUNK_HOURS, help="hours per chunk")
    parser.add_argument("--out", default=str(HERE), help="folder for the base sample")
    args = parser.parse_args()
    if args.next_chunk:
        print(write_chunk(Path(args.landing), hours=args.hours, archive=Path(args.archive)))
    else:
        for path in write_base(Path(args.out)):
            print(path)


if __name__ == "__main__":
    main()
