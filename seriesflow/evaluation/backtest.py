"""The backtest: a rolling-origin evaluation of the test period, without re-estimation.

Each series' test windows, in origin order, are cut into K consecutive folds; every
forecast in a fold uses the actual history up to its own origin, and the model (fit
once, on the training part) is re-scored on each fold rather than refit -- refitting
K times would multiply the cost of a retrain by K. The table shows how the errors
move across the test period (one good stretch can carry a single holdout number);
the promotion gate uses the whole holdout. Pure, no Prefect.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from seriesflow.data.schema import (
    ALL_SERIES,
    ALL_WINDOWS,
    CHAMPION,
    CHAMPION_WINDOWS,
    FOLD,
    SERIES_ID,
)
from seriesflow.model.windows import Windows


def backtest_folds(windows: Windows, folds: int) -> np.ndarray:
    """Fold number 1..K of each window [windows]: each series' windows, in origin order,
    cut into K consecutive parts of (nearly) equal size; fold K is the latest."""
    if folds < 1:
        raise ValueError(f"evaluate.backtest_folds must be at least 1 here, got {folds}")
    out = np.zeros(len(windows), dtype=int)
    origin = windows.origin  # [windows], computed once, not per series
    for sid, where in windows.by_series():
        if len(where) < folds:
            raise ValueError(
                f"evaluate.backtest_folds={folds}: series '{sid}' has only {len(where)} "
                "test windows; lower the number of folds"
            )
        ordered = where[np.argsort(origin[where], kind="stable")]
        out[ordered] = np.arange(len(ordered)) * folds // len(ordered) + 1
    return out


def backtest(
    windows: Windows, fold: np.ndarray, scorer: Callable[[np.ndarray], pd.DataFrame]
) -> pd.DataFrame:
    """``scorer(mask)`` -> a metrics table for the windows in ``mask``, once per fold."""
    parts = []
    for k in sorted(set(fold.tolist())):
        mask = fold == k
        times = pd.to_datetime(windows.target_time[mask], utc=True)
        parts.append(scorer(mask).assign(**{FOLD: k, "start": times.min(), "end": times.max()}))
    table = pd.concat(parts, ignore_index=True)
    first = [FOLD, "start", "end"]
    return table[first + [c for c in table.columns if c not in first]]


def backtest_summary(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Pooled ``metric`` per fold (rows) and model (columns); the champion on its windows."""
    pooled = table[table[SERIES_ID] == ALL_SERIES]
    main = pooled[pooled["scope"] == ALL_WINDOWS].pivot(index=FOLD, columns="model", values=metric)
    head = pooled[(pooled["scope"] == CHAMPION_WINDOWS) & (pooled["model"] == CHAMPION)]
    if not head.empty:
        main[CHAMPION] = head.set_index(FOLD)[metric]
    return main
