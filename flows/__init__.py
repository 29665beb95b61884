"""The pipeline's Prefect flows (retrain, forecast, watch, tune, monitor, the fan-out sub-flow)
and the command line. Importing ``seriesflow`` first switches off telemetry and progress
bars before Prefect loads."""

import seriesflow  # noqa: F401  (side effect: quiet, offline library defaults)
