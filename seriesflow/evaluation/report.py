"""The evaluate and register stages' reports as markdown (the Prefect artifacts' text).

Pure: the task wrappers (``tasks/evaluate.py``, ``tasks/register.py``) create the artifacts.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from seriesflow.data.schema import FOLD
from seriesflow.evaluation.gate import Decision
from seriesflow.evaluation.tables import metrics_markdown, records_markdown


def evaluation_markdown(
    run_id: str,
    scores: Mapping[str, Mapping[str, float]],
    head_to_head: Mapping[str, Mapping[str, float]],
    windows: int,
    seasons: list[int],
    task_kind: str,
    note: str | None,
    backtest: pd.DataFrame | None,
    metric: str,
    plot_lines: list[str],
    routing: str | None = None,
    origins: Mapping[str, object] | None = None,
) -> str:
    """The evaluation report: scores, which origins were scored (``origins``:
    ``seriesflow/evaluation/routed.py``'s record), which model serves each series (``routing``: the
    router's summary), the champion head to head, the backtest per fold (``backtest``:
    ``backtest_summary``'s table), the plots (``plot_lines``: markdown)."""
    text = [
        f"# Evaluation of run {run_id}",
        "",
        f"Task: {task_kind}; test windows: {windows}; season lengths: {seasons}.",
        "",
        metrics_markdown(scores),
    ]
    if origins:
        text += [
            "",
            "## Origins scored",
            "",
            f"{origins['test_windows']:,} of {origins['test_windows_total']:,} test windows and "
            f"{origins['val_windows']:,} of {origins['val_windows_total']:,} validation windows "
            f"(`evaluate.max_windows_per_series`: {origins['max_windows_per_series']}): "
            f"{origins['how']}.",
        ]
    if routing:
        text += [
            "",
            "## Which model serves each series (chosen on validation windows)",
            "",
            routing,
        ]
    if head_to_head:
        text += ["", f"## On the champion's windows ({note})", "", metrics_markdown(head_to_head)]
    elif note:
        text += ["", f"Champion: {note}"]
    if backtest is not None:
        text += [
            "",
            f"## Backtest: {metric} per fold (rolling origin, model re-scored, not refit)",
            "",
            records_markdown([{FOLD: k, **row.to_dict()} for k, row in backtest.iterrows()]),
        ]
    text += ["", "## Plots", ""] + plot_lines
    return "\n".join(text)


def promotion_markdown(decision: Decision, model_name: str, version: str, verb: str) -> str:
    """What the gate decided for a version, with every rule's outcome."""
    rows = [
        {"rule": f"`{c.rule}`", "outcome": "pass" if c.passed else "FAIL", "detail": c.detail}
        for c in decision.checks
    ]
    return (
        f"**{model_name} v{version}** {verb}.\n\nDecided by rule "
        f"`{decision.rule}`: {decision.reason}\n\n{records_markdown(rows)}"
    )
