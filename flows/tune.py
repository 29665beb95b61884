"""The ``tune`` flow: an Optuna search (TPE, random or grid) over the LSTM's hyperparameters.

Ad hoc:
    python -m flows.tune [--config FILE.yaml] [--set tune.strategy=grid|random|tpe]
        [--set tune.space.units=[16,32]] [--set train.epochs=10]
        [--address tcp://scheduler:8786] [--retrain-best]

The searched settings are units, layers, dropout, learning rate, batch size
and timesteps (``tune.space``; the rest of the config is the base every trial
shares). The YAML file is a ``PipelineConfig`` plus an optional ``tune:``
section (``TuneConfig``).

Data: the accepted history plus the landing folder's not-yet-ingested files,
read with ingest's reader and normalized with the pipeline's own function
(MinMax fit on each series' training part). Tuning only reads: no ledger
entry, no quarantine, no history change. Files the reader rejects are left out
(the retrain flow will quarantine them).

The search is an Optuna study (ask-and-tell) stored in SQLite in the tune folder
(``study.db``): the flow asks ``tune.max_workers`` trials of the seeded sampler, runs them
as Prefect tasks of the trials sub-flow, tells their results, and asks again until
``tune.trials`` (every point, for a grid). Told in trial order, the sampler's suggestions
do not depend on which thread finished first. Each trial task loads its trial from the
study's storage (so a thread or a Dask worker that sees the workspace can run it), reports
``val_loss`` each epoch and is stopped by the MedianPruner when it is above the median of
the earlier trials at that epoch. The task runner is threads by default; a Dask cluster
through prefect-dask when ``address`` or ``train.dask_address`` is given. A trial builds
windows with its timesteps, fits on the train windows with early stopping on val, and is
scored on the **validation** windows in
original units: the test windows are never looked at, so the test score of a
model trained with the chosen config stays an honest estimate. Every trial is
an MLflow child run (``nested=True``) under one parent run for the search.
Initial weights are seeded from ``train.seed`` (``build_model``); batch
shuffling is not reproducible across parallel trials, which share one process
and its global random state, so repeated searches can rank close trials apart.

The best config is reported (a table and a markdown artifact, ``best.yaml``
in the tune folder, tags on the parent run); with ``retrain_best`` the normal
``retrain`` flow runs with it (``ingest.retrain_without_new_data`` on, so it
trains on the accepted history even when no new file landed), through the
usual promotion gate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.fanout import task_runner
from seriesflow.config.pipeline import PipelineConfig, add_config_arguments, load_config_tree
from seriesflow.data.reading import read_series_file
from seriesflow.data.schema import MODEL, SERIES_ID, SPLITS, TEST, TIMESTAMP, TRAIN, VAL
from seriesflow.evaluation.scoring import score_split, scorer_for
from seriesflow.model.normalize import normalize_series
from seriesflow.model.saved_model import forecast_windows
from seriesflow.model.scaler import Scaler
from seriesflow.model.training import fit_windows
from seriesflow.model.tuning import (
    StudyRef,
    TrialResult,
    TuneConfig,
    best_trial,
    check_grid,
    distributions,
    params_of,
    pruning_callback,
    selection_metric,
    trials_frame,
    with_params,
)
from seriesflow.model.windows import (
    SeriesArrays,
    resolve_timesteps,
    windows_from_table,
    windows_table,
)
from seriesflow.ops.secrets import redact_url, refuse_credentials
from seriesflow.tracking.registry import mlflow_module, use_tracking
from seriesflow.workspace.files import (
    Workspace,
    new_run_id,
    read_parquet,
    write_json,
    write_parquet,
    writing_as,
)
from seriesflow.workspace.history import load_history
from seriesflow.workspace.landing import FILE, Landing
from seriesflow.workspace.ledger import find_new, load_ledger, scan_landing
from tasks.stage import flow_limit, limited

# --------------------------------------------------------------------------- pure trial


@dataclass(frozen=True)
class TrialScore:
    metrics: dict[str, dict[str, float]]  # {model | baseline: {metric: value}} on val
    epochs: pd.DataFrame
    windows: dict[str, int]  # windows per split used


def evaluate_trial(
    normalized: pd.DataFrame,
    scaler: Scaler,
    cfg: PipelineConfig,
    season_length: int | None = None,
    callbacks: list[Any] | None = None,
) -> TrialScore:
    """Window, fit and score one configuration on the validation windows.

    The stage functions do the work (``windows_table``, ``fit_windows`` ->
    ``build_model``/``fit_model``, ``score_split``); test windows are dropped
    before anything is fit or scored. ``callbacks``: extra Keras callbacks (the pruning one).
    """
    arrays = SeriesArrays.from_frame(normalized, list(scaler.columns))
    timesteps = resolve_timesteps(cfg, scaler, arrays)
    table = windows_table(arrays, timesteps, cfg.window.horizon, cfg.train.task, cfg.window.stride)
    data = windows_from_table(table, arrays)
    data = data.select(data.split != SPLITS.index(TEST))  # the test part plays no role in tuning
    fitted = fit_windows(data, cfg.train, scaler, callbacks=callbacks)
    val = data.subset(VAL)
    outputs = forecast_windows(fitted.model, fitted.spec, scaler, val)
    scorer = scorer_for(data, scaler, cfg.evaluate, season_length)
    counts = {TRAIN: len(data.subset(TRAIN)), VAL: len(val)}
    return TrialScore(score_split(val, outputs, scorer).overall(), fitted.epochs, counts)


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class TuneData:
    normalized: Path
    scaler: Path
    rows: int
    series: int
    sources: list[str]


@dataclass(frozen=True)
class MlflowParent:
    """The search's MLflow run, as the trials sub-flow's parameter (Prefect stores it).

    ``tracking_uri`` is shown redacted (``redact_url``): a password in
    ``MLFLOW_TRACKING_URI`` stays in the environment, and ``tracking_uri_of`` takes it
    back from there in the process that runs the trial.
    """

    tracking_uri: str
    experiment_id: str
    run_id: str

    @classmethod
    def of(cls, tracking_uri: str, experiment_id: str, run_id: str) -> MlflowParent:
        return cls(redact_url(tracking_uri), experiment_id, run_id)


def tracking_uri_of(parent: MlflowParent) -> str:
    """The URI a trial talks to: ``MLFLOW_TRACKING_URI`` when it is the parent's (password
    included), else the parent's own (which then has none). A Dask worker needs the same
    ``MLFLOW_TRACKING_URI`` in its environment when it holds a password."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "")
    return env if env and redact_url(env) == parent.tracking_uri else parent.tracking_uri


