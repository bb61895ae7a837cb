#!/usr/bin/python3
"""API benchmark: apilake's HTTP API against the seed's FastAPI stack (bench/anchors/fastapi_app.py),
measured side by side in the same run on the same cores (issue 7, item 3).

  /usr/bin/python3 bench/api_bench.py [--apilake build/apilake] [--duration 5] [--runs 3] [--full-posts 3000]
                                      [--before OTHER_APILAKE] [--bus sqlite,pubsub]

--before: a second apilake binary (e.g. the last commit's) measured in the same run, scenario by
scenario right after --apilake, against the same anchor figure: a before/after that the machine's
load cannot fake. Its rows are marked "[before]" in the table; ROW lines are --apilake's only.

Scenarios (wrk -t2, as shared/notes/performance.md measured the anchor):
  accept   POST /v1/extractions, validated, recorded durably, 202 (-c 64). apilake: `apilake serve` with
           fetch_workers=0 (accept only: the extractions wait in the store for a process with workers).
  get      GET /v1/extractions/{id} over 256 existing ids (-c 64).
  floor    GET /healthz on both (a constant JSON body, c=64): the no-op request, what HTTP + TCP cost each
           stack before any work — the least CPU per request either can reach (FLOOR lines, no target).
  get1     the same GET with one busy thread on each side: wrk -t1 and apilake with one io thread (the anchor
           as in get: 2 workers, wrk -t2). Why: on 2 cores, wrk -t2 plus apilake's 2 io threads are 4 busy threads
           once apilake outruns the client; a descheduled thread's connections then wait a whole
           scheduler slice (~4 ms) and wrk counts that as latency (docs/performance.md, "GET p99: the
           client's scheduling"). One thread a side drives apilake about as fast and leaves the tail
           to the server.
  full     each extraction fetches one ~21 KB page from a local `apilake replay` and publishes it to an
           embedded SQLite bus (synchronous=FULL, one fsync per publish). The anchor does it inside the
           request (wrk -c 16, its extractions/s = its req/s); apilake accepts and runs them on its
           fetch workers: a batch of --full-posts POSTs, extractions/s = batch / (first created ..
           last finished); its p50/p99 are those of the accepting POSTs.
--bus pubsub (or sqlite,pubsub): the full flow also (or only) with `apilake serve` publishing to the
  Pub/Sub emulator (started here, JVM warmed up first), plus the emulator's own ceiling: raw REST
  publishes of 21 KB messages (the same page) in batches of 1, 10 and 100 on 2 keep-alive connections
  (apilake's publish_threads) to a topic with two subscriptions (as apilake's), --duration s each, and
  the emulator's CPU (its process tree) during both. The full flow runs with pubsub.ordering true (the
  default: one publish request per topic in flight) and false (the publisher's threads concurrently). Printed as a
  separate table (`PUBSUB` lines); no anchor row (the anchor publishes to SQLite only).
Per scenario: the median run (by req/s) of --runs, after a warm-up. CPU per request = utime+stime
delta of the server process tree (/proc/<pid>/stat) / requests served; wrk and the replay excluded.
Output: a table, and one machine-readable line per row:
  ROW\t<scenario>\t<ours>\t<anchor>\t<unit>\t<ratio>\t<ours p50 ms>\t<ours p99 ms>\t<anchor p50 ms>\t<anchor p99 ms>\t<ours cpu us/req>\t<anchor cpu us/req>\t<ours kernel us/req>\t<anchor kernel us/req>
  (FLOOR lines: the same fields for the floor scenario.) Kernel = stime, the system share of the CPU.
Exit status 0 when every scenario ran (targets are reported, not asserted: speed lives in bench/).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")
BODY = {"source": "benchpage", "endpoint": "issues", "params": {"repo": "widgets", "state": "all", "per_page": 10}}

SOURCE_YAML = """\
name: benchpage
description: one recorded ~21 KB page per extraction (bench/api_bench.py)
base_url: {base}
endpoints:
  - name: issues
    description: a page of GitHub-shaped issues
    path: /issues
    params:
      - name: repo
        type: string
        required: true
        pattern: "^[A-Za-z0-9._-]{{1,100}}$"
        description: repository name
      - name: state
        type: enum
        values: [open, closed, all]
        default: open
        description: which issues
      - name: per_page
        type: integer
        minimum: 1
        maximum: 100
        default: 30
        description: results per page
    pagination:
      kind: none
    records: ""
    schema:
      version: 1
      fields:
        - {{name: id, type: int64, required: true}}
        - {{name: title, type: string, required: true}}
        - {{name: state, type: string, required: true}}
        - {{name: created_at, type: timestamp, required: true}}
