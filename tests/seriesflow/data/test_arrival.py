import numpy as np
import pandas as pd
import pytest

from seriesflow.config.pipeline import ColumnsConfig, PipelineConfig, ValidationConfig
from seriesflow.data.arrival import merge_file, validate_arrival
from seriesflow.data.drift import drift_table
from seriesflow.data.expectations import (
    FREQUENCY,
    IN_TIME_ORDER,
    MAX_GAP_STEPS,
    N_POINTS,
    OFF_GRID_STEPS,
    STEPS_FOUND,
    VALUE_SPAN,
    GxSession,
    check_file,
    series_profile,
    with_time_order,
)
from seriesflow.data.reading import stack_with_history
from seriesflow.workspace.history import HISTORY_SOURCE
from tests.factories import series_frame

COLUMNS = ColumnsConfig()
CFG = ValidationConfig()


@pytest.fixture(scope="module")
def session():
    return GxSession()


def test_time_order_flag_per_series():
    frame = series_frame(series=("a", "b"), n=4)
    frame.loc[2, "timestamp"] = frame.loc[0, "timestamp"]  # a goes back in time at row 2
    assert with_time_order(frame)[IN_TIME_ORDER].tolist() == [True, True, False, True] + [True] * 4


def test_series_profile_measures_length_span_grid_and_gaps():
    frame = series_frame(series=("a", "b", "c"), n=50)
    frame = frame.drop(index=range(10, 14))  # a: a 4-step gap
    frame.loc[frame["series_id"] == "b", "value"] = 7.0  # b: constant
    off = frame.index[frame["series_id"] == "c"][5]
    frame.loc[off, "timestamp"] += pd.Timedelta("30min")  # c: one step off the hourly grid
    profile = series_profile(frame, None).set_index("series_id")
    assert profile.loc["a", MAX_GAP_STEPS] == 4 and profile.loc["a", N_POINTS] == 46
    assert profile.loc["b", VALUE_SPAN] == 0.0
    assert profile.loc["c", OFF_GRID_STEPS] == 1  # the one timestamp half an hour off
    assert profile.loc["c", STEPS_FOUND].startswith("0 days 01:00:00 x")
    assert profile.loc["c", STEPS_FOUND].endswith("01:30:00 x1, 0 days 00:30:00 x1")
    assert profile.loc["a", OFF_GRID_STEPS] == 0 and profile.loc["a", FREQUENCY] == "h"


def test_a_series_whose_steps_no_frequency_has_is_off_the_grid():
    times = pd.date_range("2024-01-01", periods=6, freq="45D", tz="UTC")
    frame = pd.DataFrame({"series_id": "x", "timestamp": times, "value": np.arange(6.0)})
    profile = series_profile(frame, None).set_index("series_id")
    assert profile.loc["x", OFF_GRID_STEPS] == 5 and profile.loc["x", FREQUENCY] == ""
    assert profile.loc["x", STEPS_FOUND] == "45 days x5"


def test_merge_rules():
    history = series_frame(n=10)
    resend = series_frame(n=12)  # 10 identical rows + 2 new: fine, identical rows dedupe
    merged, failures = merge_file(history, resend, "resend.csv", allow_revisions=False)
    assert failures == [] and len(merged) == 24

    revised = series_frame(n=10).assign(value=lambda f: f["value"] + 1)
    kept, failures = merge_file(history, revised, "revised.csv", allow_revisions=False)
    assert [f.check for f in failures] == ["no_revision_of_accepted_values"]
    assert failures[0].unexpected_count == 20 and failures[0].examples[0]["series_id"] == "a"
    assert kept is history

    merged, failures = merge_file(history, revised, "revised.csv", allow_revisions=True)
    assert failures == [] and np.allclose(merged["value"], revised["value"])  # later file wins

    backfill = (
        series_frame(n=10)
        .iloc[[4]]
        .assign(timestamp=lambda f: f["timestamp"] + pd.Timedelta("30min"))
    )
    _, failures = merge_file(history, backfill, "old.csv", allow_revisions=False)
    assert [f.check for f in failures] == ["no_backfill"]


