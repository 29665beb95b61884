"""docker-compose.yml runs the project's real commands with its real settings.

Docker is not on the development machines, so the file is never started here. This
reads it the way Compose would (YAML anchors merged, ``${VAR:-default}`` filled with
the default) and checks every command and setting against the project itself.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from flows.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


def interpolate(value: Any) -> Any:
    """Compose's ``${VAR:-default}`` with VAR unset, ``$$`` as ``$``."""
    if isinstance(value, str):
        return DEFAULT.sub(lambda m: m.group(2), value).replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def services(compose) -> dict[str, Any]:
    return compose["services"]


def command(service: dict[str, Any]) -> list[str]:
    value = service["command"]
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def project_text() -> str:
    """Every file that reads a setting: the scripts, the code, the deployments."""
    paths = [REPO / "scripts" / "serve.sh", REPO / "prefect.yaml", REPO / "Makefile"]
    paths += sorted((REPO / "tasks").glob("*.py")) + sorted((REPO / "flows").glob("*.py"))
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)


def test_the_services_a_team_runs(services):
    assert set(services) == {"prefect-db", "mlflow-db", "prefect-server", "mlflow", "worker"}
    for name in ("prefect-db", "mlflow-db"):
        image = services[name]["image"]
        assert re.fullmatch(r"postgres:\d+(\.\d+)*", image), f"{name}: pin the image ({image})"
    python = [n for n, s in services.items() if s.get("build")]
    assert sorted(python) == ["mlflow", "prefect-server", "worker"]
    assert {services[n]["build"] for n in python} == {"."}  # the Dockerfile of this checkout


def test_the_image_installs_the_locked_packages_and_this_checkout():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install -r requirements.lock" in dockerfile
    assert 'pip install --no-deps -e ".[team]"' in dockerfile
    python = re.search(r"^FROM python:(\d+\.\d+)", dockerfile, re.M).group(1)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.findall(r"3\.(\d+)", requires)
    assert int(low) <= int(python.split(".")[1]) < int(high)
    assert "procps" in dockerfile  # serve.sh needs ps and pgrep
    lock = (REPO / "requirements.lock").read_text().splitlines()
    team = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "team"
    ]
    assert set(team) <= set(lock)


def test_the_worker_runs_the_console_script_make_serve_runs(services):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert command(services["worker"]) == ["seriesflow", "serve"]
    assert pyproject["project"]["scripts"]["seriesflow"] == "flows.cli:main"
    assert COMMANDS["serve"][0] == ""  # seriesflow serve runs scripts/serve.sh
    assert (REPO / "scripts" / "serve.sh").is_file()


def test_every_setting_is_one_the_project_or_its_libraries_read(services):
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    prefect_names = set(_get_valid_setting_names(Settings))
    text = project_text()
    for name, service in services.items():
        for key in service.get("environment", {}):
            if key.startswith("PREFECT_"):
                assert key in prefect_names, f"{name}: {key} is not a Prefect setting"
            elif key.startswith("SERIESFLOW_"):
                assert re.search(rf"\b{key}\b", text), f"{name}: nothing reads {key}"
            elif key.startswith("POSTGRES_"):
                assert service["image"].startswith("postgres:")
            else:
                assert key == "MLFLOW_TRACKING_URI", f"{name}: unexpected setting {key}"


def test_the_services_find_each_other(services):
    worker = services["worker"]["environment"]
    server = command(services["prefect-server"])
    assert server[:3] == ["prefect", "server", "start"] and "--analytics-off" in server
    api = urlparse(worker["PREFECT_API_URL"])
    assert (api.hostname, api.port, api.path) == (
        "prefect-server",
        int(option(server, "--port")),
        "/api",
    )
    assert ("127.0.0.1", api.port, api.port) in published(services["prefect-server"])
    assert "prefect-server" in services["worker"]["depends_on"]

    database = urlparse(
        services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    prefect_db = services["prefect-db"]["environment"]
    assert database.scheme == "postgresql+asyncpg" and database.hostname == "prefect-db"
    assert (database.username, database.path) == (
        prefect_db["POSTGRES_USER"],
        "/" + prefect_db["POSTGRES_DB"],
    )

    mlflow = command(services["mlflow"])
    assert mlflow[:2] == ["mlflow", "server"]
    tracking = urlparse(worker["MLFLOW_TRACKING_URI"])
    assert (tracking.hostname, tracking.port) == ("mlflow", int(option(mlflow, "--port")))
    assert f"{tracking.hostname}:{tracking.port}" in option(mlflow, "--allowed-hosts")
    store = urlparse(option(mlflow, "--backend-store-uri"))
    mlflow_db = services["mlflow-db"]["environment"]
    assert store.scheme == "postgresql" and store.hostname == "mlflow-db"
    assert store.path == "/" + mlflow_db["POSTGRES_DB"]
    artifacts = option(mlflow, "--artifacts-destination")
    assert any(v.endswith(f":{artifacts}") for v in services["mlflow"]["volumes"])


def test_the_workspace_and_the_reports_survive_and_are_reachable(compose, services):
    worker = services["worker"]
    env = worker["environment"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}
    assert mounts[env["SERIESFLOW_WORKSPACE"]] in compose["volumes"]
    assert env["SERIESFLOW_LANDING"] in mounts
    port = env["SERIESFLOW_REPORTS_PORT"]
    assert ("127.0.0.1", int(port), int(port)) in published(worker)
    assert urlparse(env["SERIESFLOW_REPORTS_URL"]).port == int(port)
    assert env["SERIESFLOW_REPORTS_HOST"] == "0.0.0.0"  # reachable through the published port
    assert env["SERIESFLOW_ALERT_WEBHOOK_URL"] == ""  # unset by default: no alerts
    for name in ("prefect-db", "mlflow-db", "mlartifacts", "workspace"):
        assert name in compose["volumes"]


def published(service: dict[str, Any]) -> list[tuple[str | None, int, int]]:
    """(host address, host port, container port) of each ``ports`` entry."""
    entries = []
    for entry in service.get("ports", []):
        *address, host, container = str(entry).split(":")
        entries.append((address[0] if address else None, int(host), int(container)))
    return entries


def test_every_port_is_published_on_loopback_by_default(services):
    # nothing here authenticates (the Prefect API, MLflow, the reports): a port published
    # without an address answers on every interface of the host
    ports = {name: published(s) for name, s in services.items() if s.get("ports")}
    assert set(ports) == {"prefect-server", "mlflow", "worker"}
    for name, entries in ports.items():
        assert entries and all(address == "127.0.0.1" for address, _, _ in entries), (name, entries)
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name in ports:  # one setting opens them up, and the file says so
        assert all("${SERIESFLOW_BIND:-127.0.0.1}:" in p for p in raw[name]["ports"]), name
    assert "SERIESFLOW_BIND" in (REPO / "docs" / "operations.md").read_text()