"""

REPLAY_YAML = """\
responses:
  - path: /issues
    query: {repo: widgets, state: all, per_page: 10}
    body_file: page.json
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} after {timeout} s")


def tree_pids(root):
    """root and its descendants (uvicorn --workers forks)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(d))
            except OSError:
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_split(root):
    """(user, system) CPU seconds of root's process tree: system is the kernel's share (TCP, epoll, I/O)."""
    user = system = 0
    for p in tree_pids(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])  # utime, stime: fields 14, 15 of stat
            system += int(fields[12])
        except OSError:
            pass
    return user / TICK, system / TICK


def cpu_seconds(root):
    return sum(cpu_split(root))


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def run_wrk(url, script, conns, duration, env=None, threads=2):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency"] + (["-s", script] if script else []) + [url]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True).stdout
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1)),
           "p50": to_ms(re.search(r"\n\s+50%\s+(\S+)", out).group(1)),
           "p99": to_ms(re.search(r"\n\s+99%\s+(\S+)", out).group(1)),
           "errors": 0}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] += sum(int(x) for x in m.groups())
    return res


def measured_wrk(pid, url, script, conns, duration, env=None, threads=2):
    u0, s0 = cpu_split(pid)
    r = run_wrk(url, script, conns, duration, env, threads)
    u1, s1 = cpu_split(pid)
    r["cpu_us"] = (u1 - u0 + s1 - s0) / max(r["requests"], 1) * 1e6
    r["sys_us"] = (s1 - s0) / max(r["requests"], 1) * 1e6
    return r


def median_run(runs):
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def post_ids(port, n):
    ids = []
    data = json.dumps(BODY).encode()
    for _ in range(n):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/extractions", data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            ids.append(json.loads(r.read())["id"])
    return ids


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, cmd, env=None, cwd=None, log=None):
        p = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.PIPE,
                             stderr=log or subprocess.DEVNULL, text=True, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--apilake", default=os.environ.get("APILAKE_BIN", os.path.join(ROOT, "build", "apilake")))
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario (the median is reported)")
    ap.add_argument("--full-posts", type=int, default=3000, help="extractions in apilake's full-flow batch")
    ap.add_argument("--http-threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--fetch-workers", type=int, default=32)
    ap.add_argument("--scenarios", default="floor,accept,get,get1,full")
    ap.add_argument("--before", help="another apilake binary, measured in the same run for a before/after")
    ap.add_argument("--bus", default="sqlite", help="full flow bus(es): sqlite, pubsub or sqlite,pubsub")
    args = ap.parse_args()
    buses = args.bus.split(",")
    if not buses or any(b not in ("sqlite", "pubsub") for b in buses):
        sys.exit(f"api_bench: --bus takes sqlite, pubsub or both, got '{args.bus}'")
    for b in [args.apilake] + ([args.before] if args.before else []):
        if not os.access(b, os.X_OK):
            sys.exit(f"api_bench: no apilake binary at {b} (--apilake, APILAKE_BIN or --before)")
    if not shutil.which("wrk"):
        sys.exit("api_bench: wrk is not installed (scripts/setup.sh)")
    scenarios = args.scenarios.split(",")

    tmp = tempfile.mkdtemp(prefix="apilake-api-bench-")
    procs = Procs()
    rows = []
    floor = []
    pubsub = None
    try:
        # The upstream: `apilake replay` serving one recorded ~21 KB page (a real GitHub-shaped page).
        replay_src = os.path.join(tmp, "replay-sources", "benchpage")
        os.makedirs(os.path.join(replay_src, "fixtures"))
        with open(os.path.join(replay_src, "source.yaml"), "w") as f:
            f.write(SOURCE_YAML.format(base="https://upstream.invalid/api"))
        with open(os.path.join(replay_src, "fixtures", "replay.yaml"), "w") as f:
            f.write(REPLAY_YAML)
        shutil.copy(os.path.join(ROOT, "sources", "github", "fixtures", "issues_widgets_page1.json"),
                    os.path.join(replay_src, "fixtures", "page.json"))
        replay = procs.start([args.apilake, "--log-level", "warn", "replay", "--sources",
                              os.path.dirname(replay_src), "--port", str(free_port())])
        base = replay.stdout.readline().split()[1]
        sources = os.path.join(tmp, "sources")
        os.makedirs(os.path.join(sources, "benchpage"))
        with open(os.path.join(sources, "benchpage", "source.yaml"), "w") as f:
            f.write(SOURCE_YAML.format(base=base))

        def start_ours(name, workers, binary=None, extra_env=None):
            port = free_port()
            data = os.path.join(tmp, f"ours-{name}" + ("-before" if binary else ""))
            env = {"APILAKE_HTTP_THREADS": str(args.http_threads), "APILAKE_FETCH_WORKERS": str(workers),
                   "APILAKE_LOG_LEVEL": "warn", **(extra_env or {})}
            p = procs.start([binary or args.apilake, "serve", "--data-dir", data, "--sources", sources, "--port", str(port)],
                            env=env, log=open(os.path.join(tmp, f"ours-{name}.log"), "w"))
            wait_http(f"http://127.0.0.1:{port}/healthz", p)
            return p, port, data

        def start_anchor(name, mode):
            port = free_port()
            db = os.path.join(tmp, f"anchor-{name}")
            os.makedirs(db)
            env = {"ANCHOR_MODE": mode, "ANCHOR_DB": db, "ANCHOR_SOURCES": sources}
            p = procs.start(["/usr/bin/python3", "-m", "uvicorn", "fastapi_app:app", "--app-dir",
                             os.path.join(HERE, "anchors"), "--port", str(port), "--workers", "2", "--loop",
                             "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"],
                            env=env, log=open(os.path.join(tmp, f"anchor-{name}.log"), "w"))
            wait_http(f"http://127.0.0.1:{port}/healthz", p)
            return p, port

        wrk_dir = os.path.join(HERE, "wrk")

        def bench_wrk(pid, port, path, script, conns, env=None, threads=2):
            url = f"http://127.0.0.1:{port}{path}"
            run_wrk(url, script, conns, 1, env, threads)  # warm-up
            runs = [measured_wrk(pid, url, script, conns, args.duration, env, threads) for _ in range(args.runs)]
            return median_run(runs)

        if any(x in scenarios for x in ("accept", "get", "get1", "floor")):
            ours, oport, _ = start_ours("accept", 0)
            anchor, aport = start_anchor("accept", "accept")
            servers = [("ours", ours, oport)]
            if args.before:
                before, bport, _ = start_ours("accept", 0, args.before)
                servers.append(("before", before, bport))
            post = os.path.join(wrk_dir, "post.lua")
            if "accept" in scenarios:
                got = {name: bench_wrk(p.pid, port, "/v1/extractions", post, 64) for name, p, port in servers}
                a = bench_wrk(anchor.pid, aport, "/v1/extractions", post, 64)
                rows.append(("accept POST /v1/extractions (c=64)", got["ours"], a, "req/s"))
                if args.before:
                    rows.append(("accept POST /v1/extractions (c=64) [before]", got["before"], a, "req/s"))
            def get_rows(label, servers, threads):
                got = {}
                for name, p, port in servers + [("anchor", anchor, aport)]:
                    ids = os.path.join(tmp, f"ids-{name}-{threads}.txt")
                    with open(ids, "w") as f:
                        f.write("\n".join(post_ids(port, 256)) + "\n")
                    # The anchor always with wrk -t2: its best (one wrk thread leaves one of its two
                    # workers with most connections, ~40 % fewer req/s), so the ratio stays conservative.
                    got[name] = bench_wrk(p.pid, port, "/", os.path.join(wrk_dir, "get.lua"), 64, {"IDS_FILE": ids},
                                          2 if name == "anchor" else threads)
                rows.append((label, got["ours"], got["anchor"], "req/s"))
                if args.before:
                    rows.append((label + " [before]", got["before"], got["anchor"], "req/s"))

            if "floor" in scenarios:
                # The no-op request (GET /healthz, a constant JSON body) on both stacks: what HTTP + TCP
                # cost each side before any work, i.e. the least CPU per request either can reach.
                got = {name: bench_wrk(p.pid, port, "/healthz", None, 64)
                       for name, p, port in servers[:1] + [("anchor", anchor, aport)]}
                floor.append(("no-op GET /healthz (c=64)", got["ours"], got["anchor"], "req/s"))
            if "get" in scenarios:
                get_rows("GET /v1/extractions/{id} (c=64)", servers, 2)
            if "get1" in scenarios:
                one = {"APILAKE_HTTP_THREADS": "1"}
                servers1 = [("ours", *start_ours("get1", 0, None, one)[:2])]
                if args.before:
                    servers1.append(("before", *start_ours("get1", 0, args.before, one)[:2]))
                get_rows("GET /v1/extractions/{id} (c=64, ours: 1 io thread, wrk -t1)", servers1, 1)
                servers += servers1
            for _, p, _ in servers:
                procs.stop(p)
            procs.stop(anchor)

        if "full" in scenarios and "pubsub" in buses:
            pubsub = full_pubsub(args, start_ours, procs, wrk_dir, tmp)
        if "full" in scenarios and "sqlite" in buses:
            anchor, aport = start_anchor("full", "full")
            a = bench_wrk(anchor.pid, aport, "/v1/extractions", os.path.join(wrk_dir, "post.lua"), 16)
            procs.stop(anchor)
            name = "full flow: fetch 21 KB + publish, extractions/s"
            rows.append((name, full_ours(args, start_ours, procs, wrk_dir), a, "extr/s"))
            if args.before:
                rows.append((name + " [before]", full_ours(args, start_ours, procs, wrk_dir, args.before), a,
                             "extr/s"))
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    print_table(rows, floor)
    if pubsub:
        print_pubsub(pubsub)
    return 0


def emulator_ceiling(emulator, seconds, page, batches=(1, 10, 100), conns=2):
    """Raw REST publishes of `page` (bytes) for each batch size, to a fresh topic with two subscriptions
    (as apilake's: archive, curate — the emulator keeps each message for both), deleted afterwards so
    its heap is freed: {batch: (msg/s, emulator CPU ms per message, emulator CPU in cores)}. Bodies are
    built once, so the client costs next to nothing."""
    import base64
    import http.client
    import threading
    host, port = emulator.host.split(":")
    data = base64.b64encode(page).decode()

    def admin(method, path, body=None):
        c = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            c.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            text = r.read()
            if r.status != 200:
                raise RuntimeError(f"emulator: {method} {path}: HTTP {r.status} {text[:200]!r}")
        finally:
            c.close()

    out = {}
    for batch in batches:
        name = f"ceiling-{free_port()}-{batch}"
        topic = f"/v1/projects/bench/topics/{name}"
        subs = [f"/v1/projects/bench/subscriptions/{name}-{s}" for s in ("archive", "curate")]
        admin("PUT", topic, {})
        for sub in subs:
            admin("PUT", sub, {"topic": topic[4:]})
        body = json.dumps({"messages": [{"data": data, "attributes": {"n": str(i)}} for i in range(batch)]}).encode()
        sent, dropped, errors, stop = [0] * conns, [0] * conns, [], threading.Event()

        def publisher(k):
            con = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                while not stop.is_set():
                    try:
                        con.request("POST", topic + ":publish", body=body, headers={"Content-Type": "application/json"})
                        r = con.getresponse()
                        r.read()
                    except (http.client.HTTPException, ConnectionError) as e:
                        # Emulator 0.8.20 now and then drops a connection under large bodies: counted, and
                        # the publisher reconnects (the messages of that request are not counted as sent).
                        dropped[k] += 1
                        con.close()
                        if dropped[k] > 20:
                            raise RuntimeError(f"publish: {dropped[k]} connections dropped: {e}")
                        continue
                    if r.status != 200:
                        raise RuntimeError(f"publish: HTTP {r.status}")
                    sent[k] += batch
            except Exception as e:  # reported below
                errors.append(e)
            finally:
                con.close()

        threads = [threading.Thread(target=publisher, args=(k,)) for k in range(conns)]
        c0, t0 = cpu_seconds(emulator.proc.pid), time.monotonic()
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(60)
        wall, cpu = time.monotonic() - t0, cpu_seconds(emulator.proc.pid) - c0
        for sub in subs:
            admin("DELETE", sub)
        admin("DELETE", topic)
        if errors:
            raise RuntimeError(f"emulator ceiling, batch {batch}: {errors[0]}")
        n = sum(sent)
        if sum(dropped):
            print(f"note: emulator ceiling, batch {batch}: {sum(dropped)} requests dropped by the emulator", flush=True)
        out[batch] = (n / wall, cpu / max(n, 1) * 1e3, cpu / wall)
    return out


def full_pubsub(args, start_ours, procs, wrk_dir, tmp):
    """The full flow with `apilake serve` publishing to the Pub/Sub emulator, and the emulator's own publish
    ceiling for the same 21 KB page. Returns the figures print_pubsub prints."""
    from e2e_latency_lib import Emulator
    page = open(os.path.join(ROOT, "sources", "github", "fixtures", "issues_widgets_page1.json"), "rb").read()
    # A fresh emulator per group (it keeps every message and ~64 KB of direct memory per publish request:
    # shared/notes/pubsub.md), each warmed up first: the JVM is slow for its first ~45 s under load.
    emulator = Emulator(tmp)
    try:
        emulator_ceiling(emulator, 10, page, batches=(10,))
        ceiling = emulator_ceiling(emulator, args.duration, page)
    finally:
        emulator.stop()
    emulator = Emulator(tmp)
    try:
        emulator_ceiling(emulator, 10, page, batches=(10,))
        full = {}
        # pubsub.ordering (the default) keeps one publish request per topic in flight; without it the
        # publisher's threads send concurrently: the two show whether apilake or the emulator is the limit.
        for ordering in ("true", "false"):
            env = {"APILAKE_BUS_KIND": "pubsub", "APILAKE_PUBSUB_PROJECT": "bench",
                   "APILAKE_PUBSUB_ENDPOINT": "http://" + emulator.host, "APILAKE_PUBSUB_ORDERING": ordering}
            full[ordering] = full_ours(
                args, lambda name, workers, binary=None, env=env, o=ordering:
                start_ours(f"{name}-pubsub-ordering-{o}", workers, binary, env),
                procs, wrk_dir, cpu_pids=[emulator.proc.pid])
    finally:
        emulator.stop()
    return {"page_kb": len(page) / 1024, "ceiling": ceiling, "full": full}


def print_pubsub(r):
    print(f"\nFull flow on the Pub/Sub emulator ({r['page_kb']:.1f} KB page per extraction):")
    print("| figure | value | emulator CPU | emulator CPU per message |")
    print("|---|---|---|---|")
    for ordering, f in r["full"].items():
        print(f"| apilake serve → emulator (pubsub.ordering={ordering}), extractions/s | {f['rps']:,.0f} extr/s "
              f"(apilake {f['cpu_us']:.0f} us/extr) | {f['other_cpu_cores']:.2f} cores | {f['other_cpu_us'] / 1e3:.2f} ms |")
    for batch, (rate, cpu_ms, cores) in r["ceiling"].items():
        print(f"| emulator raw publish, {batch} × {r['page_kb']:.0f} KB per request, 2 connections | {rate:,.0f} msg/s "
              f"| {cores:.2f} cores | {cpu_ms:.2f} ms |")
    for batch, (rate, cpu_ms, cores) in r["ceiling"].items():
        print(f"PUBSUB\tceiling\t{batch}\t{rate:.1f}\t{cpu_ms:.3f}\t{cores:.3f}")
    for ordering, f in r["full"].items():
        print(f"PUBSUB\tfull\tordering={ordering}\t{f['rps']:.1f}\t{f['cpu_us']:.2f}\t{f['other_cpu_us']:.2f}\t"
              f"{f['other_cpu_cores']:.3f}\t{f['p50']:.3f}\t{f['p99']:.3f}")
    sys.stdout.flush()


def full_ours(args, start_ours, procs, wrk_dir, binary=None, cpu_pids=()):
    """A batch of POSTs; apilake's fetch workers fetch and publish each; timed from the first accepted
    extraction to the last finished one (read from its extraction store). cpu_pids: other process trees
    (the Pub/Sub emulator) whose CPU over each run is reported as other_cpu_us / other_cpu_cores."""
    ours, oport, data = start_ours("full", args.fetch_workers, binary)
    # Warm-up: a few extractions through the whole path (connections, statements, caches).
    post_ids(oport, 20)
    db = os.path.join(data, "_state", "extractions.db")

    def pending(con):
        return con.execute("SELECT count(*) FROM extractions WHERE status IN ('queued','running')").fetchone()[0]

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    while pending(con):
        time.sleep(0.05)
    runs = []
    for _ in range(args.runs):
        (before,) = con.execute("SELECT coalesce(max(created_us), 0) FROM extractions").fetchone()
        u0, s0 = cpu_split(ours.pid)
        o0, t0 = sum(cpu_seconds(p) for p in cpu_pids), time.monotonic()
        per_thread = max(args.full_posts // 2, 1)
        w = run_wrk(f"http://127.0.0.1:{oport}/v1/extractions", os.path.join(wrk_dir, "post_n.lua"), 16, 60,
                    {"POST_LIMIT": str(per_thread)})
        while pending(con):
            time.sleep(0.02)
        u1, s1 = cpu_split(ours.pid)
        cpu = u1 - u0 + s1 - s0
        other, wall = sum(cpu_seconds(p) for p in cpu_pids) - o0, time.monotonic() - t0
        n, ok, first, last = con.execute(
            "SELECT count(*), sum(status = 'succeeded'), min(created_us), max(finished_us) FROM extractions"
            " WHERE created_us > ?", (before,)).fetchone()
        if ok != n:
            raise RuntimeError(f"full flow: {n - ok} of {n} extractions failed (see the serve log)")
        rps = n / ((last - first) / 1e6)
        runs.append({"rps": rps, "requests": n, "p50": w["p50"], "p99": w["p99"], "errors": w["errors"],
                     "cpu_us": cpu / n * 1e6, "sys_us": (s1 - s0) / n * 1e6, "other_cpu_us": other / n * 1e6, "other_cpu_cores": other / wall})
    con.close()
    procs.stop(ours)
    return median_run(runs)


def print_table(rows, floor=()):
    head = ("scenario", "ours", "anchor", "ratio", "ours p50/p99 ms", "anchor p50/p99 ms", "CPU/req ours (kernel)",
            "CPU/req anchor (kernel)", "CPU ratio")
    lines = []
    for name, o, a, unit in list(rows) + list(floor):
        lines.append((name, f"{o['rps']:,.0f} {unit}", f"{a['rps']:,.0f} {unit}", f"{o['rps'] / a['rps']:.1f}x",
                      f"{o['p50']:.2f} / {o['p99']:.2f}", f"{a['p50']:.2f} / {a['p99']:.2f}",
                      f"{o['cpu_us']:.1f} us ({o.get('sys_us', 0):.1f})", f"{a['cpu_us']:.1f} us ({a.get('sys_us', 0):.1f})",
                      f"1/{a['cpu_us'] / o['cpu_us']:.1f}"))
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for line in lines:
        print("| " + " | ".join(line) + " |")
    for name, o, a, unit in list(rows) + list(floor):
        if o["errors"] or a["errors"]:
            print(f"note: {name}: non-2xx/socket errors ours {o['errors']}, anchor {a['errors']}")
    # ROW: a scenario with a target. FLOOR: the no-op request, for reading the others (no target).
    for tag, group in (("ROW", rows), ("FLOOR", floor)):
        for name, o, a, unit in group:
            if name.endswith("[before]"):
                continue
            print(tag + "\t" + "\t".join([name, f"{o['rps']:.1f}", f"{a['rps']:.1f}", unit, f"{o['rps'] / a['rps']:.2f}",
                                            f"{o['p50']:.3f}", f"{o['p99']:.3f}", f"{a['p50']:.3f}", f"{a['p99']:.3f}",
                                            f"{o['cpu_us']:.2f}", f"{a['cpu_us']:.2f}", f"{o.get('sys_us', 0):.2f}",
                                            f"{a.get('sys_us', 0):.2f}"]))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
