"""Forecasts from the champion: the flow, the self-contained MLflow model (in process and over
HTTP through the real scoring server), and live accuracy when the actuals arrive."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from flows.forecast import forecast
from flows.forecast import main as forecast_cli
from seriesflow.data.schema import SERIES_ID, TIMESTAMP, VALUE
from seriesflow.evaluation.live_accuracy import POINT_KEY, accuracy_path, points_path
from seriesflow.workspace.files import Workspace, read_json
from seriesflow.workspace.history import load_history
from tests.factories import series_frame, tiny_config, write_csv
from tests.flows.checks import run_retrain
from tests.integration.stack import free_port

PERIOD = 10
MODEL = "test-lstm"
REGISTRATION_WARNINGS: list[str] = []  # what Python warned about while the fixture registered


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def champion(prefect_server, tmp_path_factory):
    """A workspace whose v1 is champion (crowned by hand if tiny training lost the gate)."""
    root = tmp_path_factory.mktemp("forecast")
    landing = root / "landing"
    write_csv(series_frame(n=300, period=PERIOD), landing / "base.csv")
    cfg = tiny_config(root / "work", landing, train={"epochs": 20})
    # Prefect routes Python warnings into logging (the ``py.warnings`` logger) while a flow
    # runs: listen there as well as to the warnings module.
    logged = RecordingHandler()
    logging.getLogger("py.warnings").addHandler(logged)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_retrain(cfg, expect="completed").result
    finally:
        logging.getLogger("py.warnings").removeHandler(logged)
    REGISTRATION_WARNINGS.extend([str(w.message) for w in caught] + logged.messages)
    mlflow.set_tracking_uri(cfg.register.resolved_tracking_uri(cfg.paths.workspace_path()))
    if not result["promoted"]:
        mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", "1")
    return cfg


def history_tail(cfg, rows: int = 40) -> pd.DataFrame:
    history = load_history(Workspace(cfg.paths.workspace_path()), cfg.columns)
    tail = history.groupby(SERIES_ID).tail(rows).reset_index(drop=True)
    return tail.assign(**{TIMESTAMP: tail[TIMESTAMP].dt.tz_localize(None)})  # MLflow: no zone


def test_the_flow_forecasts_every_series_on_its_calendar_with_bands(champion, capsys):
    cfg = champion
    state = forecast(cfg, return_state=True)
    result = state.result()
    assert state.is_completed() and result["status"] == "completed", result
    frame = pd.read_parquet(result["path"])
    history = load_history(Workspace(cfg.paths.workspace_path()), cfg.columns)
    last = history.groupby(SERIES_ID)[TIMESTAMP].max()
    for sid in ("a", "b"):
        mine = frame[(frame[SERIES_ID] == sid) & (frame["level"] == 95)]
        # hourly data: auto steps = one day, continuing the hourly calendar
        expected = pd.date_range(last[sid], periods=25, freq="h")[1:]
        assert mine[TIMESTAMP].tolist() == list(expected)
        assert mine["step"].tolist() == list(range(1, 25))
        narrow = frame[(frame[SERIES_ID] == sid) & (frame["level"] == 80)]
        assert (mine["lower"].to_numpy() < narrow["lower"].to_numpy()).all()
        assert (narrow["lower"] < narrow["forecast"]).all() and (
            narrow["forecast"] < narrow["upper"]
        ).all()
    assert set(frame["model_version"]) == {"1"}
    latest = read_json(Path(result["forecast_dir"]).parent / "latest.json")
    assert latest["path"] == result["path"]

    assert forecast_cli(["--config", str(write_cfg(cfg))]) == 0  # the CLI: a new forecast
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["series"] == 2
    assert (
        read_json(Path(summary["forecast_dir"]).parent / "latest.json")["path"] == summary["path"]
    )


def write_cfg(cfg) -> Path:
    path = cfg.paths.workspace_path() / "forecast-cfg.json"
    path.write_text(json.dumps(cfg.dump()))
    return path


def test_the_registered_model_forecasts_in_process_and_refuses_bad_input(champion):
    uri = f"models:/{MODEL}@champion"
    info = mlflow.models.get_model_info(uri)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == [SERIES_ID, TIMESTAMP, VALUE]
    assert "forecast" in [c["name"] for c in info.signature.outputs.to_dict()]
    model = mlflow.pyfunc.load_model(uri)
    tail = history_tail(champion)
    out = model.predict(tail)
    assert len(out) == 2 * 24 * 2 and set(out["model_version"]) == {"1"}
    flow = pd.read_parquet(
        read_json(champion.paths.workspace_path() / "forecasts" / "latest.json")["path"]
    )
    np.testing.assert_allclose(
        out.sort_values([SERIES_ID, "level", "step"])["forecast"].to_numpy(),
        flow.sort_values([SERIES_ID, "level", "step"])["forecast"].to_numpy(),
        rtol=1e-5,
    )
    cases = {
        "unknown to the model": tail[tail[SERIES_ID] == "a"].assign(**{SERIES_ID: "zz"}),
        "too short": tail.groupby(SERIES_ID).tail(3),
        "missing or non-finite": tail.assign(**{VALUE: tail[VALUE].where(tail.index != 5)}),
        "off the series'": tail.assign(
            **{
                TIMESTAMP: tail[TIMESTAMP].where(
                    tail.index != 7, tail[TIMESTAMP] + pd.Timedelta("7min")
                )
            }
        ),
    }
    for expected, bad in cases.items():
        with pytest.raises(MlflowException, match=expected) as caught:
            model.predict(bad)
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_the_registered_model_takes_the_history_file_as_it_is(champion):
    """The accepted history as readers get it (UTC-aware timestamps) forecasts; naive UTC times and
    ISO strings give the same forecast; ``steps`` and ``levels`` params are honoured."""
    uri = f"models:/{MODEL}@champion"
    info = mlflow.models.get_model_info(uri)
    params = {p["name"]: p for p in info.signature.params.to_dict()}
    assert params["steps"]["default"] == 0 and params["levels"]["default"] == [80, 95]
    assert REGISTRATION_WARNINGS, "no warning recorded at all: is the recorder listening?"
    assert not [w for w in REGISTRATION_WARNINGS if "integer column" in w], REGISTRATION_WARNINGS
    history = load_history(Workspace(champion.paths.workspace_path()), champion.columns)
    assert str(history[TIMESTAMP].dt.tz) == "UTC"
    model = mlflow.pyfunc.load_model(uri)
    out = model.predict(history)
    assert len(out) == 2 * 24 * 2 and set(out[SERIES_ID]) == {"a", "b"}
    last = history.groupby(SERIES_ID)[TIMESTAMP].max().dt.tz_localize(None)
    first = out[out["step"] == 1].groupby(SERIES_ID)[TIMESTAMP].min()
    assert (first - last[first.index]).tolist() == [pd.Timedelta("1h")] * 2

    tail = history.groupby(SERIES_ID).tail(40).reset_index(drop=True)
    asked = {"steps": 3, "levels": [95]}
    aware = model.predict(tail, params=asked)
    assert len(aware) == 2 * 3 and set(aware["level"]) == {95}
    assert sorted(set(aware["step"])) == [1, 2, 3]
    naive = tail.assign(**{TIMESTAMP: tail[TIMESTAMP].dt.tz_localize(None)})
    text = tail.assign(**{TIMESTAMP: [t.isoformat() for t in tail[TIMESTAMP]]})
    keys = [SERIES_ID, "level", "step"]
    for same in (model.predict(naive, params=asked), model.predict(text, params=asked)):
        pd.testing.assert_frame_equal(
            same.drop(columns="created_at").sort_values(keys).reset_index(drop=True),
            aware.drop(columns="created_at").sort_values(keys).reset_index(drop=True),
        )


def test_the_scoring_server_answers_over_http(champion, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": champion.register.resolved_tracking_uri(
            champion.paths.workspace_path()
        ),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    command = [
        str(Path(sys.executable).parent / "mlflow"), "models", "serve",
        "-m", f"models:/{MODEL}@champion", "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        tail = history_tail(champion)
        body = {
            "dataframe_split": {
                "columns": [SERIES_ID, TIMESTAMP, VALUE],
                "data": [
                    [r[SERIES_ID], r[TIMESTAMP].isoformat(), float(r[VALUE])]
                    for _, r in tail.iterrows()
                ],
            }
        }
        answer = httpx.post(f"{url}/invocations", json=body, timeout=120)
        assert answer.status_code == 200, answer.text[:2000]
        predictions = answer.json()["predictions"]
        assert len(predictions) == 2 * 24 * 2
        assert {p[SERIES_ID] for p in predictions} == {"a", "b"}
        # params through the real server (in the signature, so not dropped), with zoned text
        aware = [
            [sid, f"{stamp}+00:00", value] for sid, stamp, value in body["dataframe_split"]["data"]
        ]
        asked = {"dataframe_split": {**body["dataframe_split"], "data": aware},
                 "params": {"steps": 5, "levels": [95]}}  # fmt: skip
        answer = httpx.post(f"{url}/invocations", json=asked, timeout=120)
        assert answer.status_code == 200, answer.text[:2000]
        stepped = pd.DataFrame(answer.json()["predictions"])
        assert len(stepped) == 2 * 5 and set(stepped["level"]) == {95}
        assert stepped.groupby(SERIES_ID)["step"].apply(sorted).to_dict() == {
            "a": [1, 2, 3, 4, 5],
            "b": [1, 2, 3, 4, 5],
        }
        full = pd.DataFrame(predictions)
        full = full[(full["level"] == 95) & (full["step"] <= 5)]
        keys = [SERIES_ID, "step"]
        np.testing.assert_allclose(
            stepped.sort_values(keys)["forecast"].to_numpy(),
            full.sort_values(keys)["forecast"].to_numpy(),
            rtol=1e-6,
        )
        body["dataframe_split"]["data"][0][0] = "zz"  # one row of an unknown series
        refused = httpx.post(f"{url}/invocations", json=body, timeout=120)
        assert refused.status_code == 400
        assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "series 'zz': unknown to the model" in refused.json()["message"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def test_live_accuracy_scores_the_forecasts_when_the_actuals_arrive(champion):
    cfg = champion
    write_csv(series_frame(n=48, start=300, period=PERIOD), cfg.paths.landing_path() / "next.csv")
    result = run_retrain(cfg, expect="completed").result
    live = result["live_accuracy"]
    # two forecasts were issued above (flow + CLI), each 24 hourly steps of 2 series: all of
    # their target hours are among the 48 new hours
    assert live["points"] == 2 * 2 * 24
    mase = live["by_version"]["1"]["mase"]
    assert 0 < mase < live["by_version"]["1"]["naive_mase"]
    rows = pd.read_parquet(accuracy_path(Workspace(cfg.paths.workspace_path())))
    assert set(rows[SERIES_ID]) == {"__all__", "a", "b"} and set(rows["model_version"]) == {"1"}
    client = mlflow.MlflowClient()
    run_id = client.get_model_version(MODEL, "1").run_id
    assert client.get_metric_history(run_id, "live_mase")[0].value == pytest.approx(mase)
    workspace = Workspace(cfg.paths.workspace_path())
    points_before = pd.read_parquet(points_path(workspace))
    assert len(points_before) > 0 and not points_before.duplicated(POINT_KEY).any()

    # A second run over the same data (it completes: it reuses that version, and scores live
    # accuracy again): every actual it sees was scored above, so it scores nothing twice.
    same_data = cfg.model_copy(
        update={"ingest": cfg.ingest.model_copy(update={"retrain_without_new_data": True})}
    )
    again = run_retrain(same_data, expect="completed").result
    assert again["reused"] is True and again["model_version"] == result["model_version"], again
    assert again["live_accuracy"] == {}
    pd.testing.assert_frame_equal(pd.read_parquet(points_path(workspace)), points_before)
    assert pd.read_parquet(accuracy_path(workspace)).equals(rows)


# -- the pipeline reads the champion as data, never as pickled code (issue 18, finding 4) --


class Planted:
    """A pickle that creates ``marker`` when unpickled: what a registry writer could plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def champion_folder() -> tuple[str, Path]:
    """The champion's version and its model folder in the local artifact store."""
    from mlflow.utils.file_utils import local_file_uri_to_path

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(MODEL, "champion").version
    uri = client.get_model_version_download_uri(MODEL, version)
    return str(version), Path(local_file_uri_to_path(uri))


