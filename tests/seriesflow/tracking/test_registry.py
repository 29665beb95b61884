"""MLflow plumbing that needs no server: parameter flattening and metric keys."""

from __future__ import annotations

import hashlib
import random

import pandas as pd
import pytest
from mlflow.utils.validation import _validate_metric_name, _validate_param_name

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
    assert odd == "plant_north_1 é-" + hashlib.sha256("plant/north:1 é".encode()).hexdigest()
    # mapped ids carry a hash of themselves: two ids never share a key
    assert metric_key("a*b") != metric_key("a?b") and metric_key("a*b") != "a_b"
    for hostile in ("..", "/", "a//b", "../etc", "x" * 300):
        key = metric_key(hostile)
        assert "/" not in key and key not in (".", "..") and len(key) <= 120


def test_no_champion_and_an_unreachable_registry_are_told_apart(tmp_path, monkeypatch):
    import mlflow

    from seriesflow.tracking.registry import champion_run_folder, champion_version
    from tests.registry_stub import registry_503

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert champion_version("never-registered") is None
    mlflow.MlflowClient().create_registered_model("no-alias-yet")
    assert champion_version("no-alias-yet") is None

    with registry_503(monkeypatch) as uri:
        mlflow.set_tracking_uri(uri)
        with pytest.raises(RuntimeError, match="could not look up the champion of 'm'.*503"):
            champion_version("m")
        with pytest.raises(RuntimeError, match="could not look up the champion of 'm'"):
            champion_run_folder("m")


def test_filter_values_are_quoted_for_mlflows_grammar(tmp_path):
    import mlflow

    from seriesflow.tracking.registry import all_versions, filter_value

    assert filter_value("plain") == "'plain'"
    assert filter_value("it's") == '"it\'s"'
    with pytest.raises(ValueError, match="both quote characters"):
        filter_value('it\'s "odd"')
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("e")
    run = client.create_run(experiment)
    client.create_registered_model("o'brien")
    client.create_model_version("o'brien", f"runs:/{run.info.run_id}/model", run.info.run_id)
    assert [str(v.version) for v in all_versions("o'brien")] == ["1"]


def _adversarial_ids(count: int, seed: int) -> set[str]:
    """Ids built to collide: path characters, the characters the map turns into ``_``,
    unicode and case variants, and ids spelled like other ids' mapped keys."""
    rng = random.Random(seed)
    alphabet = list("aAbB01_-. /:*?\\\t") + ["é", "É", "ß", "ẞ", "İ", "i", "\u0301", "😀", "Ω"]
    ids = {"plant/1", "plant_1", "plant_1-54883fe2", ".", "..", "_", "-", " a", "a ", "x" * 120}
    ids |= {"x" * 121, "y" * 200, "NA", "na", "None", "plant 1", "plant:1", "plant*1"}
    for _ in range(count):
        ids.add("".join(rng.choice(alphabet) for _ in range(rng.choice([1, 2, 3, 8, 60, 200]))))
    for text in list(ids):
        safe = "".join(c if c.isalnum() or c in "_-. " else "_" for c in text).strip() or "_"
        ids |= {text.upper(), text.lower(), text.swapcase(), safe, metric_key(text)}
        # what an older map gave (an 8-digit hash), and this map's own output for a twin id
        ids.add(f"{safe[:100]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}")
        ids.add(f"{safe[:55]}-{hashlib.sha256(text.encode()).hexdigest()}")
    return ids


def test_metric_keys_are_one_per_id_and_valid_mlflow_keys():
    # plant/1 used to map to plant_1-54883fe2, which is also an id a file may hold
    assert metric_key("plant/1") != metric_key("plant_1-54883fe2")
    for seed in range(3):
        ids = _adversarial_ids(700, seed)
        keys = {}
        for text in ids:
            key = metric_key(text)
            assert keys.setdefault(key, text) == text, f"{text!r} and {keys[key]!r} share {key!r}"
            assert len(key) <= 120 and "/" not in key
            for name in (f"loss.{key}", f"val_loss.{key}"):
                _validate_metric_name(name)
                _validate_param_name(name)
        assert len(keys) == len(ids)
