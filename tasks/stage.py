"""Small Prefect helpers shared by the task wrappers and the flows: the stage logger, the
registry lock, and the limits of a task or flow from the config (``limits``: time limits for
all, retries with backoff for the I/O tasks)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, TypeVar

from prefect import Task, get_run_logger
from prefect.client.schemas.objects import TaskRun
from prefect.concurrency.sync import concurrency
from prefect.exceptions import MissingContextError
from prefect.flow_engine import FlowRunTimeoutError
from prefect.states import State
from prefect.task_engine import TaskRunTimeoutError
from prefect.utilities.timeout import timeout

from seriesflow.config.pipeline import LimitsConfig
from seriesflow.ops.retries import is_transient

T = TypeVar("T", bound=Task)


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


def transient_only(task: Task, task_run: TaskRun, state: State) -> bool:
    """The I/O tasks' ``retry_condition_fn``: retry a passing I/O failure (a dropped
    connection, a busy server: ``seriesflow/ops/retries.py``), never a data rejection, a
    failed check, a bug, nor the task's own time limit."""
    exc = state.result(raise_on_failure=False)
    if not isinstance(exc, BaseException) or isinstance(exc, TaskRunTimeoutError):
        return False
    return is_transient(exc)


def limited(task: T, limits: LimitsConfig, stage: str) -> T:
    """``task`` with the time limit of ``stage`` from the config; an I/O task (one declared
    with ``retry_condition_fn=transient_only``) also gets the config's retries, with
    exponential backoff. Compute tasks never retry: the same input fails the same way."""
    options: dict[str, Any] = {"timeout_seconds": limits.timeouts.of(stage)}
    if task.retry_condition_fn is transient_only:
        options.update(
            retries=limits.retries,
            retry_delay_seconds=limits.retry_delays() or 0,
            retry_jitter_factor=limits.retry_jitter_factor or None,
        )
    return task.with_options(**options)


@contextlib.contextmanager
def flow_limit(limits: LimitsConfig, flow: str) -> Iterator[None]:
    """The time limit of ``flow`` from the config, around a flow's body: the limit of a
    deployed run is then its ``cfg``'s, not a number fixed in the decorator. Past it the body
    gets ``FlowRunTimeoutError`` (Prefect's own flow timeout, by the same mechanism)."""
    with timeout(seconds=limits.timeouts.of(flow), timeout_exc_type=FlowRunTimeoutError):
        yield
