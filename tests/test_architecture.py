"""The layout rule: three layers you can see in the tree, and the docs say how.

``flows/`` (Prefect flows, the CLI) -> ``tasks/`` (thin Prefect tasks, one module per
stage) -> ``seriesflow/`` (the library, in sub-packages by concern). Parses every file
(imports at any depth, lazy ones included) and checks:

- no module in ``seriesflow/`` imports ``prefect``, ``tasks`` or ``flows`` (and importing
  all of them loads no Prefect);
- a task module never imports another task module (only the shared ``tasks/stage.py``
  helpers), so stages meet only at the library's contracts;
- nothing below ``flows/`` imports a flow;
- ``docs/ARCHITECTURE.md``'s diagram lists exactly which library packages each stage uses.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "validate", "normalize", "window", "train", "evaluate", "register")
TASK_HELPERS = {"stage", "__init__"}  # shared by the task wrappers, not a task itself


def imported_modules(path: Path) -> set[str]:
    """Dotted names imported by a file (``seriesflow.model.lstm``, ``prefect``, ...)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def library_files() -> list[Path]:
    return sorted((REPO / "seriesflow").rglob("*.py"))


def test_the_library_never_imports_prefect_tasks_or_flows():
    offenders = {}
    for path in library_files():
        bad = sorted(n for n in imported_modules(path) if top(n) in {"prefect", "tasks", "flows"})
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert not offenders, f"seriesflow/ must not import Prefect, tasks or flows: {offenders}"


def test_importing_the_whole_library_loads_no_prefect():
    modules = [
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in library_files()
    ]
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in modules)
        + "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", f"importing seriesflow loads Prefect: {out.stdout[:300]}"


def task_imports() -> dict[str, set[str]]:
    """{task module: the names it imports} for every module in tasks/."""
    return {path.stem: imported_modules(path) for path in sorted((REPO / "tasks").glob("*.py"))}


def test_a_task_never_imports_another_task():
    graph = task_imports()
    assert set(STAGES) <= set(graph), "a stage module is missing from tasks/"
    offenders = {}
    for module, names in graph.items():
        others = {
            n.split(".")[1]
            for n in names
            if top(n) == "tasks" and n.count(".") >= 1 and n.split(".")[1] != module
        } - TASK_HELPERS
        if others:
            offenders[module] = sorted(others)
    assert not offenders, (
        f"task modules imported from tasks/: {offenders}. Stages meet only at the library's "
        "contracts: move what two stages share into seriesflow/ instead of importing sideways."
    )


def test_nothing_below_flows_imports_a_flow():
    below = [*library_files(), *sorted((REPO / "tasks").glob("*.py"))]
    offenders = {
        str(p.relative_to(REPO)): sorted(n for n in imported_modules(p) if top(n) == "flows")
        for p in below
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_the_import_parser_sees_lazy_and_sideways_imports(tmp_path):
    """The rules above cannot pass by not looking: an import inside a function counts."""
    sample = tmp_path / "bad.py"
    sample.write_text(
        "def f():\n    from tasks.train import fit_windows\n"
        "    import tasks.window\n    from prefect import flow\n"
        "    from tasks import evaluate\n"
    )
    names = imported_modules(sample)
    assert {"tasks.train", "tasks.window", "prefect", "tasks.evaluate"} <= names


def diagram_edges() -> set[tuple[str, str]]:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert block, "docs/ARCHITECTURE.md has no mermaid diagram"
    edges = set()
    for line in block.group(1).splitlines():
        match = re.match(r"\s*(\w+)\s*-->\s*(.+?)\s*$", line)
        if match:
            for target in match.group(2).split("&"):
                edges.add((match.group(1), target.strip()))
    return edges


def test_the_architecture_diagram_matches_the_imports():
    """Each stage's edges in the diagram are the library packages its module imports."""
    graph = task_imports()
    actual = {
        (stage, name.split(".")[1])
        for stage in STAGES
        for name in graph[stage]
        if top(name) == "seriesflow" and name.count(".") >= 1
    }
    drawn = {(a, b) for a, b in diagram_edges() if a in STAGES}
    assert drawn == actual, (
        f"docs/ARCHITECTURE.md is out of date: drawn but not imported {sorted(drawn - actual)}; "
        f"imported but not drawn {sorted(actual - drawn)}"
    )
