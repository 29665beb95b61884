"""The history's profile and the incremental validation that reads it.

Every verdict, message, example row and merged row of ``validate_arrival`` (new rows
against the profile) must be those of ``validate_arrival_full`` (every file merged into
and profiled with the whole history), and the profile it hands on must be the profile
of the merged rows."""

import numpy as np
import pandas as pd
import pytest

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.arrival import validate_arrival, validate_arrival_full
from seriesflow.data.expectations import GxSession, series_profile
from seriesflow.data.profile import (
    LAST_US,
    MEAN,
    N_VALUES,
    VALUE_MAX,
    VALUE_MIN,
    build_profile,
    series_suite_frame,
)
from seriesflow.data.reading import stack_with_history
from seriesflow.workspace.files import Workspace, write_parquet
from seriesflow.workspace.history import (
    HISTORY_SOURCE,
    accepted_schema,
    append_rows,
    history_version,
    load_history,
    open_table,
    same_rows,
)
from seriesflow.workspace.profile import (
    commit_profile,
    load_profile,
    profile_path,
    read_meta,
    run_profile_path,
    settings_of,
    write_profile,
)
from tests.factories import series_frame

CONFIG = PipelineConfig.model_validate({"window": {"timesteps": 12}})


@pytest.fixture(scope="module")
def session():
    return GxSession()


def _failures(arrival):
    return {
        file: [(f.check, f.column, f.message, f.unexpected_count, f.examples) for f in items]
        for file, items in arrival.rejected.items()
    }


def test_the_profile_holds_what_series_profile_reports_and_the_statistics():
    rows = series_frame(series=("a", "b"), n=50)
    rows = rows.drop(rows.index[[10, 11]])  # a: a gap of two steps
    profile = build_profile(rows, None)
    pd.testing.assert_frame_equal(series_suite_frame(profile), series_profile(rows, None))
    a = rows[rows["series_id"] == "a"]
    assert profile.loc["a", N_VALUES] == 48
    assert profile.loc["a", MEAN] == pytest.approx(a["value"].mean())
    assert profile.loc["a", VALUE_MIN] == a["value"].min()
    assert profile.loc["a", VALUE_MAX] == a["value"].max()
    assert profile.loc["a", LAST_US] == a["timestamp"].iloc[-1].value // 1000


ARRIVALS = {
    # appended rows, a new series, and a file that re-sends accepted rows unchanged
    "append": lambda h: [
        ("more.csv", series_frame(series=("a", "b"), n=40, start=300)),
        ("new.csv", series_frame(series=("c",), n=300)),
        ("resend.csv", series_frame(series=("a",), n=20, start=330)),
    ],
    # a gap too long, a step off the grid, a constant new series, a revision, a back-fill
    "bad": lambda h: [
        ("gap.csv", series_frame(series=("a",), n=10, start=310)),
        (
            "off.csv",
            series_frame(series=("b",), n=5, start=300).assign(
                timestamp=lambda f: f["timestamp"] + pd.Timedelta("30min")
            ),
        ),
        ("flat.csv", series_frame(series=("d",), n=300).assign(value=3.0)),
        ("revise.csv", h.iloc[5:8].assign(value=-1.0)),
        (
            "back.csv",
            h.iloc[[2]].assign(timestamp=lambda f: f["timestamp"] - pd.Timedelta("30min")),
        ),
        ("ok.csv", series_frame(series=("b",), n=3, start=300)),
    ],
    # a later file of the arrival conflicting with an earlier one; an outlier
    "conflict": lambda h: [
        ("first.csv", series_frame(series=("c",), n=300)),
        ("second.csv", series_frame(series=("c",), n=305).assign(value=lambda f: f["value"] + 5)),
        ("spike.csv", series_frame(series=("a",), n=2, start=300).assign(value=1e6)),
    ],
}


@pytest.mark.parametrize("case", sorted(ARRIVALS))
def test_incremental_validation_gives_the_full_paths_verdicts_and_rows(session, case):
    history = series_frame(series=("a", "b"), n=300)
    files = ARRIVALS[case](history)
    stacked = stack_with_history(history, files)
    names = [name for name, _ in files]

    full = validate_arrival_full(stacked, names, CONFIG, HISTORY_SOURCE, session)
    fast = validate_arrival(
        stacked, names, CONFIG, HISTORY_SOURCE, session, profile=build_profile(history, None)
    )

    assert fast.accepted == full.accepted and fast.accepted  # something passes in each case
    assert _failures(fast) == _failures(full)
    pd.testing.assert_frame_equal(fast.merged, full.merged)  # same rows, order and dtypes
    expected = build_profile(full.merged, None)
    kept = ["n_points", "value_span", "off_grid_steps", "max_gap_steps", "frequency"]
    kept += ["first_us", "last_us", "value_min", "value_max", "n_values", "offset"]
    pd.testing.assert_frame_equal(
        fast.profile[kept], expected[kept], check_dtype=False, check_index_type=False
    )
    assert np.allclose(fast.profile[MEAN], expected[MEAN])


