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
    ROUTED,
    SEASONAL_NAIVE,
    SERIES_ID,
)
from seriesflow.evaluation.gate import aggregate, decide_promotion
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
# The rules of the LSTM alone on pooled RMSE (the defaults are the routed model, series-mean MASE)
LSTM_ONLY = {"models": "lstm_only", "metric": "rmse", "aggregate": "pooled"}


def test_the_model_must_beat_naive_then_seasonal_naive():
    decision = decide_promotion(
        table({MODEL: 2.5, **BASELINES}), RegisterConfig(**LSTM_ONLY), False
    )
    assert (decision.promote, decision.rule) == (False, NAIVE)
    assert "naive (last value) baseline (2)" in decision.reason
    decision = decide_promotion(
        table({MODEL: 1.7, **BASELINES}), RegisterConfig(**LSTM_ONLY), False
    )
    assert (decision.promote, decision.rule) == (False, SEASONAL_NAIVE)
    assert [c.rule for c in decision.checks] == ["model", NAIVE, SEASONAL_NAIVE, "mase"]
    assert [c.passed for c in decision.checks] == [True, True, False, True]


def test_mase_must_be_below_the_configured_bound():
    scores = table({MODEL: 1.0, **BASELINES}, mase=1.2)
    decision = decide_promotion(scores, RegisterConfig(**LSTM_ONLY), False)
    assert (decision.promote, decision.rule) == (False, "mase")
    assert "MASE 1.2 is not below 1" in decision.reason
    relaxed = decide_promotion(scores, RegisterConfig(**LSTM_ONLY, max_mase=1.5), False)
    assert (relaxed.promote, relaxed.rule) == (True, "no_champion")
    off = decide_promotion(scores, RegisterConfig(**LSTM_ONLY, max_mase=None), False)
    assert off.promote and "mase" not in [c.rule for c in off.checks]


def test_the_champion_must_be_beaten_on_the_same_windows_by_the_margin():
    scores = table({MODEL: 1.0, **BASELINES}, head={MODEL: 0.95, CHAMPION: 1.0})
    decision = decide_promotion(scores, RegisterConfig(**LSTM_ONLY, promote_margin=0.02), True)
    assert (decision.promote, decision.rule) == (True, "champion")
    decision = decide_promotion(scores, RegisterConfig(**LSTM_ONLY, promote_margin=0.1), True)
    assert (decision.promote, decision.rule) == (False, "champion")
    assert "needs < 0.9" in decision.reason


def test_a_champion_that_could_not_be_rescored_blocks_promotion():
    decision = decide_promotion(table({MODEL: 1.0, **BASELINES}), RegisterConfig(**LSTM_ONLY), True)
    assert (decision.promote, decision.rule) == (False, "champion")
    assert "could not be re-scored" in decision.reason


def test_the_first_failing_rule_decides_and_all_are_reported():
    scores = table({MODEL: 3.0, **BASELINES}, head={MODEL: 3.0, CHAMPION: 1.0}, mase=2.0)
    decision = decide_promotion(scores, RegisterConfig(**LSTM_ONLY), True)
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
    assert decide_promotion(scores, RegisterConfig(**LSTM_ONLY), False).promote
    with_ets = RegisterConfig(**LSTM_ONLY, baselines=[NAIVE, SEASONAL_NAIVE, ETS])
    decision = decide_promotion(scores, with_ets, False)
    assert (decision.promote, decision.rule) == (False, ETS)
    assert "AutoETS" in decision.reason and "(1.2)" in decision.reason
    without = decide_promotion(scores, RegisterConfig(**LSTM_ONLY, baselines=["naive"]), False)
    assert without.promote and [c.rule for c in without.checks] == ["model", NAIVE, "mase"]
    missing = table({MODEL: 1.0, NAIVE: 2.0, SEASONAL_NAIVE: 1.5})  # ets never scored
    refused = decide_promotion(missing, with_ets, False)
    assert (refused.promote, refused.rule) == (False, ETS) and "not scored" in refused.reason


def test_a_non_finite_score_is_never_promoted():
    decision = decide_promotion(
        table({MODEL: float("nan"), **BASELINES}), RegisterConfig(**LSTM_ONLY), False
    )
    assert (decision.promote, decision.rule) == (False, "model")


