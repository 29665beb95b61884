import pandas as pd
import pytest

from seriesflow.config.pipeline import ColumnsConfig, IngestConfig
from seriesflow.data.errors import DataRejected
from seriesflow.data.reading import read_series_file, stack_with_history
from seriesflow.data.schema import SERIES_ID, SOURCE_FILE, SOURCE_ROW, TIMESTAMP, VALUE
from seriesflow.workspace.history import HISTORY_SOURCE
from tests.factories import series_frame, write_csv

COLUMNS = ColumnsConfig()
INGEST = IngestConfig()


def test_csv_and_parquet_read_to_the_same_frame(tmp_path):
    frame = series_frame(n=30)
    from_csv = read_series_file(write_csv(frame, tmp_path / "a.csv"), COLUMNS, INGEST)
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    from_parquet = read_series_file(tmp_path / "a.parquet", COLUMNS, INGEST)
    assert list(from_csv.columns) == [SERIES_ID, TIMESTAMP, VALUE]
    assert str(from_csv[TIMESTAMP].dtype) == "datetime64[us, UTC]"
    pd.testing.assert_frame_equal(
        from_csv.reset_index(drop=True), from_parquet.reset_index(drop=True), check_dtype=False
    )
    # CSV rows are indexed by file line (header = line 1) so examples point at the line
    assert from_csv.index[0] == 2


def test_configured_column_names_are_renamed(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("sensor,time,reading,temp\ns1,2026-01-01T00:00:00Z,1.5,3\n")
    cols = ColumnsConfig(series_id="sensor", timestamp="time", value="reading", covariates=["temp"])
    frame = read_series_file(path, cols, INGEST)
    assert frame.iloc[0].to_dict() == {
        SERIES_ID: "s1",
        TIMESTAMP: pd.Timestamp("2026-01-01T00:00:00Z"),
        VALUE: 1.5,
        "temp": 3.0,
    }


def test_naive_timestamps_take_the_configured_timezone(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("series_id,timestamp,value\na,2026-07-01 12:00:00,1\n")
    frame = read_series_file(path, COLUMNS, IngestConfig(timezone="Europe/Berlin"))
    assert frame[TIMESTAMP].iloc[0] == pd.Timestamp("2026-07-01T10:00:00Z")


@pytest.mark.parametrize(
    ("content", "check", "column"),
    [
        (b"", "not_empty", None),
        (b"series_id,timestamp,value\n", "not_empty", None),
        (b"series_id,time,value\na,2026-01-01,1\n", "required_columns", "timestamp"),
        (b"series_id,timestamp,value\na,2026-01-01,abc\n", "values_are_numeric", "value"),
        (b"series_id,timestamp,value\na,yesterday,1\n", "timestamp_parses", "timestamp"),
        (
            b"series_id,timestamp,value\na,2026-01-01T00:00:00Z,1\na,2026-01-01T01:00:00,2\n",
            "single_timezone_convention",
            "timestamp",
        ),
        (b"series_id,timestamp,value\na,2026-01-01,\xff\xfe1\n", "utf8_encoding", None),
        (b'series_id,timestamp,value\na,"2026-01-01,1\nb,2,3,4,5\n', "csv_parses", None),
    ],
)
def test_unreadable_files_name_file_check_column_and_row(tmp_path, content, check, column):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataRejected) as caught:
        read_series_file(path, COLUMNS, INGEST)
    failure = caught.value.failures[0]
    assert (failure.file, failure.check, failure.column) == ("bad.csv", check, column)
    assert "bad.csv" in str(caught.value) and check in str(caught.value)
    if check in ("values_are_numeric", "timestamp_parses", "single_timezone_convention"):
        assert failure.examples and failure.examples[0]["row"] >= 2


def test_unknown_extension_and_corrupt_parquet(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataRejected, match="known_file_type"):
        read_series_file(tmp_path / "notes.txt", COLUMNS, INGEST)
    series_frame(n=50).to_parquet(tmp_path / "full.parquet", index=False)
    data = (tmp_path / "full.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataRejected, match="parquet_readable"):
        read_series_file(tmp_path / "cut.parquet", COLUMNS, INGEST)


def test_stack_tags_rows_by_source():
    history = series_frame(n=3)
    new = series_frame(n=2, start=3)
    before_history, before_new = history.copy(), new.copy()
    stacked = stack_with_history(history, [("new.csv", new)])
    assert stacked[SOURCE_FILE].tolist() == [HISTORY_SOURCE] * 6 + ["new.csv"] * 4
    assert stacked[SOURCE_ROW].tolist() == list(range(6)) + list(new.index)
    # the inputs are not mutated: same columns, same values (no source tags added to them)
    pd.testing.assert_frame_equal(history, before_history)
    pd.testing.assert_frame_equal(new, before_new)


def test_date_only_values_are_naive_not_offsets(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("series_id,timestamp,value\na,2026-01-01,1\na,2026-01-02T00:00:00,2\n")
    frame = read_series_file(path, COLUMNS, INGEST)
    assert frame[TIMESTAMP].tolist() == [
        pd.Timestamp("2026-01-01T00:00Z"),
        pd.Timestamp("2026-01-02T00:00Z"),
    ]


def test_label_column_is_read_as_text(tmp_path):
    from seriesflow.data.schema import LABEL

    path = tmp_path / "l.csv"
    path.write_text("series_id,timestamp,value,state\na,2026-01-01T00:00:00Z,1,up\n")
    frame = read_series_file(path, ColumnsConfig(label="state"), INGEST)
    assert frame[LABEL].tolist() == ["up"]
    with pytest.raises(DataRejected, match="required_columns"):
        read_series_file(path, ColumnsConfig(label="class"), INGEST)
