"""Tables for people: markdown for Prefect artifacts and docs, fixed-width text for the CLI.

One formatter per shape, so a metrics table reads the same in the UI, the
terminal and the benchmarks (pure, no Prefect).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def _cell(value: Any, digits: str) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, digits)
    return str(value)


def records_markdown(records: Iterable[Mapping[str, Any]], digits: str = ".4g") -> str:
    """A markdown table of records (dicts with the same keys, in column order)."""
    rows = list(records)
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c), digits) for c in columns) + " |")
    return "\n".join(lines)


def metrics_records(
    metrics: Mapping[str, Mapping[str, float]], first: str = "model"
) -> list[dict[str, Any]]:
    """``{name: {metric: value}}`` as records ``{first: name, metric: value, ...}``."""
    return [{first: name, **values} for name, values in metrics.items()]


def metrics_markdown(metrics: Mapping[str, Mapping[str, float]], first: str = "model") -> str:
    """``{model: {metric: value}}`` as a markdown table, one row per model."""
    return records_markdown(metrics_records(metrics, first))


def metrics_text(metrics: Mapping[str, Mapping[str, float]], first: str = "model") -> str:
    """The same table in fixed-width text for a terminal."""
    if not metrics:
        return ""
    names = list(next(iter(metrics.values())))  # regression or classification metrics
    lines = [f"{first:<16}" + "".join(f"{n:>12}" for n in names)]
    for model, values in metrics.items():
        cells = [f"{values[n]:>12.4f}" if n in values else " " * 12 for n in names]
        lines.append(f"{model:<16}" + "".join(cells))
    return "\n".join(lines)


def status_line(summary: Mapping[str, Any]) -> str:
    """The CLI's line before the summary JSON: ``Status: completed — <reason>``."""
    reason = summary.get("reason")
    return f"Status: {summary['status']}" + (f" — {reason}" if reason else "")
