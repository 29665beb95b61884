#!/usr/bin/env bash
# make serve: run seriesflow's deployments on this machine, in the foreground.
#
#   1. starts `prefect server start` on 127.0.0.1 (SQLite under the workspace), unless
#      PREFECT_API_URL is set: then it uses that server and starts none;
#   2. creates, if missing, the process work pool `seriesflow`, its queue `seriesflow-retrain`
#      (concurrency 1: retrain runs never overlap) and the global concurrency limit
#      `seriesflow-registry` that the register step holds around the MLflow registry write;
#   3. deploys prefect.yaml (retrain/on-new-data, retrain/scheduled, watch/poll,
#      forecast/on-promotion, forecast/daily) and applies
#      automations.yaml: a retrain whose heartbeats stop is set Crashed (always), and
#      notifications for failed, crashed and rejected retrains and for promotions (sent only
#      when SERIESFLOW_ALERT_WEBHOOK_URL or SERIESFLOW_ALERT_BLOCK is set);
#   4. starts the reports server (the run folders over http: the UI's Data Docs links) and a
#      process worker on the pool.
# Ctrl-C or SIGTERM stops what it started: flow runs in progress (they end Crashed; their files
# stay new, so the next start retrains on them), the worker, and the server. It exits non-zero
# if the worker or the server dies on its own.
#
# A run whose process dies without a word (SIGKILL, the OOM killer, a reboot, a worker that
# went with it) stops sending heartbeats; the heartbeat automation sets it Crashed after
# SERIESFLOW_HEARTBEAT_WINDOW seconds, which frees the retrain queue's slot for the next run
# (docs/operations.md, "What happens when..."). Nothing here has to tidy runs up by hand.
#
# Settings (environment):
#   SERIESFLOW_HOME       checkout with flows/ and tasks/ (default: this script's repo)
#   SERIESFLOW_WORKSPACE  default $SERIESFLOW_HOME/data/work
#   SERIESFLOW_LANDING    default <workspace>/../landing (next to the workspace, never
#                         inside it); or an object-store URL such as s3://bucket/prefix
#   SERIESFLOW_PORT       port of the local server (default 4200)
#   PREFECT_HOME          default $SERIESFLOW_WORKSPACE/prefect when this script starts the
#                         server (its SQLite database lives there); left alone otherwise
#   PREFECT_API_URL       use this server instead of starting one
#   SERIESFLOW_REPORTS_PORT  port of the reports server (default 4201; `off`: start none)
#   SERIESFLOW_REPORTS_HOST  its address (default 127.0.0.1: the runs hold the team's data)
#   SERIESFLOW_REPORTS_URL   the base URL the UI links to (default http://127.0.0.1:PORT); set it
#                         when a proxy or another host serves $SERIESFLOW_WORKSPACE/runs
#   SERIESFLOW_ALERT_WEBHOOK_URL  where notifications go (a JSON POST); unset: none are sent
#   SERIESFLOW_ALERT_BLOCK   or: an existing Prefect notification block, "type-slug/name"
#   PREFECT_WORKER_QUERY_SECONDS  how often the worker polls (Prefect's default: 10)
#   PREFECT_FLOWS_HEARTBEAT_FREQUENCY  seconds between a flow run's heartbeats (default here
#                         60; Prefect's minimum 30)
#   SERIESFLOW_HEARTBEAT_WINDOW  seconds without a heartbeat after which a retrain run is set
#                         Crashed (default 300; at least twice the frequency)
set -euo pipefail
# Monitor mode: every background job gets its own process group, so stopping one stops
# everything it spawned, and Ctrl-C reaches only this script, which then stops them in order.
set -m

log() { printf '[serve %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

SERIESFLOW_HOME="${SERIESFLOW_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}"
[[ -f "$SERIESFLOW_HOME/prefect.yaml" && -d "$SERIESFLOW_HOME/flows" ]] ||
    die "SERIESFLOW_HOME=$SERIESFLOW_HOME does not hold prefect.yaml and flows/ (point it at the seriesflow checkout)"
cd "$SERIESFLOW_HOME"

# The project's virtualenv if there is one, else whatever is on PATH.
if [[ -x "$SERIESFLOW_HOME/.venv/bin/python" ]]; then
    export PATH="$SERIESFLOW_HOME/.venv/bin:$PATH"
fi
command -v prefect >/dev/null || die "prefect is not installed: run 'make install' (or pip install -e .)"
PY="$(command -v python)"

# Names that prefect.yaml uses as well: keep them in step.
POOL=seriesflow
RETRAIN_QUEUE=seriesflow-retrain
REGISTRY_LIMIT=seriesflow-registry

# Same resolution as PathsConfig.*_path() (absolute, symlinks resolved): the trigger matches
# the watcher's resource id `seriesflow.landing.<this path>` character for character.
resolve() { "$PY" -c 'import pathlib, sys; print(pathlib.Path(sys.argv[1]).expanduser().resolve())' "$1"; }
SERIESFLOW_WORKSPACE="$(resolve "${SERIESFLOW_WORKSPACE:-data/work}")"
SERIESFLOW_LANDING="${SERIESFLOW_LANDING:-$(dirname "$SERIESFLOW_WORKSPACE")/landing}"
case "$SERIESFLOW_LANDING" in
    *://*) ;;  # an object store (s3://...): used as written (no trailing slash)
    *) SERIESFLOW_LANDING="$(resolve "$SERIESFLOW_LANDING")" ;;
