"""The routed champion end to end: a workspace always ends with one, its router is what the
registered model (and the forecast flow) serve each series with, and the LSTM alone stays
available (``register.models: lstm_only``)."""

from __future__ import annotations

import mlflow
import numpy as np

from flows.retrain import retrain
from seriesflow.data.schema import COMBINATION, LSTM, SERIES_ID, TIMESTAMP
from seriesflow.evaluation.router import Router
from seriesflow.model.forecasting import forecast_frame
from seriesflow.workspace.files import RunDir, Workspace, read_json
from seriesflow.workspace.history import load_history
from tests.factories import series_frame, tiny_config, write_csv

MODEL = "routed-lstm"


def run_flow(cfg):
    state = retrain(cfg, return_state=True)
    result = state.result(raise_on_failure=False)
    assert result["status"] == "completed", result
    return result, RunDir(cfg.paths.workspace_path() / "runs" / result["run_dir"].split("/")[-1])


def untrained(tmp_path, landing, name: str = MODEL, **register):
    """An LSTM that cannot learn anything useful (one epoch at a tiny rate, on MinMax-scaled
    windows, so its untrained head is no naive forecast): every baseline beats it."""
    train = {"epochs": 1, "units": 2, "learning_rate": 1e-6, "min_lr": 1e-7, "final_epochs": 0}
    return tiny_config(
        tmp_path / "work",
        landing,
        train=train,
        normalize={"method": "minmax"},
        register={"model_name": name, **register},
    )


def test_a_workspace_where_every_baseline_beats_the_lstm_still_gets_a_champion(
    prefect_server, tmp_path
):
    landing = tmp_path / "landing"
    write_csv(series_frame(n=240, period=12), landing / "base.csv")
    result, run = run_flow(untrained(tmp_path, landing))
    metrics = result["metrics"]
    assert metrics["model"]["mase"] > metrics["seasonal_naive"]["mase"]  # the LSTM lost
    assert result["promoted"] and result["gate_rule"] == "no_champion", result["reason"]
    router = Router.load(run.router)
    assert set(router.choice) == {"a", "b"}
    assert LSTM not in router.choice.values()  # no series is served by the LSTM alone
    assert "lstm_share" in result["reason"]  # the reason says how much the LSTM serves
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert str(version.version) == result["model_version"]
    # the same data with the LSTM alone: the gate refuses it, so no champion
    again = tmp_path / "landing-again"  # the first run archived what it took
    write_csv(series_frame(n=240, period=12), again / "base.csv")
    lstm_only = untrained(tmp_path / "alone", again, "alone-lstm", models="lstm_only")
    alone = retrain(lstm_only, return_state=True).result(raise_on_failure=False)
    assert alone["status"] == "completed" and not alone["promoted"], alone["reason"]


def test_the_registered_model_and_the_flow_forecast_through_the_router(prefect_server, tmp_path):
    landing = tmp_path / "landing"
    write_csv(series_frame(n=300, period=10), landing / "base.csv")
    cfg = tiny_config(
        tmp_path / "work", landing, train={"epochs": 5}, register={"model_name": MODEL}
    )
    result, run = run_flow(cfg)
    assert result["promoted"]
    router = Router.load(run.router)
    served = set(router.choice.values())
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    forecaster = model.unwrap_python_model()
    assert forecaster.router is not None and forecaster.router.choice == router.choice
    history = load_history(Workspace(cfg.paths.workspace_path()), cfg.columns)
    frame = history.assign(**{TIMESTAMP: history[TIMESTAMP].dt.tz_localize(None)})
    out = model.predict(frame).sort_values([SERIES_ID, "level", "step"])
    args = (
        forecaster.model,
        forecaster.spec,
        forecaster.scaler,
        forecaster.intervals,
        history,
        forecaster.settings,
    )
    routed, _ = forecast_frame(*args, router=router)
    alone, _ = forecast_frame(*args)
    routed = routed.sort_values([SERIES_ID, "level", "step"])
    alone = alone.sort_values([SERIES_ID, "level", "step"])
    np.testing.assert_allclose(out["forecast"], routed["forecast"], rtol=1e-6)
    # a series not served by the LSTM alone gets another forecast than the LSTM's
    for sid, name in router.choice.items():
        mine = (routed[SERIES_ID] == sid).to_numpy()
        same = np.allclose(routed["forecast"][mine], alone["forecast"][mine])
        assert same == (name == LSTM), (sid, name)
    assert served <= {LSTM, COMBINATION, "ets", "theta", "seasonal_naive", "naive"}
    summary = read_json(run.root / "gate.json")
    assert summary["promote"] is True
