"""Which failures the I/O tasks try again (seriesflow/ops/retries.py)."""

from __future__ import annotations

import errno

import httpx
import pytest
import requests
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos import databricks_pb2

from seriesflow.data.errors import CheckFailure, DataRejected
from seriesflow.ops.retries import NotRetried, is_transient


def rejected() -> DataRejected:
    return DataRejected([CheckFailure("a.csv", "value_is_number", "value", "not a number")])


def caused(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except BaseException as exc:  # noqa: BLE001 - the chained exception is the value
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        OSError(errno.ETIMEDOUT, "timed out"),
        OSError(errno.EAGAIN, "try again"),
        TimeoutError("read timed out"),
        OSError("s3fs: server disconnected"),  # a client library's, no errno
        requests.exceptions.ConnectionError("Max retries exceeded"),
        httpx.ConnectError("connection refused"),
        MlflowException("busy", error_code=databricks_pb2.TEMPORARILY_UNAVAILABLE),
        RestException({"error_code": "INTERNAL_ERROR", "message": "database is locked"}),
        caused(RuntimeError("listing failed"), ConnectionResetError(errno.ECONNRESET, "reset")),
        caused(
            MlflowException("API request to /api/2.0/mlflow/runs/get failed"),
            requests.exceptions.ConnectionError("refused"),
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_passing_io_failures_are_retried(exc):
    assert is_transient(exc) is True


@pytest.mark.parametrize(
    "exc",
    [
        rejected(),
        ValueError("train.epochs must be at least 1"),
        FileNotFoundError(errno.ENOENT, "no such file", "landing/a.csv"),
        PermissionError(errno.EACCES, "permission denied"),
        OSError(errno.ENOSPC, "No space left on device"),
        RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such model"}),
        MlflowException("Run 'abc' not found"),  # a client-side error, no connection behind it
        KeyError("series_id"),
        RuntimeError("a bug"),
        # a rejection raised while a connection error was being handled is still a rejection
        caused(rejected(), ConnectionResetError(errno.ECONNRESET, "reset")),
        # a write that stopped part way: never again, whatever caused it
        caused(NotRetried("register failed part way"), ConnectionResetError(errno.ECONNRESET, "")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_data_errors_bugs_and_half_done_writes_are_not_retried(exc):
    assert is_transient(exc) is False