def load_tuning_frame(cfg: PipelineConfig) -> tuple[pd.DataFrame, list[str]]:
    """Accepted history + the landing folder's unledgered files (later rows win)."""
    workspace = Workspace(cfg.paths.workspace_path())
    history = load_history(workspace, cfg.columns)
    parts, sources = [history], ["history"] if len(history) else []
    landing = Landing(cfg.paths.landing_location(), cfg.ingest.landing_patterns)
    ledger = load_ledger(workspace.ledger)
    # settled files only: this look counts with the watcher's and the runs' (no waiting)
    landed = scan_landing(landing, cfg.ingest.settle_seconds, state=workspace.looks)
    with tempfile.TemporaryDirectory() as fetched:
        for landed_file in find_new(landed, ledger):
            if landed_file.kind != FILE:
                continue  # links and special files are never read
            try:
                local = landing.fetch(landed_file.name, Path(fetched) / landed_file.name)
                parts.append(read_series_file(local, cfg.columns, cfg.ingest, landed_file.name))
            except (OSError, ValueError):  # DataRejected: the retrain flow will quarantine it
                continue
            sources.append(landed_file.name)
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.drop_duplicates([SERIES_ID, TIMESTAMP], keep="last")
    frame = frame.sort_values([SERIES_ID, TIMESTAMP], ignore_index=True)
    if frame.empty:
        raise ValueError(
            f"tune: no data -- no accepted history in {workspace.root} and no readable new "
            f"files in paths.landing={landing.display}"
        )
    return frame, sources


@task(name="tune-prepare", cache_policy=NO_CACHE)
def prepare(cfg: PipelineConfig, folder: Path) -> TuneData:
    logger = get_run_logger()
    frame, sources = load_tuning_frame(cfg)
    normalized, scaler = normalize_series(frame, cfg)
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(normalized, folder / "03_normalized.parquet")
    write_json(scaler.to_json(), folder / "scaler.json")
    logger.info(
        "Tuning data: %d rows, %d series from %s; frequencies %s",
        len(frame),
        frame[SERIES_ID].nunique(),
        sources,
        sorted(set(scaler.frequency.values())),
    )
    return TuneData(
        folder / "03_normalized.parquet",
        folder / "scaler.json",
        len(frame),
        int(frame[SERIES_ID].nunique()),
        sources,
    )


