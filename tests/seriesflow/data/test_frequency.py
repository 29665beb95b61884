"""Sampling steps and season lengths."""

from __future__ import annotations

import pytest

from seriesflow.data.frequency import infer_season_length


@pytest.mark.parametrize(
    ("seconds", "season"),
    [(3600, 24), (900, 96), (86_400, 7), (7 * 86_400, 52), (30 * 86_400, 12), (7000, 1), (0, 1)],
)
def test_infer_season_length(seconds, season):
    assert infer_season_length(seconds) == season
