"""Bad input, each dropped into the landing folder of a workspace that has a champion.

Every case asserts: the run ends ``rejected`` (non-zero exit, Failed state) with a
message naming the file and the failed check; the file is quarantined with a JSON
reason and ledgered as rejected; the accepted history and the champion are
exactly as before; no temporary or half-written Parquet file is left anywhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.retrain import retrain
from seriesflow.workspace.files import Workspace, read_json
from seriesflow.workspace.history import history_version, load_history
from seriesflow.workspace.ledger import load_ledger
from tests.factories import START, series_frame, tiny_config, write_csv

PERIOD = 10
BASE_N = 300


def _next(n=48, series=("a", "b")):
    """The next rows after the champion's data: valid unless a case breaks them."""
    return series_frame(series=series, n=n, start=BASE_N, period=PERIOD)


def _csv(frame: pd.DataFrame) -> bytes:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index=False).encode()


def _parquet_bytes(tmp: Path) -> bytes:
    path = tmp / "whole.parquet"
    _next().to_parquet(path, index=False)
    return path.read_bytes()


def _mixed_tz() -> bytes:
    text = _csv(_next()).decode().splitlines()
    text[5] = text[5].replace("Z,", ",")  # one timestamp without an offset
    return ("\n".join(text) + "\n").encode()


# name, file name, bytes (or a callable of tmp_path), expected check, expected column
CASES = [
    (
        "malformed_csv",
        "m.csv",
        b'series_id,timestamp,value\na,"2026-03-13T12:00:00Z,1\nb,1,2,3\n',
        "csv_parses",
        None,
    ),
    ("empty_file", "empty.csv", b"", "not_empty", None),
    ("header_only", "header.csv", b"series_id,timestamp,value\n", "not_empty", None),
    (
        "missing_column",
        "missing.csv",
        _csv(_next().drop(columns=["value"])),
        "required_columns",
        "value",
    ),
    (
        "renamed_column",
        "renamed.csv",
        _csv(_next().rename(columns={"timestamp": "time"})),
        "required_columns",
        "timestamp",
    ),
    (
        "non_numeric",
        "text.csv",
        _csv(
            _next()
            .astype({"value": object})
            .assign(value=lambda f: f["value"].where(f.index != 7, "12,5 kg"))
        ),
        "values_are_numeric",
        "value",
    ),
    (
        "nan_value",
        "nan.csv",
        _csv(_next().assign(value=lambda f: f["value"].where(f.index != 3, np.nan))),
        "expect_column_values_to_not_be_null",
        "value",
    ),
    (
        "inf_value",
        "inf.csv",
        _csv(_next().assign(value=lambda f: f["value"].where(f.index != 3, np.inf))),
        "expect_column_values_to_be_between",
        "value",
    ),
    (
        "duplicate_in_file",
        "dup.csv",
        _csv(pd.concat([_next(), _next().iloc[[5]]])),
        "expect_compound_columns_to_be_unique",
        "series_id,timestamp",
    ),
    (
        "duplicate_against_history",
        "again.csv",
        _csv(series_frame(n=5, start=BASE_N - 5, period=PERIOD).assign(value=0.0)),
        "no_revision_of_accepted_values",
        "value",
    ),
    (
        "out_of_order",
        "order.csv",
        _csv(_next().iloc[[0, 2, 1, *range(3, 96)]]),
        "expect_column_values_to_be_in_set",
        "in_time_order",
    ),
    ("mixed_timezones", "tz.csv", _mixed_tz(), "single_timezone_convention", "timestamp"),
    (
        "unparseable_dates",
        "dates.csv",
        _csv(_next()).replace(b"2026-03-13T12:00:00Z", b"13/03/2026 noon"),
        "timestamp_parses",
        "timestamp",
    ),
    (
        "non_utf8",
        "latin1.csv",
        "series_id,timestamp,value\nMünchen,2026-03-13T12:00:00Z,1\n".encode("latin-1"),
        "utf8_encoding",
        None,
    ),
    (
        "truncated_parquet",
        "cut.parquet",
        lambda tmp: _parquet_bytes(tmp)[:300],
        "parquet_readable",
        None,
    ),
    (
        # 1,200 columns: past ingest.max_columns (1,000), refused from its header, unparsed
        "too_many_columns",
        "wide.csv",
        (",".join(f"c{i}" for i in range(1_200)) + "\n" + ",".join(["1"] * 1_200) + "\n").encode(),
        "max_columns",
        None,
    ),
    (
        "absurd_value",
        "huge.csv",
        _csv(_next().assign(value=lambda f: f["value"].where(f.index != 9, 1e12))),
        "expect_column_values_to_be_between",
        "value",
    ),
    (
        "too_short_series",
        "short.csv",
        _csv(series_frame(series=("new",), n=10, period=PERIOD)),
        "expect_column_values_to_be_between",
        "n_points",
    ),
    (
        # the pooled row of every metrics table is "__all__": a series of that name would
        # share its id and decide the gate
        "reserved_series_id",
        "all.csv",
        _csv(series_frame(series=("__all__",), n=BASE_N, period=PERIOD)),
        "expect_column_values_to_not_be_in_set",
        "series_id",
    ),
    (
        "series_id_too_long",
        "long.csv",
        _csv(series_frame(series=("x" * 300,), n=BASE_N, period=PERIOD)),
        "expect_column_value_lengths_to_be_between",
        "series_id",
    ),
    (
        # some rows with an empty series_id among good ones (144 of 288): this used to reach
        # the ingest stage's Parquet write, fail the run and stay in landing for every run
        "empty_series_id",
        "noid.csv",
        _csv(_next(n=144).assign(series_id=lambda f: f["series_id"].where(f.index % 2 == 0, ""))),
        "not_null",
        "series_id",
    ),
    (
        # nine-digit fractions of a second used to end as "could not read the file"
        "nanosecond_timestamps",
        "ns.csv",
        _csv(_next()).replace(b"2026-03-13T12:00:00Z", b"2026-03-13T12:00:00.123456789Z"),
        "timestamp_precision",
        "timestamp",
    ),
    (
        "constant_series",
        "flat.csv",
        _csv(series_frame(series=("flat",), n=300, period=PERIOD).assign(value=5.0)),
        "expect_column_values_to_be_between",
        "value_span",
    ),
]


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory):
    """A workspace whose first run made a champion (value_max bounds absurd values)."""
    root = tmp_path_factory.mktemp("bad-input")
    landing = root / "landing"
    write_csv(series_frame(n=BASE_N, period=PERIOD), landing / "base.csv")
    cfg = tiny_config(root / "work", landing, train={"epochs": 30}, validation={"value_max": 1e6})
    state = retrain(cfg, return_state=True)
    result = state.result(raise_on_failure=False)
    assert result["status"] == "completed" and result["promoted"], result
    return cfg