@task(name="tune-trial", cache_policy=NO_CACHE, task_run_name="trial-{number}")
def trial(
    number: int,
    trial_id: int,
    cfg: PipelineConfig,
    search: TuneConfig,
    study: StudyRef,
    data: TuneData,
    parent: MlflowParent,
) -> TrialResult:
    """Fit and score one configuration (the study's trial ``trial_id``, its params in
    ``cfg``), reporting val_loss each epoch to the pruner; log it as an MLflow child run."""
    logger = get_run_logger()
    where = _where()
    mlflow = mlflow_module()
    params = params_of(cfg)
    started = time.perf_counter()
    mlflow.set_tracking_uri(tracking_uri_of(parent))  # a Dask worker process starts without it
    with mlflow.start_run(
        run_name=f"trial-{number}",
        experiment_id=parent.experiment_id,
        nested=True,
        parent_run_id=parent.run_id,
    ) as child:
        mlflow.log_params({"trial": number, **params})
        pruning = pruning_callback(study.trial(trial_id, search), study.higher_is_better)
        try:
            result = evaluate_trial(
                read_parquet(data.normalized), Scaler.load(data.scaler), cfg, callbacks=[pruning]
            )
        except optuna.TrialPruned as pruned:
            for step, value in pruning.reported.items():
                mlflow.log_metric("val_loss", value, step=step)
            mlflow.log_metrics({"epochs": float(len(pruning.reported))})
            mlflow.set_tag("optuna.state", "pruned")
            logger.info("trial %d %s pruned: %s", number, params, pruned)
            return TrialResult(
                number,
                params,
                "pruned",
                epochs=len(pruning.reported),
                seconds=time.perf_counter() - started,
                mlflow_run_id=child.info.run_id,
                runner=where,
            )
        except Exception as exc:  # noqa: BLE001 - one bad trial must not end the search
            logger.warning("trial %d %s failed: %s", number, params, exc)
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            mlflow.end_run(status="FAILED")
            return TrialResult(
                number,
                params,
                "failed",
                seconds=time.perf_counter() - started,
                mlflow_run_id=child.info.run_id,
                error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}",
                runner=where,
            )
        mlflow.set_tag("optuna.state", "complete")
        for name, values in result.metrics.items():
            prefix = "val_" if name == MODEL else f"val_{name}_"
            mlflow.log_metrics({prefix + k: v for k, v in values.items() if math.isfinite(v)})
        history = result.epochs.groupby("epoch").mean(numeric_only=True)
        for epoch, row in history.iterrows():
            mlflow.log_metrics(
                {k: float(v) for k, v in row.items() if math.isfinite(float(v))}, step=int(epoch)
            )
        mlflow.log_metrics({"epochs": float(len(history))})
    metric, _ = selection_metric(cfg)
    logger.info(
        "trial %d %s: val %s %.4f in %d epochs",
        number,
        params,
        metric,
        result.metrics[MODEL][metric],
        len(history),
    )
    return TrialResult(
        number,
        params,
        "completed",
        result.metrics,
        len(history),
        time.perf_counter() - started,
        child.info.run_id,
        runner=where,
    )


def _where() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not on a Dask worker
        return threading.current_thread().name


@dataclass(frozen=True)
class AskedTrial:
    """A trial the study handed out: its number (Optuna's + 1), Optuna id and config."""

    number: int
    trial_id: int
    cfg: PipelineConfig


@flow(name="tune-trials", description="One round of trials, on the chosen task runner.")
def run_trials(
    asked: list[AskedTrial],
    search: TuneConfig,
    study: StudyRef,
    data: TuneData,
    parent: MlflowParent,
) -> list[TrialResult]:
    futures = [
        limited(trial, a.cfg.limits, "train").submit(
            a.number, a.trial_id, a.cfg, search, study, data, parent
        )
        for a in asked
    ]
    return [future.result() for future in futures]


