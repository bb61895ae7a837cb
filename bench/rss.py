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
the end /proc/<pid>/smaps_rollup (anonymous vs file-backed) to tell heap growth from mapped files.
Targets: flat (|drift| ≤ 10 %), peak < 200 MB.

Env: APILAKE_RSS_SECONDS (180), APILAKE_RSS_RATE (20), APILAKE_RSS_QPS (5), APILAKE_RSS_WARMUP_S (20),
APILAKE_RSS_SAMPLES=FILE (write "t_s rss_kb hwm_kb anon_kb file_kb" lines), APILAKE_BINARY; the environment is passed
to apilake (e.g. MALLOC_ARENA_MAX=2 for an allocator experiment).
Prints a summary and `ROW` lines for scripts/bench.sh; exit 1 when the load or the process failed.
"""
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_latency_lib import Apilake, Http, default_binary, remove, row, work_dir  # noqa: E402


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

        def step():
            sql = sqls[self.queries % len(sqls)]
            if sql is None:
                recent = self.ids[-50] if len(self.ids) >= 50 else (self.ids[0] if self.ids else "none")
                sql = f"SELECT count(*) FROM openbrewerydb_breweries WHERE _extraction_id = '{recent}'"
            status, body = self.app.query(sql, conn)
            # Until the first files exist a view is missing (400); anything else is an error.
            if status != 200 and not (status == 400 and self.extractions < 100):
                raise RuntimeError(f"query {status}: {body}")
            self.queries += 1
        self._paced(self.qps, step)


def main():
    seconds = float(os.environ.get("APILAKE_RSS_SECONDS", "180"))
    rate = float(os.environ.get("APILAKE_RSS_RATE", "20"))
    qps = float(os.environ.get("APILAKE_RSS_QPS", "5"))
    warmup = float(os.environ.get("APILAKE_RSS_WARMUP_S", "20"))
    samples_file = os.environ.get("APILAKE_RSS_SAMPLES")
    binary = default_binary()
    wd = work_dir("rss")
    app, ok = None, False
    try:
        app = Apilake(binary, wd)
        load = Load(app, rate, qps)
        samples = []  # (t, rss_kb, hwm_kb, anon_kb, file_kb)
        t0 = time.monotonic()
        load.start()
        while time.monotonic() - t0 < seconds and not load.error:
            if app.proc.poll() is not None:
                raise RuntimeError(f"apilake exited (rc {app.proc.returncode}) under load; see {app.log.name}")
            s = proc_kb(app.pid, "status", ("VmRSS", "VmHWM", "RssAnon", "RssFile"))
            samples.append((time.monotonic() - t0, s["VmRSS"], s["VmHWM"], s["RssAnon"], s["RssFile"]))
            time.sleep(1.0)
        load.finish()
        if load.error:
            raise RuntimeError(load.error)
        rollup = proc_kb(app.pid, "smaps_rollup", ("Rss", "Anonymous", "Shared_Clean", "Private_Clean", "Private_Dirty"))
        # The lake the load produced (how much data the process was serving queries over at the end).
        rows = {v: app.query(f"SELECT count(*) FROM {v}")[1]["rows"][0][0]
                for v in ("bcb_sgs_series", "openbrewerydb_breweries")}
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
        print("rss: smaps_rollup at the end: " + ", ".join(f"{k} {v / 1024:.1f} MB" for k, v in rollup.items()),
              flush=True)
        row("RSS peak (apilake up, sustained load)", f"{peak_mb:.1f}", "", "MB", "< 200 MB",
            "yes" if peak_mb < 200 else "no")
        row("RSS steady (median, last third)", f"{steady_mb:.1f}", "", "MB", "< 200 MB",
            "yes" if steady_mb < 200 else "no")
        row(f"RSS drift over {elapsed:.0f} s (last vs first third)", f"{drift:+.1f}", "", "%", "±10 %",
            "yes" if abs(drift) <= 10 else "no")
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
