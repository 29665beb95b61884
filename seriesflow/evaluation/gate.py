"""The promotion gate: a pure decision over the evaluation table (no Prefect, no MLflow).

Scores are aggregated over series by ``register.aggregate``: ``series_mean`` (the
default) averages each series' own score, so with ``register.metric: mase`` (the
default) the rule is scale-free and a series ten times larger weighs as much as any
other; ``pooled`` takes the ``__all__`` rows (all windows together, original units).

The candidate is the registered model: ``routed`` (the default: per series the model the
router chose on validation, ``seriesflow/evaluation/router.py``)
or ``lstm_only``. In order:

- a finite score;
- routed: beat the champion, re-scored on the same windows, by ``register.promote_margin``;
  with no champion yet it is promoted (a workspace with valid data always ends with a
  champion: where the LSTM loses everywhere, the champion serves classical forecasts,
  and the reason says so). The baseline and MASE rules are reported, not binding: the
  router already chose, per series, between the LSTM and those baselines.
- lstm_only: beat each of ``register.baselines`` (naive, seasonal naive, ETS, Theta) on
  ``register.metric``; MASE below ``register.max_mase`` (1 = the in-sample
  seasonal-naive error); beat the champion by ``register.promote_margin``.

Classification: a finite score; beat the majority class on
``register.classification_metric``; beat the champion. The first binding rule that fails
decides; every rule's outcome is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

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
    REGRESSION,
    ROUTED,
    SEASONAL_NAIVE,
    SERIES_ID,
    THETA,
)
from seriesflow.evaluation.metrics import CLASS_METRICS, METRICS
from seriesflow.evaluation.scoring import overall

BASELINE_LABELS = {
    NAIVE: "naive (last value)",
    SEASONAL_NAIVE: "seasonal naive",
    ETS: "AutoETS (statsforecast, fit on the training part)",
    THETA: "AutoTheta (statsforecast, fit on the training part)",
}
SERIES_MEAN, POOLED = "series_mean", "pooled"


def aggregate(
    metrics: pd.DataFrame, scope: str = ALL_WINDOWS, how: str = SERIES_MEAN
) -> dict[str, dict[str, float]]:
    """{model: {metric: value}}: each series' score averaged over series (``series_mean``),
    or the pooled ``__all__`` rows (``pooled``). Series a model has no score for are left
    out of its mean (a model scored on no series gets NaN)."""
    if how == POOLED:
        return overall(metrics, scope)
    rows = metrics[(metrics[SERIES_ID] != ALL_SERIES) & (metrics["scope"] == scope)]
    names = [m for m in (*METRICS, *CLASS_METRICS) if m in metrics.columns]
    found = {}
    for model, part in rows.groupby("model", sort=False):
        found[str(model)] = {m: float(part[m].astype(float).mean()) for m in names}
    return found


def candidate_name(scores: dict[str, dict[str, float]], cfg: RegisterConfig) -> str:
    """The model the gate decides on: the routed model, or the LSTM alone (``lstm_only``)."""
    return ROUTED if cfg.models == "routed" and ROUTED in scores else MODEL


@dataclass(frozen=True)
class Check:
    """One rule of the gate and how the candidate fared."""

    rule: str
    passed: bool
    detail: str
    binding: bool = True  # False: reported only (the routed model's baseline rules)


@dataclass(frozen=True)
class Decision:
    promote: bool
    rule: str  # which rule decided: model | naive | seasonal_naive | mase | majority |
    #            champion | no_champion
    reason: str
    checks: tuple[Check, ...] = ()

    def table(self) -> list[dict[str, Any]]:
        return [
            {"rule": c.rule, "passed": c.passed, "detail": c.detail, "binding": c.binding}
            for c in self.checks
        ]

    def to_json(self) -> dict[str, Any]:
        """What ``gate.json`` holds."""
        gate = {"promote": self.promote, "rule": self.rule, "reason": self.reason}
        return {**gate, "checks": self.table()}


def _regression_checks(scores: dict[str, dict[str, float]], cfg: RegisterConfig) -> list[Check]:
    metric = cfg.metric
    name = candidate_name(scores, cfg)
    binding = name == MODEL  # the routed model already chose between LSTM and baselines
    model = scores[name][metric]
    what = "routed model" if name == ROUTED else "model"
    checks = [Check("model", math.isfinite(model), f"the {what}'s test {metric} is {model:.4g}")]
    for baseline in cfg.baselines:
        label = BASELINE_LABELS[baseline]
        if baseline not in scores:
            checks.append(Check(baseline, False, f"the {label} baseline was not scored", binding))
            continue
        other = scores[baseline][metric]
        ok = model < other
        verb = "beats" if ok else "does not beat"
        checks.append(
            Check(
                baseline,
                ok,
                f"test {metric} {model:.4g} {verb} the {label} baseline ({other:.4g})",
                binding,
            )
        )
    if cfg.max_mase is not None:
        mase = scores[name]["mase"]
        ok = math.isfinite(mase) and mase < cfg.max_mase
        checks.append(
            Check(
                "mase",
                ok,
                f"test MASE {mase:.4g} {'<' if ok else 'is not below'} {cfg.max_mase:g} "
                "(1 = the in-sample seasonal-naive error)",
                binding,
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
    head_to_head = aggregate(metrics, CHAMPION_WINDOWS, cfg.aggregate)
    if CHAMPION not in head_to_head:
        return Check(
            "champion",
            False,
            "the champion could not be re-scored on this run's test windows "
            "(see the evaluation note); promote by hand if this model should replace it",
        )
    name = MODEL if higher else candidate_name(head_to_head, cfg)
    ours, theirs = head_to_head[name][metric], head_to_head[CHAMPION][metric]
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
    scores = aggregate(metrics, ALL_WINDOWS, cfg.aggregate if task != CLASSIFICATION else POOLED)
    if task == CLASSIFICATION:
        checks = _classification_checks(scores, cfg)
    else:
        checks = _regression_checks(scores, cfg)
    if champion_known:
        checks.append(_champion_check(metrics, cfg, task))
    for check in checks:
        if check.binding and not check.passed:
            return Decision(False, check.rule, check.detail, tuple(checks))
    passed = "; ".join(c.detail for c in checks[1:] if c.binding)
    if task != CLASSIFICATION and candidate_name(scores, cfg) == ROUTED:
        noted = "; ".join(c.detail for c in checks[1:] if not c.binding)
        passed = "; ".join(p for p in (passed, f"reported: {noted}" if noted else "") if p)
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
