#!/usr/bin/python3
"""End-to-end latency (issue 7, item 4): the time from `POST /v1/extractions` to the extraction's rows
being visible in `POST /v1/query`, over many extractions, with the default 1 s consumer flush.

Runs `apilake up --demo` (the bundled replay as the upstream, so no network) twice:
  embedded — the SQLite bus (one process, the default deployment);
  pubsub   — the same process with bus.kind=pubsub against the real Pub/Sub emulator (started here),
             local lake: the scale-out bus in the path, on the same cores.
Each extraction is bcb_sgs.series with its example params (one ~3 KB page of 22 records, one of them
planted invalid → 21 rows). A few extractions are kept in flight; one poller asks
  SELECT _extraction_id, count(*) FROM bcb_sgs_series WHERE _extraction_id IN (<in flight>) GROUP BY 1
every APILAKE_E2E_POLL_MS (default 50 ms; a single query for all of them, so the polling itself stays a
small load), and an extraction is visible when its count reaches the row count of the warm-up
extraction (its `curated`). The flush interval (batch_max_age_ms, 1000 ms) is the floor: a page waits
up to that long in the curator's open batch before its Parquet file is committed.

Env: APILAKE_E2E_N (200 extractions per mode), APILAKE_E2E_INFLIGHT (4), APILAKE_E2E_MODES
(embedded,pubsub), APILAKE_E2E_POLL_MS (50), APILAKE_BINARY (default build-bench/apilake).
Prints a summary and `ROW` lines for scripts/bench.sh. Exit 1 on any failure (with the logs kept).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_latency_lib import Apilake, Emulator, default_binary, percentile, remove, row, work_dir  # noqa: E402

FLUSH_MS = 1000  # the default batch_max_age_ms (docs/configuration.md); the floor of these latencies
TIMEOUT_S = 60   # one extraction not visible within this = a failure, not a slow sample


def wait_curated(app, extraction_id):
    """Waits until the extraction succeeded and was fully curated; returns its status."""
    until = time.monotonic() + TIMEOUT_S
    while time.monotonic() < until:
        s = app.status(extraction_id)
        if s["status"] == "failed":
            raise RuntimeError(f"extraction {extraction_id} failed: {s}")
        if s["status"] == "succeeded" and s.get("curated", 0) + s.get("deadlettered", 0) == s.get("records", -1):
            return s
        time.sleep(0.05)
    raise RuntimeError(f"extraction {extraction_id} not curated within {TIMEOUT_S} s")


def measure(app, n, in_flight, poll_s):
    params = app.example("bcb_sgs", "series")
    # Warm-up (not measured): creates the view and the first files, and tells how many rows an
    # extraction yields (the fixture has planted invalid records, which go to dead letters).
    warm = [app.submit("bcb_sgs", "series", params) for _ in range(3)]
    expected = None
    for w in warm:
        expected = wait_curated(app, w)["curated"]
    if not expected:
        raise RuntimeError("the warm-up extraction curated no rows")

    latencies, pending, submitted = [], {}, 0
    while len(latencies) < n:
        while submitted < n and len(pending) < in_flight:
            t0 = time.monotonic()
            pending[app.submit("bcb_sgs", "series", params)] = t0
            submitted += 1
        ids = ",".join("'" + i + "'" for i in pending)
        status, body = app.query(
            f"SELECT _extraction_id, count(*) FROM bcb_sgs_series WHERE _extraction_id IN ({ids}) GROUP BY 1")
        now = time.monotonic()
        if status != 200:
            raise RuntimeError(f"POST /v1/query: {status} {body}")
        for extraction_id, count in body["rows"]:
            if extraction_id in pending and count >= expected:
                latencies.append(now - pending.pop(extraction_id))
        for extraction_id, t0 in pending.items():
            if now - t0 > TIMEOUT_S:
                raise RuntimeError(f"extraction {extraction_id} not visible within {TIMEOUT_S} s: "
                                   f"{app.status(extraction_id)}")
        time.sleep(poll_s)
    return latencies, expected


def run_mode(mode, binary, n, in_flight, poll_s):
    wd = work_dir("e2e-" + mode)
    emulator = app = None
    ok = False
    try:
        env = {}
        if mode == "pubsub":
            emulator = Emulator(wd)
            env = {"APILAKE_BUS_KIND": "pubsub", "APILAKE_PUBSUB_PROJECT": "bench",
                   "APILAKE_PUBSUB_ENDPOINT": "http://" + emulator.host}
        app = Apilake(binary, wd, env)
        t0 = time.monotonic()
        lat, rows = measure(app, n, in_flight, poll_s)
        wall = time.monotonic() - t0
        p50, p90, p99 = (percentile(lat, p) for p in (50, 90, 99))
        print(f"e2e {mode}: {n} extractions ({rows} rows each), {in_flight} in flight, poll {poll_s * 1000:.0f} ms, "
              f"flush {FLUSH_MS} ms: p50 {p50:.3f} s  p90 {p90:.3f} s  p99 {p99:.3f} s  "
              f"min {min(lat):.3f} s  max {max(lat):.3f} s  ({wall:.1f} s wall)", flush=True)
        label = "embedded bus" if mode == "embedded" else "Pub/Sub emulator"
        row(f"e2e POST→queryable p50 ({label})", f"{p50:.3f}", f"{FLUSH_MS / 1000:.3f}", "s (anchor: flush floor)",
            "< 1.5 s", "yes" if p50 < 1.5 else "no")
        row(f"e2e POST→queryable p99 ({label})", f"{p99:.3f}", f"{FLUSH_MS / 1000:.3f}", "s (anchor: flush floor)")
        ok = True
    finally:
        if app:
            app.stop()
        if emulator:
            emulator.stop()
        if not ok:
            print(f"e2e {mode}: failed; logs kept in {wd}", file=sys.stderr)
        remove(wd, keep_on_error=not ok)


def main():
    n = int(os.environ.get("APILAKE_E2E_N", "200"))
    in_flight = int(os.environ.get("APILAKE_E2E_INFLIGHT", "4"))
    poll_s = int(os.environ.get("APILAKE_E2E_POLL_MS", "50")) / 1000.0
    modes = [m for m in os.environ.get("APILAKE_E2E_MODES", "embedded,pubsub").split(",") if m]
    try:
        binary = default_binary()
    except RuntimeError as e:
        print(f"e2e: {e}", file=sys.stderr)
        return 1
    rc = 0
    for mode in modes:
        if mode not in ("embedded", "pubsub"):
            print(f"e2e: unknown mode '{mode}' (embedded, pubsub)", file=sys.stderr)
            return 2
        try:
            run_mode(mode, binary, n, in_flight, poll_s)
        except Exception as e:  # one mode failing still lets the other report
            print(f"e2e {mode}: {e}", file=sys.stderr)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
