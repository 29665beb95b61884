"""The champion's statsforecast fits kept for the next run: only where they still hold."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import ETS, THETA
from seriesflow.evaluation.scoring import (
    BackgroundFits,
    fit_classical_models,
    fits_from_json,
    fits_to_json,
    reusable_fits,
    scorer_for,
)
from seriesflow.model.classical import fit_points, paths_of
from tests.factories import identity_scaler, split_series, windows_of

START = pd.Timestamp("2024-01-01T00:00Z")
NAMES = (ETS, THETA)


def series_values(k: int, n: int) -> np.ndarray:
    i = np.arange(n)
    noise = np.random.default_rng(k).normal(0, 0.4, n)
    return 50 + 10 * k + 6 * np.sin(2 * np.pi * i / 24) + 0.01 * i + noise


def context_of(lengths: dict[str, int], before: int = 0, change: tuple[str, int] | None = None):
    """Each series' first ``n`` points (the same values whatever ``n``), 60/20/20 split;
    ``before`` points more in front of each; ``change``: one value of a series altered."""
    parts = []
    for k, (sid, n) in enumerate(lengths.items()):
        earlier = 40 + np.arange(before) * 0.1  # points before the first run's first
        value = np.concatenate([earlier, series_values(k, 2000)[:n]])
        if change and change[0] == sid:
            value[before + change[1]] += 3.0
        total = before + n
        train, val = int(total * 0.6), int(total * 0.8)
        parts.append(split_series(sid, value, train, val, START, first=-before))
    windows = windows_of(pd.concat(parts, ignore_index=True), timesteps=3, horizon=2)
    return scorer_for(windows, identity_scaler(windows), PipelineConfig().evaluate).context


FIRST = {"a": 600, "b": 500}


@pytest.fixture(scope="module")
def champion_fits():
    """The champion's fits, through the JSON they are kept in (05_model/classical_fits.json)."""
    fits = fit_classical_models(context_of(FIRST), NAMES)
    for models in fits.values():
        for fit in models.values():
            assert fit.points == 240 and fit.digest and fit.end_time  # 10 seasons of 24
    return fits_from_json(json.loads(json.dumps(fits_to_json(fits))))


def test_fits_of_points_unchanged_are_kept_when_the_series_grew_a_little(champion_fits):
    grown = context_of({"a": 630, "b": 525})  # 5% more points: the training part grew 5%
    kept = reusable_fits(champion_fits, grown, NAMES, growth=0.1)
    assert set(kept) == {"a", "b"}
    for sid, models in kept.items():
        for name, fit in models.items():
            assert fit == champion_fits[sid][name]  # the same points: the same start
            # run forward over the new points: forecasts from this run's validation origins
            origins = np.arange(grown.train_length[sid], len(grown.values[sid]) - 4)
            paths = paths_of(fit, grown.values[sid], origins, 4)
            assert paths.shape == (len(origins), 4) and np.isfinite(paths).all()
    # more growth than allowed, or reuse off: fit again
    assert reusable_fits(champion_fits, grown, NAMES, growth=0.01) == {}
    assert reusable_fits(champion_fits, grown, NAMES, growth=0) == {}


def test_a_changed_value_another_fit_rule_or_a_missing_model_means_a_new_fit(champion_fits):
    start = champion_fits["b"][ETS].start
    changed = context_of({"a": 630, "b": 525}, change=("b", start + 100))
    assert set(reusable_fits(champion_fits, changed, NAMES, growth=0.1)) == {"a"}
    # a value outside the points fit (before them) does not matter
    early = context_of({"a": 630, "b": 525}, change=("b", start - 5))
    assert set(reusable_fits(champion_fits, early, NAMES, growth=0.1)) == {"a", "b"}
    grown = context_of({"a": 630, "b": 525})
    assert fit_points(24, 20) != 240
    assert reusable_fits(champion_fits, grown, NAMES, growth=0.1, seasons=20) == {}
    only_ets = {sid: {ETS: models[ETS]} for sid, models in champion_fits.items()}
    assert reusable_fits(only_ets, grown, NAMES, growth=0.1) == {}
    assert set(reusable_fits(only_ets, grown, (ETS,), growth=0.1)) == {"a", "b"}
    # fits from before they recorded their points are never kept
    old = {
        sid: {
            n: f.__class__(f.name, f.form, f.season, f.start, f.state, f.start_time)
            for n, f in models.items()
        }
        for sid, models in champion_fits.items()
    }
    assert reusable_fits(old, grown, NAMES, growth=0.1) == {}


def test_a_series_extended_backwards_keeps_its_fit_at_the_times_it_was_fit(champion_fits):
    both = context_of({"a": 660, "b": 550}, before=24)  # a day earlier, 10% later
    kept = reusable_fits(champion_fits, both, NAMES, growth=0.1)
    assert set(kept) == {"a", "b"}
    for sid, models in kept.items():
        for name, fit in models.items():
            assert fit.start == champion_fits[sid][name].start + 24
            assert fit.start_time == champion_fits[sid][name].start_time
    # extended backwards only: the points fit are now past the training part (validation)
    back = context_of(FIRST, before=24)
    assert reusable_fits(champion_fits, back, NAMES, growth=0.1) == {}


def test_background_fits_fit_only_the_series_not_kept(champion_fits):
    grown = context_of({"a": 630, "b": 525, "c": 520})
    kept = reusable_fits(champion_fits, grown, NAMES, growth=0.1)
    background = BackgroundFits(grown, NAMES, n_jobs=1, reused=kept, reused_from="v1")
    assert background.series == ["c"] and background.shares == 1
    found = background.result()
    assert set(found) == {"a", "b", "c"}
    assert found["a"] == champion_fits["a"] and found["b"] == champion_fits["b"]
    fresh = fit_classical_models(grown, NAMES, ["c"])
    assert fits_to_json({"c": found["c"]}) == fits_to_json(fresh)
    nothing = BackgroundFits(grown, NAMES, reused=fit_classical_models(grown, NAMES))
    assert nothing.series == [] and not nothing.pids
    assert set(nothing.result()) == {"a", "b", "c"}
