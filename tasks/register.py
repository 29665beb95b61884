"""Register: log the run to MLflow, add a model version, move ``champion`` if earned.

The promotion gate (``decide_promotion``) is a pure function over the
evaluation table: the candidate must beat the naive and seasonal-naive
baselines on the test windows, have a MASE below ``register.max_mase`` (1 =
the in-sample seasonal-naive error), and beat the champion -- re-scored on the
same windows -- by ``register.promote_margin``; a classifier must beat the
majority class and the champion on ``register.classification_metric``. Every
version is registered; the rule that decided, the reason and every rule's
outcome (``gate.json``, a table artifact) are logged and returned.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from tasks.config import PipelineConfig, RegisterConfig
from tasks.evaluate import ALL_WINDOWS, CHAMPION_WINDOWS, overall
from tasks.io import RunDir, read_parquet, write_json
from tasks.metrics import CLASS_METRICS, MAJORITY, METRICS
from tasks.registry import (
    CHAMPION_ALIAS,
    CONFIG_ARTIFACT,
    champion_version,
    mlflow_module,
    use_tracking,
)
from tasks.runtime import stage_logger
from tasks.schema import ALL_SERIES, CHAMPION, MODEL, NAIVE, SEASONAL_NAIVE, SERIES_ID
from tasks.train import SPEC_FILE
from tasks.window import CLASSIFICATION, REGRESSION


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


def _regression_checks(scores: dict[str, dict[str, float]], cfg: RegisterConfig) -> list[Check]:
    metric = cfg.metric
    model = scores[MODEL][metric]
    checks = [Check("model", math.isfinite(model), f"the model's test {metric} is {model:.4g}")]
    for baseline, label in ((NAIVE, "naive (last value)"), (SEASONAL_NAIVE, "seasonal naive")):
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


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(f"{prefix}.{key}" if prefix else key, item, out)
    else:
        out[prefix] = value
    return out


@contextlib.contextmanager
def registry_lock(name: str | None) -> Iterator[None]:
    """Hold a Prefect global concurrency slot (strict: a missing limit is an error)."""
    if not name:
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(name, occupy=1, strict=True, timeout_seconds=1800):
        yield


@dataclass(frozen=True)
class Registration:
    model_name: str
    model_version: str
    run_id: str
    promoted: bool
    rule: str
    reason: str
    champion_version: str | None
    checks: tuple[dict[str, Any], ...] = ()


GATE_FILE = "gate.json"


def history_steps(history: pd.DataFrame) -> list[tuple[int, dict[str, float]]]:
    """Per-epoch metrics to log; a per-series history gets ``<metric>.<series>`` keys."""
    per_series = SERIES_ID in history
    steps: dict[int, dict[str, float]] = {}
    for _, row in history.iterrows():
        # MLflow keys take letters, digits and _-. /: anything else in a series id becomes _
        suffix = "." + re.sub(r"[^\w\-. /]", "_", str(row[SERIES_ID])) if per_series else ""
        values = steps.setdefault(int(row["epoch"]), {})
        for key in history.columns:
            if key in ("epoch", SERIES_ID):
                continue
            value = float(row[key])
            if math.isfinite(value):
                values[f"{key}{suffix}"] = value
    return sorted(steps.items())


@task(name="register", cache_policy=NONE)
def register(
    run: RunDir,
    evaluation: Any,
    config: PipelineConfig,
    tracking_uri: str,
    manifest: dict[str, Any],
) -> Registration:
    logger = stage_logger()
    cfg = config.register
    mlflow = mlflow_module()
    import keras

    metrics = read_parquet(evaluation.path)
    history = read_parquet(run.history)
    model = keras.models.load_model(run.model)
    write_json(config.dump(), run.root / CONFIG_ARTIFACT)

    with registry_lock(cfg.resolved_concurrency_limit()):
        use_tracking(tracking_uri, cfg.experiment, config.paths.workspace_path())
        current = champion_version(cfg.model_name)
        # The champion can have moved since evaluate re-scored it (another run promoted).
        if current is not None and str(current.version) != (evaluation.champion_version or ""):
            moved = (
                f"the champion moved to v{current.version} during this run; "
                "not promoting over a model this run did not score"
            )
            decision = Decision(False, "champion", moved, (Check("champion", False, moved),))
        else:
            task_kind = getattr(evaluation, "task", REGRESSION)
            decision = decide_promotion(metrics, cfg, current is not None, task_kind)
        gate = {"promote": decision.promote, "rule": decision.rule, "reason": decision.reason}
        write_json({**gate, "checks": decision.table()}, run.root / GATE_FILE)
        with mlflow.start_run(run_name=run.run_id) as active:
            mlflow.set_tags({"seriesflow.run_id": run.run_id, "seriesflow.run_dir": str(run.root)})
            params = flatten("", config.dump(), {})
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            for name, values in overall(metrics).items():
                mlflow.log_metrics(
                    {f"test_{name}_{k}": v for k, v in values.items() if math.isfinite(v)}
                )
            for step, values in history_steps(history):
                mlflow.log_metrics(values, step=step)
            logged = [run.scaler, run.root / CONFIG_ARTIFACT, run.evaluation, run.history]
            logged += [run.model_dir / SPEC_FILE, run.root / GATE_FILE]
            backtest = getattr(evaluation, "backtest", None)
            if backtest is not None:
                logged.append(backtest)
                folds = read_parquet(backtest)
                pooled = folds[(folds[SERIES_ID] == ALL_SERIES) & (folds["scope"] == ALL_WINDOWS)]
                for _, row in pooled.iterrows():
                    mlflow.log_metrics(
                        {
                            f"backtest_{row['model']}_{k}": float(row[k])
                            for k in (*METRICS, *CLASS_METRICS)
                            if k in row and math.isfinite(float(row[k]))
                        },
                        step=int(row["fold"]),
                    )
            for path in logged:
                if Path(path).exists():
                    mlflow.log_artifact(str(path))
            for plot in evaluation.plots:
                mlflow.log_artifact(str(plot), artifact_path="plots")
            write_json(manifest, run.manifest)
            mlflow.log_artifact(str(run.manifest))
            info = mlflow.keras.log_model(
                model,
                name="model",
                registered_model_name=cfg.model_name,
                pip_requirements=_pip_requirements(),
            )
            version = str(info.registered_model_version)
            client = mlflow.MlflowClient()
            client.set_model_version_tag(cfg.model_name, version, "promoted", str(decision.promote))
            client.set_model_version_tag(cfg.model_name, version, "gate_rule", decision.rule)
            client.set_model_version_tag(cfg.model_name, version, "gate_reason", decision.reason)
            if decision.promote:
                client.set_registered_model_alias(cfg.model_name, CHAMPION_ALIAS, version)
            mlflow.set_tags({"promoted": str(decision.promote), "gate_reason": decision.reason})
            run_id = active.info.run_id

    verb = "promoted to champion" if decision.promote else "registered, not promoted"
    logger.info("%s v%s %s: %s", cfg.model_name, version, verb, decision.reason)
    rows = "\n".join(
        f"| `{c.rule}` | {'pass' if c.passed else 'FAIL'} | {c.detail} |" for c in decision.checks
    )
    create_markdown_artifact(
        key="promotion",
        markdown=f"**{cfg.model_name} v{version}** {verb}.\n\nDecided by rule "
        f"`{decision.rule}`: {decision.reason}\n\n| rule | outcome | detail |\n|---|---|---|\n"
        f"{rows}",
    )
    create_table_artifact(
        key="promotion-gate",
        table=decision.table(),
        description=f"{cfg.model_name} v{version}: every rule of the promotion gate",
    )
    return Registration(
        cfg.model_name,
        version,
        run_id,
        decision.promote,
        decision.rule,
        decision.reason,
        evaluation.champion_version,
        tuple(decision.table()),
    )


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("tensorflow-cpu", "keras", "numpy")]
