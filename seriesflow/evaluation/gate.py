"""The promotion gate: a pure decision over the evaluation table (no Prefect, no MLflow).

Regression, in order: a finite score; beat each of ``register.baselines`` (naive,
seasonal naive, ETS) on ``register.metric``; MASE below ``register.max_mase`` (1 = the
in-sample seasonal-naive error); beat the champion -- re-scored on the same
windows -- by ``register.promote_margin``. Classification: a finite score; beat
the majority class on ``register.classification_metric``; beat the champion.
The first rule that fails decides; every rule's outcome is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from seriesflow.config.pipeline import RegisterConfig
from seriesflow.data.schema import (
    ALL_WINDOWS,
    CHAMPION,
    CHAMPION_WINDOWS,
    CLASSIFICATION,
    ETS,
    MAJORITY,
    MODEL,
    NAIVE,
    REGRESSION,
    SEASONAL_NAIVE,
)
from seriesflow.evaluation.scoring import overall

BASELINE_LABELS = {
    NAIVE: "naive (last value)",
    SEASONAL_NAIVE: "seasonal naive",
    ETS: "exponential smoothing (statsmodels ETS, fit on the training part)",
}


@dataclass(frozen=True)
class Check:
    """One rule of the gate and how the candidate fared."""

    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    promote: bool
    rule: str  # which rule decided: model | naive | seasonal_naive | mase | majority |
    #            champion | no_champion
    reason: str
    checks: tuple[Check, ...] = ()

    def table(self) -> list[dict[str, Any]]:
        return [{"rule": c.rule, "passed": c.passed, "detail": c.detail} for c in self.checks]

    def to_json(self) -> dict[str, Any]:
        """What ``gate.json`` holds."""
        gate = {"promote": self.promote, "rule": self.rule, "reason": self.reason}
        return {**gate, "checks": self.table()}


def _regression_checks(scores: dict[str, dict[str, float]], cfg: RegisterConfig) -> list[Check]:
    metric = cfg.metric
    model = scores[MODEL][metric]
    checks = [Check("model", math.isfinite(model), f"the model's test {metric} is {model:.4g}")]
    for baseline in cfg.baselines:
        label = BASELINE_LABELS[baseline]
        if baseline not in scores:
            checks.append(Check(baseline, False, f"the {label} baseline was not scored"))
            continue
        other = scores[baseline][metric]
        ok = model < other
        verb = "beats" if ok else "does not beat"
        checks.append(
            Check(
                baseline, ok, f"test {metric} {model:.4g} {verb} the {label} baseline ({other:.4g})"
            )
        )
    if cfg.max_mase is not None:
        mase = scores[MODEL]["mase"]
        ok = math.isfinite(mase) and mase < cfg.max_mase
        checks.append(
            Check(
                "mase",
                ok,
                f"test MASE {mase:.4g} {'<' if ok else 'is not below'} {cfg.max_mase:g} "
                "(1 = the in-sample seasonal-naive error)",
            )
        )
    return checks


def _classification_checks(scores: dict[str, dict[str, float]], cfg: RegisterConfig) -> list[Check]:
    metric = cfg.classification_metric
    model = scores[MODEL][metric]
    checks = [Check("model", math.isfinite(model), f"the model's test {metric} is {model:.4g}")]
    other = scores[MAJORITY][metric]
    ok = model > other
    verb = "beats" if ok else "does not beat"
    checks.append(
        Check(MAJORITY, ok, f"test {metric} {model:.4g} {verb} the majority class ({other:.4g})")
    )
    return checks


def _champion_check(metrics: pd.DataFrame, cfg: RegisterConfig, task: str) -> Check:
    """The head-to-head on the champion's windows."""
    higher = task == CLASSIFICATION
    metric = cfg.classification_metric if higher else cfg.metric
    head_to_head = overall(metrics, CHAMPION_WINDOWS)
    if CHAMPION not in head_to_head:
        return Check(
            "champion",
            False,
            "the champion could not be re-scored on this run's test windows "
            "(see the evaluation note); promote by hand if this model should replace it",
        )
    ours, theirs = head_to_head[MODEL][metric], head_to_head[CHAMPION][metric]
    margin = cfg.promote_margin
    if higher:
        # The margin is a relative cut of the champion's shortfall (1 - metric): a
        # relative gain on the metric itself could ask for more than 1.
        needed = 1 - (1 - theirs) * (1 - margin)
        ok = ours > needed
        bound = f"needs > {needed:.4g}"
    else:
        needed = theirs * (1 - margin)
        ok = ours < needed
        bound = f"needs < {needed:.4g}"
    verb = "beats" if ok else "does not beat"
    return Check(
        "champion",
        ok,
        f"{metric} {ours:.4g} {verb} the champion's {theirs:.4g} on the same windows "
        f"(margin {margin:.0%}, {bound})",
    )


def decide_promotion(
    metrics: pd.DataFrame, cfg: RegisterConfig, champion_known: bool, task: str = REGRESSION
) -> Decision:
    """Apply the gate; the first rule that fails decides (all rules are reported).

    Regression, in order: a finite score; beat naive and seasonal naive on
    ``register.metric``; MASE below ``register.max_mase`` (1 = the in-sample
    seasonal-naive error); beat the champion re-scored on the same windows by
    ``register.promote_margin``. Classification: a finite score; beat the
    majority class on ``register.classification_metric``; beat the champion.
    """
    scores = overall(metrics, ALL_WINDOWS)
    if task == CLASSIFICATION:
        checks = _classification_checks(scores, cfg)
    else:
        checks = _regression_checks(scores, cfg)
    if champion_known:
        checks.append(_champion_check(metrics, cfg, task))
    for check in checks:
        if not check.passed:
            return Decision(False, check.rule, check.detail, tuple(checks))
    passed = "; ".join(c.detail for c in checks[1:])
    if not champion_known:
        return Decision(True, "no_champion", f"first champion: {passed}", tuple(checks))
    return Decision(True, "champion", passed, tuple(checks))


def decide(
    metrics: pd.DataFrame,
    cfg: RegisterConfig,
    current: str | None,
    scored: str | None,
    task: str = REGRESSION,
) -> Decision:
    """The gate, given the champion now (``current``) and the one evaluate re-scored.

    The champion can have moved since evaluate re-scored it (another run promoted):
    then this run does not promote over a model it did not score.
    """
    if current is not None and current != (scored or ""):
        moved = (
            f"the champion moved to v{current} during this run; "
            "not promoting over a model this run did not score"
        )
        return Decision(False, "champion", moved, (Check("champion", False, moved),))
    return decide_promotion(metrics, cfg, current is not None, task)
