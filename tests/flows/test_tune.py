"""The tune flow: Optuna's seeded samplers, median pruning, validation-only scoring, threads
and a Dask cluster."""

from __future__ import annotations

import mlflow
import numpy as np
import optuna
import pytest
import yaml

from flows.tune import ask_trials, evaluate_trial, load_tune_config, tell_trials, tune
from seriesflow.config.pipeline import PipelineConfig, load_config
from seriesflow.data.schema import MODEL, NAIVE, SERIES_ID, VALUE
from seriesflow.model.lstm import seed_everything
from seriesflow.model.normalize import normalize_series
from seriesflow.model.tuning import (
    SearchSpace,
    StudyRef,
    TrialResult,
    TuneConfig,
    check_grid,
    distributions,
    make_sampler,
    pruning_callback,
    with_params,
)
from tests.factories import series_frame, tiny_config

PERIOD = 10
TWO_TRIALS = TuneConfig(
    strategy="grid",
    trials=2,
    space=SearchSpace(
        units=[4, 8],
        layers=[1],
        dropout=[0.0],
        learning_rate=[0.01],
        batch_size=[32],
        timesteps=[8],
    ),
)


# --------------------------------------------------------------------------- pure parts


def suggestions(search: TuneConfig, trials: int) -> list[dict]:
    """Ask ``trials`` trials of the search's sampler, telling each a value from its params."""
    study = optuna.create_study(sampler=make_sampler(search))
    asked = []
    for _ in range(trials):
        t = study.ask(distributions(search))
        asked.append(t.params)
        study.tell(t, t.params["units"] * t.params["dropout"] + t.params["learning_rate"])
    return asked


@pytest.mark.parametrize("strategy", ["tpe", "random"])
def test_the_sampler_is_seeded_same_seed_same_suggestions(strategy):
    search = TuneConfig(strategy=strategy, trials=8, seed=3, startup_trials=3)
    first = suggestions(search, 8)
    assert suggestions(search, 8) == first
    assert suggestions(search.model_copy(update={"seed": 4}), 8) != first
    space = search.space
    assert all(p["units"] in space.units and p["timesteps"] in space.timesteps for p in first)


def test_grid_strategy_covers_every_combination_once():
    space = SearchSpace(
        units=[4, 8],
        layers=[1, 2],
        dropout=[0.0],
        learning_rate=[0.01],
        batch_size=[16],
        timesteps=[6],
    )
    search = TuneConfig(strategy="grid", trials=4, space=space)
    assert check_grid(search) == 4
    study = optuna.create_study(sampler=make_sampler(search))
    # asked two at a time before any is told, as the flow's rounds do
    rounds = [[study.ask(distributions(search)) for _ in range(2)] for _ in range(2)]
    seen = []
    for asked in rounds:
        seen += [(t.params["units"], t.params["layers"]) for t in asked]
        for t in asked:
            study.tell(t, 1.0)  # the exhausted grid does not raise (no study.stop())
    assert sorted(seen) == [(4, 1), (4, 2), (8, 1), (8, 2)]
    with pytest.raises(ValueError, match="grid of 4 combinations.*tune.trials=3"):
        check_grid(TuneConfig(strategy="grid", trials=3, space=space))


def test_pruning_stops_a_trial_whose_val_loss_is_far_above_the_median(tmp_path):
    """Real Optuna, real training: two good trials finish 3 epochs; a third whose
    validation part is 100x off reports a val_loss far above their median at epoch 1 and
    is pruned there."""
    cfg = with_params(
        tiny_config(tmp_path / "w", tmp_path / "l", train={"epochs": 3}),
        {"timesteps": 8, "units": 4},
    )
    search = TuneConfig(prune_after_trials=2, prune_after_epochs=1)
    ref = StudyRef(f"sqlite:///{tmp_path / 'study.db'}", "prune", higher_is_better=False)
    study = ref.create(search)
    frame = series_frame(n=160, period=PERIOD)
    in_val = frame.groupby(SERIES_ID).cumcount() >= 112
    wild = frame.assign(**{VALUE: np.where(in_val, frame[VALUE] * 100, frame[VALUE])})

    def run(data):
        t = study.ask()
        normalized, scaler = normalize_series(data, cfg)
        seed_everything(0)
        callback = pruning_callback(ref.trial(t._trial_id, search))  # loaded from storage
        try:
            score = evaluate_trial(normalized, scaler, cfg, 24, callbacks=[callback])
        except optuna.TrialPruned:
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
            return callback.reported
        study.tell(t, score.metrics[MODEL]["mase"])
        return callback.reported

    good = [run(frame), run(frame)]
    bad = run(wild)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.PRUNED]
    assert [len(r) for r in good] == [3, 3] and len(bad) == 1 < cfg.train.epochs
    assert bad[1] > 3 * max(good[0][1], good[1][1])  # far above the median at epoch 1
    assert study.trials[2].intermediate_values == {1: pytest.approx(bad[1])}


