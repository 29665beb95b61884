"""Branches: assigning series to groups, the config's errors, one routed model per group."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from seriesflow.config.pipeline import GroupsConfig, PipelineConfig
from seriesflow.data.schema import GROUP, SERIES_ID
from seriesflow.model.branches import group_of_series, groups_for
from seriesflow.model.lstm import seed_everything
from seriesflow.model.saved_model import load_model, predict
from seriesflow.model.training import fit_windows, model_spec, save_model
from tests.factories import identity_scaler, windows_of
from tests.seriesflow.model.test_training import frame_of, sine, train_cfg

REPO = Path(__file__).resolve().parents[3]
IDS = [f"store-{n}" for n in range(12)]


# --------------------------------------------------------------------------- assignment


def test_hash_groups_follow_sha256_and_are_the_same_in_another_process():
    groups = group_of_series(IDS, GroupsConfig(by="hash", k=3))
    for sid in IDS:  # by hand: the first 8 bytes of sha256(id), big-endian, mod k
        expected = int.from_bytes(hashlib.sha256(sid.encode()).digest()[:8], "big") % 3
        assert groups[sid] == f"hash-{expected}"
    assert len(set(groups.values())) == 3  # 12 ids spread over all three
    # Python's own hash() is salted per process: a fresh process with another seed agrees
    code = (
        "import json; from seriesflow.config.pipeline import GroupsConfig; "
        "from seriesflow.model.branches import "
        f"group_of_series; print(json.dumps(group_of_series({IDS!r}, GroupsConfig(k=3))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == groups


def test_hash_group_names_sort_in_group_order():
    groups = group_of_series(IDS, GroupsConfig(by="hash", k=12))
    assert all(len(name) == len("hash-00") for name in groups.values())
    assert set(group_of_series(["x"], GroupsConfig(by="hash", k=1)).values()) == {"hash-0"}


def test_column_groups_take_each_series_value():
    frame = pd.DataFrame(
        {SERIES_ID: ["a", "a", "b", "c", "c"], "region": [1.0, 1.0, 1.0, 2.0, 2.0]}
    )
    cfg = GroupsConfig(by="column", column="region")
    assert group_of_series(["a", "b", "c"], cfg, frame) == {
        "a": "region=1",
        "b": "region=1",
        "c": "region=2",
    }
    with pytest.raises(ValueError, match="'region' is not in the data.*series_id"):
        group_of_series(["a"], cfg, frame[[SERIES_ID]])
    with pytest.raises(ValueError, match="constant within a series; series 'a' has \\[1.0, 3.0\\]"):
        group_of_series(["a"], cfg, frame.assign(region=[1.0, 3.0, 1.0, 2.0, 2.0]))
    with pytest.raises(ValueError, match="no rows for series \\['zz'\\]"):
        group_of_series(["a", "zz"], cfg, frame)


@pytest.mark.parametrize(
    ("train", "columns", "message"),
    [
        ({"groups": {"by": "hash", "k": 0}}, {}, "needs train.groups.k >= 1, got 0"),
        ({"groups": {"by": "hash"}}, {}, "needs train.groups.k >= 1, got None"),
        ({"groups": {"by": "column"}}, {}, "by=column needs train.groups.column"),
        ({"groups": {"by": "hash", "k": 2, "column": "r"}}, {}, "column is only for by=column"),
        (
            {"per_series": True, "groups": {"by": "hash", "k": 2}},
            {},
            "per_series and train.groups are exclusive",
        ),
        (
            {"groups": {"by": "column", "column": "region"}},
            {"covariates": ["temp"]},
            "'region' is not a column the pipeline keeps: list it in columns.past",
        ),
    ],
)
def test_bad_group_settings_are_refused_with_the_setting_named(train, columns, message):
    with pytest.raises(ValidationError, match=message):
        PipelineConfig.model_validate({"train": train, "columns": columns})


def test_group_settings_that_are_fine():
    cfg = PipelineConfig.model_validate(
        {
            "columns": {"covariates": ["region"]},
            "train": {"groups": {"by": "column", "column": "region"}, "dask_address": "tcp://x:1"},
        }
    )
    assert cfg.train.splits and not cfg.train.per_series
    # where training runs does not change what it makes: the same training key
    assert (
        cfg.training_key()
        == cfg.model_copy(
            update={"train": cfg.train.model_copy(update={"dask_address": None})}
        ).training_key()
    )


# --------------------------------------------------------------------------- the routed model


def test_series_of_a_group_share_one_branch_and_groups_differ(tmp_path):
    frame = frame_of({"a": sine(80), "b": sine(80, phase=3), "c": 1 - sine(80, period=7)})
    data = windows_of(frame)
    cfg = train_cfg(epochs=1, units=4, min_windows_per_epoch=0, groups={"by": "hash", "k": 2})
    group_of = {"a": "g1", "b": "g1", "c": "g2"}

    def fit():
        seed_everything(0)
        return fit_windows(data, cfg, identity_scaler(data), group_of=group_of)

    fitted = fit()
    spec = fitted.spec
    assert spec.series == ["a", "b", "c"] and spec.groups == ["g1", "g1", "g2"]
    assert spec.branches == ["g1", "g2"]
    assert sorted(set(fitted.epochs[GROUP])) == ["g1", "g2"]
    branches = [layer for layer in fitted.model.layers if layer.name.startswith("group_")]
    assert [b.name for b in branches] == ["group_0", "group_1"]  # one branch per group

    x = np.repeat(data.subset("test").x[:1], 3, axis=0)  # one window, fed as each series
    out = predict(fitted.model, spec, x, np.array(["a", "b", "c"]))
    assert np.allclose(out[0], out[1], atol=1e-7)  # a and b: the same branch, same weights
    assert not np.allclose(out[0], out[2], atol=1e-4)  # c: its own group's branch
    assert np.allclose(out[2], branches[1].predict(x[:1], verbose=0)[0], atol=1e-6)

    save_model(fitted.model, tmp_path / "model.keras")  # stock layers: safe-mode load
    again = predict(load_model(tmp_path / "model.keras"), spec, x, np.array(["a", "b", "c"]))
    assert np.allclose(again, out, atol=1e-6)
    # the same seed, the same model
    assert np.allclose(predict(fit().model, spec, x, np.array(["a", "b", "c"])), out, atol=1e-6)


def test_hash_groups_are_found_and_column_groups_must_be_given():
    data = windows_of(frame_of({"a": sine(80), "b": sine(80, phase=2)}))
    hashed = train_cfg(groups={"by": "hash", "k": 2})
    spec = model_spec(data, hashed, identity_scaler(data))  # as tune's trials call it
    assert spec.groups == [group_of_series(["a", "b"], hashed.groups)[s] for s in ("a", "b")]
    by_column = train_cfg(groups={"by": "column", "column": "region"})
    with pytest.raises(ValueError, match="by=column: pass each series' group"):
        fit_windows(data, by_column, identity_scaler(data))


def test_column_groups_are_read_from_the_validated_rows(tmp_path):
    """The column's original values (not the scaled feature) name the groups."""
    data = windows_of(frame_of({"a": sine(80), "b": sine(80, phase=2), "c": sine(80)}))
    validated = tmp_path / "02_validated.parquet"
    rows = pd.DataFrame({SERIES_ID: ["a", "a", "b", "c"], "region": [7.0, 7.0, 7.0, 9.0]})
    rows.to_parquet(validated)
    cfg = PipelineConfig.model_validate(
        {
            "columns": {"covariates": ["region"]},
            "train": {"groups": {"by": "column", "column": "region"}},
        }
    )
    assert groups_for(cfg, data, validated) == {"a": "region=7", "b": "region=7", "c": "region=9"}
    assert groups_for(PipelineConfig(), data, validated) is None
    with pytest.raises(ValueError, match="'region' is not in the data"):
        rows[[SERIES_ID]].to_parquet(validated)
        groups_for(cfg, data, validated)
