"""The champion re-scored on a run's windows through both scalers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.evaluation.champion import Champion, rescore_champion
from seriesflow.model.saved_model import ModelSpec
from seriesflow.model.scaler import Scaler
from tests.factories import window_set

V = np.array([10.0, 12, 11, 13, 12, 14, 13, 15, 14, 16])


def last_value_model():
    """A 'champion' that forecasts the last input: equals naive in any units, if scaled right."""
    import keras

    model = keras.Sequential([keras.Input((3, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.set_weights([np.array([[0.0], [0.0], [1.0]]), np.zeros(1)])
    return model


def scaler(low: float, span: float, series=("a",), method: str = "minmax") -> Scaler:
    def each(value):
        return {s: value for s in series}

    return Scaler(
        ["value"], each([low]), each([span]), each("h"), each(""), each(""), method=method
    )


def test_rescore_champion_maps_inputs_through_both_scalers():
    run_scaler, old_scaler = scaler(0.0, 20.0), scaler(5.0, 10.0)
    origins = [4, 5, 6]
    w = window_set(origins, horizon=1, values={"a": V / 20.0})  # this run's scaled values
    spec = ModelSpec("regression", 3, ["value"], 1)
    champion = Champion("4", "run", last_value_model(), old_scaler.to_json(), {}, None)
    predicted, note = rescore_champion(champion, w, run_scaler, spec)
    assert predicted[:, 0] == pytest.approx(V[origins], abs=1e-5)  # the last value, in units
    assert "v4 re-scored on 3 test windows" in note


def test_rescore_champion_gives_the_champion_its_own_input_length_and_normalization():
    """A champion with 2 input steps and last-value windows, on a run with 3 and MinMax."""
    import keras

    # relative to the last value, 'repeat the last change' = 1 * (x[-1] - x[-2]) ... here
    # inputs are [x[-2] - x[-1], 0]: the output -input[0] is the last change
    model = keras.Sequential([keras.Input((2, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.set_weights([np.array([[-1.0], [0.0]]), np.zeros(1)])
    theirs = ModelSpec("regression", 2, ["value"], 1, normalization="last_value")
    old = scaler(0.0, 2.0, method="last_value")
    champion = Champion("7", "r", model, old.to_json(), {}, theirs.to_json())
    w = window_set([1, 4, 6], horizon=1, values={"a": V / 20.0})
    predicted, note = rescore_champion(
        champion, w, scaler(0.0, 20.0), ModelSpec("regression", 3, ["value"], 1)
    )
    # drift forecast: last value + last change, in original units
    expected = [V[o] + (V[o] - V[o - 1]) for o in (1, 4, 6)]
    assert predicted[:, 0] == pytest.approx(expected, abs=1e-4)
    assert "re-scored on 3 test windows" in note


def test_rescore_champion_refuses_other_targets_and_skips_unknown_series():
    w = window_set([4, 5], series=["a", "b"], horizon=1)
    spec = ModelSpec("regression", 3, ["value"], 1)
    two_steps = ModelSpec("regression", 3, ["value"], 2)
    champion = Champion(
        "2", "r", last_value_model(), scaler(0, 1).to_json(), {}, two_steps.to_json()
    )
    predicted, note = rescore_champion(champion, w, scaler(0, 1, ("a", "b")), spec)
    assert np.isnan(predicted).all() and "not comparable: horizon 2 vs 1" in note
    champion = Champion("2", "r", last_value_model(), scaler(0, 1).to_json(), {}, spec.to_json())
    predicted, note = rescore_champion(champion, w, scaler(0, 1, ("a", "b")), spec)
    assert not np.isnan(predicted[0]).any() and np.isnan(predicted[1]).all()
    assert "never saw" in note and "'b'" in note


def test_windows_the_champion_trained_on_are_left_out_and_said_so_apart_from_unseen_series():
    """A champion trained up to a time is compared only on later targets; its series are
    not called unseen for that."""
    from dataclasses import replace

    from tests.factories import TIMES

    w = window_set([3, 4, 5, 6], horizon=1, values={"a": V / 20.0})
    spec = ModelSpec("regression", 3, ["value"], 1)
    until = str(pd.Timestamp(TIMES[5]).tz_localize("UTC"))  # targets at 4 and 5: trained on
    theirs = replace(spec, seen_until=until)
    champion = Champion(
        "3", "r", last_value_model(), scaler(0.0, 20.0).to_json(), {}, theirs.to_json()
    )
    predicted, note = rescore_champion(champion, w, scaler(0.0, 20.0), spec)
    assert np.isnan(predicted[:2]).all() and np.isfinite(predicted[2:]).all()
    assert "re-scored on 2 test windows" in note
    assert "2 windows whose targets it was trained on, left out" in note
    assert "never saw" not in note