def ask_trials(
    study: optuna.Study, cfg: PipelineConfig, search: TuneConfig, count: int
) -> list[AskedTrial]:
    """``count`` trials of the sampler, each as a config; a combination that is not a valid
    config is told FAIL and ends the search (``ValueError``), as a wrong setting should."""
    asked: list[AskedTrial] = []
    space = distributions(search)
    for _ in range(count):
        suggested = study.ask(space)
        try:
            trial_cfg = with_params(cfg, suggested.params)
        except ValueError:
            study.tell(suggested, state=optuna.trial.TrialState.FAIL)
            raise
        asked.append(AskedTrial(suggested.number + 1, suggested._trial_id, trial_cfg))
    return asked


def tell_trials(
    study: optuna.Study, asked: list[AskedTrial], results: list[TrialResult], metric: str
) -> None:
    """Tell the study each trial's outcome, in trial order (so the sampler's next
    suggestions do not depend on which trial finished first)."""
    states = optuna.trial.TrialState
    for a, result in zip(asked, results, strict=True):
        number = a.number - 1  # Optuna numbers trials from 0
        value = result.value(metric)
        if result.status == "completed" and math.isfinite(value):
            study.tell(number, value)
        elif result.status == "pruned":
            study.tell(number, state=states.PRUNED)
        else:
            study.tell(number, state=states.FAIL)


@flow(name="tune", description="Hyperparameter search for the LSTM forecaster, one task per trial.")
def tune(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 - Prefect form default
    search: TuneConfig = TuneConfig(),  # noqa: B008
    address: str | None = None,
    retrain_best: bool = False,
) -> dict[str, Any]:
    tune_id = new_run_id()
    # its temporaries are named for it: a retrain's recovery (this flow takes no lock) leaves
    # them alone while it writes
    with flow_limit(cfg.limits, "tune"), writing_as("tune", tune_id):
        return _search(cfg, search, address, retrain_best, tune_id)


def _search(
    cfg: PipelineConfig, search: TuneConfig, address: str | None, retrain_best: bool, tune_id: str
) -> dict[str, Any]:
    logger = get_run_logger()
    workspace = Workspace(cfg.paths.workspace_path())
    folder = workspace.root / "tune" / tune_id
    total = check_grid(search)
    metric, higher = selection_metric(cfg)
    data = limited(prepare, cfg.limits, "normalize")(cfg, folder)

    tracking_uri = cfg.register.resolved_tracking_uri(workspace.root)
    experiment_id = use_tracking(tracking_uri, cfg.register.experiment, workspace.root)
    mlflow = mlflow_module()
    # the config refuses credentials in train.dask_address; this parameter is stored too
    refuse_credentials(address or "", "tune's address", "Dask's own TLS settings")
    address = address or cfg.train.dask_address  # one cluster setting for both flows
    runner = task_runner(address, search.max_workers)
    # the study in the tune folder: every trial task (a thread, a Dask worker) loads its
    # trial from it and reports there; the sampler lives in this process only
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ref_study = StudyRef(f"sqlite:///{folder / 'study.db'}", f"tune-{tune_id}", higher)
    study = ref_study.create(search)
    logger.info(
        "%s search (seed %d, %s): %d trials, %d at a time on %s, ranked by val %s",
        search.strategy,
        search.seed,
        "median pruning" if search.pruning else "no pruning",
        total,
        search.max_workers,
        f"Dask at {address}" if address else "threads",
        metric,
    )
    results: list[TrialResult] = []
    configs: dict[int, PipelineConfig] = {}
    with mlflow.start_run(run_name=f"tune-{tune_id}", experiment_id=experiment_id) as parent:
        mlflow.set_tags(
            {
                "seriesflow.kind": "tune",
                "seriesflow.tune_dir": str(folder),
                "optuna.study": ref_study.name,
            }
        )
        mlflow.log_params(
            {
                "strategy": search.strategy,
                "trials": total,
                "seed": search.seed,
                "pruning": search.pruning,
                "selection_metric": metric,
            }
        )
        mlflow.log_dict(search.model_dump(mode="json"), "search.json")
        mlflow.log_dict(cfg.dump(), "base_config.json")
        ref = MlflowParent.of(tracking_uri, experiment_id, parent.info.run_id)
        while len(results) < total:
            asked = ask_trials(study, cfg, search, min(search.max_workers, total - len(results)))
            configs.update({a.number: a.cfg for a in asked})
            told = run_trials.with_options(task_runner=runner)(asked, search, ref_study, data, ref)
            tell_trials(study, asked, told, metric)
            results.extend(told)
        best = best_trial(results, metric, higher)
        counts = {s: sum(r.status == s for r in results) for s in ("completed", "pruned", "failed")}
        mlflow.log_metrics({f"trials_{s}": float(n) for s, n in counts.items()})
        if best is not None:
            mlflow.set_tags({"best_trial": str(best.number), "best_run_id": best.mlflow_run_id})
            mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
            mlflow.log_metric(f"best_val_{metric}", best.value(metric))

    table = trials_frame(results, metric, higher)
    write_parquet(table, folder / "trials.parquet")
    create_table_artifact(
        key="tune-trials",
        table=json.loads(table.to_json(orient="records")),
        description=f"{len(results)} trials ({counts['pruned']} pruned), best first by val "
        f"{metric}",
    )
    failed = [r for r in results if r.status == "failed"]
    if best is None:
        raise RuntimeError(
            f"tune: none of {len(results)} trials completed; first error: "
            f"{failed[0].error if failed else 'none'}"
        )
    best_cfg = configs[best.number]
    (folder / "best.yaml").write_text(yaml.safe_dump(best_cfg.dump(), sort_keys=False), "utf-8")
    create_markdown_artifact(
        key="tune-best",
        markdown=f"# Best of {len(results)} trials (val {metric} {best.value(metric):.4g})\n\n"
        + "\n".join(f"- `{k}`: {v}" for k, v in best.params.items())
        + f"\n\nConfig: `{folder / 'best.yaml'}` (use it with `python -m flows.retrain "
        f"--config`). {counts['pruned']} trial(s) pruned, {len(failed)} failed.",
    )
    logger.info(
        "Best trial %d: %s, val %s %.4f", best.number, best.params, metric, best.value(metric)
    )

    summary: dict[str, Any] = {
        "tune_dir": str(folder),
        "parent_run_id": ref.run_id,
        "metric": f"val_{metric}",
        "study": {"storage": ref_study.storage, "name": ref_study.name},
        "trials": [asdict(r) for r in results],
        "table": json.loads(table.to_json(orient="records")),  # best first
        "best": {"trial": best.number, "params": best.params, "value": best.value(metric)},
        "best_config": str(folder / "best.yaml"),
        "retrain": None,
    }
    if retrain_best:
        from flows.retrain import retrain

        forced = best_cfg.model_copy(
            update={"ingest": best_cfg.ingest.model_copy(update={"retrain_without_new_data": True})}
        )
        state = retrain(forced, return_state=True)
        summary["retrain"] = state.result(raise_on_failure=False)
        if not isinstance(summary["retrain"], dict):
            summary["retrain"] = {"status": "failed", "reason": f"{state.name}: {state.message}"}
    return summary


