"""The ``seriesflow`` console script: one entry point, the existing CLIs behind it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import COMMANDS, NOT_INSTALLED, main


def test_the_installed_script_lists_every_subcommand():
    script = Path(sys.executable).with_name("seriesflow")
    assert script.is_file(), "run make install: pyproject.toml declares the script"
    out = subprocess.run([script, "--help"], capture_output=True, text=True, check=True).stdout
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert (
        listed
        == ["retrain", "forecast", "watch", "tune", "repair", "history", "alerts", "serve"]
        == list(COMMANDS)
    )


def test_a_subcommand_gets_the_rest_of_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["watch", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "series.data.arrived" in out and "--set" in out  # flows.watch's own help


def test_a_missing_module_is_named_not_a_traceback(capsys):
    table = {"forecast": ("flows.not_there_yet", "batch forecasts")}
    assert main(["forecast", "--horizon", "3"], commands=table) == NOT_INSTALLED
    assert capsys.readouterr().err == (
        "seriesflow forecast: not available in this version (flows.not_there_yet is not "
        "installed).\n"
    )


def test_unknown_and_missing_commands_show_the_usage(capsys):
    assert main(["train"]) == 2
    assert "unknown command 'train'" in capsys.readouterr().err
    assert main([]) == 2
    assert "usage: seriesflow COMMAND" in capsys.readouterr().out


def test_serve_outside_a_checkout_says_where_to_point(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SERIESFLOW_HOME", str(tmp_path))
    assert main(["serve"]) == NOT_INSTALLED
    assert f"{tmp_path}/scripts/serve.sh not found" in capsys.readouterr().err


def test_alerts_apply_is_a_subcommand_with_its_own_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["alerts", "apply", "--help"])
    assert exit_info.value.code == 0
    assert "the automations file" in capsys.readouterr().out


def test_history_reads_one_series_as_of_a_version_and_names_a_missing_one(tmp_path, capsys):
    import json

    import pandas as pd

    from seriesflow.workspace.files import Workspace
    from seriesflow.workspace.history import accepted_schema, append_rows
    from tests.factories import series_frame, tiny_config

    cfg = tiny_config(tmp_path / "work", tmp_path / "landing")
    config_file = tmp_path / "cfg.json"
    config_file.write_text(json.dumps(cfg.dump()))
    workspace = Workspace(cfg.paths.workspace_path())
    schema = accepted_schema(cfg.columns)
    first = series_frame(("a", "b", "c"), n=4)
    append_rows(workspace, first, schema, "r1", cfg.history.buckets)
    append_rows(workspace, series_frame(("a", "b", "c"), n=2, start=4), schema, "r2", 16)
    out = tmp_path / "b.csv"

    args = ["--config", str(config_file), "--as-of-version", "0", "--series", "b"]
    assert main(["history", *args, "--output", str(out)]) == 0

    assert "history version 0: 4 rows, 1 series" in capsys.readouterr().out
    rows = pd.read_csv(out)
    assert rows["value"].tolist() == first[first["series_id"] == "b"]["value"].tolist()
    assert main(["history", "--config", str(config_file), "--as-of-version", "9"]) == 1
    assert "has no version 9" in capsys.readouterr().err
    assert main(["history", "--config", str(config_file), "--model-version", "4"]) == 1
    assert "test-lstm 4" in capsys.readouterr().err
