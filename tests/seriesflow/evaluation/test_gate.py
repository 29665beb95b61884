"""The promotion gate: every rule, in order, on hand-made evaluation tables."""

from __future__ import annotations

import pandas as pd
import pytest

from seriesflow.config.pipeline import RegisterConfig
from seriesflow.data.schema import (
    ALL_SERIES,
    ALL_WINDOWS,
    CHAMPION,
    CHAMPION_WINDOWS,
    CLASSIFICATION,
    ETS,
    MAJORITY,
    MODEL,
    NAIVE,
    SEASONAL_NAIVE,
    SERIES_ID,
)
from seriesflow.evaluation.gate import decide_promotion
from seriesflow.evaluation.metrics import CLASS_METRICS, METRICS


def table(scores: dict[str, float], head: dict[str, float] | None = None, mase: float = 0.5):
    """An evaluation table: rmse per model (all windows), + a champion head-to-head."""
    rows = [
        {"model": m, "scope": ALL_WINDOWS, "rmse": v, "mase": mase if m == MODEL else 1.0}
        for m, v in scores.items()
    ]
    rows += [
        {"model": m, "scope": CHAMPION_WINDOWS, "rmse": v, "mase": 1.0}
        for m, v in (head or {}).items()
    ]
    frame = pd.DataFrame(rows).assign(**{SERIES_ID: ALL_SERIES, "windows": 10})
    for name in METRICS:
        if name not in frame:
            frame[name] = frame["rmse"]
    return frame


def class_table(scores: dict[str, float], head: dict[str, float] | None = None):
    rows = [{"model": m, "scope": ALL_WINDOWS, "f1": v} for m, v in scores.items()]
    rows += [{"model": m, "scope": CHAMPION_WINDOWS, "f1": v} for m, v in (head or {}).items()]
    frame = pd.DataFrame(rows).assign(**{SERIES_ID: ALL_SERIES, "windows": 10})
    for name in CLASS_METRICS:
        if name not in frame:
            frame[name] = frame["f1"]
    return frame


BASELINES = {NAIVE: 2.0, SEASONAL_NAIVE: 1.5, ETS: 1.2}


def test_the_model_must_beat_naive_then_seasonal_naive():
    decision = decide_promotion(table({MODEL: 2.5, **BASELINES}), RegisterConfig(), False)
    assert (decision.promote, decision.rule) == (False, NAIVE)
    assert "naive (last value) baseline (2)" in decision.reason
    decision = decide_promotion(table({MODEL: 1.7, **BASELINES}), RegisterConfig(), False)
    assert (decision.promote, decision.rule) == (False, SEASONAL_NAIVE)
    assert [c.rule for c in decision.checks] == ["model", NAIVE, SEASONAL_NAIVE, "mase"]
    assert [c.passed for c in decision.checks] == [True, True, False, True]


def test_mase_must_be_below_the_configured_bound():
    scores = table({MODEL: 1.0, **BASELINES}, mase=1.2)
    decision = decide_promotion(scores, RegisterConfig(), False)
    assert (decision.promote, decision.rule) == (False, "mase")
    assert "MASE 1.2 is not below 1" in decision.reason
    relaxed = decide_promotion(scores, RegisterConfig(max_mase=1.5), False)
    assert (relaxed.promote, relaxed.rule) == (True, "no_champion")
    off = decide_promotion(scores, RegisterConfig(max_mase=None), False)
    assert off.promote and "mase" not in [c.rule for c in off.checks]


def test_the_champion_must_be_beaten_on_the_same_windows_by_the_margin():
    scores = table({MODEL: 1.0, **BASELINES}, head={MODEL: 0.95, CHAMPION: 1.0})
    decision = decide_promotion(scores, RegisterConfig(promote_margin=0.02), True)
    assert (decision.promote, decision.rule) == (True, "champion")
    decision = decide_promotion(scores, RegisterConfig(promote_margin=0.1), True)
    assert (decision.promote, decision.rule) == (False, "champion")
    assert "needs < 0.9" in decision.reason