def test_merging_files_of_new_series_gives_the_same_sorted_history():
    history = series_frame(series=("b", "d"), n=10)
    for series in (("e", "f"), ("a", "c")):  # after the history's ids, then among them
        rows = series_frame(series=series, n=10)
        rows = pd.concat([rows, rows.iloc[[3]]]).iloc[::-1]  # a repeated row, out of order
        merged, failures = merge_file(history, rows, "new.csv", allow_revisions=False)
        full = pd.concat([history, rows], ignore_index=True)
        full = full.drop_duplicates(subset=["series_id", "timestamp"], keep="last")
        expected = full.sort_values(["series_id", "timestamp"], ignore_index=True)
        assert failures == [] and len(merged) == 40
        pd.testing.assert_frame_equal(merged, expected)


@pytest.mark.parametrize(
    ("change", "check", "column"),
    [
        (
            lambda f: f.assign(value=f["value"].where(f.index != 3, np.nan)),
            "expect_column_values_to_not_be_null",
            "value",
        ),
        (
            lambda f: f.assign(value=f["value"].where(f.index != 3, np.inf)),
            "expect_column_values_to_be_between",
            "value",
        ),
        (
            lambda f: pd.concat([f, f.iloc[[3]]]),
            "expect_compound_columns_to_be_unique",
            "series_id,timestamp",
        ),
        (lambda f: f.iloc[[0, 2, 1, 3, 4]], "expect_column_values_to_be_in_set", "in_time_order"),
    ],
)
def test_row_suite_failures_carry_example_rows(session, change, check, column):
    rows = change(series_frame(series=("a",), n=5))
    verdict = check_file(session, rows, "f.csv", COLUMNS, CFG)
    assert not verdict.ok
    failure = next(f for f in verdict.failures if f.check == check)
    assert failure.column == column and failure.file == "f.csv"
    assert failure.examples and "row" in failure.examples[0]
    assert f"check '{check}'" in failure.describe()


def test_value_range_is_configurable(session):
    rows = series_frame(series=("a",), n=5)
    verdict = check_file(session, rows, "f.csv", COLUMNS, ValidationConfig(value_max=5.0))
    assert [f.check for f in verdict.failures] == ["expect_column_values_to_be_between"]
    assert verdict.failures[0].unexpected_count == 5


def test_good_file_is_used_and_bad_file_left_out(session):
    config = PipelineConfig.model_validate({"window": {"timesteps": 12}})
    good = series_frame(n=300)
    bad = series_frame(series=("c",), n=300).assign(value=np.nan)
    stacked = stack_with_history(series_frame(n=0), [("good.csv", good), ("bad.csv", bad)])
    arrival = validate_arrival(stacked, ["good.csv", "bad.csv"], config, HISTORY_SOURCE, session)
    assert arrival.accepted == ["good.csv"] and list(arrival.rejected) == ["bad.csv"]
    assert len(arrival.merged) == 600 and set(arrival.merged["series_id"]) == {"a", "b"}

    strict = config.model_copy(
        update={"validation": ValidationConfig(on_bad_file="reject_arrival")}
    )
    arrival = validate_arrival(stacked, ["good.csv", "bad.csv"], strict, HISTORY_SOURCE, session)
    assert arrival.accepted == [] and set(arrival.rejected) == {"good.csv", "bad.csv"}
    assert arrival.rejected["good.csv"][0].check == "arrival_rejected"
    assert len(arrival.merged) == 0


def test_files_of_new_series_join_an_existing_history(session):
    # the scale benchmark's arrival: a history, then one file per group of new series
    config = PipelineConfig.model_validate({"window": {"timesteps": 12}})
    history = series_frame(series=("a",), n=300)
    files = [("bc.csv", series_frame(series=("b", "c"), n=300))]
    files.append(("d.csv", series_frame(series=("d",), n=300)))
    stacked = stack_with_history(history, files)
    arrival = validate_arrival(stacked, ["bc.csv", "d.csv"], config, HISTORY_SOURCE, session)
    assert arrival.accepted == ["bc.csv", "d.csv"] and arrival.rejected == {}
    assert len(arrival.merged) == 1200
    assert arrival.merged["series_id"].drop_duplicates().tolist() == ["a", "b", "c", "d"]


