"""Optional features and the extra that installs each (pyproject.toml's optional-dependencies).

A feature that needs an extra imports its package through ``require`` when it is used, never
at module import, so the pipeline runs without the extra, and asking for the feature without
it fails with the command that installs it instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

DIST = "seriesflow"


class MissingExtra(ImportError):
    """A feature was asked for whose optional dependencies are not installed."""


def install_hint(extra: str) -> str:
    return f"pip install '{DIST}[{extra}]'"


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``module`` imported, or ``MissingExtra`` naming the feature and the extra to install.

    ``module``: what the feature imports (``prefect_dask``); ``extra``: the optional
    dependency group that provides it (``dask``); ``feature``: what was asked for, as the
    operator wrote it (``train.dask_address``).
    """
    try:
        return import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtra(
            f"{feature} needs the '{extra}' extra ({exc.name} is not installed): "
            f"{install_hint(extra)} (make install has every extra the tests use)"
        ) from exc