def test_classification_must_beat_the_majority_class_then_the_champion():
    cfg = RegisterConfig(**LSTM_ONLY)
    low = decide_promotion(class_table({MODEL: 0.4, MAJORITY: 0.45}), cfg, False, CLASSIFICATION)
    assert (low.promote, low.rule) == (False, MAJORITY)
    first = decide_promotion(class_table({MODEL: 0.7, MAJORITY: 0.45}), cfg, False, CLASSIFICATION)
    assert (first.promote, first.rule) == (True, "no_champion")
    head = {MODEL: 0.82, CHAMPION: 0.8}
    scores = class_table({MODEL: 0.7, MAJORITY: 0.45}, head)
    assert decide_promotion(scores, cfg, True, CLASSIFICATION).promote
    # margin 20%: the champion's shortfall 0.2 must shrink to 0.16, i.e. F1 > 0.84
    strict = decide_promotion(
        scores, RegisterConfig(**LSTM_ONLY, promote_margin=0.2), True, CLASSIFICATION
    )
    assert (strict.promote, strict.rule) == (False, "champion") and "needs > 0.84" in strict.reason


def test_classification_gate_uses_the_configured_metric():
    scores = class_table({MODEL: 0.7, MAJORITY: 0.45})
    scores.loc[scores["model"] == MODEL, "accuracy"] = 0.3
    cfg = RegisterConfig(**LSTM_ONLY, classification_metric="accuracy")
    decision = decide_promotion(scores, cfg, False, CLASSIFICATION)
    assert (decision.promote, decision.rule) == (False, MAJORITY) and "accuracy" in decision.reason


@pytest.mark.parametrize("margin", [0.0, 0.05])
def test_margin_zero_means_strictly_better(margin):
    scores = table({MODEL: 1.0, **BASELINES}, head={MODEL: 1.0, CHAMPION: 1.0})
    decision = decide_promotion(scores, RegisterConfig(**LSTM_ONLY, promote_margin=margin), True)
    assert not decision.promote  # a tie never moves the champion


# --------------------------------------------------------------------------- scale-free, routed


def per_series(scores: dict[str, dict[str, tuple[float, float]]], scope: str = ALL_WINDOWS):
    """Per-series rows: {model: {series: (rmse, mase)}}, plus pooled rows (rmse summed
    the way a large series dominates: pooled = the largest series' rmse)."""
    rows = []
    for model, by_series in scores.items():
        for sid, (rmse, mase) in by_series.items():
            rows.append(
                {"model": model, "scope": scope, SERIES_ID: sid, "rmse": rmse, "mase": mase}
            )
        big = max(by_series.values())
        rows.append(
            {"model": model, "scope": scope, SERIES_ID: ALL_SERIES, "rmse": big[0], "mase": big[1]}
        )
    frame = pd.DataFrame(rows).assign(windows=10)
    for name in METRICS:
        if name not in frame:
            frame[name] = frame["rmse"]
    return frame


def test_one_large_series_does_not_decide_the_gate():
    # The challenger is much better on nine small series and slightly worse on one series
    # a thousand times larger: pooled RMSE says "keep the champion", the series mean of
    # MASE says "promote" -- and the series mean is the default.
    small = {f"s{k}": (1.0, 0.5) for k in range(9)}
    theirs = {f"s{k}": (2.0, 1.0) for k in range(9)}
    head = per_series(
        {ROUTED: {**small, "big": (1010.0, 1.01)}, CHAMPION: {**theirs, "big": (1000.0, 1.0)}},
        CHAMPION_WINDOWS,
    )
    table_ = pd.concat([per_series({ROUTED: {**small, "big": (1010.0, 1.01)}}), head])
    assert aggregate(table_, CHAMPION_WINDOWS, "pooled")[ROUTED]["rmse"] == 1010.0
    mean = aggregate(table_, CHAMPION_WINDOWS)[ROUTED]["mase"]
    assert mean == pytest.approx((9 * 0.5 + 1.01) / 10)
    decision = decide_promotion(table_, RegisterConfig(), True)
    assert (decision.promote, decision.rule) == (True, "champion")
    pooled = decide_promotion(table_, RegisterConfig(aggregate="pooled", metric="rmse"), True)
    assert (pooled.promote, pooled.rule) == (False, "champion")


def test_a_routed_model_is_the_first_champion_even_when_every_baseline_wins():
    # The LSTM lost everywhere: the router served every series from a classical model, which
    # is no better than the baselines. The workspace still gets a champion, and says why.
    worse = {"a": (3.0, 1.5), "b": (3.0, 1.5)}
    better = {"a": (1.0, 0.9), "b": (1.0, 0.9)}
    scores = per_series({ROUTED: worse, MODEL: worse, NAIVE: better, SEASONAL_NAIVE: better})
    decision = decide_promotion(scores, RegisterConfig(), False)
    assert (decision.promote, decision.rule) == (True, "no_champion")
    assert "reported:" in decision.reason and "does not beat" in decision.reason
    assert {c.rule: c.binding for c in decision.checks}[NAIVE] is False
    lstm_only = decide_promotion(scores, RegisterConfig(models="lstm_only"), False)
    assert (lstm_only.promote, lstm_only.rule) == (False, NAIVE)