esac
SERIESFLOW_LANDING="${SERIESFLOW_LANDING%/}"
export SERIESFLOW_HOME SERIESFLOW_WORKSPACE SERIESFLOW_LANDING
# Runs started with a hand-made cfg (`-p cfg=...`, the UI form) that leaves
# register.concurrency_limit empty still take the registry lock.
export SERIESFLOW_REGISTRY_LIMIT="$REGISTRY_LIMIT"
case "$SERIESFLOW_LANDING" in *://*) ;; *) mkdir -p "$SERIESFLOW_LANDING" ;; esac

# No network here, and none wanted: no telemetry from Prefect or the libraries it runs.
export DO_NOT_TRACK="${DO_NOT_TRACK:-1}"
export PREFECT_SERVER_ANALYTICS_ENABLED="${PREFECT_SERVER_ANALYTICS_ENABLED:-false}"
# Heartbeats from every flow run the worker starts (the runs inherit its environment), and the
# window after which the automation in automations.yaml calls a silent retrain dead.
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-60}"
export SERIESFLOW_HEARTBEAT_WINDOW="${SERIESFLOW_HEARTBEAT_WINDOW:-300}"
# No interactive questions: in a terminal, `prefect server start` would otherwise stop to ask
# about the profile's PREFECT_API_URL, and a background job cannot answer.
export PREFECT_CLI_PROMPT=false

server_pid=""
worker_pid=""
reports_pid=""