def test_the_expected_failures_happen(session):
    history = series_frame(series=("a", "b"), n=300)
    files = ARRIVALS["bad"](history)
    stacked = stack_with_history(history, files)
    fast = validate_arrival(stacked, [n for n, _ in files], CONFIG, HISTORY_SOURCE, session)
    checks = {file: [(f.check, f.column) for f in items] for file, items in fast.rejected.items()}
    assert checks == {
        "gap.csv": [("expect_column_values_to_be_between", "max_gap_steps")],
        "off.csv": [("expect_column_values_to_be_between", "off_grid_steps")],
        "flat.csv": [("expect_column_values_to_be_between", "value_span")],
        "revise.csv": [("no_revision_of_accepted_values", "value")],
        "back.csv": [("no_backfill", "timestamp")],
    }
    assert fast.accepted == ["ok.csv"]
    assert fast.rejected["gap.csv"][0].examples[0]["max_gap_steps"] == 10


def test_the_workspace_profile_is_used_only_for_the_history_version_it_describes(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    run = tmp_path / "run" / "02_validated.parquet"
    rows = series_frame(series=("a",), n=40)
    schema = accepted_schema(CONFIG.columns)
    write_parquet(rows, run)
    meta = {"settings": settings_of(CONFIG), "history_rows": len(rows)}
    write_profile(build_profile(rows, None), run_profile_path(run), meta)

    assert load_profile(workspace, None, 0, CONFIG)[0] is None  # none yet
    # the commit's data step: the Delta append, then the profile stamped with its version
    version = append_rows(workspace, rows, schema, "run-1", 4)
    commit_profile(workspace, run, version)
    assert read_meta(profile_path(workspace))["history_version"] == version
    profile, why = load_profile(workspace, version, len(rows), CONFIG)
    assert why == "" and profile.loc["a", "n_points"] == 40

    other = PipelineConfig.model_validate({"validation": {"frequency": "h"}})
    assert "other validation settings" in load_profile(workspace, version, len(rows), other)[1]
    # a crash between the next append and its profile: the table is a version ahead
    more = series_frame(series=("a",), n=50).iloc[40:]
    later = append_rows(workspace, more, schema, "run-2", 4)
    assert later == version + 1 and len(load_history(workspace, CONFIG.columns)) == 50
    profile, why = load_profile(workspace, later, 50, CONFIG)
    assert profile is None
    assert why == (
        f"profile.parquet describes history version {version} (40 rows), "
        f"not version {later} (50 rows)"
    )
    # the same version with another row count is not it either
    assert load_profile(workspace, version, 39, CONFIG)[0] is None
    # a profile stamped before the table (history.parquet's hash) is rebuilt
    stale = {**meta, "history_sha256": "0" * 64, "history_bytes": 1, "history_mtime_ns": 1}
    write_profile(build_profile(rows, None), profile_path(workspace), stale)
    assert load_profile(workspace, version, len(rows), CONFIG)[0] is None
    run_profile_path(run).unlink()  # a run from before profiles: the stale one goes
    commit_profile(workspace, run, later)
    assert not profile_path(workspace).exists()


def test_a_profile_still_describes_the_table_after_versions_that_only_vacuumed(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    rows = series_frame(series=("a",), n=40)
    schema = accepted_schema(CONFIG.columns)
    append_rows(workspace, rows, schema, "run-1", 4)
    revised = rows.iloc[[5]].assign(value=rows["value"].iloc[5] + 1.0)
    merged = append_rows(workspace, rows.iloc[:0], schema, "run-2", 4, revised=revised)
    meta = {"settings": settings_of(CONFIG), "history_rows": 40, "history_version": merged}
    write_profile(build_profile(rows, None), profile_path(workspace), meta)

    deleted = open_table(workspace).vacuum(
        retention_hours=0, dry_run=False, enforce_retention_duration=False
    )
    vacuumed = history_version(workspace)
    assert deleted and vacuumed == merged + 2  # VACUUM START, VACUUM END: no row changed
    assert same_rows(workspace, merged, vacuumed)
    assert load_profile(workspace, vacuumed, 40, CONFIG)[1] == ""

    later = append_rows(workspace, rows.iloc[:0], schema, "run-3", 4, revised=revised)
    assert later > vacuumed and not same_rows(workspace, merged, later)
    assert load_profile(workspace, later, 40, CONFIG)[0] is None