# --------------------------------------------------------------------------- CLI


def load_tune_config(
    path: str | Path | None, overrides: list[str]
) -> tuple[PipelineConfig, TuneConfig]:
    """A YAML file (PipelineConfig + optional ``tune:``) and ``--set`` overrides of both."""
    tree = load_config_tree(path, overrides)
    search = TuneConfig.model_validate(tree.pop("tune", None) or {})
    return PipelineConfig.model_validate(tree), search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.tune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser, example="tune.strategy=grid (tpe, random) or train.epochs=5")
    parser.add_argument("--address", help="Dask scheduler address (default: local threads)")
    parser.add_argument(
        "--retrain-best", action="store_true", help="run retrain with the best config"
    )
    args = parser.parse_args(argv)
    try:
        cfg, search = load_tune_config(args.config, args.overrides)
        check_grid(search)  # a grid that is too big fails here, before any work
        # before the flow starts: Prefect stores its parameters (the address) with the run
        refuse_credentials(args.address or "", "--address", "Dask's own TLS settings")
    except (OSError, ValueError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    state = tune(cfg, search, args.address, args.retrain_best, return_state=True)
    result = state.result(raise_on_failure=False)
    if not isinstance(result, dict):
        print(json.dumps({"status": "failed", "reason": f"{state.name}: {state.message}"}))
        return 1
    print()
    print(pd.DataFrame(result["table"]).drop(columns=["mlflow_run_id"]).to_string(index=False))
    print(f"\nBest: trial {result['best']['trial']} {result['best']['params']}")
    print(json.dumps(result, default=str))
    retrained = result.get("retrain")
    return 0 if retrained is None or retrained.get("status") in ("completed", "skipped") else 1


if __name__ == "__main__":
    sys.exit(main())
