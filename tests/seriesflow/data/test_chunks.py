"""Validation a chunk of whole series at a time gives what one pass over everything gives."""

import numpy as np
import pandas as pd
import pytest

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.arrival import report_rows, validate_arrival
from seriesflow.data.chunks import chunked, plan_chunks, shift_offsets, spill, validate_chunks
from seriesflow.data.expectations import GxSession
from seriesflow.data.profile import build_profile
from seriesflow.data.reading import stack_with_history
from seriesflow.data.schema import SERIES_ID
from seriesflow.workspace.files import write_parquet
from seriesflow.workspace.history import HISTORY_SOURCE
from seriesflow.workspace.profile import read_profile, write_profile
from tests.factories import series_frame

SERIES = tuple("abcdefgh")
FILES = ["ad.csv", "eh.csv", "new.csv", "conflict.csv", "after.csv", "dupes.csv", "empty.csv"]


@pytest.fixture(scope="module")
def session():
    return GxSession()


def _arrival() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, the stacked ingest table): a history of 8 series, then 7 files, among them
    bad ones whose failures fall in different chunks, and one that fails only once a bad
    file in another chunk is left out."""
    history = series_frame(series=SERIES, n=300)
    ahead = series_frame(series=SERIES, n=330)
    ahead = ahead[ahead["timestamp"] > history["timestamp"].max()]
    ad = ahead[ahead[SERIES_ID].isin(list("abcd"))].reset_index(drop=True)
    eh = ahead[ahead[SERIES_ID].isin(list("efgh"))].reset_index(drop=True)
    eh.loc[eh.index[eh[SERIES_ID] == "h"][4], "value"] = np.nan  # h: a missing value
    new = series_frame(series=("i", "j"), n=300, seed=3)
    conflict = ad[ad[SERIES_ID] == "b"].assign(value=lambda f: f["value"] + 1.0)  # ad's rows
    # f's next rows: they follow eh's, so with eh left out (h's row) they leave a gap
    later = series_frame(series=SERIES, n=340)
    after = later[(later[SERIES_ID] == "f") & (later["timestamp"] > ahead["timestamp"].max())]
    # a series_id+timestamp twice, in series a and in series j (two chunks): counts add up
    extra = series_frame(series=("a", "j"), n=360, seed=5)
    extra = extra[extra["timestamp"] > ahead["timestamp"].max()].reset_index(drop=True)
    dupes = pd.concat([extra, extra.iloc[[0, 1, 40]]], ignore_index=True)
    empty = ad.iloc[:0]
    files = [ad, eh, new, conflict, after.reset_index(drop=True), dupes, empty]
    return history, stack_with_history(history, list(zip(FILES, files, strict=True)))


def _chunked(tmp_path, stacked, config, session, profile, chunk_rows=700):
    write_parquet(stacked, tmp_path / "ingested.parquet")
    chunks = plan_chunks(tmp_path / "ingested.parquet", chunk_rows)
    paths = spill(tmp_path / "ingested.parquet", chunks, tmp_path / "chunks")
    written: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}

    def write(k, _stacked, arrival):
        written[k] = (arrival.merged, arrival.profile)

    arrival = validate_chunks(paths, FILES, config, HISTORY_SOURCE, session, None, profile, write)
    merged = pd.concat([written[k][0] for k in sorted(written)], ignore_index=True)
    profiles, before = [], 0
    for k in sorted(written):
        profiles.append(shift_offsets(written[k][1], before))
        before += len(written[k][0])
    return chunks, arrival, merged, pd.concat(profiles)


def _outcome(arrival):
    failures = {
        file: sorted((f.check, f.column or "", f.unexpected_count or 0) for f in items)
        for file, items in arrival.rejected.items()
    }
    return arrival.accepted, failures, report_rows(arrival.reports)


@pytest.mark.parametrize("with_profile", [False, True])
def test_chunked_validation_gives_the_verdicts_rows_and_profile_of_one_pass(
    tmp_path, session, with_profile
):
    config = PipelineConfig.model_validate({"window": {"timesteps": 12}})
    history, stacked = _arrival()
    profile = None
    if with_profile:  # as the workspace keeps it (series-indexed, offsets into the history)
        write_profile(build_profile(history, None), tmp_path / "p.parquet", {})
        profile = read_profile(tmp_path / "p.parquet")
    whole = validate_arrival(stacked, FILES, config, HISTORY_SOURCE, session, None, profile)
    chunks, arrival, merged, kept = _chunked(tmp_path, stacked, config, session, profile)

    chunk_of = {name: k for k, ids in enumerate(chunks) for name in ids}
    assert chunk_of["f"] != chunk_of["h"] and chunk_of["a"] != chunk_of["j"]
    accepted, failures, reports = _outcome(arrival)
    assert accepted == ["ad.csv", "new.csv", "empty.csv"]
    assert sorted(failures) == ["after.csv", "conflict.csv", "dupes.csv", "eh.csv"]
    # the gap after.csv leaves shows only once eh.csv (failing in h's chunk) is left out of f's
    assert [c for c, _, _ in failures["after.csv"]] == ["expect_column_values_to_be_between"]
    # the duplicates of dupes.csv are in two chunks (a's and j's): counted once each
    assert ("expect_compound_columns_to_be_unique", "series_id,timestamp", 6) in failures[
        "dupes.csv"
    ]
    assert (accepted, failures, reports) == _outcome(whole)
    pd.testing.assert_frame_equal(merged, whole.merged.reset_index(drop=True))
    pd.testing.assert_frame_equal(kept, whole.profile)


def test_reject_arrival_keeps_every_chunks_history_and_rejects_every_file(tmp_path, session):
    config = PipelineConfig.model_validate(
        {"window": {"timesteps": 12}, "validation": {"on_bad_file": "reject_arrival"}}
    )
    history, stacked = _arrival()
    whole = validate_arrival(stacked, FILES, config, HISTORY_SOURCE, session)
    _, arrival, merged, kept = _chunked(tmp_path, stacked, config, session, None)

    assert arrival.accepted == [] and sorted(arrival.rejected) == sorted(FILES)
    assert arrival.rejected["ad.csv"][0].check == "arrival_rejected"
    assert _outcome(arrival) == _outcome(whole)
    pd.testing.assert_frame_equal(merged, whole.merged.reset_index(drop=True))
    pd.testing.assert_frame_equal(merged, history.reset_index(drop=True), check_dtype=False)
    assert kept["n_points"].sum() == len(history)


def test_chunks_are_whole_series_of_about_chunk_rows_and_spill_keeps_each_rows_order(tmp_path):
    _, stacked = _arrival()
    stacked.loc[5, SERIES_ID] = None  # a row without an id goes to the first chunk
    write_parquet(stacked, tmp_path / "in.parquet")
    chunks = plan_chunks(tmp_path / "in.parquet", 1000)
    counts = stacked[SERIES_ID].value_counts()
    assert [i for c in chunks for i in c] == sorted(counts.index)
    assert all(counts[list(c)].sum() <= 1000 or len(c) == 1 for c in chunks)
    paths = spill(
        tmp_path / "in.parquet",
        chunks,
        tmp_path / "out",
    )
    parts = [pd.read_parquet(p) for p in paths]
    assert sum(map(len, parts)) == len(stacked)
    for c, part in zip(chunks, parts, strict=True):
        ids = set(part[SERIES_ID].dropna())
        assert ids == set(c)
        rows = stacked[stacked[SERIES_ID].isin(c)]
        pd.testing.assert_frame_equal(
            part.dropna(subset=[SERIES_ID]).reset_index(drop=True), rows.reset_index(drop=True)
        )
    assert parts[0][SERIES_ID].isna().sum() == 1

    config = PipelineConfig()
    rows = config.validation.chunk_rows
    assert chunked(rows + 1, config) and not chunked(rows, config)
    share = config.model_copy(
        update={"validation": config.validation.model_copy(update={"max_value_null_fraction": 0.1})}
    )
    assert not chunked(rows + 1, share)  # a share of the whole file: one pass
