"""The run context: one workspace per model name unless the config says they share it."""

from __future__ import annotations

import pytest

from seriesflow.workspace.context import open_run_context
from seriesflow.workspace.files import Workspace
from tests.factories import tiny_config


def _open(cfg):
    workspace = Workspace(cfg.paths.workspace_path())
    workspace.root.mkdir(parents=True, exist_ok=True)
    uri = cfg.register.resolved_tracking_uri(workspace.root)
    return open_run_context(cfg, workspace, workspace.new_run(), uri)


def _config(tmp_path, name, **register):
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    return tiny_config(
        tmp_path / name,
        tmp_path / "landing",
        register={"model_name": "demand", "tracking_uri": uri, **register},
    )


def test_a_second_workspace_on_the_same_model_name_is_refused(tmp_path):
    first, second = _config(tmp_path, "plant-a"), _config(tmp_path, "plant-b")
    assert _open(first).champion is None  # the first one claims 'demand'
    assert _open(first).champion is None  # and keeps it

    with pytest.raises(RuntimeError) as refused:
        _open(second)
    message = str(refused.value)
    assert "'demand'" in message and "register.shared_model" in message
    assert str(tmp_path / "plant-a") in message and str(tmp_path / "plant-b") in message


def test_workspaces_that_say_they_share_a_model_name_may(tmp_path):
    first = _config(tmp_path, "plant-a", shared_model=True)
    second = _config(tmp_path, "plant-b", shared_model=True)
    assert _open(first).champion is None
    assert _open(second).champion is None
    with pytest.raises(RuntimeError, match="register.shared_model"):
        _open(_config(tmp_path, "plant-c"))  # one that did not say so is still refused
