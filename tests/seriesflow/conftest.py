"""Library test fixtures shared by modules: a small model trained once per session."""

from __future__ import annotations

import pytest

from tests.factories import fit_promo


@pytest.fixture(scope="session")
def promo_model():
    """(fitted, scaler, test RMSE) of a model with a future covariate of known effect."""
    return fit_promo(future=True)
