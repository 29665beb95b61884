# seriesflow's image for docker-compose.yml: the Prefect server, the MLflow tracking server and
# the worker all run the project's pinned packages (requirements.lock), as `make install` does.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    GX_ANALYTICS_ENABLED=false \
    SERIESFLOW_HOME=/app

# scripts/serve.sh stops what it started by process group: it needs ps and pgrep.
RUN apt-get update && apt-get install -y --no-install-recommends procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The pinned set first (a code change does not reinstall TensorFlow), then the checkout itself,
# editable: the worker's runs import flows/ and tasks/ from /app (prefect.yaml's pull step) and
# `seriesflow serve` runs /app/scripts/serve.sh. requirements.lock holds psycopg2-binary for the
# MLflow server on Postgres (the `team` extra); asyncpg for Prefect's comes with Prefect.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY . .
RUN pip install --no-deps -e ".[team]"

# 4200 Prefect server, 5000 MLflow, 4201 the worker's reports server (Data Docs links)
EXPOSE 4200 5000 4201
CMD ["seriesflow", "--help"]
