"""The registered model's code and requirements, derived from what the code imports."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions, version
from pathlib import Path

import pytest

from seriesflow.tracking.bundle import (
    ENTRY,
    UnresolvedImport,
    bundle_code,
    canonical,
    requirements,
)
from seriesflow.tracking.registry import pip_requirements
from tests.lockfile import REPO, locked

LOCK = REPO / "requirements.lock"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return bundle_code(tmp_path_factory.mktemp("code"))


def imports_of(path: Path) -> set[str]:
    """Every absolute module name a file imports, anywhere in it (walked here, on purpose
    not with the code under test)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_every_third_party_import_of_the_bundled_code_is_a_requirement(bundle):
    files = sorted(bundle.rglob("*.py"))
    assert (bundle / "tracking" / "pyfunc.py") in files and (bundle / "__init__.py") in files
    required = {}
    for line in pip_requirements():
        name, pinned = line.split("==")
        required[name] = pinned
    installed = packages_distributions()
    uncovered = {}
    for path in files:
        for name in imports_of(path):
            top = name.split(".")[0]
            if top == "seriesflow" or top in sys.stdlib_module_names:
                continue
            dists = {canonical(d) for d in installed.get(top, [])}
            if not dists & set(required):
                uncovered.setdefault(top, path.relative_to(bundle.parent).as_posix())
    assert uncovered == {}, f"imported by the model's code, not in pip_requirements: {uncovered}"
    # the backend Keras imports by name, and the pins are the installed versions
    assert {"keras", "mlflow", "pandas", "pyarrow", "pydantic", "pyyaml", "statsforecast"} <= set(
        required
    )
    assert {"tensorflow", "tensorflow-cpu"} & set(required)
    for name, pinned in required.items():
        assert version(name) == pinned, name


def test_the_pins_are_the_locked_versions():
    pins = dict(line.split("==") for line in pip_requirements())
    lock = locked(LOCK)  # the application's lock, its markers evaluated for this Python
    assert set(pins) <= set(lock)
    assert pins == {name: lock[name] for name in pins}


def test_the_bundle_is_the_model_code_closed_under_its_imports(bundle):
    files = {p.relative_to(bundle.parent).with_suffix("").as_posix() for p in bundle.rglob("*.py")}
    modules = {f.removesuffix("/__init__").replace("/", ".") for f in files}
    for path in bundle.rglob("*.py"):
        for name in imports_of(path):
            if name.split(".")[0] != "seriesflow":
                continue
            # ``from seriesflow.a import b``: b is a module or a name in module a
            assert name in modules or name.rsplit(".", 1)[0] in modules, (path, name)
    assert ENTRY in modules
    # the pipeline's parts the model never runs stay out of it, with what they import
    for left_out in ("seriesflow.data.expectations", "seriesflow.data.datadocs",
                     "seriesflow.workspace.landing", "seriesflow.evaluation.plots"):  # fmt: skip
        assert left_out not in modules
    assert not list(bundle.rglob("datadocs-vendor"))
    assert not {"great-expectations", "matplotlib", "fsspec"} & set(
        line.split("==")[0] for line in pip_requirements()
    )


def test_a_literal_import_module_is_an_import(tmp_path):
    package = tmp_path / "seriesflow"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(
        "import importlib\nfrom importlib import import_module\n\n"
        "def f(name):\n"
        "    import_module(name)  # not a literal: nothing to derive\n"
        "    importlib.import_module('yaml')\n"
        "    return import_module('sklearn.linear_model')\n"
    )
    pins = dict(line.split("==") for line in requirements("seriesflow.model", root=tmp_path))
    # what the file imports, and Keras' backend (tensorflow-cpu, or tensorflow with GPU=1)
    assert set(pins) - {"tensorflow", "tensorflow-cpu"} == {"pyyaml", "scikit-learn"}
    assert pins["pyyaml"] == version("pyyaml") and pins["scikit-learn"] == version("scikit-learn")
    (package / "model.py").write_text(
        "from seriesflow.ops.extras import require\n\n"
        "def f():\n    return require('not_installed_xyz', 'dask', 'a feature')\n"
    )
    with pytest.raises(UnresolvedImport, match="'not_installed_xyz'"):
        requirements("seriesflow.model", root=tmp_path)


def test_an_import_nothing_installed_provides_is_refused_by_name(tmp_path):
    package = tmp_path / "seriesflow"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text("import numpy\n\ndef f():\n    import not_installed_xyz\n")
    with pytest.raises(UnresolvedImport, match=r"'not_installed_xyz' \(.*seriesflow/model\.py\)"):
        requirements("seriesflow.model", root=tmp_path)
