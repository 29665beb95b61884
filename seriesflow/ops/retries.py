"""Which failures are worth another try: the retry condition of the I/O tasks (tasks/stage.py).

A retry helps when the cause is outside the data and passes: a dropped connection, a
timeout, a busy or restarting server (the landing area on an object store, MLflow, the
Prefect API). It never helps when the data is the cause: a rejected file (``DataRejected``),
a failed check or a bad setting (``ValueError``, pydantic's ``ValidationError``) fail the
same way every time, so they are never retried; neither is a missing file, a permission,
a full disk or an exception of the pipeline's own.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator

from seriesflow.data.errors import DataRejected

# OSErrors that say "try again": the network, a busy resource, an interrupted call.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.ECONNABORTED,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.ENETUNREACH,
        errno.EPIPE,
        errno.ETIMEDOUT,
    }
)
# OSErrors that the same call would raise again: the file, its permissions, the disk.
PERMANENT_OSERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
PERMANENT_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG})
# MLflow error codes of a server that is busy or briefly away (its client already retried
# the HTTP call itself; this is one more round, after a longer wait).
TRANSIENT_MLFLOW_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED", "ABORTED"}
)
# Connection errors of the HTTP clients (httpx: the Prefect API; its errors are not OSErrors).
TRANSIENT_NAMES = frozenset(
    {
        "TransportError",
        "ConnectError",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ConnectTimeout",
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
    }
)


class NotRetried(Exception):
    """Raised where another try would do harm (a write that stopped part way): never
    retried, whatever caused it."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (``raise ... from``, or raised while handling)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _mlflow_transient(exc: BaseException) -> bool | None:
    """True/False for an MLflow exception, None for anything else (MLflow not imported:
    none of its exceptions can exist)."""
    module = sys.modules.get("mlflow.exceptions")
    if module is None or not isinstance(exc, module.MlflowException):
        return None
    if exc.error_code in TRANSIENT_MLFLOW_CODES:
        return True
    # a REST answer from the server: 5xx is the server's trouble, 4xx the request's
    if isinstance(exc, module.RestException):
        return exc.get_http_status_code() >= 500
    return None  # a client-side MlflowException: decided by its cause (a connection error?)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a passing I/O failure worth another try."""
    for item in _chain(exc):
        if isinstance(item, NotRetried):
            return False
        if isinstance(item, DataRejected | ValueError):
            return False  # the data or a setting: the same again every time
        verdict = _mlflow_transient(item)
        if verdict is not None:
            return verdict
        if isinstance(item, ConnectionError | TimeoutError):
            return True
        if isinstance(item, OSError):
            if isinstance(item, PERMANENT_OSERRORS) or item.errno in PERMANENT_ERRNOS:
                return False
            if item.errno in TRANSIENT_ERRNOS:
                return True
            # no errno: a client library's connection error (requests' ConnectionError and
            # Timeout, s3fs/aiohttp errors are OSErrors without one)
            if item.errno is None:
                return True
        if any(cls.__name__ in TRANSIENT_NAMES for cls in type(item).__mro__):
            return True
    return False
