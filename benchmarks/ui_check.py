"""What an operator sees in a browser, checked end to end and photographed.

    .venv/bin/python benchmarks/ui_check.py [--epochs 10] [--out ui-check/]

Starts the real stack (``scripts/serve.sh``: Prefect server, reports server, worker) on
free ports with a temporary workspace, retrains once on the shipped sample data against
it, then reads the run's artifacts through the Prefect API and fails if any points at
``file://``, if a plot is not an inline PNG, if an artifact is over 1 MB, or if the Data
Docs link or anything its page loads does not answer over http. With Chromium on the
PATH (``chromium`` or ``chromium-browser``) it also saves screenshots: the evaluation
report with its plots in the Prefect UI, the run's outcome, and the Data Docs page at the
address the UI's link holds (read from the rendered page). Prints one JSON line last.

Not part of ``make test`` (Chromium is optional; the same checks without a browser run in
``tests/integration/test_operator_view.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seriesflow.data.datadocs import LOADS  # noqa: E402
from seriesflow.ops.serve_env import serve_env  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def wait(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(browser: str, url: str, path: Path, height: int = 1800) -> None:
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--window-size=1300,{height}"]
        + ["--virtual-time-budget=20000", f"--screenshot={path}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )


def dom(browser: str, url: str) -> str:
    return subprocess.run(
        [browser, *CHROMIUM_FLAGS, "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def check(api: str, run_id: str, reports_url: str) -> dict[str, Any]:
    """The run's artifacts through the API: what the UI will render. Raises on a fault."""
    _, raw = get(f"{api}/artifacts/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    artifacts = {a["key"]: a for a in json.loads(raw)}
    sizes = {key: len(json.dumps(a["data"])) for key, a in artifacts.items()}
    faults = [f"{k} refers to file://" for k, a in artifacts.items() if "file://" in str(a["data"])]
    faults += [f"{k} is {n} bytes" for k, n in sizes.items() if n > 1_000_000]
    report = artifacts["evaluation-report"]["data"]
    images = re.findall(r"!\[([^\]]*)\]\((\w+):", report)
    if not images or any(scheme != "data" for _, scheme in images):
        faults.append(f"evaluation-report images are not inline PNGs: {images}")
    (docs,) = re.findall(r"\((http[^)]+)\)", artifacts["data-docs"]["data"])
    if not docs.startswith(reports_url):
        faults.append(f"Data Docs link {docs} is not under {reports_url}")
    status, page = get(docs)
    loads = [next(g for g in m.groups() if g) for m in LOADS.finditer(page.decode())]
    broken = [u for u in loads if get(urllib.parse.urljoin(docs, u))[0] != 200]
    if broken or any(u.startswith("http") for u in loads):
        faults.append(f"Data Docs assets that do not load from the reports server: {broken}")
    if faults:
        raise SystemExit("UI check failed:\n" + "\n".join(faults))
    return {
        "artifacts": {k: {"id": a["id"], "bytes": sizes[k]} for k, a in artifacts.items()},
        "plots": [alt for alt, _ in images],
        "data_docs": docs,
        "data_docs_assets": len(loads),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("ui-check"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="seriesflow-ui-"))
    workspace, landing = root / "work", root / "work" / "landing"
    landing.mkdir(parents=True)
    for sample in (ROOT / "data" / "sample").glob("*.*"):
        if sample.suffix in (".csv", ".parquet"):
            shutil.copy(sample, landing)
    port, reports_port = free_port(), free_port()
    api, ui = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
    reports_url = f"http://127.0.0.1:{reports_port}"
    env = serve_env(root, workspace, landing, port, reports_port)
    log = (root / "serve.log").open("wb")
    serve = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "serve.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        wait(f"{api}/health", 240)
        wait(f"{reports_url}/health", 240)  # the root is no listing: 404
        retrain = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.retrain",
                "--set",
                f"train.epochs={args.epochs}",
            ]
            + ["--set", f"paths.workspace={workspace}", "--set", f"paths.landing={landing}"],
            cwd=ROOT,
            env={**env, "PREFECT_API_URL": api, "SERIESFLOW_REPORTS_URL": reports_url},
            capture_output=True,
            text=True,
        )
        summary = json.loads(retrain.stdout.strip().splitlines()[-1])
        if summary["status"] != "completed":
            raise SystemExit(f"the retrain did not complete: {summary}")
        _, raw = get(f"{api}/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 1})
        run_id = json.loads(raw)[0]["id"]
        result = {"flow_run": run_id, **check(api, run_id, reports_url)}
        browser = chromium()
        if browser:
            shots = result["screenshots"] = {}
            ids = {k: v["id"] for k, v in result["artifacts"].items()}
            for name, key in (
                ("evaluation_report", "evaluation-report"),
                ("outcome", "retrain-outcome"),
            ):
                path = args.out / f"prefect_{name}.png"
                screenshot(browser, f"{ui}/artifacts/artifact/{ids[key]}", path)
                shots[name] = str(path.resolve())
            rendered = dom(browser, f"{ui}/artifacts/artifact/{ids['data-docs']}")
            anchor = re.search(
                r'<a [^>]*href="([^"]+)"[^>]*>Great Expectations Data Docs</a>', rendered
            )
            if anchor is None:
                raise SystemExit("the UI rendered no Data Docs link")
            result["ui_link"] = anchor.group(1)
            path = args.out / "data_docs_from_ui_link.png"
            screenshot(browser, anchor.group(1), path, height=900)
            shots["data_docs"] = str(path.resolve())
        result["seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(result))
        return 0
    finally:
        serve.send_signal(signal.SIGTERM)  # serve.sh stops the worker, reports and server
        serve.wait(timeout=120)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
