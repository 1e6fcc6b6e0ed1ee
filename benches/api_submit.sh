#!/usr/bin/env bash
# Measures sustained POST /v1/jobs throughput and latency of the embedded service with
# wrk on loopback. One worker runs beside the API, as in the embedded default, and
# drains the persistence jobs while they arrive, so the figure includes that load.
#
# Usage: benches/api_submit.sh [SECONDS] [CONNECTIONS]
# Needs: wrk (Debian package `wrk`) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-10}
connections=${2:-16}
bin=target/release/gridcast
work=$(mktemp -d)
# Waiting for the server keeps its worker from writing into $work while rm deletes it.
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --workers 1 \
    --max-queue-depth 100000000 >"$work/log" 2>&1 &
server=$!
for _ in $(seq 100); do
    addr=$(grep -oE 'listening[^0-9]*127\.0\.0\.1:[0-9]+' "$work/log" | grep -oE '127\.0\.0\.1:[0-9]+' | head -1 || true)
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "${addr:-}" ] || { echo "server did not start:"; cat "$work/log"; exit 1; }

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"dataset": "storm-1996", "model": "persistence", "init_time": "1996-01-16T00:00:00Z", "lead_hours": 24, "region": {"south": 30, "north": 50, "west": -120, "east": -80}, "variables": ["t", "p"]}'
LUA
echo "server $addr, $connections connections, ${duration}s, $(nproc) cores"
wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/post.lua" "http://$addr/v1/jobs"
