"""A tracking server that is up but whose registry answers 503 (a real HTTP server on a
loopback port, not a stand-in for MLflow's client): experiments resolve, so a run sets up
its tracking as usual, and every other call fails as an overloaded server's would."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXPERIMENT = {
    "experiment_id": "1",
    "name": "seriesflow",
    "artifact_location": "mlflow-artifacts:/1",
    "lifecycle_stage": "active",
    "tags": [],
}


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        if "/experiments/get" in self.path:
            body, code = json.dumps({"experiment": EXPERIMENT}).encode(), 200
        else:
            body, code = b"Service Unavailable", 503
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:  # quiet
        pass


@contextmanager
def registry_503(monkeypatch) -> Iterator[str]:
    """The stub's URI; MLflow's client is told not to retry (it backs off for minutes)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
