#!/usr/bin/python3
"""Memory under sustained load (issue 7, item 5): RSS of `apilake up --demo` (embedded bus, the bundled
replay as the upstream) while a paced load runs against it:
  - extractions: APILAKE_RSS_RATE a second (default 20), alternating bcb_sgs.series (1 page, 22 records)
    and openbrewerydb.breweries (3 pages, 141 records), each followed by a GET of its status;
  - queries: APILAKE_RSS_QPS a second (default 5), rotating over a few SELECTs (aggregates over both
    growing views, a point lookup by _extraction_id).
VmRSS and VmHWM are read from /proc/<pid>/status every second. Reported: peak (VmHWM at the end),
steady (median VmRSS of the last third of the samples after warm-up), drift (median of the last third
vs median of the first third, after warm-up = the first APILAKE_RSS_WARMUP_S, default 20 s), and at
the end /proc/<pid>/smaps_rollup (anonymous vs file-backed) to tell heap growth from mapped files, and the
anonymous memory by kind (glibc arenas, [heap], other) after warm-up and at the end.
Targets: flat (|drift| ≤ 10 %), peak < 200 MB.
Insight freshness, the price of fewer refreshes: under load, every APILAKE_RSS_FRESH_EVERY_S (2) seconds
after warm-up, the age of each after_batch model's data (now - data_through in GET /v1/insights);
at rest (after the load, the lake quiet for 3 s), APILAKE_RSS_REST_PROBES (3) single bcb_sgs extractions,
each timed from "succeeded" to bcb_sgs_monthly's data_through moving (what the dashboard sees).

Env: APILAKE_RSS_SECONDS (180), APILAKE_RSS_RATE (20), APILAKE_RSS_QPS (5), APILAKE_RSS_WARMUP_S (20),
APILAKE_RSS_SAMPLES=FILE (write "t_s rss_kb hwm_kb anon_kb file_kb" lines), APILAKE_RSS_FRESH_EVERY_S (2),
APILAKE_RSS_REST_PROBES (3), APILAKE_RSS_CURVE_S (30: the printed curve's step), APILAKE_BINARY,
APILAKE_RSS_QUERIES=count (every query a count(*) over one of the two views, for bisection); the environment is passed
to apilake (e.g. MALLOC_ARENA_MAX=2 for an allocator experiment).
Prints a summary and `ROW` lines for scripts/bench.sh; exit 1 when the load or the process failed.
"""
import os
import statistics
import sys
import threading
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_latency_lib import Apilake, Http, default_binary, percentile, remove, row, work_dir  # noqa: E402

FRESH_MODELS = ("bcb_sgs_monthly", "openbrewerydb_by_city")  # after_batch models over the loaded datasets


def data_through(conn):
    """{model: data_through as epoch seconds} of GET /v1/insights (models materialised so far)."""
    status, body = conn.json("GET", "/v1/insights")
    if status != 200:
        raise RuntimeError(f"GET /v1/insights: {status} {body}")
    return {i["name"]: datetime.fromisoformat(i["data_through"].replace("Z", "+00:00")).timestamp()
            for i in body["insights"] if i.get("data_through")}


def rest_freshness(app, probes):
    """Seconds from an extraction's "succeeded" to bcb_sgs_monthly covering it, the lake otherwise quiet."""
    conn, out = Http(app.port), []
    status, body = conn.json("GET", "/v1/insights")
    if status != 200 or not any(i["name"] == "bcb_sgs_monthly" for i in body["insights"]):
        return out  # sources without that model (APILAKE_BENCH_SOURCES): nothing to time
    params = app.example("bcb_sgs", "series")
    for _ in range(probes):
        time.sleep(3.0)  # let the refreshes of earlier batches finish: measure a lone batch
        before = data_through(conn).get("bcb_sgs_monthly", 0.0)
        extraction_id = app.submit("bcb_sgs", "series", params, conn)
        until = time.monotonic() + 30
        while app.status(extraction_id, conn)["status"] in ("queued", "running"):
            if time.monotonic() > until:
                raise RuntimeError(f"extraction {extraction_id} did not finish within 30 s")
            time.sleep(0.01)
        done = time.monotonic()
        while data_through(conn).get("bcb_sgs_monthly", 0.0) <= before:
            if time.monotonic() > until:
                raise RuntimeError("bcb_sgs_monthly did not cover a new extraction within 30 s")
            time.sleep(0.02)
        out.append(time.monotonic() - done)
    return out


