"""The normalize task a chunk of series at a time: the same file whatever the chunk size, and
no file (whole or partial) when a later chunk fails."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import SERIES_ID, SPLIT
from seriesflow.workspace.files import RunDir, read_json
from tasks.normalize import normalize
from tests.factories import series_frame


def _validated(tmp_path, frame: pd.DataFrame) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.root.mkdir(parents=True)
    frame.to_parquet(run.validated, index=False)
    return run


def test_the_normalized_file_is_the_same_whatever_the_chunk_size(tmp_path):
    frame = series_frame(series=("a", "b", "c", "d"), n=240)
    outputs = {}
    for rows in (240, 500, 10**6):  # one series, two series and every series at a time
        run = _validated(tmp_path / str(rows), frame)
        cfg = PipelineConfig.model_validate({"normalize": {"chunk_rows": rows}})
        normalize.fn(run.validated, run, cfg)
        outputs[rows] = (pq.read_table(run.normalized), read_json(run.scaler))
        assert (
            pq.ParquetFile(run.normalized).metadata.num_row_groups
            == {
                240: 4,
                500: 2,
                10**6: 1,
            }[rows]
        )
    table, scaler = outputs[10**6]
    assert table.num_rows == 4 * 240 and sorted(scaler["series"]) == ["a", "b", "c", "d"]
    assert set(table[SPLIT].to_pylist()) == {"train", "val", "test"}
    for rows in (240, 500):
        assert outputs[rows][0].equals(table)
        assert outputs[rows][1] == scaler


def test_a_failing_later_chunk_leaves_no_normalized_file(tmp_path):
    good = series_frame(series=("a", "b"), n=240)
    short = series_frame(series=("z",), n=2)  # sorts last: the third chunk, after two written
    run = _validated(tmp_path, pd.concat([good, short], ignore_index=True))
    cfg = PipelineConfig.model_validate({"normalize": {"chunk_rows": 240}})
    with pytest.raises(ValueError, match=r"cannot be split into train/val/test \(series 'z'\)"):
        normalize.fn(run.validated, run, cfg)
    assert not run.normalized.exists() and not run.scaler.exists()
    assert sorted(p.name for p in run.root.iterdir()) == [run.validated.name]
    assert set(pd.read_parquet(run.validated)[SERIES_ID]) == {"a", "b", "z"}  # input untouched