def test_a_champion_that_could_not_be_rescored_blocks_promotion():
    decision = decide_promotion(table({MODEL: 1.0, **BASELINES}), RegisterConfig(), True)
    assert (decision.promote, decision.rule) == (False, "champion")
    assert "could not be re-scored" in decision.reason


def test_the_first_failing_rule_decides_and_all_are_reported():
    scores = table({MODEL: 3.0, **BASELINES}, head={MODEL: 3.0, CHAMPION: 1.0}, mase=2.0)
    decision = decide_promotion(scores, RegisterConfig(), True)
    assert decision.rule == NAIVE
    assert [(c.rule, c.passed) for c in decision.checks] == [
        ("model", True),
        (NAIVE, False),
        (SEASONAL_NAIVE, False),
        ("mase", False),
        ("champion", False),
    ]


def test_the_baselines_are_configurable_and_ets_is_named():
    scores = table({MODEL: 1.3, **BASELINES})  # beats naive and seasonal naive, not ETS (1.2)
    assert RegisterConfig().baselines == [NAIVE, SEASONAL_NAIVE]  # ETS is reported, not gated
    assert decide_promotion(scores, RegisterConfig(), False).promote
    with_ets = RegisterConfig(baselines=[NAIVE, SEASONAL_NAIVE, ETS])
    decision = decide_promotion(scores, with_ets, False)
    assert (decision.promote, decision.rule) == (False, ETS)
    assert "exponential smoothing" in decision.reason and "(1.2)" in decision.reason
    without = decide_promotion(scores, RegisterConfig(baselines=["naive"]), False)
    assert without.promote and [c.rule for c in without.checks] == ["model", NAIVE, "mase"]
    missing = table({MODEL: 1.0, NAIVE: 2.0, SEASONAL_NAIVE: 1.5})  # ets never scored
    refused = decide_promotion(missing, with_ets, False)
    assert (refused.promote, refused.rule) == (False, ETS) and "not scored" in refused.reason


def test_a_non_finite_score_is_never_promoted():
    decision = decide_promotion(table({MODEL: float("nan"), **BASELINES}), RegisterConfig(), False)
    assert (decision.promote, decision.rule) == (False, "model")


def test_classification_must_beat_the_majority_class_then_the_champion():
    cfg = RegisterConfig()
    low = decide_promotion(class_table({MODEL: 0.4, MAJORITY: 0.45}), cfg, False, CLASSIFICATION)
    assert (low.promote, low.rule) == (False, MAJORITY)
    first = decide_promotion(class_table({MODEL: 0.7, MAJORITY: 0.45}), cfg, False, CLASSIFICATION)
    assert (first.promote, first.rule) == (True, "no_champion")
    head = {MODEL: 0.82, CHAMPION: 0.8}
    scores = class_table({MODEL: 0.7, MAJORITY: 0.45}, head)
    assert decide_promotion(scores, cfg, True, CLASSIFICATION).promote
    # margin 20%: the champion's shortfall 0.2 must shrink to 0.16, i.e. F1 > 0.84
    strict = decide_promotion(scores, RegisterConfig(promote_margin=0.2), True, CLASSIFICATION)
    assert (strict.promote, strict.rule) == (False, "champion") and "needs > 0.84" in strict.reason


def test_classification_gate_uses_the_configured_metric():
    scores = class_table({MODEL: 0.7, MAJORITY: 0.45})
    scores.loc[scores["model"] == MODEL, "accuracy"] = 0.3
    cfg = RegisterConfig(classification_metric="accuracy")
    decision = decide_promotion(scores, cfg, False, CLASSIFICATION)
    assert (decision.promote, decision.rule) == (False, MAJORITY) and "accuracy" in decision.reason


@pytest.mark.parametrize("margin", [0.0, 0.05])
def test_margin_zero_means_strictly_better(margin):
    scores = table({MODEL: 1.0, **BASELINES}, head={MODEL: 1.0, CHAMPION: 1.0})
    decision = decide_promotion(scores, RegisterConfig(promote_margin=margin), True)
    assert not decision.promote  # a tie never moves the champion