def test_asked_trials_are_configs_and_their_outcomes_are_told_in_order(tmp_path):
    base = tiny_config(tmp_path / "w", tmp_path / "l")
    search = TuneConfig(
        strategy="grid", trials=4, space=TWO_TRIALS.space.model_copy(update={"units": [4, 8, 16]})
    )
    study = optuna.create_study(sampler=make_sampler(search))
    asked = ask_trials(study, base, search, 3)
    assert [a.number for a in asked] == [1, 2, 3]
    assert sorted(a.cfg.train.units for a in asked) == [4, 8, 16]
    results = [
        TrialResult(1, {}, "completed", {MODEL: {"mase": 0.7}}),
        TrialResult(2, {}, "pruned", epochs=1),
        TrialResult(3, {}, "failed", error="boom"),
    ]
    tell_trials(study, asked, results, "mase")
    states = optuna.trial.TrialState
    assert [t.state for t in study.trials] == [states.COMPLETE, states.PRUNED, states.FAIL]
    assert study.best_value == 0.7
    with pytest.raises(ValueError, match="(?s)tune.space.*min_lr"):
        bad = search.model_copy(
            update={"space": search.space.model_copy(update={"learning_rate": [1e-6]})}
        )
        ask_trials(optuna.create_study(sampler=make_sampler(bad)), base, bad, 1)


def test_with_params_sets_the_searched_settings_and_validates_them(tmp_path):
    base = tiny_config(tmp_path / "w", tmp_path / "l")
    cfg = with_params(base, {"units": 16, "timesteps": 30, "learning_rate": 0.003})
    assert (cfg.train.units, cfg.window.timesteps, cfg.train.learning_rate) == (16, 30, 0.003)
    assert cfg.train.epochs == base.train.epochs  # the rest is the base config
    with pytest.raises(ValueError, match="(?s)tune.space.*min_lr"):
        with_params(base, {"learning_rate": 1e-6})  # below train.min_lr


def test_load_tune_config_reads_the_tune_section_and_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    assert load_tune_config(None, [])[1].strategy == "tpe"  # the default
    path.write_text(yaml.safe_dump({"train": {"epochs": 3}, "tune": {"strategy": "grid"}}))
    cfg, search = load_tune_config(path, ["tune.space.units=[4,8]", "tune.trials=20"])
    assert isinstance(cfg, PipelineConfig) and cfg.train.epochs == 3
    assert search.strategy == "grid" and search.space.units == [4, 8] and search.trials == 20
    with pytest.raises(ValueError, match="strategy"):
        load_tune_config(None, ["tune.strategy=bayes"])


def test_trials_are_scored_on_validation_windows_never_on_test(tmp_path):
    cfg = with_params(tiny_config(tmp_path / "w", tmp_path / "l"), {"timesteps": 8, "units": 4})
    frame = series_frame(n=160, period=PERIOD)

    def val_scores(data):
        normalized, scaler = normalize_series(data, cfg)
        seed_everything(0)
        return evaluate_trial(normalized, scaler, cfg, season_length=24)

    base = val_scores(frame)
    last = frame.groupby(SERIES_ID).cumcount() >= 160 - 24  # the test part (15% of 160)
    wild = frame.assign(**{VALUE: np.where(last, frame[VALUE] * 100, frame[VALUE])})
    assert val_scores(wild).metrics == base.metrics  # the test part changed nothing
    assert base.windows == {"train": 2 * (112 - 8), "val": 2 * 24}
    in_val = (frame.groupby(SERIES_ID).cumcount() >= 112) & ~last
    noisy = frame.assign(**{VALUE: np.where(in_val, frame[VALUE] + 3, frame[VALUE])})
    assert val_scores(noisy).metrics[NAIVE] != base.metrics[NAIVE]  # the val part is scored


