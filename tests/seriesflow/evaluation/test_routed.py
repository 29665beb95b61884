"""A regression run's evaluation: which origins are scored (the same for every model), the
exhaustive option, the record of the choice, and the classical fits the router keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import (
    ETS,
    NAIVE,
    ROUTED,
    SEASONAL_NAIVE,
    SERIES_ID,
    TEST,
    THETA,
    VALUE,
)
from seriesflow.evaluation.report import evaluation_markdown
from seriesflow.evaluation.routed import evaluate_regression
from seriesflow.evaluation.scoring import scorer_for
from seriesflow.model.classical import fit_points
from seriesflow.model.saved_model import ModelSpec
from tests.factories import identity_scaler, split_series, windows_of

START = pd.Timestamp("2024-01-01T00:00Z")
LENGTHS = {"a": 300, "b": 260}  # different lengths: different test parts


def normalized() -> pd.DataFrame:
    parts = []
    for k, (sid, n) in enumerate(LENGTHS.items()):
        i = np.arange(n)
        value = (
            50
            + 10 * k
            + 8 * np.sin(2 * np.pi * i / 24)
            + np.random.default_rng(k).normal(0, 0.3, n)
        )
        train, val = int(n * 0.6), int(n * 0.8)
        parts.append(split_series(sid, value, train, val, START))
    return pd.concat(parts, ignore_index=True)


def last_value_model():
    """Forecasts the last input for both steps (a naive forecast through the model path)."""
    import keras

    model = keras.Sequential([keras.Input((3, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.set_weights([np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]), np.zeros(2)])
    return model


def evaluate(per_series: int | None, fits=None):
    windows = windows_of(normalized(), timesteps=3, horizon=2)
    scaler = identity_scaler(windows)
    config = PipelineConfig.model_validate(
        {
            "evaluate": {"max_windows_per_series": per_series, "baselines": [ETS, THETA]},
            "forecast": {"steps": 4},
        }
    )
    scorer = scorer_for(windows, scaler, config.evaluate, classical=(ETS, THETA))
    spec = ModelSpec("regression", 3, [VALUE], 2)
    found = evaluate_regression(
        last_value_model(), spec, scaler, windows, config, scorer, (ETS, THETA), fits=fits
    )
    return windows, found


def evenly(origins: np.ndarray, count: int) -> list[int]:
    """By hand: ``count`` of the sorted origins at evenly spaced ranks, first and last kept."""
    ordered = np.sort(origins)
    return ordered[[0, *[round(k * (len(ordered) - 1) / (count - 1)) for k in range(1, count)]]]


def test_origins_are_spread_evenly_and_the_same_for_every_model():
    windows, found = evaluate(5)
    test = windows.subset(TEST)
    predictions = found.scored.predictions
    for sid in LENGTHS:
        mine = test.origin[test.series_id == sid]
        expected = evenly(mine, 5)
        rows = predictions[predictions[SERIES_ID] == sid]
        assert sorted(set(rows["origin_index"])) == sorted(expected)
        assert expected[0] == mine.min() and expected[-1] == mine.max()
    # every model forecast every one of those origins (no model scored on other windows)
    for name in ("model", NAIVE, SEASONAL_NAIVE, ETS, THETA, ROUTED):
        assert predictions[name].notna().all(), name
    metrics = found.scored.metrics
    per_series = metrics[(metrics["scope"] == "all") & (metrics[SERIES_ID] != "__all__")]
    assert set(per_series["windows"]) == {5}
    # the model is the last input repeated: its forecasts are the naive ones, origin by origin
    np.testing.assert_allclose(predictions["model"], predictions[NAIVE], rtol=1e-5)
    assert found.origins == {
        "max_windows_per_series": 5,
        "how": found.origins["how"],
        "val_windows": 10,
        "val_windows_total": len(windows.subset("val")),
        "test_windows": 10,
        "test_windows_total": len(test),
        "chunks": 1,
    }
    assert found.origins["how"].startswith("at most 5 per series, evenly spaced")
    assert found.test_windows == 10


@pytest.mark.parametrize("exhaustive", [0, None])
def test_the_exhaustive_option_scores_every_window(exhaustive):
    windows, found = evaluate(exhaustive)
    test = windows.subset(TEST)
    predictions = found.scored.predictions
    assert len(predictions) == len(test) * 2  # every window, both horizon steps
    for sid in LENGTHS:
        mine = test.origin[test.series_id == sid]
        assert sorted(set(predictions[predictions[SERIES_ID] == sid]["origin_index"])) == sorted(
            mine
        )
    assert found.origins["max_windows_per_series"] == "all"
    assert found.origins["test_windows"] == found.origins["test_windows_total"] == len(test)
    assert found.origins["how"].startswith("every window")


def test_the_router_keeps_the_fits_of_the_series_it_serves_by_them():
    windows, found = evaluate(5)
    router = found.router
    assert router.choice == {"a": "combination", "b": SEASONAL_NAIVE}
    assert set(router.fits) == {"a"}  # no fit kept for a series no fitted model serves
    for sid, n in LENGTHS.items():
        served = router.model_of(sid)
        if served in (NAIVE, SEASONAL_NAIVE, "lstm"):
            assert sid not in router.fits
            continue
        names = {ETS, THETA} if served == "combination" else {served}
        assert set(router.fits[sid]) == names
        train = int(n * 0.6)
        for fit in router.fits[sid].values():
            assert fit.start == max(0, train - fit_points(24))
            assert pd.Timestamp(fit.start_time) == START + pd.Timedelta(hours=fit.start)
    again = type(router).from_json(router.to_json())
    assert again.fits == router.fits


def test_the_report_says_which_origins_were_scored():
    _, found = evaluate(5)
    text = evaluation_markdown(
        "r1", {}, {}, 10, [24], "regression", None, None, "mase", [], None, found.origins
    )
    assert "## Origins scored" in text
    assert "10 of " in text and "`evaluate.max_windows_per_series`: 5" in text


def test_fits_made_in_worker_processes_are_the_fits_evaluate_makes_and_fill_only_the_gaps():
    """BackgroundFits (beside training) fits in another process what evaluate would fit
    itself; given to evaluate, the scores are the same; a series they lack is fit there."""
    import json
    import os

    from seriesflow.evaluation.scoring import (
        BackgroundFits,
        fit_classical_models,
        fits_from_json,
        fits_to_json,
    )

    windows = windows_of(normalized(), timesteps=3, horizon=2)
    context = scorer_for(windows, identity_scaler(windows), PipelineConfig().evaluate).context
    background = BackgroundFits(context, (ETS, THETA), n_jobs=2)
    workers = background.pids  # fit in two worker processes, not here
    assert len(workers) == 2 and os.getpid() not in workers
    fits = background.result()
    here = fit_classical_models(context, (ETS, THETA))
    assert fits_to_json(fits) == fits_to_json(here)  # parameters, forms, starts, start times
    # called at once, the shares a worker has not taken yet are fit by the caller: each
    # share by one process, and the whole the same as fit in one place
    eager = BackgroundFits(context, (ETS, THETA), n_jobs=1)
    assert eager.shares == len(context.values) and len(eager.pids) == 1
    assert fits_to_json(eager.result()) == fits_to_json(here)
    assert 1 <= eager.shares_here <= eager.shares  # the worker's interpreter is still starting
    assert not eager.pids and not eager._folder.exists()
    assert background.seconds is not None and background.seconds > 0
    assert not background.pids and not background._folder.exists()  # nothing outlives it
    # through JSON (05_model/classical_fits.json) and into evaluate: the same scores
    kept = fits_from_json(json.loads(json.dumps(fits_to_json(fits))))
    _, alone = evaluate(5)
    _, given = evaluate(5, kept)
    pd.testing.assert_frame_equal(given.scored.metrics, alone.scored.metrics)
    assert given.seconds["classical_fits"] < alone.seconds["classical_fits"]
    # a cancelled one (training failed) leaves no worker behind
    cancelled = BackgroundFits(context, (ETS, THETA))
    started = list(cancelled._workers)
    cancelled.cancel()
    assert not cancelled.pids and all(p.poll() is not None for _, p in started)
    # fits that lack a series: that series is fit in evaluate, the rest are used as given
    marked = {sid: dict(models) for sid, models in kept.items()}
    _, partial = evaluate(5, {"a": marked["a"]})
    pd.testing.assert_frame_equal(partial.scored.metrics, alone.scored.metrics)
    assert partial.router.to_json() == alone.router.to_json()
    # and given fits are used, not refit: a fit marked unfittable forecasts as its fallback
    from dataclasses import replace

    naive_a = replace(kept["a"][ETS], state=None, form="naive (no ets fit)")
    _, used = evaluate(5, {"a": {ETS: naive_a, THETA: kept["a"][THETA]}, "b": kept["b"]})
    ets = used.scored.metrics
    mine = ets[(ets["model"] == ETS) & (ets[SERIES_ID] == "a")]
    theirs = alone.scored.metrics
    before = theirs[(theirs["model"] == ETS) & (theirs[SERIES_ID] == "a")]
    naive = theirs[(theirs["model"] == NAIVE) & (theirs[SERIES_ID] == "a")]
    assert mine["mae"].to_numpy() != pytest.approx(before["mae"].to_numpy())
    assert mine["mae"].to_numpy() == pytest.approx(naive["mae"].to_numpy())


def test_chunks_of_series_score_what_one_pass_scores(tmp_path):
    """Scored a series at a time (``evaluate.chunk_windows`` below any series' windows), the
    run gets the tables, router, intervals and champion note of one pass over every window:
    the pooled rows pooled again over every chunk, the predictions written a chunk at a time
    to a file."""
    from seriesflow.evaluation.champion import Champion

    lengths = {"a": 300, "b": 260, "c": 280, "d 4": 240, "é": 320}
    parts = []
    for k, (sid, n) in enumerate(lengths.items()):
        i = np.arange(n)
        rng = np.random.default_rng(10 + k)
        value = 40 + 7 * k + (3 + k) * np.sin(2 * np.pi * i / 24) + rng.normal(0, 0.2 + k, n)
        train, val = int(n * 0.6), int(n * 0.8)
        parts.append(split_series(sid, value, train, val, START))
    windows = windows_of(pd.concat(parts, ignore_index=True), timesteps=3, horizon=2)
    scaler = identity_scaler(windows)
    spec = ModelSpec("regression", 3, [VALUE], 2)
    champion = Champion("3", "r", last_value_model(), scaler.to_json(), {}, spec.to_json())

    lines: list[str] = []

    def run(chunk_windows: int, path=None):
        config = PipelineConfig.model_validate(
            {
                "evaluate": {
                    "max_windows_per_series": 50,  # some series have fewer: unequal weights
                    "baselines": [ETS, THETA],
                    "backtest_folds": 3,
                    "chunk_windows": chunk_windows,
                },
                "forecast": {"steps": 4, "levels": [80, 99]},
            }
        )
        scorer = scorer_for(windows, scaler, config.evaluate, classical=(ETS, THETA))
        return evaluate_regression(
            last_value_model(),
            spec,
            scaler,
            windows,
            config,
            scorer,
            (ETS, THETA),
            champion,
            predictions_path=path,
            progress=lines.append,
        )

    one = run(10_000)
    path = tmp_path / "predictions.parquet"
    chunked = run(1, path)  # every series a chunk of its own
    assert one.origins["chunks"] == 1 and chunked.origins["chunks"] == len(lengths)
    assert len(lines) == len(lengths)  # a progress line per chunk (none for one chunk)
    assert lines[-1].startswith(f"Evaluated chunk {len(lengths)}/{len(lengths)}: 1 series, ")
    assert chunked.scored.predictions is None
    written = pd.read_parquet(path)
    pd.testing.assert_frame_equal(written, one.scored.predictions, check_dtype=False)

    def same_table(mine: pd.DataFrame, theirs: pd.DataFrame) -> None:
        assert list(mine.columns) == list(theirs.columns)
        numeric = [c for c in theirs.columns if pd.api.types.is_float_dtype(theirs[c])]
        assert len(numeric) >= 5
        other = [c for c in theirs.columns if c not in numeric]
        pd.testing.assert_frame_equal(mine[other], theirs[other])
        np.testing.assert_allclose(mine[numeric], theirs[numeric], rtol=1e-9, atol=1e-12)

    same_table(chunked.scored.metrics, one.scored.metrics)
    pooled = one.scored.metrics[one.scored.metrics[SERIES_ID] == "__all__"]
    assert set(pooled["scope"]) == {"all", "champion_windows"}  # both scopes pooled again
    assert pooled["coverage_80"].notna().sum() == 1 and pooled["msis_99"].notna().sum() == 1
    same_table(chunked.scored.backtest, one.scored.backtest)
    assert sorted(set(one.scored.backtest["fold"])) == [1, 2, 3]
    assert chunked.router.to_json() == one.router.to_json()
    mine, theirs = chunked.intervals.to_json(), one.intervals.to_json()
    assert mine.pop("coverage") == pytest.approx(theirs.pop("coverage"), rel=1e-12)
    assert mine == theirs  # every series' widths and the pooled ones, to the bit
    assert chunked.champion_note == one.champion_note
    tested = sum(min(50, len(t)) for _, t in windows.subset(TEST).by_series())
    assert len({min(50, len(t)) for _, t in windows.subset(TEST).by_series()}) > 1
    assert one.champion_note.startswith(f"champion v3 re-scored on {tested} test windows")
    assert chunked.test_windows == one.test_windows == tested

    # the intervals are those of intervals_from_paths on every window's routed paths at once
    from seriesflow.evaluation.router import route_run
    from seriesflow.evaluation.scoring import spread_windows
    from seriesflow.model.forecasting import forecast_paths, intervals_from_paths

    config = PipelineConfig()
    scorer = scorer_for(windows, scaler, config.evaluate, classical=(ETS, THETA))
    val = spread_windows(windows.subset("val"), 50)
    test = spread_windows(windows.subset(TEST), 50)
    model = last_value_model()
    routed = route_run(
        val,
        test,
        forecast_paths(model, spec, scaler, val, 4),
        forecast_paths(model, spec, scaler, test, 4),
        scorer.context,
        tuple(dict.fromkeys((config.register.default_model, *config.register.candidates))),
        default=config.register.default_model,
        switch_below=config.register.switch_below,
    )
    assert routed.router.choice == one.router.choice
    shipped, coverage, on_val = intervals_from_paths(
        val, routed.val[ROUTED], test, routed.test[ROUTED], [80, 99], scorer.context.scale
    )
    # on validation alone no series has enough residuals of its own for 99%: the pooled
    # widths serve them all when coverage is measured on test
    assert not any(np.isfinite(w["99"]).any() for w in on_val.half_width.values())
    assert np.isfinite(on_val.pooled["99"]).all()
    expected = shipped.to_json()
    assert one.intervals.to_json() == expected
    mine = one.scored.metrics
    mine = mine[(mine["model"] == ROUTED) & (mine["scope"] == "all")].set_index(SERIES_ID)
    for level in (80, 99):
        column = f"coverage_{level}"
        np.testing.assert_allclose(mine.loc[coverage.index, column], coverage[column], rtol=1e-12)


def test_a_fallback_that_pools_over_chunks_routes_every_chunk_again():
    """A series without validation windows gets the router's fallback, which looks at every
    series: the default model if it scored anywhere. In a chunk whose only scored series has
    no finite LSTM score, the chunk alone would fall back to a classical model; the run's
    router (on every chunk's errors) serves it the LSTM, and the chunks are scored again by
    it, so the result is the one pass's."""
    import keras

    def series(sid: str, n: int, level: float, splits: tuple[int, int]) -> pd.DataFrame:
        i = np.arange(n)
        value = level + 5 * np.sin(2 * np.pi * i / 24) + np.random.default_rng(n).normal(0, 1, n)
        return split_series(sid, value, *splits, START)

    frame = pd.concat(
        [
            series("a", 300, 50, (180, 240)),
            series("b", 300, 60, (180, 240)),
            series("p", 240, -50, (150, 200)),  # negative: the log model's LSTM is NaN
            series("q", 230, 40, (200, 200)),  # no validation part: test windows only
        ],
        ignore_index=True,
    )
    windows = windows_of(frame, timesteps=3, horizon=2)
    scaler = identity_scaler(windows)
    spec = ModelSpec("regression", 3, [VALUE], 2)
    count = {sid: 0 for sid in "abpq"}
    for split in ("val", TEST):
        for sid, rows in windows.subset(split).by_series():
            count[sid] += len(rows)
    assert "q" not in {sid for sid, _ in windows.subset("val").by_series()}
    limit = count["p"] + count["q"]  # chunks: {a}, {b}, {p, q}
    assert count["a"] + count["b"] > limit and count["b"] + count["p"] > limit

    def log_model():
        model = keras.Sequential(
            [
                keras.Input((3, 1)),
                keras.layers.Flatten(),
                keras.layers.Lambda(lambda x: keras.ops.exp(keras.ops.log(x))),
                keras.layers.Dense(2),
            ]
        )
        model.set_weights([np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]), np.zeros(2)])
        return model

    def run(chunk_windows: int):
        config = PipelineConfig.model_validate(
            {
                "evaluate": {"max_windows_per_series": None, "chunk_windows": chunk_windows},
                "forecast": {"steps": 4},
            }
        )
        scorer = scorer_for(windows, scaler, config.evaluate, classical=(ETS, THETA))
        return evaluate_regression(log_model(), spec, scaler, windows, config, scorer, ())

    one, chunked = run(10_000), run(limit)
    assert one.origins["chunks"] == 1 and chunked.origins["chunks"] == 3
    assert not np.isfinite(one.router.val_mase["p"]["lstm"])  # p's LSTM scores nothing
    default = PipelineConfig().register.default_model  # the LSTM, or its combination
    assert one.router.model_of("q") == default  # the default: it scored elsewhere
    assert chunked.router.to_json() == one.router.to_json()
    pd.testing.assert_frame_equal(chunked.scored.predictions, one.scored.predictions)
    pd.testing.assert_frame_equal(
        chunked.scored.metrics.drop(columns=["mse", "mae", "rmse", "mape", "mase"]),
        one.scored.metrics.drop(columns=["mse", "mae", "rmse", "mape", "mase"]),
    )


def test_no_validation_or_test_window_scores_nothing_without_failing():
    frame = normalized()
    frame["split"] = "train"
    windows = windows_of(frame, timesteps=3, horizon=2)
    scaler = identity_scaler(windows)
    config = PipelineConfig.model_validate({"forecast": {"steps": 4}})
    scorer = scorer_for(windows, scaler, config.evaluate, classical=(ETS, THETA))
    spec = ModelSpec("regression", 3, [VALUE], 2)
    found = evaluate_regression(
        last_value_model(), spec, scaler, windows, config, scorer, (ETS, THETA)
    )
    assert found.test_windows == 0 and found.origins["chunks"] == 1
    pooled = found.scored.metrics
    assert set(pooled[SERIES_ID]) == {"__all__"} and pooled["mase"].isna().all()
    assert found.scored.predictions.empty
