"""Reading a config: a YAML file's mapping plus ``--set key.sub=value`` overrides.

The CLIs share these (``--config FILE`` and repeatable ``--set``); ``seriesflow.config.pipeline``
validates the tree into a ``PipelineConfig``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValueError(f"--set {dotted}: '{key}' is not a section")
        node = child
    node[keys[-1]] = value


def load_config_tree(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """A YAML file's mapping (optional) with ``key.sub=value`` overrides applied.

    Values are parsed as YAML scalars, so ``train.epochs=5`` is an int and
    ``columns.covariates=[temp]`` a list.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config file must hold a mapping at the top level")
        tree = loaded
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value, e.g. train.epochs=5")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return tree


def add_config_arguments(parser: Any, example: str = "train.epochs=5") -> None:
    """The ``--config FILE`` and repeatable ``--set KEY=VALUE`` options every CLI shares."""
    parser.add_argument("--config", help="YAML file mirroring PipelineConfig")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a setting, e.g. {example}",
    )
