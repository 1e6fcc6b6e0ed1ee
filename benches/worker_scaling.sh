#!/usr/bin/env bash
# Measures how fast `gridcast worker` processes drain a queue of real forecasts on
# Postgres: one worker process, then two, each with `--workers 1`, and prints jobs/s
# and the ratio.
#
# Each configuration gets a fresh throwaway database and a `gridcast api` process. The
# workers start first and wait idle, then the script submits JOBS forecasts of the
# shipped neural model (storm-cnn) on the whole storm-1996 domain, all 6 variables, at
# LEAD_HOURS. The drain time runs from the first claim (`started_at`) to the last
# finish (`finished_at`), both stamped by the database clock, so process start-up and
# the idle poll are not counted.
#
# Usage: benches/worker_scaling.sh [JOBS] [LEAD_HOURS]
# Environment: PG_ADMIN_URL, a Postgres URL whose user may create and drop databases
#   [default: postgres://postgres@127.0.0.1:5432/postgres]. Variables such as
#   RAYON_NUM_THREADS pass through to the worker processes.
# Needs: curl, jq, psql and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${1:-40}
lead_hours=${2:-240}
admin_url=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
model=storm-cnn
bin=target/release/gridcast
work=$(mktemp -d)
pids=()
databases=()

stop_all() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}

cleanup() {
    stop_all
    for database in "${databases[@]}"; do
        psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# Starts a gridcast process with its output in $work/NAME.log and sets `addr` to the
# address from its first stdout line.
start() {
    local name=$1
    shift
    "$bin" "$@" --listen 127.0.0.1:0 --data-dir "$work/$name" >"$work/$name.log" 2>&1 &
    pids+=($!)
    addr=
    for _ in $(seq 100); do
        addr=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$work/$name.log" 2>/dev/null \
            | grep -oE '127\.0\.0\.1:[0-9]+' | head -1 || true)
        [ -n "$addr" ] && return
        sleep 0.1
    done
    echo "$name did not start within 10 s:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

body=$(jq -cn --arg model "$model" --argjson lead "$lead_hours" '{dataset: "storm-1996",
    model: $model, init_time: "1996-01-16T00:00:00Z", lead_hours: $lead}')

# Drains $jobs forecasts with PROCESSES worker processes and appends
# "PROCESSES DRAIN_SECONDS MEAN_JOB_SECONDS" to $work/results.
run_configuration() {
    local processes=$1
    local database="gridcast_scaling_$$_$processes"
    local database_url="${admin_url%/*}/$database"
    psql -q "$admin_url" -c "CREATE DATABASE $database" >/dev/null
    databases+=("$database")
    local shared=(--database-url "$database_url" --results-url "file://$work/objects-$processes"
        --max-queue-depth 100000 --max-lead-hours "$lead_hours")

    # Every role applies the migrations at start-up, so the API starts first and the
    # workers find the schema in place.
    start "api-$processes" api "${shared[@]}"
    local api=$addr
    if ! curl -fsS "http://$api/v1/models" | jq -e --arg model "$model" \
        '[.. | strings] | index($model)' >/dev/null; then
        echo "model $model is not in GET /v1/models:" >&2
        curl -sS "http://$api/v1/models" >&2
        exit 1
    fi
    for index in $(seq "$processes"); do
        start "worker-$processes-$index" worker "${shared[@]}" --workers 1 --poll-secs 0.05
    done

    for _ in $(seq "$jobs"); do
        curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
            -d "$body" "http://$api/v1/jobs"
    done
    local pending
    for _ in $(seq 2400); do
        pending=$(psql -qtA "$database_url" \
            -c "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
        [ "$pending" = 0 ] && break
        sleep 0.25
    done
    if [ "$pending" != 0 ]; then
        echo "timed out: $pending of $jobs jobs still queued or running after 600 s" >&2
        exit 1
    fi
    local failed
    failed=$(psql -qtA "$database_url" -c "SELECT COUNT(*) FROM jobs WHERE state <> 'succeeded'")
    if [ "$failed" != 0 ]; then
        echo "$failed of $jobs jobs did not succeed:" >&2
        psql "$database_url" -c "SELECT id, state, error_code, error_message FROM jobs \
            WHERE state <> 'succeeded' LIMIT 5" >&2
        exit 1
    fi
    local row
    row=$(psql -qtA -F ' ' "$database_url" -c "SELECT \
        ROUND((MAX(finished_at) - MIN(started_at)) / 1000.0, 3), \
        ROUND(AVG(finished_at - started_at) / 1000.0, 3), \
        COUNT(DISTINCT worker) FROM jobs")
    read -r drain mean_job distinct_workers <<<"$row"
    echo "$processes process(es): $jobs jobs drained in ${drain} s, mean job ${mean_job} s," \
        "run by $distinct_workers worker(s)"
    echo "$processes $drain $mean_job" >>"$work/results"
    stop_all
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "$jobs jobs of $model, lead ${lead_hours} h, whole domain, all variables"
run_configuration 1
run_configuration 2

echo
awk -v jobs="$jobs" '{
    rate[$1] = jobs / $2
    printf "%d worker process(es): %.2f jobs/s (drain %.2f s, mean job %.3f s)\n", $1, rate[$1], $2, $3
} END {
    printf "2 / 1 processes: %.2fx\n", rate[2] / rate[1]
}' "$work/results"