def artifact_file(folder: Path, key: str) -> Path:
    flavor = mlflow.models.Model.load(str(folder)).flavors["python_function"]
    return folder / flavor["artifacts"][key]["path"]


def test_registration_records_a_hash_of_every_artifact_it_logged(champion):
    version, folder = champion_folder()
    tags = mlflow.MlflowClient().get_model_version(MODEL, version).tags
    recorded = json.loads(tags["seriesflow.sha256"])
    assert {"keras_model", "scaler", "spec", "intervals", "settings", "router"} <= set(recorded)
    for key, digest in recorded.items():
        assert hashlib.sha256(artifact_file(folder, key).read_bytes()).hexdigest() == digest


def test_forecasting_never_unpickles_the_champion(champion, tmp_path):
    version, folder = champion_folder()
    pickled = folder / "python_model.pkl"
    original = pickled.read_bytes()
    marker = tmp_path / "planted-code-ran"
    pickled.write_bytes(pickle.dumps(Planted(marker)))
    try:
        state = forecast(champion, return_state=True)
        result = state.result()
        assert result["status"] == "completed" and result["model_version"] == version, result
        assert not marker.exists()
        # the same file does run code when loaded as a pyfunc: the check above can fail
        with pytest.raises(Exception):  # noqa: B017, PT011 - what the loader makes of it varies
            mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
        assert marker.exists()
    finally:
        pickled.write_bytes(original)