stop_group() { # pid seconds: SIGTERM pid's process group (or pid alone if it leads none),
    #                SIGKILL it if it is still there after that many seconds
    local pid=$1 deadline=$((SECONDS + $2)) target=$1
    [[ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" == "$pid" ]] && target="-$pid"
    kill -TERM -- "$target" 2>/dev/null || return 0
    kill -CONT -- "$target" 2>/dev/null || true # in case it was frozen with the worker
    while kill -0 -- "$target" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "pid $pid is still running after SIGTERM: killing it"
            kill -KILL -- "$target" 2>/dev/null || true
            return 0
        fi
        sleep 0.5
    done
}

stop_worker() {
    # Freeze the worker first: a worker told to stop can still pick up a queued run before it
    # notices (queued runs must stay Scheduled for the next start), and the flow runs it
    # started live in sessions of their own, out of reach of its process group: list them
    # while it cannot start more.
    kill -STOP -- "-$worker_pid" 2>/dev/null || return 0
    local runs run_pid
    runs="$(pgrep -P "$worker_pid" 2>/dev/null || true)"
    # The worker holds no state worth a graceful exit (the server only sees its heartbeat
    # stop). Killing it first also closes the runs' output pipes, which a frozen worker would
    # leave full, blocking the runs on their next log line.
    log "stopping the worker (pid $worker_pid)"
    kill -KILL -- "-$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true # (and no "Killed" notice from bash)
    # Each run, told to stop, records itself as Crashed while the server is still up; its
    # files stay out of the ledger, so the next start retrains on them.
    for run_pid in $runs; do
        log "stopping flow run process $run_pid"
        stop_group "$run_pid" 30
    done
}

stop_all() {
    local status=$?
    trap - INT TERM EXIT
    set +e # stop everything we can, whatever fails on the way
    set +m # (no "[1]+ Terminated ..." job notices: we report what we stop ourselves)
    [[ -n "$worker_pid" ]] && stop_worker
    [[ -n "$reports_pid" ]] && stop_group "$reports_pid" 5
    if [[ -n "$server_pid" ]]; then
        # (A run that ignored SIGTERM and was killed stays Running until the heartbeat
        # automation sets it Crashed, once a server runs again.)
        log "stopping the server (pid $server_pid)"
        stop_group "$server_pid" 20
    fi
    exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for_api() { # api-url timeout_seconds [pid that must stay alive]
    wait_for_url "${1%/}/health" "${@:2}"
}

wait_for_url() { # url timeout_seconds [pid that must stay alive]: until it answers 200
    "$PY" - "$@" <<'PY'
import os, sys, time, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
pid = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    if pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(f"the server exited before answering {url} (see its output above)")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(f"{url} did not answer within {timeout:.0f} s")
PY
}

if [[ -n "${PREFECT_API_URL:-}" ]]; then
    log "using the Prefect server at PREFECT_API_URL=$PREFECT_API_URL"
    wait_for_api "$PREFECT_API_URL" 10 ||
        die "PREFECT_API_URL=$PREFECT_API_URL does not answer: start that server, or unset PREFECT_API_URL to let make serve start one"
else
    port="${SERIESFLOW_PORT:-4200}"
    export PREFECT_HOME="${PREFECT_HOME:-$SERIESFLOW_WORKSPACE/prefect}"
    mkdir -p "$PREFECT_HOME"
    export PREFECT_API_URL="http://127.0.0.1:$port/api"
    if wait_for_api "$PREFECT_API_URL" 1 2>/dev/null; then
        die "something already answers on 127.0.0.1:$port: set SERIESFLOW_PORT to a free port, or PREFECT_API_URL=$PREFECT_API_URL to use that server"
    fi
    # The UI asks this for its API: relative, so it works on any port and host (Prefect's
    # default names port 4200, whatever port the server is on).
    export PREFECT_SERVER_UI_API_URL="${PREFECT_SERVER_UI_API_URL:-/api}"
    log "starting a Prefect server on 127.0.0.1:$port (PREFECT_HOME=$PREFECT_HOME)"
    prefect server start --host 127.0.0.1 --port "$port" --analytics-off </dev/null &
    server_pid=$!
    wait_for_api "$PREFECT_API_URL" "${SERIESFLOW_SERVER_TIMEOUT:-120}" "$server_pid" ||
        die "the Prefect server did not start (see its output above)"
    log "server ready: UI at http://127.0.0.1:$port"
fi

# Idempotent setup: create what is missing, leave what exists (an operator's edits included).
if ! prefect work-pool inspect "$POOL" >/dev/null 2>&1; then
    prefect work-pool create "$POOL" --type process >/dev/null
    log "created work pool $POOL (process)"
fi
if ! prefect work-queue create "$RETRAIN_QUEUE" --pool "$POOL" --limit 1 >/dev/null 2>&1; then
    prefect work-queue set-concurrency-limit "$RETRAIN_QUEUE" 1 --pool "$POOL" >/dev/null
fi
log "work queue $RETRAIN_QUEUE: concurrency limit 1"
if ! prefect gcl create "$REGISTRY_LIMIT" --limit 1 >/dev/null 2>&1; then
    prefect gcl inspect "$REGISTRY_LIMIT" >/dev/null ||
        die "could not create or read the global concurrency limit $REGISTRY_LIMIT"
fi
log "global concurrency limit $REGISTRY_LIMIT ready"
log "deploying prefect.yaml (workspace $SERIESFLOW_WORKSPACE, landing $SERIESFLOW_LANDING)"
if ! deploy_output="$(prefect --no-prompt deploy --all --prefect-file "$SERIESFLOW_HOME/prefect.yaml" 2>&1)"; then
    printf '%s\n' "$deploy_output" >&2
    die "prefect deploy failed (output above)"
fi
log "deployed retrain/on-new-data, retrain/scheduled, watch/poll, forecast/on-promotion, forecast/daily"

# Upserted by name: running make serve again updates them, never duplicates them.
"$PY" -m flows.cli alerts apply "$SERIESFLOW_HOME/automations.yaml" 2>&1 | sed 's/^/[serve alerts] /' >&2 ||
    die "could not apply automations.yaml (output above)"

reports_port="${SERIESFLOW_REPORTS_PORT:-4201}"
if [[ "$reports_port" != off ]]; then
    reports_host="${SERIESFLOW_REPORTS_HOST:-127.0.0.1}"
    export SERIESFLOW_REPORTS_URL="${SERIESFLOW_REPORTS_URL:-http://127.0.0.1:$reports_port}"
    mkdir -p "$SERIESFLOW_WORKSPACE/runs"
    # /health: the server answers 404 for anything that is not a report, its root included
    if wait_for_url "http://127.0.0.1:$reports_port/health" 1 2>/dev/null; then
        die "something already answers on 127.0.0.1:$reports_port: set SERIESFLOW_REPORTS_PORT to a free port (or off)"
    fi
    "$PY" -m seriesflow.ops.reports --directory "$SERIESFLOW_WORKSPACE/runs" --host "$reports_host" \
        --port "$reports_port" </dev/null >/dev/null &
    reports_pid=$!
    wait_for_url "http://127.0.0.1:$reports_port/health" 30 "$reports_pid" ||
        die "the reports server did not start on $reports_host:$reports_port (in use? set SERIESFLOW_REPORTS_PORT)"
    log "reports server: Data Docs and plots of the runs at $SERIESFLOW_REPORTS_URL (links in the UI)"
fi

prefect worker start --pool "$POOL" --type process </dev/null &
worker_pid=$!
log "worker started; drop files into $SERIESFLOW_LANDING (Ctrl-C stops everything)"

# Foreground until Ctrl-C/SIGTERM (traps above) or until the worker or the server dies.
# (A polling loop rather than `wait -n`, which macOS's bash 3.2 lacks.)
while kill -0 "$worker_pid" 2>/dev/null && { [[ -z "$server_pid" ]] || kill -0 "$server_pid" 2>/dev/null; }; do
    sleep 1
done
log "the worker or the server exited on its own: shutting down"
exit 1
