"""Small Prefect helpers shared by the task wrappers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prefect import get_run_logger
from prefect.concurrency.sync import concurrency
from prefect.exceptions import MissingContextError


def stage_logger() -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a flow/task run (shown in the UI), a plain logger outside."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("seriesflow")


@contextlib.contextmanager
def registry_lock(name: str | None) -> Iterator[None]:
    """Hold a Prefect global concurrency slot (strict: a missing limit is an error)."""
    if not name:
        yield
        return
    with concurrency(name, occupy=1, strict=True, timeout_seconds=1800):
        yield