def _fingerprint(cfg):
    workspace = Workspace(cfg.paths.workspace_path())
    mlflow.set_tracking_uri(cfg.register.tracking_uri)
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(cfg.register.model_name, "champion")
    versions = client.search_model_versions(f"name='{cfg.register.model_name}'")
    return history_version(workspace), champion.version, len(versions)


def _no_partial_files(root: Path) -> None:
    assert not [p for p in root.rglob(".tmp-*")], "temporary files left behind"
    for path in root.rglob("*.parquet"):
        if "quarantine" not in path.parts:  # quarantine keeps bad files as they came
            pq.read_metadata(path)  # every Parquet file the pipeline wrote is whole


@pytest.mark.parametrize(
    ("case", "name", "content", "check", "column"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_file_is_rejected_quarantined_and_changes_nothing(
    trained, tmp_path, case, name, content, check, column
):
    cfg = trained
    workspace = Workspace(cfg.paths.workspace_path())
    before = _fingerprint(cfg)
    data = content(tmp_path) if callable(content) else content
    (cfg.paths.landing_path() / name).write_bytes(data)

    state = retrain(cfg, return_state=True)
    result = state.result(raise_on_failure=False)

    assert state.is_failed() and result["status"] == "rejected", result
    assert state.name == "Rejected"  # told apart from a broken pipeline (a plain Failed)
    assert result["rejected_files"] == [name]
    assert name in result["reason"] and f"check '{check}'" in result["reason"], result["reason"]
    if column:
        assert f"column '{column}'" in result["reason"]
    assert not (cfg.paths.landing_path() / name).exists()
    quarantined = list(workspace.quarantine.rglob(name)) + list(
        workspace.quarantine.rglob(f"*-{name}")
    )
    assert quarantined and quarantined[0].read_bytes() == data
    reason = read_json(quarantined[0].with_name(quarantined[0].name + ".reason.json"))
    assert reason["failures"][0]["check"] == check
    ledger = load_ledger(workspace.ledger)
    assert ledger[ledger["name"] == name]["status"].tolist() == ["rejected"]
    assert _fingerprint(cfg) == before
    run_dir = Path(result["run_dir"])
    assert not (run_dir / "02_validated.parquet").exists()
    _no_partial_files(cfg.paths.workspace_path())

    # the next run, with the same bytes in landing again: not retried (the ledger knows them),
    # so a bad file never fails the run after the one that rejected it; the copy is claimed
    # and goes to quarantine beside the first (it used to stay in landing for good)
    (cfg.paths.landing_path() / name).write_bytes(data)
    again_state = retrain(cfg, return_state=True)
    again = again_state.result(raise_on_failure=False)
    assert again["status"] == "skipped" and not again_state.is_failed(), again
    assert _fingerprint(cfg) == before
    assert ledger.equals(load_ledger(workspace.ledger))  # nothing new ledgered
    assert not (cfg.paths.landing_path() / name).exists()
    copies = list(workspace.quarantine.rglob(name)) + list(workspace.quarantine.rglob(f"*-{name}"))
    assert [c.read_bytes() for c in copies] == [data, data]
    assert ledger[ledger["name"] == name]["status"].tolist() == ["rejected"]


def test_good_file_next_to_bad_file_trains_on_the_good_one(trained):
    cfg = trained
    workspace = Workspace(cfg.paths.workspace_path())
    history_rows = len(load_history(workspace, cfg.columns))
    landing = cfg.paths.landing_path()
    (landing / "good.csv").write_bytes(_csv(_next()))
    (landing / "bad.csv").write_bytes(_csv(_next().assign(value=np.nan)))

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "completed", result
    assert result["new_files"] == ["good.csv"] and result["rejected_files"] == ["bad.csv"]
    assert result["rows"] == history_rows + 96
    assert len(load_history(workspace, cfg.columns)) == history_rows + 96
    assert not (landing / "bad.csv").exists() and not (landing / "good.csv").exists()
    assert list((workspace.root / "archive").glob("*/good.csv"))  # retention.landed: archive
    assert list(workspace.quarantine.rglob("bad.csv"))
    _no_partial_files(cfg.paths.workspace_path())
    shutil.rmtree(workspace.quarantine)


def _after_good():
    """The 48 rows per series after good.csv's (the last file accepted above)."""
    return series_frame(series=("a", "b"), n=48, start=BASE_N + 48, period=PERIOD)


def _without_range(cfg):
    return cfg.model_copy(
        update={"validation": cfg.validation.model_copy(update={"value_max": None})}
    )


def test_value_beyond_float32_is_rejected_even_without_a_configured_range(trained, tmp_path):
    cfg = _without_range(trained)
    before = _fingerprint(cfg)
    frame = _after_good()
    frame.loc[7, "value"] = 1e39  # finite as float64, inf as float32
    (cfg.paths.landing_path() / "f32.csv").write_bytes(_csv(frame))

    state = retrain(cfg, return_state=True)
    result = state.result(raise_on_failure=False)

    assert result["status"] == "rejected", result
    assert "check 'expect_column_values_to_be_between'" in result["reason"]
    assert "float32" in result["reason"] and '"value": 1e+39' in result["reason"]
    # the state's message is what the alert automation sends (automations.yaml): the file,
    # the check, the column and the count, never a data row
    assert state.message.startswith("f32.csv: check 'expect_column_values_to_be_between' ")
    assert "column 'value' (1 rows)" in state.message and "1e+39" not in state.message
    assert _fingerprint(cfg) == before
    _no_partial_files(cfg.paths.workspace_path())


def test_gross_outlier_against_history_is_rejected_with_its_rows(trained):
    cfg = _without_range(trained)
    before = _fingerprint(cfg)
    frame = _after_good()
    frame.loc[[5, 60], "value"] = [4.0e6, -2.5e5]  # within float32, absurd for these series
    (cfg.paths.landing_path() / "spike.csv").write_bytes(_csv(frame))

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "rejected", result
    assert "check 'robust_outlier'" in result["reason"] and "column 'value'" in result["reason"]
    reason = read_json(
        next(Workspace(cfg.paths.workspace_path()).quarantine.rglob("spike.csv.reason.json"))
    )
    failure = reason["failures"][0]
    assert failure["unexpected_count"] == 2
    assert [e["value"] for e in failure["examples"]] == [4.0e6, -2.5e5]
    assert [e["row"] for e in failure["examples"]] == [7, 62]  # file lines (header = 1)
    assert _fingerprint(cfg) == before


def test_poison_file_is_quarantined_and_the_rest_of_the_arrival_proceeds(trained):
    # ".txt" is in ingest.extensions but is no format the reader knows: that used to end in
    # AssertionError("unreachable"), unquarantined and unledgered, retried every poll
    cfg = trained.model_copy(
        update={
            "ingest": trained.ingest.model_copy(update={"extensions": [".csv", ".parquet", ".txt"]})
        }
    )
    workspace = Workspace(cfg.paths.workspace_path())
    history_rows = len(load_history(workspace, cfg.columns))
    landing = cfg.paths.landing_path()
    (landing / "notes.txt").write_text("meeting notes, not a table\n")
    (landing / "good2.csv").write_bytes(_csv(_after_good()))

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "completed", result
    assert result["rejected_files"] == ["notes.txt"] and result["new_files"] == ["good2.csv"]
    assert len(load_history(workspace, cfg.columns)) == history_rows + 96
    (reason_file,) = workspace.quarantine.rglob("notes.txt.reason.json")
    failure = read_json(reason_file)["failures"][0]
    assert failure["check"] == "file_readable" and ".txt" in failure["message"]
    ledger = load_ledger(workspace.ledger)
    assert ledger[ledger["name"] == "notes.txt"]["status"].tolist() == ["rejected"]
    assert not (landing / "notes.txt").exists()


def test_other_tools_files_in_a_shared_landing_folder_are_left_alone(trained):
    cfg = trained
    workspace = Workspace(cfg.paths.workspace_path())
    before = _fingerprint(cfg)
    ledger_rows = len(load_ledger(workspace.ledger))
    landing = cfg.paths.landing_path()
    others = {"README.txt": b"for the other tool", "export.xlsx": b"PK\x03\x04 not a table"}
    for name, body in others.items():
        (landing / name).write_bytes(body)

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "skipped", result  # nothing arrived: no quarantine, no alert
    assert all((landing / name).read_bytes() == body for name, body in others.items())
    assert not [p for p in workspace.quarantine.rglob("*") if p.name.startswith(tuple(others))]
    assert len(load_ledger(workspace.ledger)) == ledger_rows
    assert _fingerprint(cfg) == before
    for name in others:
        (landing / name).unlink()


def test_symlink_in_landing_is_never_read_and_its_content_never_shown(trained, tmp_path, capsys):
    cfg = trained
    workspace = Workspace(cfg.paths.workspace_path())
    before = _fingerprint(cfg)
    secret = tmp_path / "elsewhere" / "credentials.csv"
    secret.parent.mkdir()
    secret.write_text("series_id,timestamp,value\nTOPSECRET-hunter2,2026-01-01T00:00:00Z,x\n")
    link = cfg.paths.landing_path() / "secret.csv"
    link.symlink_to(secret)

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "rejected", result
    assert result["rejected_files"] == ["secret.csv"] and "symlink" in result["reason"]
    ledger = load_ledger(workspace.ledger)
    row = ledger[ledger["name"] == "secret.csv"]
    assert row["status"].tolist() == ["rejected"] and row["reason"].tolist() == ["symlink"]
    assert _fingerprint(cfg) == before
    out = capsys.readouterr()
    assert "TOPSECRET" not in json.dumps(result) + out.out + out.err
    leaked = [
        p for p in workspace.root.rglob("*") if p.is_file() and b"TOPSECRET" in p.read_bytes()
    ]
    assert not leaked, f"the linked file's content was copied into {leaked}"

    # ledgered: the next run does not look at it again
    assert retrain(cfg, return_state=True).result(raise_on_failure=False)["status"] == "skipped"
    link.unlink()


def test_file_name_with_a_newline_is_quarantined_and_never_forges_a_log_line(trained, caplog):
    # the name would print a fake line under the real one; the name alone rejects the file
    cfg = trained
    workspace = Workspace(cfg.paths.workspace_path())
    before = _fingerprint(cfg)
    name = "ok.csv\nFORGED | Finished in state Completed().csv"
    # content no earlier file had (the ledger skips known bytes, whatever their name)
    (cfg.paths.landing_path() / name).write_bytes(b"series_id,timestamp,value\nx,2030-01-01,1\n")

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "rejected", result
    assert result["rejected_files"] == [name]
    assert "check 'file_name_printable'" in result["reason"] and repr(name) in result["reason"]
    assert "\nFORGED" not in result["reason"]
    reasons = workspace.quarantine.rglob("*.reason.json")
    (reason_file,) = [p for p in reasons if p.name.endswith(name + ".reason.json")]
    assert read_json(reason_file)["failures"][0]["check"] == "file_name_printable"
    ledger = load_ledger(workspace.ledger)
    assert ledger[ledger["name"] == name]["status"].tolist() == ["rejected"]
    assert _fingerprint(cfg) == before
    logged = [record.getMessage() for record in caplog.records]
    assert any(repr(name) in line for line in logged)  # the run's log shows it, escaped
    assert not [line for line in logged if "\nFORGED" in line]
    shutil.rmtree(workspace.quarantine)


def test_an_arrival_validated_a_chunk_at_a_time_leaves_out_what_fails_in_any_chunk(trained, caplog):
    # every series a chunk of its own: bad.csv fails in b's chunk after a's chunk took it;
    # a's chunk is validated again without it, where later.csv (after bad.csv's rows of a)
    # now leaves a gap -- what one pass over everything says too
    cfg = trained.model_copy(
        update={"validation": trained.validation.model_copy(update={"chunk_rows": 1})}
    )
    workspace = Workspace(cfg.paths.workspace_path())
    history = load_history(workspace, cfg.columns)
    last = history.groupby("series_id")["timestamp"].max()
    assert last["a"] == last["b"]
    start = int((last["a"] - START) / pd.Timedelta("1h")) + 1
    landing = cfg.paths.landing_path()
    good = series_frame(n=24, start=start, period=PERIOD)
    bad = series_frame(n=24, start=start + 24, period=PERIOD)
    bad.loc[bad.index[bad["series_id"] == "b"][3], "value"] = np.nan
    later = series_frame(series=("a",), n=24, start=start + 48, period=PERIOD)
    for name, frame in (("good.csv", good), ("bad.csv", bad), ("later.csv", later)):
        (landing / name).write_bytes(_csv(frame))

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "completed", result
    assert result["new_files"] == ["good.csv"]
    assert sorted(result["rejected_files"]) == ["bad.csv", "later.csv"]
    run_dir = Path(result["run_dir"])
    checks = read_json(run_dir / "02_validation" / "validation.json")
    reasons = {r["name"]: r["failures"] for r in checks["rejected"]}
    assert [(f["check"], f["column"]) for f in reasons["bad.csv"]] == [
        ("expect_column_values_to_not_be_null", "value")
    ]
    assert reasons["bad.csv"][0]["unexpected_count"] == 1
    assert [(f["check"], f["column"]) for f in reasons["later.csv"]] == [
        ("expect_column_values_to_be_between", "max_gap_steps")
    ]
    after = load_history(workspace, cfg.columns)
    expected = pd.concat([history, good], ignore_index=True)
    expected = expected.sort_values(["series_id", "timestamp"], ignore_index=True)
    pd.testing.assert_frame_equal(
        after[expected.columns].reset_index(drop=True), expected, check_dtype=False
    )
    logged = [record.getMessage() for record in caplog.records]
    assert [
        line
        for line in logged
        if line.endswith("in 2 chunks of whole series (validation.chunk_rows=1)")
    ]
    assert "Validating chunk 1/2 (3 file(s))" in logged  # a's chunk, then again without bad.csv
    assert logged.count("Validating chunk 1/2 (3 file(s))") == 2
    assert not (run_dir / "validate-chunks").exists()
    _no_partial_files(cfg.paths.workspace_path())
    shutil.rmtree(workspace.quarantine)
