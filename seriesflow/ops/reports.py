"""Serve the workspace's run folders over http, so links in the Prefect UI open.

A browser opens nothing from ``file://`` when the page came over http, so the Data
Docs link on a validate task's artifacts points at this server instead:
``<SERIESFLOW_REPORTS_URL>/<run-id>/02_validation/data_docs/index.html``.
``make serve`` (``scripts/serve.sh``) starts it beside the Prefect server on
``SERIESFLOW_REPORTS_PORT`` (default 4201) and exports ``SERIESFLOW_REPORTS_URL`` to
the worker, whose runs write the links. Read-only, static files, no listing of
anything above the served folder; it binds to 127.0.0.1 unless told otherwise
(``--host``), since the folder holds the team's data and models.

    python -m seriesflow.ops.reports --directory data/work/runs [--host 127.0.0.1] [--port 4201]
"""

from __future__ import annotations

import argparse
import functools
import sys
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEFAULT_PORT = 4201


class QuietHandler(SimpleHTTPRequestHandler):
    """Static files; logs only failures (a Data Docs page loads ~15 files)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if isinstance(code, HTTPStatus):
            code = code.value
        if str(code).startswith(("4", "5")):
            super().log_request(code, size)

    def end_headers(self) -> None:
        # Every run folder is new, but the same page can be rebuilt: never serve a stale one.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


def make_server(directory: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An http server for ``directory`` (port 0: any free port; ``server_address`` says)."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    return ThreadingHTTPServer((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seriesflow.ops.reports",
        description="Serve run folders (Data Docs, plots) over http for the Prefect UI's links.",
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
    print(f"serving {args.directory.resolve()} at http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
