"""Limits from the config on real Prefect tasks (tasks/stage.py): time limits for every task,
retries with backoff for the I/O ones, and only for failures that pass."""

from __future__ import annotations

import errno
import time

import pytest
from prefect import flow, task

from seriesflow.config.pipeline import LimitsConfig, PipelineConfig
from seriesflow.data.errors import CheckFailure, DataRejected
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.normalize import normalize
from tasks.register import register
from tasks.stage import limited, transient_only
from tasks.train import train
from tasks.validate import validate
from tasks.window import window

NO_WAIT = LimitsConfig(retries=3, retry_delay_seconds=0, retry_jitter_factor=0)


def flaky(failures: list[BaseException], calls: list[int], io: bool = True):
    """A task that raises ``failures`` one per call, then returns the number of calls."""

    def body() -> int:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return len(calls)

    if io:
        return task(body, name="flaky-io", retry_condition_fn=transient_only)
    return task(body, name="flaky-compute")


def run_in_flow(some_task):
    @flow
    def wrapper():
        return some_task()

    return wrapper()


def test_an_io_task_retries_a_dropped_connection_until_it_works(prefect_api_url):
    calls: list[int] = []
    drops = [ConnectionResetError(errno.ECONNRESET, "reset"), TimeoutError("read timed out")]
    assert run_in_flow(limited(flaky(drops, calls), NO_WAIT, "ingest")) == 3
    assert len(calls) == 3


def test_an_io_task_never_retries_a_rejection(prefect_api_url):
    calls: list[int] = []
    bad = DataRejected([CheckFailure("a.csv", "value_is_number", "value", "not a number")])
    with pytest.raises(DataRejected):
        run_in_flow(limited(flaky([bad], calls), NO_WAIT, "ingest"))
    assert len(calls) == 1


def test_a_compute_task_never_retries(prefect_api_url):
    calls: list[int] = []
    with pytest.raises(ConnectionResetError):
        run_in_flow(limited(flaky([ConnectionResetError()], calls, io=False), NO_WAIT, "normalize"))
    assert len(calls) == 1


def test_past_its_time_limit_a_task_times_out_and_is_not_retried(prefect_api_url):
    calls: list[int] = []

    @task(name="slow-io", retry_condition_fn=transient_only)
    def slow() -> None:
        calls.append(1)
        for _ in range(100):  # 5 s in Python steps: the limit interrupts between them
            time.sleep(0.05)

    limits = LimitsConfig.model_validate({"retries": 3, "timeouts": {"ingest": 0.5}})
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        run_in_flow(limited(slow, limits, "ingest"))
    assert len(calls) == 1 and time.monotonic() - started < 5


STAGES = {
    "ingest": ingest,
    "validate": validate,
    "normalize": normalize,
    "window": window,
    "train": train,
    "evaluate": evaluate,
    "register": register,
}
IO_STAGES = {"ingest", "register"}  # the landing area; the registry and its lock


def test_every_stage_gets_its_time_limit_and_only_io_stages_retry():
    cfg = PipelineConfig.model_validate(
        {
            "limits": {
                "retries": 2,
                "retry_delay_seconds": 3,
                "timeouts": {name: 100 + k for k, name in enumerate(STAGES)},
            }
        }
    )
    for k, (name, stage_task) in enumerate(STAGES.items()):
        applied = limited(stage_task, cfg.limits, name)
        assert applied.timeout_seconds == 100 + k, name
        if name in IO_STAGES:
            assert applied.retries == 2, name
            assert applied.retry_delay_seconds == [3.0, 6.0], name  # exponential backoff
            assert applied.retry_condition_fn is transient_only
        else:
            assert applied.retries == 0, name
        assert stage_task.timeout_seconds is None  # the module's task itself is unchanged
