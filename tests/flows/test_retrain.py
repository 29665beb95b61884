"""The whole chain on tiny data, under one real (temporary) Prefect server."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.cli import main as seriesflow
from flows.retrain import main as cli_main
from flows.retrain import retrain
from seriesflow.data.schema import ORIGIN_INDEX, SERIES_ID, SPLIT, TARGET_TIME, TIMESTAMP, VALUE
from seriesflow.model.windows import windows_meta
from seriesflow.workspace.files import RunDir, Workspace, read_json
from seriesflow.workspace.history import history_version
from seriesflow.workspace.ledger import load_ledger
from tests.factories import series_frame, tiny_config, write_csv
from tests.flows.checks import run_retrain

PERIOD = 10  # does not divide the inferred season (24 h): seasonal naive is a fair rival


@pytest.fixture
def landing_rows():
    return 300  # the landing fixture's base file: 2 series x 300 rows


def run_flow(cfg):
    run = run_retrain(cfg)
    return run.state, run.result


def test_retrain_end_to_end_then_skip_then_new_version(prefect_server, tmp_path, landing):
    workspace = tmp_path / "work"
    # the default XLA training, end to end once (fast_settings turns it off elsewhere)
    # and the default calendar features (fast_settings turns them off elsewhere)
    cfg = tiny_config(
        workspace, landing, train={"epochs": 30, "jit_compile": True}, features={"calendar": True}
    )

    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(cfg.dump()))  # JSON is YAML: for `seriesflow history`

    state, result = run_flow(cfg)
    assert state.is_completed(), result
    assert result["status"] == "completed"
    assert (result["rows"], result["series"]) == (600, 2)
    assert result["model_version"] == "1" and result["promoted"] is True
    assert result["metrics"]["model"]["rmse"] < result["metrics"]["naive"]["rmse"]

    run = RunDir(workspace / "runs" / result["run_dir"].rsplit("/", 1)[-1])
    validated = pq.read_table(run.validated)
    assert validated.schema.names == [SERIES_ID, TIMESTAMP, VALUE]
    assert str(validated.schema.field(TIMESTAMP).type) == "timestamp[us, tz=UTC]"
    windows = pq.read_table(run.windows)
    meta = windows_meta(windows)  # windows by index: only what identifies each one is stored
    calendar = ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]  # hourly: hour and weekday
    assert (meta["timesteps"], meta["horizon"]) == (12, 1)
    assert meta["features"] == [VALUE, *(f"calendar:{name}" for name in calendar)]
    assert result["features"] == {
        "past": [], "future": [], "static": [], "calendar": calendar, "holidays": []
    }  # fmt: skip
    assert windows.schema.names == [SERIES_ID, ORIGIN_INDEX, TARGET_TIME, SPLIT]
    assert set(windows[SPLIT].to_pylist()) == {"train", "val", "test"}
    assert pq.read_table(run.ingested).num_rows == 600
    assert run.model.exists() and run.epochs.exists()
    # AutoETS and AutoTheta were fit beside training, once per series; evaluate used them
    # and the router kept the fits of the series it serves by them
    fits = read_json(run.classical_fits)
    assert len(fits) == 2 and all(set(models) == {"ets", "theta"} for models in fits.values())
    kept = {
        sid: item["fits"] for sid, item in read_json(run.router)["series"].items() if "fits" in item
    }
    assert all(kept[sid][name] == fits[sid][name] for sid in kept for name in kept[sid])
    assert (run.plots / "loss_curve.png").stat().st_size > 1000
    assert (run.plots / "forecast_vs_actual.png").read_bytes()[:4] == b"\x89PNG"
    manifest = read_json(run.manifest)
    assert manifest["outcome"]["status"] == "completed"
    assert (
        manifest["inputs"][0]["name"] == "base.csv" and len(manifest["inputs"][0]["sha256"]) == 64
    )
    assert set(manifest["timings_seconds"]) >= {"ingest", "validate", "train", "register"}
    # the process's memory high-water mark after each timed stage: never falls
    peaks = list(manifest["peak_rss_mib"].values())
    assert list(manifest["peak_rss_mib"]) == list(manifest["timings_seconds"])
    assert peaks[0] > 50 and peaks == sorted(peaks)
    assert manifest["versions"]["prefect"].startswith("3.")

    mlflow.set_tracking_uri(cfg.register.resolved_tracking_uri(workspace))
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("test-lstm", "champion")
    assert str(champion.version) == "1"
    # the accepted rows are the history table's version 0, tagged on the version
    assert history_version(Workspace(workspace)) == 0 == result["history_version"]
    assert champion.tags["seriesflow.history_version"] == "0"
    assert manifest["history_version"] == 0
    # one MLflow run spans the retrain: params from the start, a val_loss point per epoch
    # as training ran, the test metrics and the gate; it ended FINISHED with the model
    tracked = client.get_run(champion.run_id)
    epochs = pq.read_table(run.epochs).num_rows
    assert tracked.info.status == "FINISHED" and tracked.data.params["train.units"] == "16"
    losses = client.get_metric_history(champion.run_id, "val_loss")
    assert [m.step for m in losses] == list(range(1, epochs + 1))
    assert losses[0].timestamp >= tracked.info.start_time  # logged while training ran
    assert "test_model_rmse" in tracked.data.metrics and "gate_reason" in tracked.data.tags
    experiment = client.get_experiment(tracked.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    # nothing new: skipped, no training, no new version
    state, result = run_flow(cfg)
    assert state.is_completed() and state.name == "Skipped"
    assert result["status"] == "skipped" and result["model_version"] is None
    assert len(client.search_model_versions("name='test-lstm'")) == 1

    # new data arrives: version 2, re-scored against the champion on the same windows
    write_csv(series_frame(n=48, start=300, period=PERIOD), landing / "next.csv")
    state, result = run_flow(cfg)
    assert result["status"] == "completed" and result["model_version"] == "2"
    assert result["rows"] == 696
    assert "champion" in result["metrics"]
    assert result["gate_rule"] == "champion"
    ledger = load_ledger(Workspace(workspace).ledger)
    assert ledger["name"].tolist() == ["base.csv", "next.csv"]
    assert set(ledger["status"]) == {"ingested"}
    # the second commit appended the 96 new rows as version 1; version 0 still reads
    second = RunDir(workspace / "runs" / result["run_dir"].rsplit("/", 1)[-1])
    assert result["history_version"] == 1
    v2 = client.get_model_version("test-lstm", "2")
    assert v2.tags["seriesflow.history_version"] == "1"
    assert read_json(second.manifest)["history_version"] == 1
    assert pq.read_table(second.new_rows).num_rows == 96

    # time travel: what each version trained on, exactly (rows, order, dtypes)
    for version, trained in (("1", run), ("2", second)):
        out = tmp_path / f"v{version}.parquet"
        assert (
            seriesflow(
                [
                    "history",
                    "--config",
                    str(cfg_file),
                    "--model-version",
                    version,
                    "--output",
                    str(out),
                ]
            )
            == 0
        )
        assert pd.read_parquet(out).equals(pd.read_parquet(trained.validated)), version
    out = tmp_path / "as_of_0.csv"
    assert (
        seriesflow(
            ["history", "--config", str(cfg_file), "--as-of-version", "0", "--output", str(out)]
        )
        == 0
    )
    assert len(pd.read_csv(out)) == 600

    # a changed config with nothing new: skipped, unless told to retrain on the history
    changed = tiny_config(
        workspace,
        landing,
        train={"epochs": 2, "units": 8},  # another config; how well it trains is not asked
        ingest={"retrain_without_new_data": True},
        evaluate={"refit_growth": 0.5},  # keep fits of series that grew up to 50% since
    )
    champion = client.get_model_version_by_alias("test-lstm", "champion")
    champion_run = RunDir(Path(client.get_run(champion.run_id).data.tags["seriesflow.run_dir"]))
    state, result = run_flow(changed)
    assert result["status"] == "completed" and result["model_version"] == "3", result
    # v2's series had grown 16% since v1's fits, more than the default 10%: fit again; v3
    # keeps the champion's (v1's, or v2's on the same rows), allowed 50%: not fit again
    assert read_json(second.classical_fits) != read_json(run.classical_fits)
    third = RunDir(workspace / "runs" / result["run_dir"].rsplit("/", 1)[-1])
    kept = read_json(third.classical_fits)
    assert kept == read_json(champion_run.classical_fits)
    assert all(
        fit["digest"] and fit["points"] for models in kept.values() for fit in models.values()
    )
    assert result["rows"] == 696 and result["new_files"] == []
    # no new row: no new table version; v3 trained on version 1, as v2 did
    assert result["history_version"] == 1 == history_version(Workspace(workspace))
    assert client.get_model_version("test-lstm", "3").tags["seriesflow.history_version"] == "1"


def test_cli_prints_summary_last_and_exits_by_status(prefect_server, tmp_path, landing, capsys):
    workspace = tmp_path / "work"
    cfg_path = tmp_path / "cfg.yaml"
    cfg = tiny_config(workspace, landing, train={"epochs": 1})
    cfg_path.write_text(json.dumps(cfg.dump()))  # JSON is YAML
    assert cli_main(["--config", str(cfg_path), "--set", "train.epochs=1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["status"] == "completed" and summary["model_version"] == "1"
    # the LSTM alone, the routed model (registered), the baselines and the candidates
    assert set(summary["metrics"]) >= {"model", "routed", "naive", "seasonal_naive", "ets"}
    assert set(summary["metrics"]["model"]) == {"mse", "mae", "rmse", "mape", "mase"}
    # interval coverage and the probabilistic scores are the registered (routed) model's
    assert set(summary["metrics"]["routed"]) == {
        "mse",
        "mae",
        "rmse",
        "mape",
        "mase",
        "coverage_80",
        "coverage_95",
        "wape",
        "pinball_80",
        "pinball_95",
        "msis_80",
        "msis_95",
    }
    routed = summary["metrics"]["routed"]
    assert 0 <= routed["coverage_80"] <= routed["coverage_95"] <= 1
    assert routed["msis_95"] > 0 and routed["pinball_80"] > 0
    assert 0.0 <= summary["lstm_share"] <= 1.0

    assert cli_main(["--config", str(cfg_path)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["status"] == "skipped"

    assert cli_main(["--set", "train.epochs=zero"]) == 1
    out = capsys.readouterr()
    assert out.err.startswith("config error:") and "train.epochs" in out.err
    assert json.loads(out.out.strip().splitlines()[-1])["status"] == "failed"


def test_flow_parameter_schema_is_the_typed_config():
    """The Prefect UI renders this schema as the 'Custom run' form."""
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(retrain.fn).model_dump_for_openapi()
    assert list(schema["properties"]) == ["cfg"]
    definitions = schema["definitions"]
    train = definitions["TrainConfig"]["properties"]
    assert train["units"]["default"] == 50 and train["units"]["type"] == "integer"
    assert train["activation"]["enum"] == ["tanh", "relu"]
    assert "PipelineConfig" in definitions and "ValidationConfig" in definitions
