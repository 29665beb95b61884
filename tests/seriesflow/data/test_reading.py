import pandas as pd
import pytest

from seriesflow.config.pipeline import ColumnsConfig, IngestConfig
from seriesflow.data.errors import DataRejected
from seriesflow.data.reading import read_future, read_series_file, stack_with_history
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


# ---------------------------------------------------------------- odd inputs (issue #18)


def test_series_ids_that_spell_missing_values_are_ids(tmp_path):
    # "NA" is Namibia; only the value column keeps the missing-value spellings
    path = tmp_path / "ids.csv"
    path.write_text(
        "series_id,timestamp,value\n"
        "NA,2026-01-01T00:00:00Z,1\nNone,2026-01-01T00:00:00Z,2\n"
        "null,2026-01-01T00:00:00Z,N/A\nnan,2026-01-01T00:00:00Z,NA\n"
    )
    frame = read_series_file(path, COLUMNS, INGEST)
    assert frame[SERIES_ID].tolist() == ["NA", "None", "null", "nan"]
    assert frame[VALUE].tolist()[:2] == [1.0, 2.0] and frame[VALUE].iloc[2:].isna().all()


@pytest.mark.parametrize("blank", ["", "  "])
def test_rows_without_a_series_id_are_rejected_with_their_lines(tmp_path, blank):
    # one file's empty ids used to reach the ingest write and fail the whole run
    rows = [f"a,2026-01-01T{h:02d}:00:00Z,{h}" for h in range(4)]
    rows[1] = f"{blank},2026-01-01T01:00:00Z,1"
    rows[3] = f"{blank},2026-01-01T03:00:00Z,3"
    path = tmp_path / "ids.csv"
    path.write_text("series_id,timestamp,value\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataRejected) as caught:
        read_series_file(path, COLUMNS, INGEST)
    failure = caught.value.failures[0]
    assert (failure.file, failure.check, failure.column) == ("ids.csv", "not_null", SERIES_ID)
    assert failure.unexpected_count == 2
    assert [e["row"] for e in failure.examples] == [3, 5]  # file lines, header = 1


def test_parquet_rows_without_series_id_or_timestamp_are_rejected(tmp_path):
    frame = series_frame(n=4)
    frame["series_id"] = frame["series_id"].astype(object)
    frame.loc[2, "series_id"] = None
    frame.to_parquet(tmp_path / "ids.parquet", index=False)
    with pytest.raises(DataRejected) as caught:
        read_series_file(tmp_path / "ids.parquet", COLUMNS, INGEST)
    failure = caught.value.failures[0]
    assert (failure.check, failure.column, failure.examples[0]["row"]) == ("not_null", SERIES_ID, 2)

    frame = series_frame(n=4)
    frame.loc[1, "timestamp"] = pd.NaT
    frame.to_parquet(tmp_path / "ts.parquet", index=False)
    with pytest.raises(DataRejected) as caught:
        read_series_file(tmp_path / "ts.parquet", COLUMNS, INGEST)
    failure = caught.value.failures[0]
    assert (failure.check, failure.column, failure.examples[0]["row"]) == ("not_null", TIMESTAMP, 1)


def test_ingest_schema_check_names_the_column_and_rows_of_a_wrong_type():
    from seriesflow.data.reading import check_ingest_schema

    frame = pd.DataFrame(
        {
            SERIES_ID: ["a", "a", "a"],
            TIMESTAMP: pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True),
            VALUE: pd.Series([1.0, "x", 3.0], dtype=object, index=[2, 3, 4]),
        },
        index=[2, 3, 4],
    )
    with pytest.raises(DataRejected) as caught:
        check_ingest_schema(frame, "t.csv", COLUMNS)
    failure = caught.value.failures[0]
    assert (failure.file, failure.check, failure.column) == ("t.csv", "ingest_schema", VALUE)
    assert failure.unexpected_count == 1 and failure.examples[0]["row"] == 3
    check_ingest_schema(frame.assign(**{VALUE: [1.0, 2.0, None]}), "t.csv", COLUMNS)  # passes