def test_short_and_constant_series_are_rejected_on_the_merged_rows(session):
    config = PipelineConfig.model_validate({"window": {"timesteps": 12}})
    short = series_frame(series=("s",), n=10)  # needs 13: 12 inputs and a horizon
    flat = series_frame(series=("f",), n=300).assign(value=3.0)
    stacked = stack_with_history(series_frame(n=0), [("short.csv", short), ("flat.csv", flat)])
    arrival = validate_arrival(stacked, ["short.csv", "flat.csv"], config, HISTORY_SOURCE, session)
    assert arrival.accepted == []
    assert arrival.rejected["short.csv"][0].column == N_POINTS
    assert "too short" in arrival.rejected["short.csv"][0].message
    assert arrival.rejected["flat.csv"][0].column == VALUE_SPAN


def test_drift_against_the_reference():
    rows = series_frame(series=("a", "b"), n=48)
    reference = {
        "a": {"mean": float(rows[rows.series_id == "a"].value.mean()), "sd": 3.5, "n": 100},
        "b": {"mean": -100.0, "sd": 3.5, "n": 100},
    }
    table = drift_table(rows, reference, "x.csv", CFG).set_index("series_id")
    assert not table.loc["a", "drifted"] and table.loc["a", "mean_shift_sd"] < 0.01
    assert table.loc["b", "drifted"] and table.loc["b", "mean_shift_sd"] > 30


def test_data_docs_are_built_into_the_given_folder(tmp_path):
    docs = GxSession(tmp_path / "docs")
    check_file(docs, series_frame(n=5), "f.csv", COLUMNS, CFG)
    index = docs.build_docs()
    assert index == tmp_path / "docs" / "index.html" and index.stat().st_size > 1000
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert len(pages) == 1  # one validation run: the rows of f.csv
    page = pages[0].read_text()
    # the page renders this run's expectations and their outcome
    assert "in_time_order" in page and "never be null" in page and "Succeeded" in page


def test_robust_outliers_name_the_rows_and_spare_new_series_and_flat_ones():
    from seriesflow.config.pipeline import ValidationConfig
    from seriesflow.data.expectations import robust_outliers

    history = series_frame(series=("a", "flat"), n=100, period=10)
    history.loc[history["series_id"] == "flat", "value"] = 5.0
    history.loc[history.index[-3], "value"] = 6.0  # flat but for one point: MAD is 0
    rows = series_frame(series=("a", "flat", "new"), n=4, start=100, period=10)
    rows.index = rows.index + 2  # file lines
    rows.loc[3, "value"] = 1e5  # series a
    rows.loc[rows["series_id"] == "flat", "value"] = 5.0  # the flat series' usual value
    rows.loc[10, "value"] = 1e9  # a new series: nothing to compare with
    cfg = ValidationConfig()

    failure = robust_outliers(rows, history, "f.csv", cfg)

    assert (failure.check, failure.column, failure.unexpected_count) == (
        "robust_outlier",
        "value",
        1,
    )
    assert [(e["row"], e["series_id"], e["value"]) for e in failure.examples] == [(3, "a", 1e5)]
    assert (
        robust_outliers(rows, history, "f.csv", ValidationConfig(outlier_max_robust_z=None)) is None
    )
    # a file of only new series (none in the history) has nothing to be compared with
    only_new = rows[rows["series_id"] == "new"]
    assert robust_outliers(only_new, history, "f.csv", cfg) is None


