"""An optional feature asked for without its extra names the extra to install."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from seriesflow.ops.extras import MissingExtra, require
from seriesflow.workspace.landing import Landing

REPO = Path(__file__).resolve().parents[3]


def uninstalled(monkeypatch, *modules: str) -> None:
    """Make ``import module`` fail as if it were not installed (None in sys.modules is
    Python's own "not importable" marker: ModuleNotFoundError naming the module)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_imports_what_is_there():
    assert require("json", "dask", "anything").dumps([1]) == "[1]"


def test_require_names_the_feature_the_missing_package_and_the_extra(monkeypatch):
    uninstalled(monkeypatch, "prefect_dask")
    with pytest.raises(MissingExtra) as caught:
        require("prefect_dask", "dask", "a Dask cluster (train.dask_address)")
    message = str(caught.value)
    assert message.startswith("a Dask cluster (train.dask_address) needs the 'dask' extra")
    assert "(prefect_dask is not installed)" in message
    assert "pip install 'seriesflow[dask]'" in message
    assert isinstance(caught.value, ImportError)


def test_an_s3_landing_without_s3fs_asks_for_the_s3_extra(monkeypatch):
    uninstalled(monkeypatch, "s3fs")
    with pytest.raises(MissingExtra, match=r"paths\.landing s3://bucket/in needs the 's3' extra"):
        Landing("s3://bucket/in")
    # a local folder needs no extra
    assert Landing("/tmp/landing").remote is False


def test_the_extras_named_in_the_messages_exist():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("prefect-dask") for d in extras["dask"])
    assert any(d.startswith("dask[distributed]") for d in extras["dask"])
    assert any(d.startswith("s3fs") for d in extras["s3"])