def lake_files(data_dir):
    """Parquet files under curated/ and insights/ at the end."""
    counts = {}
    for zone in ("curated", "insights"):
        counts[zone] = sum(1 for _, _, files in os.walk(os.path.join(data_dir, zone))
                           for f in files if f.endswith(".parquet"))
    return counts


def anon_by_kind(pid):
    """Resident anonymous memory (kB) by kind, from /proc/<pid>/smaps: glibc's per-thread arenas (heaps at
    64 MB-aligned addresses), the main arena ([heap]), and the rest (DuckDB's jemalloc, stacks, mmaps)."""
    kinds, kind = {"glibc arenas": 0, "[heap]": 0, "other anonymous": 0}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                start, end = (int(x, 16) for x in head[0].split("-"))
                name = head[5] if len(head) > 5 else ""
                if name == "[heap]":
                    kind = "[heap]"
                elif name:
                    kind = None  # file-backed or [stack] etc.
                elif start % (64 << 20) == 0 and end - start <= (64 << 20):
                    kind = "glibc arenas"
                else:
                    kind = "other anonymous"
            elif kind and line.startswith("Rss:"):
                kinds[kind] += int(head[1])
    return kinds


def proc_kb(pid, name, keys):
    """{key: kB} from /proc/<pid>/<name> lines like 'VmRSS:   12345 kB'."""
    out = {}
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0])
    return out


class Load:
    """Paced load on its own connections; counts what it did and the first error it met."""

    def __init__(self, app, rate, qps):
        self.app, self.rate, self.qps = app, rate, qps
        self.stop = threading.Event()
        self.extractions = self.queries = 0
        self.error = None
        self.ids = []
        self.examples = [("bcb_sgs", "series", app.example("bcb_sgs", "series")),
                         ("openbrewerydb", "breweries", app.example("openbrewerydb", "breweries"))]
        self.threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                        for f in (self._extract, self._query)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _guard(self, fn):
        try:
            fn()
        except Exception as e:  # reported by the main thread; the load stops
            self.error = self.error or f"{fn.__name__}: {e}"
            self.stop.set()

    def _paced(self, per_second, step):
        """Calls step() per_second times a second on a fixed schedule (no catch-up bursts)."""
        period, next_at = 1.0 / per_second, time.monotonic()
        while not self.stop.is_set():
            step()
            next_at = max(next_at + period, time.monotonic() - period)
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def _extract(self):
        conn = Http(self.app.port)

        def step():
            source, endpoint, params = self.examples[self.extractions % 2]
            extraction_id = self.app.submit(source, endpoint, params, conn)
            self.app.status(extraction_id, conn)
            self.ids.append(extraction_id)
            self.extractions += 1
        self._paced(self.rate, step)

    def _query(self):
        conn = Http(self.app.port)
        sqls = ["SELECT count(*), avg(value) FROM bcb_sgs_series",
                "SELECT city, count(*) FROM openbrewerydb_breweries GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
                "SELECT date_trunc('minute', _ingested_at) m, count(*) FROM bcb_sgs_series GROUP BY 1 ORDER BY 1",
                None]  # a point lookup of a recent extraction
        if os.environ.get("APILAKE_RSS_QUERIES") == "count":  # bisection: the same views, no per-row working set
            sqls = ["SELECT count(*) FROM bcb_sgs_series", "SELECT count(*) FROM openbrewerydb_breweries"]

        def step():
            sql = sqls[self.queries % len(sqls)]
            if sql is None:
                recent = self.ids[-50] if len(self.ids) >= 50 else (self.ids[0] if self.ids else "none")
                sql = f"SELECT count(*) FROM openbrewerydb_breweries WHERE _extraction_id = '{recent}'"
            status, body = self.app.query(sql, conn)
            # Until the first files exist (~10 s) a view is missing (400); anything else is an error.
            if status != 200 and not (status == 400 and self.extractions < max(100, 10 * self.rate)):
                raise RuntimeError(f"query {status}: {body}")
            self.queries += 1
        self._paced(self.qps, step)


