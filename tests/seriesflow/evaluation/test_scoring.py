"""Scoring: metrics tables, baselines and the backtest against hand values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import (
    ALL_SERIES,
    ALL_WINDOWS,
    CHAMPION,
    CHAMPION_WINDOWS,
    ETS,
    FOLD,
    MAJORITY,
    MODEL,
    NAIVE,
    SEASONAL_NAIVE,
    SERIES_ID,
    THETA,
)
from seriesflow.evaluation.backtest import backtest, backtest_folds, backtest_summary
from seriesflow.evaluation.scoring import (
    SeriesContext,
    class_baselines,
    classical_baselines,
    overall,
    score,
    score_classification,
)
from tests.factories import TIMES, window_set

V = np.array([10.0, 12, 11, 13, 12, 14, 13, 15, 14, 16])


def context(season: int = 2, **series: np.ndarray) -> SeriesContext:
    values = series or {"a": V}
    return SeriesContext(
        values=dict(values),
        times={k: TIMES[: len(v)] for k, v in values.items()},
        scale={k: 2.0 for k in values},
        season={k: season for k in values},
    )


def test_score_against_hand_values():
    w = window_set([6, 7])
    actual = np.array([[15.0, 14.0], [14.0, 16.0]])
    metrics, predictions = score(w, actual + 1, context(season=2))
    got = overall(metrics)
    assert got[MODEL]["mae"] == 1 and got[MODEL]["rmse"] == 1 and got[MODEL]["mase"] == 0.5
    assert got[NAIVE]["mae"] == pytest.approx(1.25)  # forecasts [13, 13] and [15, 15]
    assert got[SEASONAL_NAIVE]["mae"] == 1.0  # forecasts [14, 13] and [13, 15]
    assert predictions["actual"].tolist() == [15, 14, 14, 16]
    assert predictions[SEASONAL_NAIVE].tolist() == [14, 13, 13, 15]
    assert predictions["step"].tolist() == [1, 2, 1, 2]
    first = pd.Timestamp(TIMES[7]).tz_localize("UTC")
    assert predictions["target_time"].iloc[0] == first
    assert set(metrics["scope"]) == {ALL_WINDOWS}


def test_champion_is_compared_only_on_the_windows_it_scored():
    w = window_set([6, 7])
    model = np.array([[15.0, 14.0], [24.0, 26.0]])  # right, then off by 10
    champion = np.array([[16.0, 15.0], [np.nan, np.nan]])  # off by 1 where it scored
    metrics, predictions = score(w, model, context(season=2), champion)
    head = overall(metrics, CHAMPION_WINDOWS)
    assert head[CHAMPION]["mae"] == 1 and head[MODEL]["mae"] == 0
    assert metrics.loc[metrics["scope"] == CHAMPION_WINDOWS, "windows"].max() == 1
    assert predictions[CHAMPION].isna().sum() == 2


def test_backtest_folds_cut_each_series_in_origin_order():
    w = window_set([14, 10, 11, 12, 13, 20, 21, 22], series=["a"] * 5 + ["b"] * 3)
    assert backtest_folds(w, 2).tolist() == [2, 1, 1, 1, 2, 1, 1, 2]
    assert backtest_folds(w, 1).tolist() == [1] * 8
    with pytest.raises(ValueError, match="evaluate.backtest_folds=4.*'b' has only 3"):
        backtest_folds(w, 4)


def test_backtest_scores_each_fold_on_its_own_window_set():
    long = np.arange(40.0) % 7 + np.arange(40.0) * 0.1
    ctx = context(season=7, a=long)
    w = window_set(list(range(20, 38)), horizon=1)
    actual = long[w.origin + 1][:, None]
    model = actual + np.where(w.origin < 29, 1.0, 3.0)[:, None]  # the later fold is worse
    fold = backtest_folds(w, 2)
    table = backtest(w, fold, lambda m: score(w.select(m), model[m], ctx)[0])
    summary = backtest_summary(table, "mae")
    assert summary.loc[1, MODEL] == pytest.approx(1.0) and summary.loc[2, MODEL] == 3.0
    first_half = overall(score(w.select(fold == 1), model[fold == 1], ctx)[0])
    assert summary.loc[1, NAIVE] == pytest.approx(first_half[NAIVE]["mae"])
    assert set(table[FOLD]) == {1, 2} and (table["start"] <= table["end"]).all()


def test_class_baselines_and_scores_by_hand():
    values = np.array([1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0])
    w = window_set([3, 4, 5], horizon=1, labels=["down", "up", "up"])
    ctx = context(a=values)
    base = class_baselines(w, ctx, {"a": 1})
    assert base[MAJORITY].tolist() == [1, 1, 1]
    assert base[NAIVE].tolist() == [0, 0, 1]  # the direction of the step ending at the origin
    prob = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])  # predicts down, up, down
    metrics, predictions = score_classification(w, prob, ctx, {"a": 1})
    got = overall(metrics)
    assert got[MODEL]["accuracy"] == pytest.approx(2 / 3)
    assert got[MAJORITY]["accuracy"] == pytest.approx(2 / 3)
    assert got[NAIVE]["accuracy"] == pytest.approx(2 / 3)
    assert got[MODEL]["f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)  # both classes: p/r 1/2, 1
    assert predictions[MODEL].tolist() == ["down", "up", "down"]
    assert predictions["p_up"].tolist() == [0.1, 0.8, 0.4]


def test_overall_reads_the_pooled_rows_of_one_scope():
    metrics = pd.DataFrame(
        {
            "model": [MODEL, MODEL],
            "scope": [ALL_WINDOWS, ALL_WINDOWS],
            SERIES_ID: [ALL_SERIES, "a"],
            "windows": [3, 3],
            "accuracy": [0.5, 0.7],
            "precision": [0.5, 0.7],
            "recall": [0.5, 0.7],
            "f1": [0.4, 0.6],
        }
    )
    assert overall(metrics) == {
        MODEL: {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.4}
    }


# which classical baselines a run fits (a statsmodels fit per series each)


def config(**sections) -> PipelineConfig:
    return PipelineConfig.model_validate(sections)


def test_reported_baselines_stop_at_the_series_limit():
    cfg = config(
        evaluate={"baselines": ["ets"], "baseline_max_series": 3},
        register={"models": "lstm_only"},
    )
    assert classical_baselines(cfg, 3) == (ETS,)
    assert classical_baselines(cfg, 4) == ()


def test_a_gated_baseline_is_fit_whatever_the_series_count():
    cfg = config(
        evaluate={"baselines": [], "baseline_max_series": 0},
        register={"baselines": ["naive", "ets"], "models": "lstm_only"},
    )
    assert classical_baselines(cfg, 1000) == (ETS,)


def test_the_routed_models_candidates_are_always_fit():
    cfg = config(evaluate={"baselines": [], "baseline_max_series": 0})
    assert classical_baselines(cfg, 1000) == (ETS, THETA)
    only_ets = config(
        evaluate={"baselines": []},
        register={"candidates": ["lstm", "ets", "naive"], "default_model": "lstm"},
    )
    assert classical_baselines(only_ets, 10) == (ETS,)


def test_no_classical_baseline_unless_asked():
    lstm_only = {"models": "lstm_only"}
    assert classical_baselines(config(evaluate={"baselines": []}, register=lstm_only), 1) == ()
    assert classical_baselines(PipelineConfig(), 200) == (ETS, THETA)  # reported by default
    # past the limit the reported ones stop; the routed model's candidates are still fit
    assert classical_baselines(config(register=lstm_only), 201) == ()
    assert classical_baselines(PipelineConfig(), 201) == (ETS, THETA)
