"""Shared fixtures. One Prefect test server for the whole session (it takes ~12 s to start)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
import tasks  # noqa: E402,F401  (quiet, offline defaults before Prefect is imported)


@pytest.fixture(scope="session")
def prefect_server():
    """A real (temporary) Prefect API for flow tests; unit tests don't need it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_api_url(prefect_server) -> str:
    """The test server's API URL, for flow runs started as separate processes."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()
