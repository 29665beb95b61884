"""What each stage hands the next: small typed results (paths and counts, never frames).

The flow passes these between tasks; a stage reads the files they point to.
They live here, below every stage, so that no stage imports another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seriesflow.data.schema import REGRESSION
from seriesflow.workspace.ledger import LandedFile


@dataclass(frozen=True)
class IngestResult:
    """What a run picked up: the stacked table, the new files, and those unreadable."""

    path: Path | None
    new_files: list[LandedFile] = field(default_factory=list)
    read_failures: dict[str, list[dict]] = field(default_factory=dict)  # sha256 -> failures
    history_rows: int = 0
    history_version: int | None = None  # the history table version read (None: no table)

    @property
    def skip(self) -> bool:
        """Nothing to train on: no new file (and no forced retrain on the history)."""
        return self.path is None


@dataclass(frozen=True)
class ValidateResult:
    path: Path
    accepted: list[str]
    rejected: list[dict[str, Any]]  # name, sha256, quarantined_to, failures
    rows: int
    series: int


@dataclass(frozen=True)
class EvaluationResult:
    path: Path
    predictions: Path
    season_lengths: list[int]  # the distinct seasons of the series (monthly -> 12, ...)
    plots: list[Path] = field(default_factory=list)
    champion_version: str | None = None
    champion_note: str | None = None
    task: str = REGRESSION
    backtest: Path | None = None
    # pooled test metrics {model: {metric: value}}: on all windows, and head to head
    # with the champion on the windows it could score
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    head_to_head: dict[str, dict[str, float]] = field(default_factory=dict)
    router: Path | None = None  # regression: which model serves each series
    lstm_share: float | None = None  # the share of series the LSTM serves
    # which origins were scored and how they were chosen (evaluate.max_windows_per_series)
    origins: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Registration:
    model_name: str
    model_version: str
    run_id: str
    promoted: bool
    rule: str
    reason: str
    champion_version: str | None
    checks: tuple[dict[str, Any], ...] = ()
