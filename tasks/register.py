"""Register: log the run to MLflow, add a model version, move ``champion`` if earned.

The promotion gate (``decide_promotion``) is a pure function over the
evaluation table: the candidate must beat the naive and seasonal-naive
baselines on the test windows, and the champion -- re-scored on the same
windows -- by ``register.promote_margin``. Every version is registered; the
reason it was or was not promoted is logged as a tag and returned.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.config import PipelineConfig, RegisterConfig
from tasks.evaluate import ALL_WINDOWS, CHAMPION_WINDOWS, overall
from tasks.io import RunDir, read_parquet, write_json
from tasks.registry import (
    CHAMPION_ALIAS,
    CONFIG_ARTIFACT,
    champion_version,
    mlflow_module,
    use_tracking,
)
from tasks.runtime import stage_logger
from tasks.schema import CHAMPION, MODEL, NAIVE, SEASONAL_NAIVE


@dataclass(frozen=True)
class Decision:
    promote: bool
    rule: str  # which rule decided: naive | seasonal_naive | champion | no_champion
    reason: str


def decide_promotion(metrics: pd.DataFrame, cfg: RegisterConfig, champion_known: bool) -> Decision:
    """Apply the gate, in order: naive, seasonal naive, then the champion."""
    metric = cfg.metric
    scores = overall(metrics, ALL_WINDOWS)
    model = scores[MODEL][metric]
    if not math.isfinite(model):
        return Decision(False, "model", f"the model's test {metric} is {model}")
    for baseline, label in ((NAIVE, "naive (last value)"), (SEASONAL_NAIVE, "seasonal naive")):
        other = scores[baseline][metric]
        if not model < other:
            return Decision(
                False,
                baseline,
                f"test {metric} {model:.4g} does not beat the {label} baseline ({other:.4g})",
            )
    baseline_text = (
        f"beats naive ({scores[NAIVE][metric]:.4g}) and seasonal naive "
        f"({scores[SEASONAL_NAIVE][metric]:.4g}) with test {metric} {model:.4g}"
    )
    if not champion_known:
        return Decision(True, "no_champion", f"first champion: {baseline_text}")
    head_to_head = overall(metrics, CHAMPION_WINDOWS)
    if CHAMPION not in head_to_head:
        return Decision(
            False,
            "champion",
            "the champion could not be re-scored on this run's test windows "
            "(see the evaluation note); promote by hand if this model should "
            "replace it",
        )
    ours, theirs = head_to_head[MODEL][metric], head_to_head[CHAMPION][metric]
    needed = theirs * (1 - cfg.promote_margin)
    if ours < needed:
        return Decision(
            True,
            "champion",
            f"{metric} {ours:.4g} beats the champion's {theirs:.4g} on the same "
            f"windows (margin {cfg.promote_margin:.0%}); {baseline_text}",
        )
    return Decision(
        False,
        "champion",
        f"{metric} {ours:.4g} does not beat the champion's {theirs:.4g} on the same "
        f"windows by the margin {cfg.promote_margin:.0%} (needs < {needed:.4g})",
    )


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

    with registry_lock(cfg.concurrency_limit):
        use_tracking(tracking_uri, cfg.experiment, config.paths.workspace_path())
        current = champion_version(cfg.model_name)
        # The champion can have moved since evaluate re-scored it (another run promoted).
        if current is not None and str(current.version) != (evaluation.champion_version or ""):
            decision = Decision(
                False,
                "champion",
                f"the champion moved to v{current.version} during this run; "
                "not promoting over a model this run did not score",
            )
        else:
            decision = decide_promotion(metrics, cfg, current is not None)
        with mlflow.start_run(run_name=run.run_id) as active:
            mlflow.set_tags({"seriesflow.run_id": run.run_id, "seriesflow.run_dir": str(run.root)})
            params = flatten("", config.dump(), {})
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            for name, values in overall(metrics).items():
                mlflow.log_metrics(
                    {f"test_{name}_{k}": v for k, v in values.items() if math.isfinite(v)}
                )
            for _, row in history.iterrows():
                step = int(row["epoch"])
                mlflow.log_metrics(
                    {
                        k: float(row[k])
                        for k in history.columns
                        if k != "epoch" and math.isfinite(float(row[k]))
                    },
                    step=step,
                )
            for path in (run.scaler, run.root / CONFIG_ARTIFACT, run.evaluation, run.history):
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
    create_markdown_artifact(
        key="promotion",
        markdown=f"**{cfg.model_name} v{version}** {verb}.\n\nRule: `{decision.rule}`. "
        f"{decision.reason}",
    )
    return Registration(
        cfg.model_name,
        version,
        run_id,
        decision.promote,
        decision.rule,
        decision.reason,
        evaluation.champion_version,
    )


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("tensorflow-cpu", "keras", "numpy")]


