"""MLflow plumbing that needs no server: parameter flattening and metric keys."""

from __future__ import annotations

import pandas as pd

from seriesflow.data.schema import SERIES_ID
from seriesflow.tracking.registry import epoch_steps, flatten, metric_key


def test_epoch_steps_name_per_series_metrics():
    history = pd.DataFrame(
        {SERIES_ID: ["a", "b:1"], "epoch": [1, 1], "loss": [0.5, 0.7], "val_loss": [0.6, None]}
    )
    assert epoch_steps(history, SERIES_ID) == [
        (1, {"loss.a": 0.5, "val_loss.a": 0.6, f"loss.{metric_key('b:1')}": 0.7})
    ]
    plain = pd.DataFrame({"epoch": [1, 2], "loss": [0.5, 0.4]})
    assert epoch_steps(plain, SERIES_ID) == [(1, {"loss": 0.5}), (2, {"loss": 0.4})]


def test_flatten_and_metric_keys():
    assert flatten("", {"a": {"b": 1, "c": {"d": [2]}}, "e": None}, {}) == {
        "a.b": 1,
        "a.c.d": [2],
        "e": None,
    }
    assert metric_key("plant-north 2.b") == "plant-north 2.b"  # safe ids stay as they are
    odd = metric_key("plant/north:1 é")
    assert odd.startswith("plant_north_1 é-") and len(odd) == len("plant_north_1 é") + 9
    # mapped ids carry a hash of themselves: two ids never share a key
    assert metric_key("a*b") != metric_key("a?b") and metric_key("a*b") != "a_b"
    for hostile in ("..", "/", "a//b", "../etc", "x" * 300):
        key = metric_key(hostile)
        assert "/" not in key and key not in (".", "..") and len(key) <= 120
