"""The per-series router: each series served by the model that won on its validation windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seriesflow.data.schema import COMBINATION, ETS, LSTM, NAIVE, SEASONAL_NAIVE, THETA
from seriesflow.evaluation.router import Router, choose, route, validation_mase


def test_each_series_gets_the_model_that_won_its_validation_windows():
    # series "exact": ETS forecasts it exactly; series "lstm": the LSTM does.
    ids = np.array(["exact", "exact", "lstm", "lstm"])
    actual = np.array([[1.0, 2.0], [2.0, 3.0], [5.0, 5.0], [6.0, 6.0]])
    forecasts = {
        LSTM: actual + np.array([[0.5], [0.5], [0.0], [0.0]]),
        ETS: actual + np.array([[0.0], [0.0], [1.0], [1.0]]),
        THETA: actual + 0.3,
        SEASONAL_NAIVE: actual + 2.0,
        NAIVE: actual + 3.0,
    }
    errors = validation_mase(ids, actual, forecasts, {"exact": 0.5, "lstm": 2.0})
    assert errors["exact"][ETS] == 0.0 and errors["exact"][LSTM] == pytest.approx(1.0)
    assert errors["lstm"][LSTM] == 0.0 and errors["lstm"][ETS] == pytest.approx(0.5)
    router = choose(errors, ["exact", "lstm"])
    assert router.choice == {"exact": ETS, "lstm": LSTM}
    assert router.lstm_share == 0.5
    routed = route(router, ids, forecasts)
    np.testing.assert_allclose(routed, actual)  # each series from its own winner: exact
    # the test windows are never consulted: the same router routes any later windows
    later = {name: f + 10 for name, f in forecasts.items()}
    np.testing.assert_allclose(route(router, ids, later), actual + 10)


def test_a_series_leaves_the_default_only_for_a_clear_winner():
    errors = {
        "tie": {LSTM: 0.8, ETS: 0.8, THETA: 0.9, NAIVE: 1.0, SEASONAL_NAIVE: 1.1},
        "close": {COMBINATION: 0.8, LSTM: 0.5, ETS: 0.9, THETA: 0.9, NAIVE: 1, SEASONAL_NAIVE: 1},
        "clear": {COMBINATION: 0.8, LSTM: 0.9, ETS: 0.1, THETA: 0.9, NAIVE: 1, SEASONAL_NAIVE: 1},
    }
    plain = choose({"tie": errors["tie"]}, ["tie"])  # the LSTM, the plain best on validation
    assert plain.choice == {"tie": LSTM}  # a tie keeps the default
    candidates = (COMBINATION, LSTM, ETS, THETA, SEASONAL_NAIVE, NAIVE)
    router = choose(
        {k: errors[k] for k in ("close", "clear")},
        ["close", "clear"],
        candidates=candidates,
        default=COMBINATION,
        switch_below=0.25,
    )
    # 0.5 is not below 0.25 x 0.8: stays; 0.1 is: switches to AutoETS
    assert router.choice == {"close": COMBINATION, "clear": ETS}
    assert router.lstm_share == 0.5  # the combination holds the LSTM
    with pytest.raises(ValueError, match="not a candidate"):
        choose(errors, ["tie"], default=COMBINATION)


def test_a_series_without_validation_windows_gets_the_best_model_overall():
    errors = {
        "a": {LSTM: 0.5, ETS: 0.9, THETA: 1.0, NAIVE: 1.2, SEASONAL_NAIVE: 1.3},
        "b": {LSTM: 0.7, ETS: 0.6, THETA: 1.0, NAIVE: 1.2, SEASONAL_NAIVE: 1.3},
    }
    router = choose(errors, ["a", "b", "short"])
    assert router.choice["short"] == LSTM  # lowest mean validation MASE (0.6)
    assert router.model_of("never-seen") == LSTM


def test_an_lstm_only_router_and_the_json_round_trip():
    router = Router.lstm_only(["a", "b"], {"a": 12, "b": 12})
    assert router.lstm_share == 1.0 and router.candidates == (LSTM,)
    errors = {"a": {LSTM: 0.5, ETS: 0.4, THETA: math.inf, NAIVE: 1, SEASONAL_NAIVE: 1}}
    chosen = choose(errors, ["a"], {"a": 4})
    again = Router.from_json(chosen.to_json())
    assert again.choice == chosen.choice and again.seasons == {"a": 4}
    assert again.val_mase["a"][ETS] == 0.4


def test_routing_to_a_model_without_forecasts_is_an_error():
    router = Router({"a": THETA})
    with pytest.raises(ValueError, match="theta"):
        route(router, np.array(["a"]), {LSTM: np.zeros((1, 2))})
