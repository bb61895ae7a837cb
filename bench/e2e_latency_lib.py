"""Shared by bench/e2e_latency.py and bench/rss.py: start `apilake up --demo` (the bundled replay as
upstream) on a free loopback port with its own data dir, optionally over a Pub/Sub emulator that this
module starts in its own process group, and talk to it over HTTP (stdlib only: these scripts run with
/usr/bin/python3 and need nothing installed).

Every process started here is stopped by its own pid (the emulator: by the process group it was
given), also when the script fails or is interrupted.
"""
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

EMULATOR = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Http:
    """One keep-alive connection to 127.0.0.1:port (reconnects once when the server closed it)."""

    def __init__(self, port, timeout=30):
        self.port, self.timeout, self.conn = port, timeout, None

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def json(self, method, path, body=None):
        status, raw = self.call(method, path, body)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, {"raw": raw.decode(errors="replace")}


class Emulator:
    """The Pub/Sub emulator on a free port, in its own process group (its launcher script + java)."""

    def __init__(self, log_dir):
        if not os.path.exists(EMULATOR):
            raise RuntimeError(f"Pub/Sub emulator not found at {EMULATOR} (scripts/setup.sh)")
        self.host = f"127.0.0.1:{free_port()}"
        self.log = open(os.path.join(log_dir, "emulator.log"), "wb")
        env = dict(os.environ, JAVA_OPTS="-Xmx1g -XX:MaxDirectMemorySize=2g")
        self.proc = subprocess.Popen([EMULATOR, "--host=127.0.0.1", "--port=" + self.host.split(":")[1]],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        until = time.monotonic() + 90
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Pub/Sub emulator exited during start-up; see {self.log.name}")
            try:
                c = http.client.HTTPConnection(*self.host.split(":"), timeout=2)
                c.request("GET", "/")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Pub/Sub emulator did not answer within 90 s; see {self.log.name}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self.log.close()


class Apilake:
    """`apilake up --demo` with a fresh data dir; `env` adds APILAKE_* settings (e.g. the Pub/Sub bus)."""

    def __init__(self, binary, work_dir, env=None, extra=()):
        self.port = free_port()
        self.data_dir = os.path.join(work_dir, "data")
        self.log = open(os.path.join(work_dir, "apilake.log"), "wb")
        full_env = dict(os.environ, GITHUB_TOKEN="demo-token-not-checked-by-the-replay", **(env or {}))
        self.proc = subprocess.Popen([binary, "up", "--demo", "--port", str(self.port), "--data-dir", self.data_dir,
                                      "--sources", sources_dir(), "--log-level", "warn", *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=full_env)
        self.http = Http(self.port)
        until = time.monotonic() + 60
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise RuntimeError(f"apilake exited during start-up (rc {self.proc.returncode}); see {self.log.name}")
            try:
                if self.http.call("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"apilake did not answer /healthz within 60 s; see {self.log.name}")

    @property
    def pid(self):
        return self.proc.pid

    def example(self, source, endpoint):
        status, body = self.http.json("GET", "/v1/sources")
        if status != 200:
            raise RuntimeError(f"GET /v1/sources: {status}")
        for s in body["sources"]:
            if s["name"] == source:
                for e in s["endpoints"]:
                    if e["name"] == endpoint:
                        return e["example"]
        raise RuntimeError(f"no example for {source}.{endpoint}")

    def submit(self, source, endpoint, params, conn=None):
        status, body = (conn or self.http).json("POST", "/v1/extractions",
                                                {"source": source, "endpoint": endpoint, "params": params})
        if status != 202:
            raise RuntimeError(f"POST /v1/extractions: {status} {body}")
        return body["id"]

    def status(self, extraction_id, conn=None):
        status, body = (conn or self.http).json("GET", "/v1/extractions/" + extraction_id)
        if status != 200:
            raise RuntimeError(f"GET /v1/extractions/{extraction_id}: {status} {body}")
        return body

    def query(self, sql, conn=None):
        """(status, body) of POST /v1/query; a view that does not exist yet is a 4xx, not an error here."""
        return (conn or self.http).json("POST", "/v1/query", {"sql": sql})

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()


def sources_dir():
    """The bundled definitions, or APILAKE_BENCH_SOURCES (e.g. a copy without insights, to isolate them)."""
    return os.environ.get("APILAKE_BENCH_SOURCES") or os.path.join(REPO, "sources")


def default_binary():
    """APILAKE_BINARY when set (it must be executable), else build-bench/apilake, else build/apilake."""
    chosen = os.environ.get("APILAKE_BINARY")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise RuntimeError(f"APILAKE_BINARY={chosen} is not an executable")
        return chosen
    for b in (os.path.join(REPO, "build-bench", "apilake"), os.path.join(REPO, "build", "apilake")):
        if os.access(b, os.X_OK):
            return b
    raise RuntimeError("apilake binary not found (set APILAKE_BINARY or run scripts/bench.sh)")


def work_dir(name):
    return tempfile.mkdtemp(prefix=f"apilake-bench-{name}-")


def remove(path, keep_on_error):
    if not keep_on_error:
        shutil.rmtree(path, ignore_errors=True)


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))
    return v[k]


def row(name, ours, anchor, unit, target="", met=""):
    """The line scripts/bench.sh collects: ROW, name, ours, anchor, unit[, target, met]."""
    print("\t".join(["ROW", name, ours, anchor, unit, target, met]), flush=True)
