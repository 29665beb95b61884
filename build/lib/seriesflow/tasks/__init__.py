"""seriesflow stages (``seriesflow.tasks``): each module is a pure function plus a thin
Prefect task, or a contract the stages share. Importing ``seriesflow`` first
switches off telemetry and progress bars."""
