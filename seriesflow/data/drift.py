"""Drift: arriving values per series against the champion's training statistics (pure).

Level shift (in the reference's standard deviations) and spread ratio, per
series of one file; series the champion never saw have no reference and are not
reported. ``validation.drift`` decides whether drift only warns or rejects.
"""

from __future__ import annotations

import math

import pandas as pd

from seriesflow.config.pipeline import ValidationConfig
from seriesflow.data.errors import CheckFailure
from seriesflow.data.schema import SERIES_ID, VALUE

DRIFT_COLUMNS = [
    "file",
    SERIES_ID,
    "reference_mean",
    "batch_mean",
    "mean_shift_sd",
    "reference_sd",
    "batch_sd",
    "sd_ratio",
    "drifted",
]


def drift_table(
    rows: pd.DataFrame, reference: dict[str, dict[str, float]], file: str, cfg: ValidationConfig
) -> pd.DataFrame:
    """Per series of one batch: level shift (in reference SDs) and spread ratio.

    ``reference`` holds the mean/sd of each series' training part for the
    current champion (its scaler.json). Series the champion never saw have no
    reference and are not reported.
    """
    records = []
    for series_id, group in rows.groupby(SERIES_ID, sort=True):
        ref = reference.get(str(series_id))
        values = group[VALUE].dropna().to_numpy(dtype=float)
        if ref is None or not len(values):
            continue
        ref_sd = ref["sd"] if ref["sd"] > 0 else math.nan
        batch_sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        shift = abs(float(values.mean()) - ref["mean"]) / ref_sd
        ratio = batch_sd / ref_sd
        spread_bad = math.isfinite(ratio) and (
            ratio > cfg.drift_max_sd_ratio or ratio < 1 / cfg.drift_max_sd_ratio
        )
        records.append(
            {
                "file": file,
                SERIES_ID: str(series_id),
                "reference_mean": ref["mean"],
                "batch_mean": float(values.mean()),
                "mean_shift_sd": shift,
                "reference_sd": ref["sd"],
                "batch_sd": batch_sd,
                "sd_ratio": ratio,
                "drifted": bool(
                    (math.isfinite(shift) and shift > cfg.drift_max_mean_shift) or spread_bad
                ),
            }
        )
    return pd.DataFrame.from_records(records, columns=DRIFT_COLUMNS)


def drift_failure(table: pd.DataFrame, file: str, cfg: ValidationConfig) -> CheckFailure | None:
    drifted = table[table["drifted"]]
    if drifted.empty:
        return None
    return CheckFailure(
        file,
        "no_drift",
        VALUE,
        f"values drifted from the champion's training data (level shift > "
        f"{cfg.drift_max_mean_shift} SD or spread ratio beyond {cfg.drift_max_sd_ratio}x) in "
        f"series {drifted[SERIES_ID].tolist()}; set validation.drift=warn to accept it",
        len(drifted),
        drifted.drop(columns=["file"]).to_dict("records"),
    )
