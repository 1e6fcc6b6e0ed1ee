#!/usr/bin/env python3
"""Measures per-job overhead of the embedded service: end-to-end job time minus the
forecast's own compute time, over N small jobs submitted one at a time.

End-to-end is the server's `finished_at - created_at` of each job. Compute is the
worker's `run` phase (the engine rollout, from gridcast_job_phase_duration_seconds),
so overhead covers queueing, claim, result upload, commit and polling delays.

Usage: benches/job_overhead.py [N] [POLL_SECS]   (needs a release build)
"""
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
POLL = sys.argv[2] if len(sys.argv) > 2 else "0.01"
BODY = json.dumps({
    "dataset": "storm-1996", "model": "persistence",
    "init_time": "1996-01-16T00:00:00Z", "lead_hours": 6,
    "region": {"south": 30, "north": 50, "west": -120, "east": -80},
    "variables": ["t"],
}).encode()


def call(url, data=None):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as reply:
        return reply.read()


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


with tempfile.TemporaryDirectory() as work:
    server = subprocess.Popen(
        ["target/release/gridcast", "serve", "--listen", "127.0.0.1:0", "--data-dir", work,
         "--poll-secs", POLL],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        base = re.search(r"http://[0-9.:]+", line).group(0)
        e2e = []
        for _ in range(N):
            job = json.loads(call(base + "/v1/jobs", BODY))
            while job["state"] in ("queued", "running"):
                time.sleep(0.002)
                job = json.loads(call(f"{base}/v1/jobs/{job['id']}"))
            assert job["state"] == "succeeded", job
            e2e.append(ts(job["finished_at"]) - ts(job["created_at"]))
        metrics = call(base + "/metrics").decode()
        run_sum = float(re.search(
            r'gridcast_job_phase_duration_seconds_sum\{phase="run"\} (\S+)', metrics).group(1))
        run_count = float(re.search(
            r'gridcast_job_phase_duration_seconds_count\{phase="run"\} (\S+)', metrics).group(1))
    finally:
        server.terminate()
        server.wait()

compute = run_sum / run_count
e2e.sort()
p50 = statistics.median(e2e)
print(f"{N} jobs, worker poll interval {POLL} s")
print(f"end-to-end p50 {p50 * 1000:.1f} ms, p90 {e2e[int(0.9 * N) - 1] * 1000:.1f} ms")
print(f"mean compute (run phase) {compute * 1000:.1f} ms")
print(f"overhead p50 (end-to-end p50 - mean compute) {(p50 - compute) * 1000:.1f} ms")
