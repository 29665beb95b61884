"""Evaluate: which classical baselines a run fits (a statsmodels fit per series each)."""

from __future__ import annotations

from seriesflow.config.pipeline import PipelineConfig
from seriesflow.data.schema import ETS
from tasks.evaluate import classical_baselines


def config(**sections) -> PipelineConfig:
    return PipelineConfig.model_validate(sections)


def test_reported_baselines_stop_at_the_series_limit():
    cfg = config(evaluate={"baselines": ["ets"], "baseline_max_series": 3})
    assert classical_baselines(cfg, 3) == (ETS,)
    assert classical_baselines(cfg, 4) == ()


def test_a_gated_baseline_is_fit_whatever_the_series_count():
    cfg = config(
        evaluate={"baselines": [], "baseline_max_series": 0},
        register={"baselines": ["naive", "ets"]},
    )
    assert classical_baselines(cfg, 1000) == (ETS,)


def test_no_classical_baseline_unless_asked():
    assert classical_baselines(config(evaluate={"baselines": []}), 1) == ()
    assert classical_baselines(PipelineConfig(), 200) == (ETS,)  # the default reports ETS
    assert classical_baselines(PipelineConfig(), 201) == ()
