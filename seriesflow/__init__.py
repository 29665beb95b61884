"""seriesflow: a Prefect-orchestrated pipeline that keeps an LSTM forecaster fresh.

The library, in sub-packages by concern (``config``, ``data``, ``model``, ``evaluation``,
``workspace``, ``tracking``, ``ops``), with no Prefect import; the Prefect tasks are in
``tasks/`` and the flows in ``flows/``. Importing the package turns off every phone-home and
progress bar of the libraries we use: the pipeline runs on machines with no network,
and a retrain log is read by people, not terminals.
"""

import os

_QUIET_DEFAULTS = {
    # Prefect, Great Expectations and generic opt-outs: no network at run time.
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    # A cold temporary Prefect server on 2 cores comes close to the 20 s default.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # TensorFlow: no C++ info banners, no oneDNN notice on every import.
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    # MLflow: no background telemetry; keep model logging offline and quiet.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "TQDM_DISABLE": "1",
}
for _name, _value in _QUIET_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