def test_nanosecond_timestamps_keep_microseconds_or_are_rejected_by_name(tmp_path):
    # 9-digit fractions used to raise TypeError ("could not read the file")
    path = tmp_path / "ns.csv"
    path.write_text(
        "series_id,timestamp,value\n"
        "a,2026-01-01T00:00:00.123456000Z,1\na,2026-01-01T01:00:00.000000000Z,2\n"
    )
    frame = read_series_file(path, COLUMNS, INGEST)
    assert frame[TIMESTAMP].tolist() == [
        pd.Timestamp("2026-01-01T00:00:00.123456Z"),
        pd.Timestamp("2026-01-01T01:00:00Z"),
    ]
    assert str(frame[TIMESTAMP].dtype) == "datetime64[us, UTC]"
    path.write_text(
        "series_id,timestamp,value\na,2026-01-01T00:00:00Z,1\na,2026-01-01T01:00:00.123456789Z,2\n"
    )
    with pytest.raises(DataRejected) as caught:
        read_series_file(path, COLUMNS, INGEST)
    failure = caught.value.failures[0]
    assert (failure.check, failure.column, failure.examples[0]["row"]) == (
        "timestamp_precision",
        TIMESTAMP,
        3,
    )
    # a Parquet nanosecond column gets the same rule (it used to be cut without a word)
    stamps = pd.to_datetime(
        ["2026-01-01 00:00:00", "2026-01-01 01:00:00.000000001"], utc=True, format="ISO8601"
    )
    pd.DataFrame(
        {SERIES_ID: ["a", "a"], TIMESTAMP: stamps.as_unit("ns"), VALUE: [1.0, 2.0]}
    ).to_parquet(tmp_path / "ns.parquet", index=False)
    with pytest.raises(DataRejected, match="timestamp_precision"):
        read_series_file(tmp_path / "ns.parquet", COLUMNS, INGEST)


@pytest.mark.parametrize(
    ("local", "why"), [("2026-10-25 02:30:00", "ambiguous"), ("2026-03-29 02:30:00", "nonexistent")]
)
def test_naive_parquet_times_a_dst_change_breaks_are_rejected_like_csv(tmp_path, local, why):
    berlin = IngestConfig(timezone="Europe/Berlin")
    stamps = pd.to_datetime(["2026-01-01 00:00:00", local])
    pd.DataFrame({SERIES_ID: ["a", "b"], TIMESTAMP: stamps, VALUE: [1.0, 2.0]}).to_parquet(
        tmp_path / "dst.parquet", index=False
    )
    path = tmp_path / "dst.csv"
    path.write_text(f"series_id,timestamp,value\na,2026-01-01 00:00:00,1\nb,{local},2\n")
    for file, row in (("dst.parquet", 1), ("dst.csv", 3)):
        with pytest.raises(DataRejected) as caught:
            read_series_file(tmp_path / file, COLUMNS, berlin)
        failure = caught.value.failures[0]
        assert (failure.file, failure.check, failure.column) == (
            file,
            "timestamp_parses",
            TIMESTAMP,
        )
        assert "Europe/Berlin" in failure.message, why
        assert failure.examples[0]["row"] == row and failure.examples[0][SERIES_ID] == "b"


@pytest.mark.parametrize("name", ["a\nb.csv", "x\r.csv", "fake\u2028line.csv", "evil\u202ecsv.csv"])
def test_file_names_with_control_characters_are_rejected_and_shown_escaped(tmp_path, name):
    path = write_csv(series_frame(n=3), tmp_path / "good.csv")
    with pytest.raises(DataRejected) as caught:
        read_series_file(path, COLUMNS, INGEST, name=name)
    failure = caught.value.failures[0]
    assert (failure.file, failure.check) == (name, "file_name_printable")
    text = str(caught.value)
    assert repr(name) in text and "\n" not in text and "\u2028" not in text
    assert "\u202e" not in text and "\r" not in text


def test_future_covariate_files_read_as_rows_with_the_value_empty(tmp_path):
    columns = ColumnsConfig(series_id="plant", future=["price"])
    folder = tmp_path / "future"
    pd.DataFrame(
        {"plant": ["a", "a"], "timestamp": ["2026-04-01T01:00:00", "2026-04-01T02:00:00"],
         "price": [1.5, 2.5], "ignored": [0, 0]}
    ).to_csv(folder.mkdir() or folder / "prices.csv", index=False)  # fmt: skip
    rows = read_future(folder, columns, IngestConfig())
    assert list(rows.columns) == [SERIES_ID, TIMESTAMP, "price", VALUE]
    assert rows["price"].tolist() == [1.5, 2.5] and rows[VALUE].isna().all()
    assert rows[TIMESTAMP].tolist() == list(
        pd.date_range("2026-04-01T01:00", periods=2, freq="h", tz="UTC")
    )  # an offset-less timestamp is ingest.timezone's (UTC)
    pd.DataFrame({"plant": ["a"], "timestamp": ["2026-04-01"]}).to_csv(
        folder / "no_price.csv", index=False
    )
    with pytest.raises(DataRejected) as error:
        read_future(folder, columns, IngestConfig())
    failure = error.value.failures[0]
    assert (failure.file, failure.check, failure.column) == (
        "no_price.csv",
        "required_columns",
        "price",
    )