def test_a_later_file_that_changes_an_earlier_files_rows_is_rejected_naming_both(session):
    # one arrival, two files with the same series_id+timestamp and other values: the files
    # apply in landing order as if each came in its own run, so the first one's rows stay
    config = PipelineConfig.model_validate({"window": {"timesteps": 12}})
    history = series_frame(series=("a",), n=300)
    first = series_frame(series=("b",), n=300)
    second = series_frame(series=("b",), n=310).assign(value=lambda f: f["value"] + 5.0)
    files = [("first.csv", first), ("second.csv", second)]
    stacked = stack_with_history(history, files)
    names = ["first.csv", "second.csv"]

    arrival = validate_arrival(stacked, names, config, HISTORY_SOURCE, session)

    assert arrival.accepted == ["first.csv"] and list(arrival.rejected) == ["second.csv"]
    (failure,) = arrival.rejected["second.csv"]
    assert (failure.check, failure.column) == ("no_conflict_within_arrival", "value")
    assert failure.unexpected_count == 300 and "first.csv" in failure.message
    assert failure.examples[0]["row"] == 0 and failure.examples[0]["series_id"] == "b"
    merged_b = arrival.merged[arrival.merged["series_id"] == "b"]
    assert np.allclose(merged_b["value"], first["value"])  # nothing accepted was lost

    # a row of the history changed by a later file is still a revision of accepted data
    revised = history.iloc[:3].assign(value=0.0)
    stacked = stack_with_history(history, [*files[:1], ("rev.csv", revised)])
    arrival = validate_arrival(stacked, ["first.csv", "rev.csv"], config, HISTORY_SOURCE, session)
    assert [f.check for f in arrival.rejected["rev.csv"]] == ["no_revision_of_accepted_values"]

    # with allow_history_revisions the later file wins, as across runs
    lenient = config.model_copy(
        update={"validation": ValidationConfig(allow_history_revisions=True)}
    )
    arrival = validate_arrival(stack_with_history(history, files), names, lenient, HISTORY_SOURCE)
    assert arrival.accepted == names and arrival.rejected == {}
    merged_b = arrival.merged[arrival.merged["series_id"] == "b"]
    assert np.allclose(merged_b["value"], second["value"]) and len(merged_b) == 310


def test_an_unexpected_error_in_one_files_checks_rejects_that_file_only(session, monkeypatch):
    import seriesflow.data.arrival as arrival_module

    real = arrival_module.robust_outliers

    def breaks_on_bad(rows, merged, file, cfg):
        if file == "bad.csv":
            raise RuntimeError("boom in bad.csv")
        return real(rows, merged, file, cfg)

    monkeypatch.setattr(arrival_module, "robust_outliers", breaks_on_bad)
    config = PipelineConfig.model_validate({"window": {"timesteps": 12}})
    files = [("bad.csv", series_frame(series=("c",), n=300)), ("good.csv", series_frame(n=300))]
    stacked = stack_with_history(series_frame(n=0), files)
    arrival = validate_arrival(stacked, ["bad.csv", "good.csv"], config, HISTORY_SOURCE, session)
    assert arrival.accepted == ["good.csv"] and list(arrival.rejected) == ["bad.csv"]
    (failure,) = arrival.rejected["bad.csv"]
    assert failure.check == "checks_ran" and "RuntimeError: boom in bad.csv" in failure.message


def test_covariates_of_every_kind_must_be_complete_and_statics_constant(session):
    config = PipelineConfig.model_validate(
        {
            "window": {"timesteps": 12},
            "columns": {"past": ["temp"], "future": ["price"], "static": ["size"]},
        }
    )
    good = series_frame(series=("a",), n=300).assign(temp=1.0, price=2.0, size=5.0)
    no_price = series_frame(series=("b",), n=300).assign(temp=1.0, price=2.0, size=5.0)
    no_price.loc[no_price.index[7], "price"] = np.nan
    moving = series_frame(series=("c",), n=300).assign(temp=1.0, price=2.0, size=5.0)
    moving.loc[moving.index[9], "size"] = 6.0
    files = [("good.csv", good), ("no_price.csv", no_price), ("moving.csv", moving)]
    stacked = stack_with_history(series_frame(n=0).assign(temp=0.0, price=0.0, size=0.0), files)
    arrival = validate_arrival(stacked, [f for f, _ in files], config, HISTORY_SOURCE, session)
    assert arrival.accepted == ["good.csv"]
    missing = arrival.rejected["no_price.csv"][0]
    assert missing.column == "price" and missing.check == "expect_column_values_to_not_be_null"
    static = arrival.rejected["moving.csv"][0]
    assert static.check == "static_is_constant" and static.column == "size"
    assert "series ['c']" in static.message and static.examples[0]["size"] == 5.0
