"""Predictions padded to a few batch shapes: the same outputs, whatever the count."""

from __future__ import annotations

import numpy as np
import pytest

from seriesflow.model.saved_model import PREDICT_BATCH, ModelSpec, padded_rows, predict


def test_rows_are_padded_to_a_power_of_two_then_to_whole_batches():
    assert [padded_rows(n) for n in (0, 1, 2, 3, 5, 1000, 4096)] == [1, 1, 2, 4, 8, 1024, 4096]
    assert padded_rows(PREDICT_BATCH + 1) == 2 * PREDICT_BATCH
    assert padded_rows(3 * PREDICT_BATCH) == 3 * PREDICT_BATCH
    shapes = {padded_rows(n) for n in range(1, PREDICT_BATCH + 1)}
    assert len(shapes) == 13  # every count up to a batch: 13 shapes to trace, not 4096


@pytest.mark.parametrize("rows", [1, 3, 77, PREDICT_BATCH + 5])
def test_padded_predictions_are_the_model_outputs_of_the_rows_given(rows):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 2)), keras.layers.LSTM(3), keras.layers.Dense(2)])
    x = np.random.default_rng(rows).normal(size=(rows, 4, 2)).astype(np.float32)
    spec = ModelSpec("regression", 4, ["value", "other"], 2)
    out = predict(model, spec, x, np.array(["a"] * rows))
    assert out.shape == (rows, 2)
    np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-5, atol=1e-6)
