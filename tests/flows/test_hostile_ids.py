"""Series ids that break MLflow keys or paths: rejected or mapped, never a poison file."""

from __future__ import annotations

import mlflow

from flows.retrain import retrain
from seriesflow.workspace.files import Workspace
from seriesflow.workspace.ledger import load_ledger
from tests.factories import crash_config, write_csv, zigzag_frame

# "NA" and "nan" are names, not missing values (read as missing, they failed the run; "None"
# and "null" too: tests/seriesflow/data/test_reading.py)
ODD_IDS = ("a/b", "..", "/", "x  y", "münchen-süd", "a//b:c", "NA", "nan")


def test_odd_ids_train_and_log_and_a_300_character_id_is_rejected(prefect_server, tmp_path):
    landing = tmp_path / "landing"
    write_csv(zigzag_frame(series=ODD_IDS), landing / "odd.csv")
    write_csv(zigzag_frame(series=("y" * 300,)), landing / "long.csv")
    # per-series models log per-series epoch curves: one MLflow key per id
    cfg = crash_config(tmp_path / "work", landing, train={"per_series": True})

    result = retrain(cfg, return_state=True).result(raise_on_failure=False)

    assert result["status"] == "completed", result
    assert result["new_files"] == ["odd.csv"] and result["rejected_files"] == ["long.csv"]
    assert result["series"] == len(ODD_IDS)
    ledger = load_ledger(Workspace(cfg.paths.workspace_path()).ledger)
    assert dict(zip(ledger["name"], ledger["status"], strict=True)) == {
        "odd.csv": "ingested",
        "long.csv": "rejected",
    }
    mlflow.set_tracking_uri(cfg.register.tracking_uri)
    client = mlflow.MlflowClient()
    version = client.get_model_version(cfg.register.model_name, result["model_version"])
    keys = set(client.get_run(version.run_id).data.metrics)
    per_series = sorted(k for k in keys if k.startswith("loss."))
    assert len(per_series) == len(ODD_IDS)  # one curve per series, no two ids on one key
    assert all(len(k) <= 250 and "//" not in k and not k.endswith("/") for k in per_series)