def test_the_plain_champion_forecasts_what_the_pyfunc_forecasts(champion):
    from seriesflow.evaluation.champion import load_champion
    from seriesflow.model.forecasting import ForecastSettings, forecast_frame
    from seriesflow.model.saved_model import SavedKeras

    version, _ = champion_folder()
    plain = load_champion(MODEL)
    assert plain is not None and plain.version == version
    # the model is built when first used (the data stages before training run without it)
    assert "model" not in vars(plain) and isinstance(plain.model_source, SavedKeras)
    tail = history_tail(champion).groupby(SERIES_ID).tail(30).reset_index(drop=True)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}").predict(tail)
    ours, skipped = forecast_frame(
        plain.model,
        plain.spec,
        plain.scaler_object,
        plain.intervals,
        tail.assign(**{TIMESTAMP: tail[TIMESTAMP].dt.tz_localize("UTC")}),
        ForecastSettings(),
        router=plain.router,
    )
    assert skipped == {} and len(ours) == len(served) > 0
    keys = [SERIES_ID, "level", "step"]
    for column in ("forecast", "lower", "upper"):
        np.testing.assert_allclose(
            ours.sort_values(keys)[column].to_numpy(),
            served.sort_values(keys)[column].to_numpy(),
            rtol=1e-6,
        )


