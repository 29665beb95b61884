"""The pipeline's Prefect tasks: one thin wrapper per stage (ingest, validate, normalize,
window, train, evaluate, register) and the fan-out tasks; the logic is in ``seriesflow/``.
Importing ``seriesflow`` first switches off telemetry and progress bars before Prefect loads."""

import seriesflow  # noqa: F401  (side effect: quiet, offline library defaults)
