"""Fixtures shared by the flow tests: a landing folder with one base file of tiny series."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import series_frame, write_csv

PERIOD = 10  # does not divide the inferred season (24 h): seasonal naive is a fair rival


@pytest.fixture
def landing_rows() -> int:
    """Rows per series in ``landing``'s base file (a module overrides this fixture)."""
    return 240


@pytest.fixture
def landing(tmp_path: Path, landing_rows: int) -> Path:
    """``tmp_path/landing`` holding ``base.csv``: series a and b, ``landing_rows`` hours each."""
    path = tmp_path / "landing"
    write_csv(series_frame(n=landing_rows, period=PERIOD), path / "base.csv")
    return path
