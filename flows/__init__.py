"""seriesflow flows. Importing ``seriesflow`` first switches off telemetry and progress bars."""

import seriesflow  # noqa: F401  (side effect: quiet, offline library defaults)
