#!/usr/bin/env bash
# Measures sustained POST /v1/jobs throughput and latency with wrk on loopback for two
# backends in one run, then prints them side by side:
#
#   embedded  `gridcast serve` (SQLite, local result files) with one worker in the
#             same process, as benches/api_submit.sh runs it;
#   postgres  `gridcast api` and one `gridcast worker` process (`--workers 1`) sharing
#             a throwaway Postgres database and a file:// result store.
#
# In both cases one worker drains the persistence jobs while they arrive, so the
# figures include that load. The Postgres server runs on the same machine and shares
# its cores with wrk and gridcast.
#
# Each round runs both backends for SECONDS, each on a fresh data directory and
# database, and the summary gives the median over ROUNDS.
#
# Usage: benches/api_submit_backends.sh [SECONDS] [CONNECTIONS] [ROUNDS]
# Environment: PG_ADMIN_URL, a Postgres URL whose user may create and drop databases
#   [default: postgres://postgres@127.0.0.1:5432/postgres].
# Needs: wrk (Debian package `wrk`), psql, sqlite3 and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-10}
connections=${2:-16}
rounds=${3:-3}
admin_url=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
bin=target/release/gridcast
work=$(mktemp -d)
pids=()
databases=()

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

# Stops every process started so far and waits for it to exit.
stop_all() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"dataset": "storm-1996", "model": "persistence", "init_time": "1996-01-16T00:00:00Z", "lead_hours": 24, "region": {"south": 30, "north": 50, "west": -120, "east": -80}, "variables": ["t", "p"]}'
LUA

# Runs wrk against $addr and keeps its report in $work/wrk-NAME.txt.
measure() {
    local name=$1
    echo "== $name: $addr, $connections connections, ${duration}s"
    wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/post.lua" \
        "http://$addr/v1/jobs" | tee "$work/wrk-$name.txt"
}

# Converts a wrk latency such as 912.00us, 13.04ms or 1.20s to milliseconds.
to_ms() {
    awk -v value="$1" 'BEGIN {
        number = value + 0
        if (value ~ /us$/) number /= 1000
        else if (value ~ /ms$/) number *= 1
        else if (value ~ /m$/) number *= 60000
        else if (value ~ /s$/) number *= 1000
        printf "%.2f", number
    }'
}

requests_per_second() { awk '/^Requests\/sec:/ { print $2 }' "$work/wrk-$1.txt"; }
latency_ms() { to_ms "$(awk -v p="$2%" '$1 == p { print $2 }' "$work/wrk-$1.txt")"; }
# Sums wrk's "Non-2xx or 3xx responses" and socket error counts, or prints 0 when
# wrk reported neither.
failures() {
    awk '/Non-2xx or 3xx responses:/ { n += $NF }
         /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
         END { print n + 0 }' "$work/wrk-$1.txt"
}

# Job counts after a run go to $work/jobs-NAME.txt as "SUCCEEDED QUEUED". Their sum
# can exceed wrk's request count by up to CONNECTIONS, because wrk does not count the
# requests still in flight when it stops.
job_count_query="SELECT COUNT(*) FILTER (WHERE state = 'succeeded'), \
    COUNT(*) FILTER (WHERE state = 'queued') FROM jobs"

run_embedded() {
    local name=embedded-$1
    start "$name" serve --workers 1 --max-queue-depth 100000000
    measure "$name"
    stop_all
    sqlite3 -separator ' ' "$work/$name/gridcast.db" "$job_count_query" >"$work/jobs-$name.txt"
}

run_postgres() {
    local name=postgres-$1
    local database=gridcast_bench_$$_$1
    psql -q "$admin_url" -c "CREATE DATABASE $database" >/dev/null
    databases+=("$database")
    local shared=(--database-url "${admin_url%/*}/$database"
        --results-url "file://$work/$name-objects" --max-queue-depth 100000000)
    # Every role applies the migrations at start-up, so the API starts first and the
    # worker finds the schema in place.
    start "$name-api" api "${shared[@]}"
    local api_addr=$addr
    start "$name-worker" worker "${shared[@]}" --workers 1
    addr=$api_addr
    measure "$name"
    stop_all
    psql -qtA -F ' ' "${admin_url%/*}/$database" -c "$job_count_query" >"$work/jobs-$name.txt"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
# Alternating the backends round by round spreads drifting background load over both.
for round in $(seq "$rounds"); do
    echo "== round $round, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    run_embedded "$round"
    run_postgres "$round"
done

echo
printf '%-11s %11s %8s %8s %8s %7s %9s %7s\n' \
    run requests/s p50_ms p90_ms p99_ms failed succeeded queued
for round in $(seq "$rounds"); do
    for backend in embedded postgres; do
        name=$backend-$round
        read -r succeeded queued <"$work/jobs-$name.txt"
        printf '%-11s %11s %8s %8s %8s %7s %9s %7s\n' "$name" "$(requests_per_second "$name")" \
            "$(latency_ms "$name" 50)" "$(latency_ms "$name" 90)" "$(latency_ms "$name" 99)" \
            "$(failures "$name")" "$succeeded" "$queued"
    done
done
total_failures=0
for name in $(cd "$work" && ls wrk-*.txt | sed 's/^wrk-//; s/\.txt$//'); do
    total_failures=$((total_failures + $(failures "$name")))
done
if [ "$total_failures" != 0 ]; then
    echo "warning: $total_failures requests failed (non-2xx status or socket error);" \
        "see the wrk reports above" >&2
fi
# Medians over the rounds, then their ratio.
for backend in embedded postgres; do
    for round in $(seq "$rounds"); do
        echo "$(requests_per_second "$backend-$round") $(latency_ms "$backend-$round" 99)"
    done >"$work/$backend.txt"
done
median() {
    sort -g | awk '{ v[NR] = $1 }
        END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
embedded_rps=$(cut -d' ' -f1 "$work/embedded.txt" | median)
embedded_p99=$(cut -d' ' -f2 "$work/embedded.txt" | median)
postgres_rps=$(cut -d' ' -f1 "$work/postgres.txt" | median)
postgres_p99=$(cut -d' ' -f2 "$work/postgres.txt" | median)
echo
echo "median of $rounds rounds: embedded $embedded_rps requests/s, p99 $embedded_p99 ms;" \
    "postgres $postgres_rps requests/s, p99 $postgres_p99 ms"
awk -v e="$embedded_rps" -v p="$postgres_rps" -v e99="$embedded_p99" -v p99="$postgres_p99" \
    'BEGIN { printf "postgres / embedded: requests/s %.2fx, p99 %.2fx\n", p / e, p99 / e99 }'
