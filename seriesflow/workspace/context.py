"""One run context: what a retrain run looks up once and its stages read as arguments.

The retrain flow (``flows/retrain.py``) opens it once, after ingest found something to do
(a skipped run touches neither MLflow nor the champion): the MLflow tracking URI and
experiment (set up once), the champion loaded once (its version, spec, scaler and model;
or None and why not), the workspace and the run folder. Stages read the champion from it
instead of looking it up again. It is a small frozen value; the champion's model rides
along by reference (tasks run in the flow's process; the fan-out's branch tasks, which
may run on Dask workers, get paths instead).
"""

from __future__ import annotations

from dataclasses import dataclass

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.evaluation.champion import Champion, load_champion
from seriesflow.tracking.registry import claim_model, use_tracking
from seriesflow.workspace.files import RunDir, Workspace


@dataclass(frozen=True)
class RunContext:
    workspace: Workspace
    run: RunDir
    tracking_uri: str
    experiment_id: str
    champion: Champion | None = None
    no_champion: str = ""  # why there is no champion ("" when there is one)

    @property
    def champion_version(self) -> str | None:
        return None if self.champion is None else self.champion.version


def open_run_context(
    config: PipelineConfig, workspace: Workspace, run: RunDir, tracking_uri: str
) -> RunContext:
    """Point MLflow at the run's tracking store and experiment, claim the model name for
    this workspace (``claim_model``: a second workspace is refused unless both share it
    on purpose), and load the champion."""
    experiment_id = use_tracking(tracking_uri, config.register.experiment, workspace.root)
    name = config.register.model_name
    claim_model(name, workspace, config.register.shared_model)
    champion = load_champion(name)
    why = "" if champion is not None else f"'{name}' has no champion yet"
    return RunContext(workspace, run, tracking_uri, experiment_id, champion, why)
