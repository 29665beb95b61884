"""The accepted history: every row that passed validation so far, and how a run commits to it.

``history.parquet`` in the workspace holds the accepted rows (schema: series_id,
timestamp, value, covariates, label). Ingest reads it, validate merges new files
into it, and a run that completes commits its validated rows as the new history
and ledgers the files it took -- last, so a run that fails earlier changes nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa

from tasks.config import ColumnsConfig
from tasks.faults import fault_point
from tasks.io import RunDir, Workspace, atomic_path, read_parquet
from tasks.ledger import INGESTED, LandedFile, append_ledger, ledger_rows
from tasks.schema import series_schema

# The source tag of history rows in the stacked ingest table (new rows carry their file name).
HISTORY_SOURCE = "<history>"


def accepted_schema(columns: ColumnsConfig) -> pa.Schema:
    """Schema of accepted rows for this config (covariates, and the label if configured)."""
    return series_schema(columns.covariates, label=columns.label is not None)


def load_history(workspace: Workspace, columns: ColumnsConfig) -> pd.DataFrame:
    """The accepted rows so far (an empty frame of the right schema before the first run)."""
    if not workspace.history.exists():
        return accepted_schema(columns).empty_table().to_pandas()
    return read_parquet(workspace.history)


def commit_accepted(
    workspace: Workspace, run: RunDir, accepted: list[LandedFile], validated: Path | None = None
) -> None:
    """Make the run's validated rows the accepted history and ledger the files.

    Done last, so a run that fails before registering a model leaves history and
    ledger as they were and the next run picks the same files up again.
    """
    with atomic_path(workspace.history) as tmp:
        fault_point("commit:write")
        shutil.copyfile(validated or run.validated, tmp)
    fault_point("commit:history")
    append_ledger(workspace.ledger, ledger_rows(accepted, INGESTED, run.run_id))
