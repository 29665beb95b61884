"""What the registered model carries of this library, and what it needs installed (pure).

The pyfunc model (``seriesflow/tracking/pyfunc.py``) is served by MLflow from its own copy
of our code (``code_paths``), in an environment MLflow builds from the model's
``pip_requirements`` (``mlflow models serve --env-manager virtualenv``). Both are derived
here from the code itself, so neither can drift from it:

- ``bundled_modules``: the modules ``seriesflow.tracking.pyfunc`` imports, directly or
  not, found by walking each module's syntax tree (imports inside functions included) --
  the part of the library the model runs, without Great Expectations, Prefect helpers,
  plots or landing code;
- ``third_party_imports``: the top-level names those modules import that are neither ours
  nor the standard library's;
- ``requirements``: those names mapped to the distributions installed here
  (``importlib.metadata.packages_distributions``), pinned at the installed version (the
  lock's), plus Keras' backend, which Keras imports by name at run time.
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

TOP = "seriesflow"
ENTRY = "seriesflow.tracking.pyfunc"  # what MLflow imports to unpickle the model
# Imported by name at run time, so no import statement shows it: Keras loads its backend
# (KERAS_BACKEND, "tensorflow" by default) when it is imported.
RUNTIME_IMPORTS = ("tensorflow",)
# An import name several installed distributions provide: the one that is the package
# (mlflow-skinny and mlflow-tracing also ship an ``mlflow`` folder).
PREFERRED = {"mlflow": "mlflow"}
# Calls that import the module their first argument names (a literal one is an import).
IMPORT_CALLS = {"import_module", "require"}


def package_dir() -> Path:
    """The library's folder (``seriesflow/``)."""
    return Path(__file__).resolve().parents[1]


def module_file(name: str, root: Path) -> Path | None:
    """The file of module ``name`` (``seriesflow.a.b``) under ``root`` (the folder holding
    ``seriesflow/``); None if it is not a module of ours."""
    path = root.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_names(source: str) -> list[str]:
    """Every absolute module name ``source`` imports, anywhere in it (``from a import b``
    gives ``a`` and ``a.b``: ``b`` may be a module), and every ``import_module("name")`` /
    ``importlib.import_module("name")`` with a literal name (how an optional extra is
    imported: ``seriesflow/ops/extras.py``). Relative imports are not used here."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and _literal_import(node):
            names.append(node.args[0].value)
    return names


def _literal_import(call: ast.Call) -> bool:
    """``import_module("x")``, ``importlib.import_module("x")`` or our own
    ``require("x", extra, feature)`` (``seriesflow.ops.extras``), x a string literal."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return (
        name in IMPORT_CALLS
        and len(call.args) >= 1
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
        and not call.args[0].value.startswith(".")
    )


def bundled_modules(entry: str = ENTRY, root: Path | None = None) -> dict[str, Path]:
    """{module name: file} of ``entry`` and every module of ours it imports, transitively
    (each package's ``__init__`` included)."""
    root = root or package_dir().parent
    found: dict[str, Path] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = module_file(name, root)
        if path is None:
            continue
        found[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        todo += [n for n in imported_names(path.read_text(encoding="utf-8")) if is_ours(n)]
    return dict(sorted(found.items()))


def is_ours(name: str) -> bool:
    return name.split(".")[0] == TOP


def third_party_imports(files: Iterable[Path]) -> dict[str, list[str]]:
    """{top-level import name: the files importing it}, for names that are neither ours
    nor the standard library's."""
    found: dict[str, set[str]] = {}
    for path in files:
        for name in imported_names(Path(path).read_text(encoding="utf-8")):
            top = name.split(".")[0]
            if not is_ours(name) and top not in sys.stdlib_module_names:
                found.setdefault(top, set()).add(str(path))
    return {name: sorted(paths) for name, paths in sorted(found.items())}


def distributions_of(
    import_name: str, installed: Mapping[str, list[str]] | None = None
) -> list[str]:
    """The installed distributions that provide ``import_name`` ([] if none does)."""
    installed = packages_distributions() if installed is None else installed
    names = sorted(set(installed.get(import_name, [])))
    preferred = PREFERRED.get(import_name)
    return [preferred] if preferred in names else names


class UnresolvedImport(RuntimeError):
    """The model's code imports a package no installed distribution provides."""


def requirements(entry: str = ENTRY, root: Path | None = None) -> list[str]:
    """``dist==version`` for every third-party package the bundled code imports, and Keras'
    backend, as installed here. Raises ``UnresolvedImport`` naming the import and the file
    when nothing installed provides one: a model logged without it could not be served."""
    installed = packages_distributions()
    imports = third_party_imports(bundled_modules(entry, root).values())
    names = dict(imports)
    for name in RUNTIME_IMPORTS:
        names.setdefault(name, ["(imported by keras at run time)"])
    pins = set()
    for name, files in names.items():
        dists = distributions_of(name, installed)
        if not dists:
            raise UnresolvedImport(
                f"the model's code imports '{name}' ({files[0]}), which no installed "
                "distribution provides: install it (make install), or stop importing it "
                f"from {entry}'s modules"
            )
        for dist in dists:
            try:
                pins.add(f"{canonical(dist)}=={version(dist)}")
            except PackageNotFoundError:  # listed by a stale .dist-info: not installed
                continue
    return sorted(pins)


def canonical(dist: str) -> str:
    """A distribution's name as pip writes it (PEP 503): ``PyYAML`` -> ``pyyaml``."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def bundle_code(dest: Path, entry: str = ENTRY) -> Path:
    """Stage ``dest/seriesflow`` with the modules ``entry`` needs, for ``code_paths``.

    MLflow puts the bundled folder on ``sys.path`` when it loads the model, so the model
    imports ``seriesflow.tracking.pyfunc`` from its own copy of the code, whether or not (or
    whichever version of) seriesflow is installed where it is served.
    """
    root = package_dir().parent
    for path in bundled_modules(entry, root).values():
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dest / TOP
