"""Pinball, MSIS and WAPE of the registered model's intervals, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from seriesflow.data.schema import ALL_SERIES
from seriesflow.evaluation.probabilistic import probabilistic_scores
from seriesflow.model.intervals import Intervals


def intervals(width: float) -> Intervals:
    half = {"a": {"80": [width, width]}}
    return Intervals([80], 2, half, {"80": [1.0, 1.0]}, {"a": 2.0}, "test")


def test_scores_by_hand():
    actual = np.array([[10.0, 12.0]])  # one window, two steps
    forecast = np.array([[11.0, 11.0]])
    table = probabilistic_scores(
        np.array(["a"]), actual, forecast, intervals(2.0), [80], {"a": 2.0}
    )
    # WAPE: (1 + 1) / (10 + 12)
    assert table.loc["a", "wape"] == pytest.approx(2 / 22)
    # both actuals inside [9, 13]: the Winkler score is the width, 4; MSIS = 4 / scale 2
    assert table.loc["a", "msis_80"] == pytest.approx(2.0)
    # pinball at q=0.1 of the lower bound 9: 0.1 * (10-9), 0.1 * (12-9) -> mean 0.2; at q=0.9
    # of the upper bound 13: 0.1 * (13-10), 0.1 * (13-12) -> 0.2; averaged: 0.2
    assert table.loc["a", "pinball_80"] == pytest.approx(0.2)
    assert table.loc[ALL_SERIES, "wape"] == pytest.approx(2 / 22)


def test_an_actual_outside_the_interval_is_penalized():
    actual = np.array([[10.0, 20.0]])
    forecast = np.array([[11.0, 11.0]])
    narrow = probabilistic_scores(
        np.array(["a"]), actual, forecast, intervals(2.0), [80], {"a": 2.0}
    )
    # step 2: 20 is 7 above the upper bound 13: Winkler 4 + (2 / 0.2) * 7 = 74; mean (4+74)/2
    assert narrow.loc["a", "msis_80"] == pytest.approx(39.0 / 2.0)
    wide = probabilistic_scores(np.array(["a"]), actual, forecast, intervals(9.0), [80], {"a": 2.0})
    assert wide.loc["a", "msis_80"] < narrow.loc["a", "msis_80"]
