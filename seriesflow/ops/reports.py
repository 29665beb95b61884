"""Serve the run folders' reports over http, so links in the Prefect UI open.

A browser opens nothing from ``file://`` when the page came over http, so the Data
Docs link on a validate task's artifacts points at this server instead:
``<SERIESFLOW_REPORTS_URL>/<run-id>/02_validation/data_docs/index.html``.
``make serve`` (``scripts/serve.sh``) starts it beside the Prefect server on
``SERIESFLOW_REPORTS_PORT`` (default 4201) and exports ``SERIESFLOW_REPORTS_URL`` to
the worker, whose runs write the links.

A run folder also holds every accepted row (``02_validated.parquet``), the model, the
config and the manifest, so this serves an allow-list, not a folder (``is_report``): the
Data Docs site and the plots of each run (``RunDir.data_docs``, ``RunDir.plots``), by
suffix (pages, styles, scripts, images, fonts). Everything else answers 404: folders
(no listing), other files, hidden and temporary names, ``..``, and links -- every
component is opened with ``O_NOFOLLOW`` under the runs folder's own descriptor, so a
link anywhere on the way (to a file outside, or to the model under a ``.png`` name) is
never followed. It has no authentication: it binds to 127.0.0.1 unless told otherwise
(``--host``); docs/operations.md shows an authenticating proxy for a team.

    python -m seriesflow.ops.reports --directory data/work/runs [--host 127.0.0.1] [--port 4201]
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import shutil
import stat
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from seriesflow.workspace.files import RunDir

DEFAULT_PORT = 4201
HEALTH = "/health"  # what make serve waits for: 200 without touching the runs folder
_RUN = RunDir(Path("RUN"))
# Report folder (inside a run folder) -> the suffixes served from it (and its subfolders).
# Data Docs: GX's pages and static/ (styles, scripts, images, fonts) and the vendored
# CSS/JS (seriesflow/data/datadocs.py); plots: what seriesflow/evaluation/plots.py writes.
_WEB = {".html", ".css", ".js", ".png", ".svg", ".gif", ".ico", ".jpg"}
_FONTS = {".otf", ".ttf", ".woff", ".woff2", ".eot"}
REPORTS: dict[tuple[str, ...], frozenset[str]] = {
    _RUN.data_docs.relative_to(_RUN.root).parts: frozenset(_WEB | _FONTS),
    _RUN.plots.relative_to(_RUN.root).parts: frozenset({".png", ".svg"}),
}


def is_report(relative: PurePosixPath | Path) -> bool:
    """True for ``<run-id>/<report folder>/.../<name><allowed suffix>``, by name alone."""
    parts = PurePosixPath(relative).parts
    if len(parts) < 3 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return False  # hidden names: .tmp-* writes in progress, dot-files
    if any("/" in p or "\\" in p or "\x00" in p for p in parts):
        return False
    inner = parts[1:-1]
    suffix = PurePosixPath(parts[-1]).suffix.lower()
    return any(
        inner[: len(folder)] == folder and suffix in suffixes
        for folder, suffixes in REPORTS.items()
    )


def open_report(root_fd: int, relative: PurePosixPath) -> int | None:
    """A descriptor of the regular file ``relative`` under ``root_fd``; None for anything else.

    Each component is opened relative to its parent's descriptor with ``O_NOFOLLOW``: a
    symlink at any level fails the open (ELOOP/ENOTDIR) instead of leading elsewhere, and
    nothing renamed in between can swap a link in after a check.
    """
    parts = relative.parts
    fd = os.dup(root_fd)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | (0 if last else os.O_DIRECTORY)
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd
    except OSError:
        os.close(fd)
        return None


class ReportsHandler(BaseHTTPRequestHandler):
    """GET/HEAD of allowed report files; 404 for everything else; logs only failures."""

    server: ReportsServer
    server_version = "seriesflow-reports"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == HEALTH:
            self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8", body)
            return
        relative = PurePosixPath(path.lstrip("/"))
        fd = open_report(self.server.root_fd, relative) if is_report(relative) else None
        if fd is None:
            # one answer for "not there", "not a report", "a link", "a folder": it tells a
            # prober nothing about what the run folder holds
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", body)
            return
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            kind = mimetypes.guess_type(relative.name)[0] or "application/octet-stream"
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if body:
                try:
                    shutil.copyfileobj(handle, self.wfile)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the browser left mid-file (a new page)

    def _send(self, status: HTTPStatus, data: bytes, kind: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def end_headers(self) -> None:
        # Every run folder is new, but the same page can be rebuilt: never serve a stale one.
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # a Data Docs page loads ~15 files: log only failures
        if isinstance(code, HTTPStatus):
            code = code.value
        if str(code).startswith(("4", "5")):
            super().log_request(code, size)


class ReportsServer(ThreadingHTTPServer):
    """The server, holding the runs folder open (a descriptor: the root of every lookup)."""

    daemon_threads = True

    def __init__(self, directory: Path, host: str, port: int) -> None:
        self.root_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            super().__init__((host, port), ReportsHandler)
        except OSError:
            os.close(self.root_fd)
            raise

    def server_close(self) -> None:
        super().server_close()
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1


def make_server(directory: Path, host: str = "127.0.0.1", port: int = 0) -> ReportsServer:
    """A reports server for the runs folder ``directory`` (port 0: any free port;
    ``server_address`` says)."""
    return ReportsServer(Path(directory), host, port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seriesflow.ops.reports",
        description="Serve the run folders' reports (Data Docs, plots) over http for the "
        "Prefect UI's links; nothing else in them.",
    )
    parser.add_argument("--directory", type=Path, default=Path("data/work/runs"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    args.directory.mkdir(parents=True, exist_ok=True)
    try:
        server = make_server(args.directory.resolve(), args.host, args.port)
    except OSError as exc:
        print(f"cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    print(f"serving the reports in {args.directory.resolve()} at http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
