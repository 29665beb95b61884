"""Rewrite the mermaid diagram in docs/ARCHITECTURE.md from the task modules' imports.

    python scripts/architecture_diagram.py

Each stage's edges are the ``seriesflow`` sub-packages ``tasks/<stage>.py`` imports
(what ``tests/test_architecture.py`` checks).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_architecture import STAGES, task_imports, top  # noqa: E402


def diagram() -> str:
    graph = task_imports()
    lines = ["graph TD", f"  retrain --> {' & '.join(STAGES)}"]
    for stage in STAGES:
        names = graph[stage]
        used = sorted({n.split(".")[1] for n in names if top(n) == "seriesflow" and "." in n})
        lines.append(f"  {stage} --> {' & '.join(used)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    doc = REPO / "docs" / "ARCHITECTURE.md"
    text = doc.read_text(encoding="utf-8")
    new = re.sub(r"```mermaid\n.*?```", lambda _: f"```mermaid\n{diagram()}```", text, flags=re.S)
    doc.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
