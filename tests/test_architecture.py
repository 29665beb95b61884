"""The layout rule: stages meet only at shared contracts, and the docs say how.

Parses ``tasks/*.py`` (imports at any depth, lazy ones included) and checks:

- no module in ``tasks/`` imports a stage module (stages are wired by the flows only);
- Prefect is imported only by the stage modules and ``tasks/runtime.py``, so the pure
  parts (scoring, metrics, plots, the gate, the model contract...) load without it;
- ``docs/ARCHITECTURE.md``'s dependency diagram lists exactly the imports of each stage.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "validate", "normalize", "window", "train", "evaluate", "register")
PREFECT_ALLOWED = {*STAGES, "runtime"}
PACKAGE = "seriesflow.tasks"  # the repository's tasks/, installed under the seriesflow name


def imported_modules(path: Path) -> set[str]:
    """Package-qualified names imported by a file (``seriesflow.tasks.x``, ``prefect``...)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == PACKAGE:  # from seriesflow.tasks import x
                found.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
    return found


def task_modules() -> dict[str, set[str]]:
    """{module name: the tasks modules it imports} for every module in tasks/."""
    graph = {}
    for path in sorted((REPO / "tasks").glob("*.py")):
        if path.stem == "__init__":
            continue
        names = imported_modules(path)
        graph[path.stem] = {
            n.removeprefix(f"{PACKAGE}.").split(".")[0]
            for n in names
            if n.startswith(f"{PACKAGE}.")
        }
    return graph


def test_no_module_in_tasks_imports_a_stage():
    graph = task_modules()
    assert set(STAGES) <= set(graph), "a stage module is missing from tasks/"
    offenders = {
        module: sorted(imports & set(STAGES))
        for module, imports in graph.items()
        if imports & set(STAGES)
    }
    assert not offenders, (
        f"stage modules imported from tasks/: {offenders}. Stages meet only at contracts: "
        "move what two stages share into a contract module (schema, saved_model, scaler, "
        "scoring, ...) instead of importing sideways."
    )


def test_the_import_parser_sees_lazy_and_sideways_imports(tmp_path):
    """The rule above cannot pass by not looking: a sideways import inside a function counts."""
    sample = tmp_path / "bad.py"
    sample.write_text(
        "def f():\n    from seriesflow.tasks.train import fit_windows\n"
        "    import seriesflow.tasks.window\n    from seriesflow.tasks import evaluate\n"
    )
    assert {"train", "window", "evaluate"} <= {
        name.removeprefix(f"{PACKAGE}.") for name in imported_modules(sample)
    }


def test_prefect_stays_in_the_stage_wrappers():
    direct = {
        path.stem
        for path in (REPO / "tasks").glob("*.py")
        if any(n == "prefect" or n.startswith("prefect.") for n in imported_modules(path))
    }
    assert direct <= PREFECT_ALLOWED, f"Prefect imported by {sorted(direct - PREFECT_ALLOWED)}"
    pure = sorted(set(task_modules()) - PREFECT_ALLOWED)
    code = (
        "import sys\n"
        + "".join(f"import {PACKAGE}.{name}\n" for name in pure)
        + "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", f"importing {pure} loads Prefect: {out.stdout[:300]}"


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
    graph = task_modules()
    actual = {(stage, dep) for stage in STAGES for dep in graph[stage]}
    drawn = {(a, b) for a, b in diagram_edges() if a in STAGES}
    assert drawn == actual, (
        f"docs/ARCHITECTURE.md is out of date: drawn but not imported {sorted(drawn - actual)}; "
        f"imported but not drawn {sorted(actual - drawn)}"
    )