@pytest.mark.parametrize("key", ["keras_model", "scaler", "spec", "intervals", "router"])
def test_an_artifact_changed_after_registration_is_refused_by_name(champion, key):
    version, folder = champion_folder()
    path = artifact_file(folder, key)
    original = path.read_bytes()
    path.write_bytes(original + b" ")  # still valid JSON / a readable zip: only the hash tells
    try:
        state = forecast(champion, return_state=True)
        result = state.result(raise_on_failure=False)
        assert state.is_failed() and result["status"] == "failed", result
        assert "ArtifactRefused" in result["reason"] and path.name in result["reason"], result
        assert f"v{version}" in result["reason"] and "changed after registration" in state.message
    finally:
        path.write_bytes(original)


def test_a_version_registered_before_hashes_is_read_as_data_with_a_warning(champion, caplog):
    from seriesflow.evaluation.champion import load_champion

    version, _ = champion_folder()
    client = mlflow.MlflowClient()
    recorded = client.get_model_version(MODEL, version).tags["seriesflow.sha256"]
    client.delete_model_version_tag(MODEL, version, "seriesflow.sha256")
    try:
        with caplog.at_level("WARNING"):
            plain = load_champion(MODEL)
        assert plain is not None and plain.version == version and plain.intervals is not None
        assert "registered before artifact hashes" in caplog.text
    finally:
        client.set_model_version_tag(MODEL, version, "seriesflow.sha256", recorded)
