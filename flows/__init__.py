"""seriesflow flows. Importing ``tasks`` first switches off telemetry and progress bars."""

import tasks  # noqa: F401  (side effect: quiet, offline library defaults)
