# The worker image of docker-compose.yml: `seriesflow serve` (scripts/serve.sh) against the
# stack's Prefect and MLflow servers, which run their official images. Runtime packages only
# (requirements.lock, hashed: the application with its dask and s3 extras; no test tools),
# this checkout at /app, run as an unprivileged user.

# --- build: the locked packages into a virtual environment, then this checkout, editable ----
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# The lock first: a code change does not reinstall TensorFlow.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock
# Editable: the worker's runs import flows/ and tasks/ from /app (prefect.yaml's pull step
# does `cd $SERIESFLOW_HOME`), and `seriesflow serve` runs /app/scripts/serve.sh.
WORKDIR /app
COPY . .
RUN pip install --no-deps -e .

# --- runtime: the environment and the checkout, nothing that built them -------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    GX_ANALYTICS_ENABLED=false \
    TF_CPP_MIN_LOG_LEVEL=2 \
    SERIESFLOW_HOME=/app \
    SERIESFLOW_WORKSPACE=/data/work \
    SERIESFLOW_LANDING=/data/landing

# scripts/serve.sh stops what it started by process group: it needs ps and pgrep. Debian's
# security updates replace a pinned version, so procps is left to the base image's release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends procps \
    && rm -rf /var/lib/apt/lists/*

# The worker's user owns the workspace and the landing folder: a new named volume mounted
# there starts as this folder, so the stack makes both with the worker's user (no root-owned
# bind mount), and files copied in (`docker compose cp`) can be claimed by a rename.
# A numeric user (10001), so an orchestrator can tell it is not root without the passwd file.
RUN groupadd --gid 10001 seriesflow \
    && useradd --create-home --uid 10001 --gid 10001 seriesflow \
    && mkdir -p /data/work /data/landing \
    && chown seriesflow:seriesflow /data/work /data/landing

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

USER 10001:10001
WORKDIR /app
# 4201: the reports server (Data Docs links in the Prefect UI)
EXPOSE 4201
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=6 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:4201/health', timeout=3)"]
CMD ["seriesflow", "serve"]
