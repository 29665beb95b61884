"""Train: each model option changes the model or its results; the callbacks really act."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.config.pipeline import TrainConfig
from seriesflow.data.schema import (
    CLASSIFICATION,
    SERIES_ID,
    SPLIT,
    TIMESTAMP,
    VALUE,
    VALUE_ORIGINAL,
)
from seriesflow.model.lstm import build_model, fit_model, route_series, seed_everything, warm_start
from seriesflow.model.saved_model import ModelSpec, predict
from seriesflow.model.training import WarmSource, fit_windows
from tests.factories import START, identity_scaler, windows_of

TINY = {
    "units": 8,
    "epochs": 2,
    "learning_rate": 0.01,
    "reduce_lr_patience": 1,
    "early_stopping_patience": 3,
    # XLA's compile costs seconds per fit, more than two tiny epochs gain from it; the XLA
    # test below turns it on
    "jit_compile": False,
}


def train_cfg(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def frame_of(values: dict[str, np.ndarray], covariate: dict[str, np.ndarray] | None = None):
    """A normalized long frame (values already scaled) split 70/15/15 per series."""
    parts = []
    for sid, v in values.items():
        n = len(v)
        n_val = n_test = int(n * 0.15)
        part = pd.DataFrame(
            {
                SERIES_ID: sid,
                TIMESTAMP: START + pd.to_timedelta(np.arange(n), unit="h"),
                VALUE: v,
                VALUE_ORIGINAL: v,
                SPLIT: ["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test,
            }
        )
        if covariate is not None:
            part["cov"] = covariate[sid]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def sine(n: int, period: int = 12, phase: float = 0.0) -> np.ndarray:
    return 0.5 + 0.4 * np.sin(2 * np.pi * (np.arange(n) + phase) / period)


def lstm_params(units: int, inputs: int) -> int:
    return 4 * (units * (inputs + units) + units)


# --------------------------------------------------------------------------- architecture


def test_units_layers_and_horizon_set_the_shapes_and_parameter_count():
    one = build_model(24, 2, 3, train_cfg(units=5))
    assert one.input_shape == (None, 24, 2) and one.output_shape == (None, 3)
    assert one.count_params() == lstm_params(5, 2) + (5 * 3 + 3)
    two = build_model(24, 2, 3, train_cfg(units=5, layers=2))
    assert two.count_params() == lstm_params(5, 2) + lstm_params(5, 5) + (5 * 3 + 3)
    assert two.get_layer("lstm_1").return_sequences and not two.get_layer("lstm_2").return_sequences
    x = np.random.default_rng(0).uniform(size=(7, 24, 2)).astype("float32")
    assert two.predict(x, verbose=0).shape == (7, 3)  # [batch, horizon]


def test_activation_changes_the_function_computed():
    tanh = build_model(6, 1, 1, train_cfg())
    relu = build_model(6, 1, 1, train_cfg(activation="relu"))
    assert relu.get_layer("lstm_1").get_config()["activation"] == "relu"
    relu.set_weights(tanh.get_weights())  # same weights, different activation
    x = np.random.default_rng(1).uniform(-3, 3, size=(16, 6, 1)).astype("float32")
    assert not np.allclose(tanh.predict(x, verbose=0), relu.predict(x, verbose=0))


@pytest.mark.parametrize("option", ["dropout", "recurrent_dropout"])
def test_dropout_options_randomize_training_passes_only(option):
    x = np.random.default_rng(2).uniform(size=(32, 6, 1)).astype("float32")
    plain = build_model(6, 1, 1, train_cfg())
    assert np.allclose(plain(x, training=True), plain(x, training=False))
    noisy = build_model(6, 1, 1, train_cfg(**{option: 0.5}))
    assert not np.allclose(noisy(x, training=True), noisy(x, training=True))
    assert np.allclose(noisy(x, training=False), noisy(x, training=False))
    if option == "dropout":
        assert "dropout_1" in [layer.name for layer in noisy.layers]


def test_l2_adds_a_penalty_to_the_loss():
    x = np.random.default_rng(3).uniform(size=(32, 6, 1)).astype("float32")
    y = np.zeros((32, 1), dtype="float32")
    plain = build_model(6, 1, 1, train_cfg())
    penalized = build_model(6, 1, 1, train_cfg(l2=0.1))
    penalized.set_weights(plain.get_weights())
    assert len(plain.losses) == 0 and len(penalized.losses) == 2  # LSTM + Dense kernels
    assert penalized.evaluate(x, y, verbose=0) > plain.evaluate(x, y, verbose=0) + 0.01


def test_seeded_builds_start_alike():
    a, b = build_model(6, 1, 2, train_cfg(seed=7)), build_model(6, 1, 2, train_cfg(seed=7))
    c = build_model(6, 1, 2, train_cfg(seed=8))
    assert all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights(), strict=True))
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


# --------------------------------------------------------------------------- data options


def test_multi_step_horizon_trains_a_direct_multi_output_model():
    data = windows_of(frame_of({"a": sine(200)}), horizon=3)
    fitted = fit_windows(data, train_cfg(), identity_scaler(data))
    assert fitted.spec.horizon == 3 and fitted.model.output_shape == (None, 3)
    test = data.subset("test")
    assert predict(fitted.model, fitted.spec, test.x, test.series_id).shape == (len(test), 3)


def test_a_covariate_input_lets_the_model_see_what_the_target_follows():
    rng = np.random.default_rng(4)
    driver = rng.integers(0, 2, size=300).astype(float)  # a coin flip per step
    target = np.concatenate([[0.5], driver[:-1]])  # value[t] = driver[t - 1]: unpredictable alone
    frame = frame_of({"a": target}, covariate={"a": driver})
    cfg = train_cfg(epochs=8, units=8, learning_rate=0.02)
    seed_everything(0)
    alone_data = windows_of(frame, (VALUE,), timesteps=3)
    alone = fit_windows(alone_data, cfg, identity_scaler(alone_data))
    seed_everything(0)
    helped_data = windows_of(frame, (VALUE, "cov"), timesteps=3)
    helped = fit_windows(helped_data, cfg, identity_scaler(helped_data))
    assert helped.spec.features == [VALUE, "cov"] and helped.model.input_shape == (None, 3, 2)
    assert helped.epochs["val_loss"].min() < 0.1 * alone.epochs["val_loss"].min()


# --------------------------------------------------------------------------- classification


def test_classification_uses_a_softmax_head_and_cross_entropy():
    model = build_model(6, 1, 2, train_cfg(task=CLASSIFICATION))
    assert model.layers[-1].get_config()["activation"] == "softmax"
    assert model.loss == "sparse_categorical_crossentropy"
    x = np.random.default_rng(5).uniform(size=(9, 6, 1)).astype("float32")
    assert np.allclose(model.predict(x, verbose=0).sum(axis=1), 1.0, atol=1e-5)


def test_classification_learns_the_direction_of_change():
    data = windows_of(frame_of({"a": sine(240), "b": sine(240, phase=3)}), task=CLASSIFICATION)
    seed_everything(0)
    fitted = fit_windows(
        data, train_cfg(task=CLASSIFICATION, epochs=15, learning_rate=0.02), identity_scaler(data)
    )
    assert fitted.spec.classes == ["down", "up"] and fitted.spec.outputs == 2
    val = data.subset("val")
    predicted = predict(fitted.model, fitted.spec, val.x, val.series_id).argmax(axis=1)
    majority = max(np.mean(val.codes == 0), np.mean(val.codes == 1))
    assert np.mean(predicted == val.codes) > max(0.85, majority + 0.2)
    with pytest.raises(ValueError, match="train.task is regression"):
        fit_windows(data, train_cfg(), identity_scaler(data))


# --------------------------------------------------------------------------- per series


def test_routed_model_gives_each_series_its_own_branch():
    branches = [build_model(6, 1, 2, train_cfg(seed=s), name=f"series_{s}") for s in (1, 2)]
    routed = route_series(branches, 6, 1)
    spec = ModelSpec("regression", 6, [VALUE], 2, series=["a", "b"])
    x = np.random.default_rng(6).uniform(size=(4, 6, 1)).astype("float32")
    out = predict(routed, spec, x, np.array(["a", "b", "zz", "a"]))
    assert np.allclose(out[[0, 3]], branches[0].predict(x[[0, 3]], verbose=0), atol=1e-6)
    assert np.allclose(out[1], branches[1].predict(x[1:2], verbose=0)[0], atol=1e-6)
    assert np.isnan(out[2]).all()  # a series the model was not trained on


def test_per_series_models_do_not_learn_from_other_series():
    a = sine(120)
    first = frame_of({"a": a, "b": sine(120, period=7)})
    second = frame_of({"a": a, "b": 1 - sine(120, period=5)})  # only series b changes
    cfg = train_cfg(epochs=2)

    def a_predictions(frame, per_series):
        data = windows_of(frame)
        seed_everything(0)
        fitted = fit_windows(
            data, cfg.model_copy(update={"per_series": per_series}), identity_scaler(data)
        )
        test = data.subset("test")
        test = test.select(test.series_id == "a")
        return fitted, predict(fitted.model, fitted.spec, test.x, test.series_id)

    fitted, own_1 = a_predictions(first, True)
    _, own_2 = a_predictions(second, True)
    assert fitted.spec.series == ["a", "b"] and set(fitted.epochs[SERIES_ID]) == {"a", "b"}
    assert np.allclose(own_1, own_2, atol=1e-6)  # a's model never saw b
    _, shared_1 = a_predictions(first, False)
    _, shared_2 = a_predictions(second, False)
    assert not np.allclose(shared_1, shared_2, atol=1e-4)  # the global model did


# --------------------------------------------------------------------------- training discipline


def test_reduce_lr_fires_and_early_stopping_restores_the_best_weights():
    rng = np.random.default_rng(7)
    x_train = rng.uniform(size=(256, 6, 1)).astype("float32")
    x_val = rng.uniform(size=(64, 6, 1)).astype("float32")
    # Val wants the opposite of train: every epoch of fitting makes val worse.
    y_train, y_val = np.ones((256, 1), "float32"), -np.ones((64, 1), "float32")
    cfg = train_cfg(epochs=30, reduce_lr_patience=1, early_stopping_patience=3, min_lr=1e-4)
    model = build_model(6, 1, 1, cfg)
    history = fit_model(model, (x_train, y_train), (x_val, y_val), cfg)
    assert len(history) == 4  # best at epoch 1, then 3 epochs of patience
    assert (history["val_loss"].iloc[1:] > history["val_loss"].iloc[0]).all()
    assert history["learning_rate"].tolist() == pytest.approx([0.01, 0.01, 0.005, 0.0025])
    restored = model.evaluate(x_val, y_val, verbose=0)
    assert restored == pytest.approx(history["val_loss"].iloc[0], rel=1e-4)
    assert restored < history["val_loss"].iloc[-1]


def test_fit_needs_train_and_val_windows():
    model = build_model(6, 1, 1, train_cfg())
    x = np.zeros((4, 6, 1), "float32")
    with pytest.raises(ValueError, match="train and val"):
        fit_model(model, (x, np.zeros((4, 1))), (x[:0], np.zeros((0, 1))), train_cfg())


def test_warm_start_copies_the_champions_weights_when_the_architecture_matches():
    data = windows_of(frame_of({"a": sine(240), "b": sine(240, phase=4)}))
    cfg = train_cfg(epochs=10)
    seed_everything(0)
    champion = fit_windows(data, cfg, identity_scaler(data))
    source = WarmSource(champion.model, champion.spec, "3")

    fresh = build_model(6, 1, 1, cfg)
    used, note = warm_start(fresh, champion.spec, champion.model, champion.spec, "3")
    assert used and "v3" in note and "copied" in note
    pairs = zip(fresh.get_weights(), champion.model.get_weights(), strict=True)
    assert all(np.array_equal(p, q) for p, q in pairs)

    seed_everything(0)
    cold = fit_windows(data, train_cfg(epochs=1), identity_scaler(data))
    seed_everything(0)
    warm = fit_windows(data, train_cfg(epochs=1), identity_scaler(data), warm=source)
    assert warm.spec.warm_start is not None and "copied" in warm.spec.warm_start
    assert cold.spec.warm_start is None
    # One epoch from the champion's weights starts where the champion ended.
    assert warm.epochs["val_loss"].iloc[0] < 0.5 * cold.epochs["val_loss"].iloc[0]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"units": 9}, "layers differ"),
        ({"activation": "relu"}, "layers differ"),
        ({"layers": 2}, "layers differ"),
    ],
)
def test_warm_start_falls_back_when_the_architecture_differs(changes, reason):
    spec = ModelSpec("regression", 6, [VALUE], 1)
    champion = build_model(6, 1, 1, train_cfg())
    model = build_model(6, 1, 1, train_cfg(**changes))
    before = [w.copy() for w in model.get_weights()]
    used, note = warm_start(model, spec, champion, spec, "2")
    assert not used and "does not match" in note and reason in note and "scratch" in note
    pairs = zip(before, model.get_weights(), strict=True)
    assert all(np.array_equal(p, q) for p, q in pairs)


def test_warm_start_falls_back_when_inputs_or_series_differ():
    model = build_model(6, 1, 1, train_cfg())
    spec = ModelSpec("regression", 6, [VALUE], 1)
    used, note = warm_start(model, spec, model, ModelSpec("regression", 12, [VALUE], 1), "1")
    assert not used and "timesteps 12 vs 6" in note
    per_series = ModelSpec("regression", 6, [VALUE], 1, series=["a"])
    used, note = warm_start(model, spec, model, per_series, "1")
    assert not used and "per-series" in note


def test_linear_skip_adds_a_linear_map_of_the_window_and_a_zero_head_is_naive():
    plain = build_model(6, 2, 3, train_cfg())
    skip = build_model(6, 2, 3, train_cfg(linear_skip=True), zero_head=True)
    assert skip.count_params() - plain.count_params() == 6 * 2 * 3 + 3  # [t*f -> horizon]
    x = np.random.default_rng(0).normal(size=(4, 6, 2)).astype("float32")
    assert np.allclose(skip.predict(x, verbose=0), 0.0)  # zero head: relative to last = naive
    assert {layer.name for layer in skip.layers} >= {"autoregressive", "forecast_sum"}


def test_short_training_sets_are_repeated_to_the_minimum_epoch_size():
    from seriesflow.model.lstm import window_batches

    data = windows_of(frame_of({"a": sine(40)}), timesteps=4)
    train = data.subset("train")
    batches = window_batches(train, identity_scaler(data), 8, True, 0, min_windows=64)
    assert len(train) < 64 and len(batches.order) == 64 and len(batches) == 8
    assert set(batches.order.tolist()) == set(range(len(train)))  # every window, repeated
    x, y = batches[0]
    assert x.shape == (8, 4, 1) and y.shape == (8, 1)
    plain = window_batches(train, identity_scaler(data), 8, True, 0)
    assert len(plain.order) == len(train)


# --------------------------------------------------------------------------- bounded epochs


def test_history_points_keeps_only_windows_within_the_most_recent_training_points():
    from seriesflow.model.training import recent_training_windows

    # a: 100 points -> 70 train rows 0..69; b: 60 points -> 42 train rows (60 + 0..41)
    data = windows_of(frame_of({"a": sine(100), "b": sine(60)}), timesteps=4, horizon=2)
    train = data.subset("train")
    kept = recent_training_windows(train, 10)
    a, b = kept.origin[kept.series_id == "a"], kept.origin[kept.series_id == "b"]
    # the last 10 train rows of a are 60..69: inputs from 60, targets up to 69
    assert a.tolist() == [63, 64, 65, 66, 67]
    assert b.tolist() == [35, 36, 37, 38, 39]  # rows 32..41 of b
    assert len(kept.x) == 10 and kept.x[0, 0, 0] == pytest.approx(sine(100)[60])
    assert data.subset("val").origin.tolist() == data.subset("val").recent(10**6).origin.tolist()
    with pytest.raises(ValueError, match=r"history_points=5 leaves no training window.*4 \+ 2"):
        recent_training_windows(train, 5)
    # every window kept: the same set back, no copy of its index
    assert train.recent(10**6) is train


def test_windows_padded_at_a_series_start_are_recent_when_the_start_is():
    """``min_inputs`` windows read the series from its first point on: within the last
    ``points`` points when the whole series is, so every window is kept (no copy)."""
    from seriesflow.model.windows import SeriesArrays, windows_from_table, windows_table

    arrays = SeriesArrays.from_frame(frame_of({"a": sine(40), "b": sine(30)}), ["value"])
    data = windows_from_table(windows_table(arrays, 8, 2, min_inputs=3), arrays)
    padded = data.row - data.timesteps + 1 < data.arrays.start[data.code]
    assert padded.sum() == 2 * 5  # origins 2..6 of each series
    assert data.recent(40) is data  # a: 40 points, b: 30, both within 40
    kept = data.recent(30)  # a's first 10 points are out: its padded windows go, b's stay
    a = data.origin[data.series_id == "a"]
    assert kept.origin[kept.series_id == "a"].tolist() == a[a >= 17].tolist()  # reads 10..
    assert (kept.series_id == "b").sum() == (data.series_id == "b").sum()
    first = np.maximum(kept.row - kept.timesteps + 1, kept.arrays.start[kept.code])
    last = {"a": 39, "b": 69}  # each series' last row
    assert all(f >= last[s] - 29 for f, s in zip(first, kept.series_id, strict=True))


def test_recent_windows_found_a_slice_at_a_time_equal_one_pass(monkeypatch):
    import seriesflow.model.windows as windows_module

    data = windows_of(frame_of({"a": sine(100), "b": sine(60), "c": sine(80)}), timesteps=4)
    train = data.subset("train")
    whole = train.recent(12)
    monkeypatch.setattr(windows_module, "SLICE_ROWS", 5)  # slices cut inside series
    sliced = train.recent(12)
    assert 0 < len(sliced) < len(train)
    np.testing.assert_array_equal(sliced.row, whole.row)
    np.testing.assert_array_equal(sliced.code, whole.code)
    np.testing.assert_array_equal(sliced.split, whole.split)


def test_max_windows_per_epoch_samples_without_replacement_seeded_and_new_each_epoch():
    from seriesflow.model.lstm import window_batches

    data = windows_of(frame_of({"a": sine(200)}), timesteps=4)
    train = data.subset("train")  # 136 windows
    batches = window_batches(train, identity_scaler(data), 8, True, 7, max_windows=50)
    first = batches.order.copy()
    assert len(first) == 50 and len(set(first.tolist())) == 50  # without replacement
    assert first.min() >= 0 and first.max() < len(train)
    again = window_batches(train, identity_scaler(data), 8, True, 7, max_windows=50)
    assert again.order.tolist() == first.tolist()  # same seed, same sample and order
    other = window_batches(train, identity_scaler(data), 8, True, 8, max_windows=50)
    assert other.order.tolist() != first.tolist()
    batches.on_epoch_end()
    assert len(batches.order) == 50 and batches.order.tolist() != first.tolist()
    everything = window_batches(train, identity_scaler(data), 8, True, 7, max_windows=1000)
    assert sorted(everything.order.tolist()) == list(range(len(train)))  # fewer: all of them


def test_fit_windows_trains_on_the_sampled_and_recent_windows_only(monkeypatch):
    import seriesflow.model.training as train_module
    from seriesflow.model.lstm import window_batches

    made = []

    def recording(windows, *args, **kwargs):
        made.append((len(windows), args[2], args[4:]))  # (windows, shuffle, (max, min))
        return window_batches(windows, *args, **kwargs)

    monkeypatch.setattr(train_module, "window_batches", recording)
    data = windows_of(frame_of({"a": sine(200), "b": sine(200, phase=3)}), timesteps=4)
    cfg = train_cfg(
        epochs=1,
        batch_size=8,
        min_windows_per_epoch=16,
        max_windows_per_epoch=40,
        history_points=60,
    )
    fit_windows(data, cfg, identity_scaler(data))
    # train: the 56 windows within the last 60 train points of each series, an epoch of
    # at least 16 and at most 40 windows; val: all 30 windows, in order
    assert made == [(2 * 56, True, (40, 16)), (2 * 30, False, ())]
    with pytest.raises(ValueError, match="history_points=3"):
        fit_windows(data, train_cfg(history_points=3), identity_scaler(data))


def test_fitted_datasets_let_go_of_their_windows():
    # Keras keeps a dataset it has fit on referenced for the rest of the process; the
    # windows (at 10M windows their index copies were 350 MB) must not stay with it
    import gc
    import weakref

    from seriesflow.model.training import fit_prepared, step_plan, train_on_everything

    data = windows_of(frame_of({"a": sine(120), "b": sine(120, phase=2)}), timesteps=4)
    cfg = train_cfg(epochs=1, batch_size=16, final_epochs=1)
    tr, va, everything = data.subset("train"), data.subset("val"), data.select(data.split >= 0)
    gone = [weakref.ref(tr), weakref.ref(va), weakref.ref(everything)]
    model = build_model(data.timesteps, len(data.features), data.horizon, cfg)
    epochs = fit_prepared(model, tr, va, step_plan(cfg, len(tr)), identity_scaler(data))
    assert len(epochs) == 1 and np.isfinite(epochs["val_loss"]).all()
    spec = ModelSpec.of_windows(data, False, "identity", None)
    train_on_everything(model, everything, spec, cfg, identity_scaler(data))
    del tr, va, everything
    gc.collect()
    assert [ref() for ref in gone] == [None, None, None]


def test_xla_is_used_when_determinism_is_off_and_repeats_for_a_seed_on_cpu():
    data = windows_of(frame_of({"a": sine(120)}), timesteps=4)
    weights = []
    for jit in (True, True, False):
        cfg = train_cfg(epochs=2, batch_size=16, jit_compile=jit, deterministic=not jit)
        seed_everything(3, cfg.deterministic)
        fitted = fit_windows(data, cfg, identity_scaler(data))
        assert fitted.model.jit_compile is jit  # Keras would drop XLA under op determinism
        weights.append(np.concatenate([w.ravel() for w in fitted.model.get_weights()]))
    seed_everything(0)  # op determinism back on for the other tests
    assert np.array_equal(weights[0], weights[1])  # same seed, XLA on CPU: the same weights
    # the same training without XLA: equal up to float rounding, not bit for bit
    assert np.allclose(weights[0], weights[2], atol=1e-4)


def test_a_small_training_set_gets_a_smaller_batch_and_a_scaled_rate():
    from seriesflow.model.training import step_plan

    cfg = TrainConfig()  # batch 256 at 1e-3 x sqrt(8), at least 16 steps, batch 32 at least
    assert (step_plan(cfg, 100).batch_size, step_plan(cfg, 100).learning_rate) == (
        32,
        pytest.approx(1e-3, rel=1e-12),
    )  # a short series: the seed's recipe
    assert np.float32(step_plan(cfg, 500).learning_rate) == np.float32(1e-3)
    sample = step_plan(cfg, 3912)
    assert sample.batch_size == 244 and sample.learning_rate == pytest.approx(
        cfg.learning_rate * (244 / 256) ** 0.5
    )
    assert step_plan(cfg, 4096) is cfg and step_plan(cfg, 10**6) is cfg  # 16+ full batches
    capped = TrainConfig(max_windows_per_epoch=2048)
    assert step_plan(capped, 10**6).batch_size == 128  # the epoch's sample decides
    assert step_plan(TrainConfig(min_steps_per_epoch=0), 100).batch_size == 256