def main():
    seconds = float(os.environ.get("APILAKE_RSS_SECONDS", "180"))
    rate = float(os.environ.get("APILAKE_RSS_RATE", "20"))
    qps = float(os.environ.get("APILAKE_RSS_QPS", "5"))
    warmup = float(os.environ.get("APILAKE_RSS_WARMUP_S", "20"))
    samples_file = os.environ.get("APILAKE_RSS_SAMPLES")
    fresh_every = float(os.environ.get("APILAKE_RSS_FRESH_EVERY_S", "2"))
    rest_probes = int(os.environ.get("APILAKE_RSS_REST_PROBES", "3"))
    binary = default_binary()
    wd = work_dir("rss")
    app, ok = None, False
    try:
        app = Apilake(binary, wd)
        load = Load(app, rate, qps)
        samples = []  # (t, rss_kb, hwm_kb, anon_kb, file_kb)
        lags = {m: [] for m in FRESH_MODELS}  # seconds behind the wall clock, under load
        fresh_conn, next_fresh = Http(app.port), warmup
        anon_kinds = {}  # "after warm-up" / "at the end": anon_by_kind()
        t0 = time.monotonic()
        load.start()
        while time.monotonic() - t0 < seconds and not load.error:
            if app.proc.poll() is not None:
                raise RuntimeError(f"apilake exited (rc {app.proc.returncode}) under load; see {app.log.name}")
            s = proc_kb(app.pid, "status", ("VmRSS", "VmHWM", "RssAnon", "RssFile"))
            samples.append((time.monotonic() - t0, s["VmRSS"], s["VmHWM"], s["RssAnon"], s["RssFile"]))
            if samples[-1][0] >= warmup and not anon_kinds:
                anon_kinds["after warm-up"] = anon_by_kind(app.pid)
            if samples[-1][0] >= next_fresh:
                now, through = time.time(), data_through(fresh_conn)
                for m in FRESH_MODELS:
                    if m in through:
                        lags[m].append(now - through[m])
                next_fresh = samples[-1][0] + fresh_every
            time.sleep(1.0)
        load.finish()
        if load.error:
            raise RuntimeError(load.error)
        at_rest = rest_freshness(app, rest_probes) if rest_probes > 0 else []
        anon_kinds["at the end"] = anon_by_kind(app.pid)
        rollup = proc_kb(app.pid, "smaps_rollup", ("Rss", "Anonymous", "Shared_Clean", "Private_Clean", "Private_Dirty"))
        # The lake the load produced (how much data the process was serving queries over at the end).
        rows = {v: app.query(f"SELECT count(*) FROM {v}")[1]["rows"][0][0]
                for v in ("bcb_sgs_series", "openbrewerydb_breweries")}
        files = lake_files(app.data_dir)
        status, metrics = app.http.call("GET", "/metrics")
        refreshes = next((line.split()[1] for line in metrics.decode().splitlines()
                          if line.startswith("apilake_insight_refreshes_total ")), "?") if status == 200 else "?"
        if samples_file:
            with open(samples_file, "w") as f:
                f.writelines(" ".join(str(x) for x in s) + "\n" for s in samples)

        steady_samples = [s[1] for s in samples if s[0] >= warmup]
        anon = [s[3] for s in samples if s[0] >= warmup]
        if len(steady_samples) < 6:
            raise RuntimeError(f"too few samples after the {warmup:.0f} s warm-up: run longer (APILAKE_RSS_SECONDS)")
        third = len(steady_samples) // 3
        first, last = statistics.median(steady_samples[:third]), statistics.median(steady_samples[-third:])
        drift = (last - first) / first * 100.0
        # The same for the anonymous part alone (heap, arenas, DuckDB buffers): file-backed pages of the
        # binary and libduckdb are touched gradually as code paths run and are not growth of data.
        anon_first, anon_last = statistics.median(anon[:third]), statistics.median(anon[-third:])
        peak_mb, steady_mb = samples[-1][2] / 1024.0, last / 1024.0
        elapsed = samples[-1][0]
        print(f"rss: {elapsed:.0f} s, {load.extractions} extractions ({load.extractions / elapsed:.1f}/s), "
              f"{load.queries} queries ({load.queries / elapsed:.1f}/s); lake at the end: "
              + ", ".join(f"{k} {v} rows" for k, v in rows.items()), flush=True)
        print(f"rss: peak (VmHWM) {peak_mb:.1f} MB, steady (median last third) {steady_mb:.1f} MB, "
              f"first third {first / 1024:.1f} MB, drift {drift:+.1f} %, min {min(steady_samples) / 1024:.1f} MB, "
              f"max {max(steady_samples) / 1024:.1f} MB", flush=True)
        print(f"rss: anonymous (RssAnon) first third {anon_first / 1024:.1f} MB, last third {anon_last / 1024:.1f} MB "
              f"({(anon_last - anon_first) / anon_first * 100:+.1f} %); file-backed (RssFile) at the end "
              f"{samples[-1][4] / 1024:.1f} MB", flush=True)
        # The curve, to tell a cache filling to a bound (flattens) from growth with the lake (a line).
        step = float(os.environ.get("APILAKE_RSS_CURVE_S", "30"))
        curve = []
        for k in range(int(elapsed // step) + 1):
            window = [x for x in samples if k * step <= x[0] < (k + 1) * step]
            if window:
                curve.append(f"{k * step:.0f}s {statistics.median(x[1] for x in window) / 1024:.1f}/"
                             f"{statistics.median(x[3] for x in window) / 1024:.1f}")
        print(f"rss: curve, median VmRSS/RssAnon MB per {step:.0f} s: " + ", ".join(curve), flush=True)
        print(f"rss: files at the end: {files['curated']} curated Parquet, {files['insights']} insight Parquet; "
              f"insight refreshes run: {refreshes}", flush=True)
        for m, v in lags.items():
            if v:
                print(f"rss: freshness under load, {m}: data_through lags the clock by p50 "
                      f"{statistics.median(v):.2f} s, p90 {percentile(v, 90):.2f} s, max {max(v):.2f} s "
                      f"({len(v)} samples)", flush=True)
        if at_rest:
            print("rss: freshness at rest, bcb_sgs_monthly: extraction succeeded -> insight covers it in "
                  + ", ".join(f"{x:.2f}" for x in at_rest) + " s", flush=True)
        print("rss: anonymous by kind (MB), " + "; ".join(
            f"{when}: " + ", ".join(f"{k} {v / 1024:.1f}" for k, v in kinds.items()) for when, kinds in anon_kinds.items()),
            flush=True)
        print("rss: smaps_rollup at the end: " + ", ".join(f"{k} {v / 1024:.1f} MB" for k, v in rollup.items()),
              flush=True)
        row("RSS peak (apilake up, sustained load)", f"{peak_mb:.1f}", "", "MB", "< 200 MB",
            "yes" if peak_mb < 200 else "no")
        row("RSS steady (median, last third)", f"{steady_mb:.1f}", "", "MB", "< 200 MB",
            "yes" if steady_mb < 200 else "no")
        row(f"RSS drift over {elapsed:.0f} s (last vs first third)", f"{drift:+.1f}", "", "%", "±10 %",
            "yes" if abs(drift) <= 10 else "no")
        if at_rest:
            rest = statistics.median(at_rest)
            row("insight freshness at rest (succeeded → insight covers it, median)", f"{rest:.2f}", "", "s",
                "≤ 2 s", "yes" if rest <= 2 else "no")
        lag = lags[FRESH_MODELS[0]]
        if lag:
            row(f"insight freshness under load ({FRESH_MODELS[0]} data_through lag, p50 / max)",
                f"{statistics.median(lag):.2f} / {max(lag):.2f}", "", "s")
        ok = True
    finally:
        if app:
            app.stop()
        if not ok:
            print(f"rss: failed; logs kept in {wd}", file=sys.stderr)
        remove(wd, keep_on_error=not ok)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:
        print(f"rss: {e}", file=sys.stderr)
        sys.exit(1)
