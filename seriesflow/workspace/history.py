"""The accepted history: every row that passed validation so far.

``history.parquet`` in the workspace holds the accepted rows (schema: series_id,
timestamp, value, covariates, label). Ingest reads it, validate merges new files
into it, and a run that completes commits its validated rows as the new history
and ledgers the files it took (``seriesflow/workspace/commit.py``) -- last, and journaled, so a run
that fails or dies earlier changes nothing.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from seriesflow.config.pipeline import ColumnsConfig
from seriesflow.data.schema import series_schema
from seriesflow.workspace.files import Workspace, read_parquet

# The source tag of history rows in the stacked ingest table (new rows carry their file name).
HISTORY_SOURCE = "<history>"


def accepted_schema(columns: ColumnsConfig) -> pa.Schema:
    """Schema of accepted rows for this config (covariates, and the label if configured)."""
    return series_schema(columns.kept, label=columns.label is not None)


def load_history(workspace: Workspace, columns: ColumnsConfig) -> pd.DataFrame:
    """The accepted rows so far (an empty frame of the right schema before the first run)."""
    if not workspace.history.exists():
        return accepted_schema(columns).empty_table().to_pandas()
    return read_parquet(workspace.history)
