"""Metrics against scikit-learn and hand values; baselines by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_score,
    recall_score,
)

from seriesflow.data.schema import ALL_SERIES
from seriesflow.evaluation.metrics import (
    classification_metrics,
    majority_classes,
    metrics_table,
    naive_forecast,
    regression_metrics,
    seasonal_naive_forecast,
    seasonal_naive_scale,
)


def test_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(3)
    actual = rng.uniform(1, 10, size=(40, 3))  # [windows, horizon]
    predicted = actual + rng.normal(0, 1, size=actual.shape)
    got = regression_metrics(actual, predicted, scale=2.0)
    assert got["mse"] == pytest.approx(mean_squared_error(actual, predicted))
    assert got["mae"] == pytest.approx(mean_absolute_error(actual, predicted))
    assert got["rmse"] == pytest.approx(math.sqrt(mean_squared_error(actual, predicted)))
    assert got["mape"] == pytest.approx(mean_absolute_percentage_error(actual, predicted))
    assert got["mase"] == pytest.approx(mean_absolute_error(actual, predicted) / 2.0)


def test_mase_scales_each_window_by_its_series():
    actual = np.array([[1.0, 1.0], [5.0, 5.0]])
    predicted = np.array([[2.0, 3.0], [5.0, 9.0]])  # abs errors [1, 2] and [0, 4]
    got = regression_metrics(actual, predicted, scale=np.array([1.0, 4.0]))
    assert got["mase"] == pytest.approx((1 + 2 + 0 + 1) / 4)
    assert math.isnan(regression_metrics(actual, predicted)["mase"])
    with pytest.raises(ValueError, match="shape mismatch"):
        regression_metrics(actual, predicted[:1])


def test_seasonal_naive_scale_by_hand():
    values = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert seasonal_naive_scale(values, 2) == pytest.approx((1 + 2 + 2) / 3)
    assert seasonal_naive_scale(values, 10) == pytest.approx((2 + 1 + 3 + 1) / 4)  # one-step
    assert math.isnan(seasonal_naive_scale(np.ones(6), 2))  # zero error: no scale


def test_naive_and_seasonal_naive_forecasts_by_hand():
    values = np.array([10.0, 11, 12, 13, 14, 15, 16])
    origins = np.array([3, 5])
    assert naive_forecast(values, origins, 3).tolist() == [[13] * 3, [15] * 3]
    # season 2: y[o+1] = y[o-1], y[o+2] = y[o], y[o+3] = y[o+1-2] = y[o-1]
    assert seasonal_naive_forecast(values, origins, 3, 2).tolist() == [
        [12, 13, 12],
        [14, 15, 14],
    ]


def test_metrics_table_has_pooled_and_per_series_rows():
    ids = np.array(["a", "a", "b"])
    actual = np.array([[1.0], [2.0], [3.0]])
    table = metrics_table(ids, actual, {"m": actual + [[1.0], [1.0], [3.0]]}, np.ones(3))
    rows = table.set_index("series_id")
    assert rows.loc[ALL_SERIES, "mae"] == pytest.approx(5 / 3)
    assert rows.loc["a", "mae"] == 1 and rows.loc["b", "mae"] == 3
    assert rows.loc["a", "windows"] == 2


def test_classification_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    actual = rng.integers(0, 4, size=200)
    predicted = np.where(rng.uniform(size=200) < 0.6, actual, rng.integers(0, 3, size=200))
    got = classification_metrics(actual, predicted)  # class 3 is never predicted
    assert got["accuracy"] == pytest.approx(accuracy_score(actual, predicted))
    for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        expected = fn(actual, predicted, average="macro", zero_division=0)
        assert got[name] == pytest.approx(expected), name


def test_classification_metrics_by_hand():
    got = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    # class 0: p 1, r 0.5, f1 2/3; class 1: p 2/3, r 1, f1 0.8
    assert got == pytest.approx(
        {"accuracy": 0.75, "precision": 5 / 6, "recall": 0.75, "f1": (2 / 3 + 0.8) / 2}
    )
    assert math.isnan(classification_metrics(np.array([]), np.array([]))["f1"])


def test_majority_classes_per_series():
    ids = np.array(["a", "a", "a", "b", "b"])
    codes = np.array([1, 1, 0, 0, 2])
    assert majority_classes(ids, codes, 3) == {"a": 1, "b": 0}  # b: a tie goes to the lower