# --------------------------------------------------------------------------- the flow


def child_runs(cfg: PipelineConfig, parent_run_id: str):
    mlflow.set_tracking_uri(cfg.register.resolved_tracking_uri(cfg.paths.workspace_path()))
    experiment = mlflow.get_experiment_by_name(cfg.register.experiment)
    return mlflow.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        output_format="list",
    )


@pytest.fixture
def landing_rows():
    return 200  # the landing fixture's base file: two trials and a retrain, kept short


def test_tune_on_threads_logs_child_runs_and_retrains_the_best(prefect_server, tmp_path, landing):
    cfg = tiny_config(tmp_path / "work", landing, train={"epochs": 2})
    result = tune(cfg, TWO_TRIALS, retrain_best=True)

    trials = {t["number"]: t for t in result["trials"]}
    assert [t["status"] for t in trials.values()] == ["completed", "completed"]
    assert all(not t["runner"].startswith(("tcp://", "inproc://")) for t in trials.values())
    # trials are ranked on the gate's metric (register.metric: MASE by default)
    scores = {n: t["metrics"][MODEL]["mase"] for n, t in trials.items()}
    best = min(scores, key=scores.get)
    assert result["best"]["trial"] == best and result["best"]["value"] == scores[best]
    assert result["metric"] == "val_mase"

    children = child_runs(cfg, result["parent_run_id"])
    assert sorted(int(r.data.params["units"]) for r in children) == [4, 8]
    by_trial = {int(r.data.params["trial"]): r for r in children}
    assert by_trial[best].data.metrics["val_mase"] == pytest.approx(scores[best])
    assert all(r.info.status == "FINISHED" for r in children)
    assert all(r.data.tags["optuna.state"] == "complete" for r in children)
    assert all("val_loss" in r.data.metrics for r in children)
    parent = mlflow.get_run(result["parent_run_id"]).data
    assert parent.params["strategy"] == "grid" and parent.params["seed"] == "0"
    assert parent.params["best_units"] == str(trials[best]["params"]["units"])
    assert parent.tags["best_trial"] == str(best)
    assert parent.metrics["best_val_mase"] == pytest.approx(scores[best])
    stored = result["study"]
    study = optuna.load_study(study_name=stored["name"], storage=stored["storage"])
    told = {t.number + 1: t for t in study.trials}
    assert {n: t.value for n, t in told.items()} == pytest.approx(scores)
    assert {told[n].params["units"] for n in told} == {4, 8}  # the grid, covered

    best_cfg = load_config(result["best_config"])
    assert best_cfg.train.units == trials[best]["params"]["units"]
    retrained = result["retrain"]
    assert retrained["status"] == "completed" and retrained["model_version"] == "1"
    assert retrained["gate_rule"] == "no_champion"  # a routed first version: the champion
    version = mlflow.MlflowClient().get_model_version("test-lstm", "1")
    assert mlflow.get_run(version.run_id).data.params["train.units"] == str(best_cfg.train.units)


def test_tune_on_a_local_dask_cluster(prefect_server, tmp_path, landing):
    from distributed import LocalCluster

    cfg = tiny_config(tmp_path / "work", landing, train={"epochs": 1})
    # processes=False keeps the worker in this process (no second TensorFlow import);
    # processes=True works too (checked by hand: ~20 s slower on 2 cores).
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        # the default TPE sampler, two rounds (two trials asked together, then one)
        search = TuneConfig(trials=3, max_workers=2, space=TWO_TRIALS.space)
        result = tune(cfg, search, address=cluster.scheduler_address)
        workers = set(cluster.scheduler_info["workers"])
    assert [t["status"] for t in result["trials"]] == ["completed"] * 3
    assert {t["runner"] for t in result["trials"]} <= workers  # ran on the Dask worker
    assert len(child_runs(cfg, result["parent_run_id"])) == 3
    stored = result["study"]
    study = optuna.load_study(study_name=stored["name"], storage=stored["storage"])
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert mlflow.get_run(result["parent_run_id"]).data.params["strategy"] == "tpe"
    assert result["retrain"] is None
