"""The seed's stack doing what apilake's API does: the FastAPI anchor of bench/api_bench.py.

Run it the way the seed ran (Debian's python3-fastapi 0.92 / uvicorn 0.17 / uvloop / httptools):
  ANCHOR_SOURCES=<dir of source definitions> ANCHOR_DB=<dir> ANCHOR_MODE=accept|full \
  /usr/bin/python3 -m uvicorn fastapi_app:app --app-dir bench/anchors --workers 2 --loop uvloop --http httptools

Endpoints and validation match apilake's (docs: README / api.cpp):
  POST /v1/extractions {"source", "endpoint"?, "params"?}  -> 202 {"id","status":"queued"} + Location
      400 on bad JSON / bad params (pattern, enum, integer bounds, unknown or missing params),
      404 on unknown source or endpoint.
  GET /v1/extractions/{id}                                 -> 200 the stored record, 404 unknown
Durability, like ours: every accepted extraction is INSERTed into SQLite (WAL, synchronous=NORMAL,
the setting of apilake's extraction store: survives a process crash) before the 202.
ANCHOR_MODE=full: before the 202 the request also fetches the endpoint's page from the upstream
(the same local `apilake replay`) over a keep-alive HTTP/1.1 connection pool, and publishes it to an
embedded bus: a SQLite table in WAL with synchronous=FULL, as apilake's embedded bus (one fsync per
publish). That is the seed's design (fetch and publish inline in the request).
"""

import asyncio
import json
import os
import re
import secrets
import sqlite3
import time
import urllib.parse
from typing import Any, Dict

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

MODE = os.environ.get("ANCHOR_MODE", "accept")
DB_DIR = os.environ["ANCHOR_DB"]
SOURCES_DIR = os.environ["ANCHOR_SOURCES"]


def load_sources(root: str) -> Dict[str, dict]:
    out = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "source.yaml")
        if os.path.exists(path):
            with open(path) as f:
                s = yaml.safe_load(f)
            for ep in s["endpoints"]:
                for p in ep.get("params", []):
                    if "pattern" in p:
                        p["_re"] = re.compile(p["pattern"])
            out[s["name"]] = s
    return out


SOURCES = load_sources(SOURCES_DIR)

# One connection per worker process (uvicorn --workers forks processes); WAL lets them write in turn.
store = sqlite3.connect(os.path.join(DB_DIR, "extractions.db"), isolation_level=None, check_same_thread=False)
store.execute("PRAGMA journal_mode=WAL")
store.execute("PRAGMA synchronous=NORMAL")
store.execute("PRAGMA busy_timeout=5000")
store.execute(
    "CREATE TABLE IF NOT EXISTS extractions (id TEXT PRIMARY KEY, source TEXT NOT NULL, endpoint TEXT NOT NULL,"
    " params TEXT NOT NULL, status TEXT NOT NULL, pages INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL"
    " DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', created_us INTEGER NOT NULL,"
    " finished_us INTEGER NOT NULL DEFAULT 0)")
bus = None
if MODE == "full":
    bus = sqlite3.connect(os.path.join(DB_DIR, "bus.db"), isolation_level=None, check_same_thread=False)
    bus.execute("PRAGMA journal_mode=WAL")
    bus.execute("PRAGMA synchronous=FULL")
    bus.execute("PRAGMA busy_timeout=5000")
    bus.execute("CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
                " dedup_key TEXT UNIQUE, attributes TEXT NOT NULL, data BLOB NOT NULL, published_us INTEGER NOT NULL)")

app = FastAPI()


def problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail},
                        status_code=status, media_type="application/problem+json")


class BadParam(Exception):
    pass


def validate_params(ep: dict, given: Dict[str, Any]) -> Dict[str, str]:
    specs = {p["name"]: p for p in ep.get("params", [])}
    for k in given:
        if k not in specs:
            raise BadParam(f"unknown parameter '{k}'")
    out = {}
    for name, p in specs.items():
        v = given.get(name)
        if v is None:
            if "default" in p:
                out[name] = str(p["default"])
            elif p.get("required"):
                raise BadParam(f"missing required parameter '{name}'")
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        v = str(v)
        t = p.get("type", "string")
        if t == "integer":
            try:
                n = int(v)
            except ValueError:
                raise BadParam(f"parameter '{name}' must be an integer")
            if "minimum" in p and n < p["minimum"] or "maximum" in p and n > p["maximum"]:
                raise BadParam(f"parameter '{name}' is out of range")
        elif t == "enum" and v not in p["values"]:
            raise BadParam(f"parameter '{name}' must be one of {p['values']}")
        if "_re" in p and not p["_re"].search(v):
            raise BadParam(f"parameter '{name}' does not match {p['pattern']}")
        out[name] = v
    return out


class Upstream:
    """A small keep-alive HTTP/1.1 GET client pool (the seed's own client; no httpx on Debian 12 here)."""

    def __init__(self):
        self.idle = []

    async def get(self, url: str) -> bytes:
        u = urllib.parse.urlsplit(url)
        conn = self.idle.pop() if self.idle else None
        if conn is None:
            conn = await asyncio.open_connection(u.hostname, u.port or 80)
        reader, writer = conn
        target = u.path + ("?" + u.query if u.query else "")
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {u.netloc}\r\nAccept: application/json\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = None
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if length is None:
            writer.close()
            raise RuntimeError("upstream answered without Content-Length")
        body = await reader.readexactly(length)
        self.idle.append(conn)
        if status != 200:
            raise RuntimeError(f"HTTP {status} from {url}")
        return body


upstream = Upstream()


def page_url(source: dict, ep: dict, params: Dict[str, str]) -> str:
    path = ep["path"]
    specs = {p["name"]: p for p in ep.get("params", [])}
    query = dict(ep.get("query") or {})
    for k, v in params.items():
        if specs[k].get("in") == "path":
            path = path.replace("{" + k + "}", urllib.parse.quote(v, safe=""))
        else:
            query[k] = v
    return source["base_url"].rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")


@app.post("/v1/extractions")
async def create_extraction(request: Request):
    try:
        body = json.loads(await request.body())
    except ValueError as e:
        return problem(400, "Bad Request", f"request body is not valid JSON: {e}")
    if not isinstance(body, dict):
        return problem(400, "Bad Request", "request body must be a JSON object")
    name = body.get("source")
    if not isinstance(name, str):
        return problem(400, "Bad Request", "\"source\" is required and must be a string")
    source = SOURCES.get(name)
    if source is None:
        return problem(404, "Not Found", f"unknown source '{name}' (see GET /v1/sources)")
    ep_name = body.get("endpoint")
    eps = source["endpoints"]
    if ep_name is None:
        if len(eps) != 1:
            return problem(400, "Bad Request", f"source '{name}' has several endpoints")
        ep = eps[0]
    else:
        ep = next((e for e in eps if e["name"] == ep_name), None)
        if ep is None:
            return problem(404, "Not Found", f"source '{name}' has no endpoint '{ep_name}'")
    given = body.get("params") or {}
    if not isinstance(given, dict):
        return problem(400, "Bad Request", "\"params\" must be a JSON object")
    try:
        params = validate_params(ep, given)
    except BadParam as e:
        return problem(400, "Bad Request", str(e))
    ex_id = secrets.token_hex(16)
    now = int(time.time() * 1e6)
    status, pages, records, nbytes, finished = "queued", 0, 0, 0, 0
    if MODE == "full":
        url = page_url(source, ep, params)
        try:
            data = await upstream.get(url)
        except Exception as e:  # the seed failed the extraction, not the request
            store.execute("INSERT INTO extractions (id, source, endpoint, params, status, error, created_us)"
                          " VALUES (?,?,?,?,?,?,?)", (ex_id, name, ep["name"], json.dumps(params), "failed", str(e), now))
            return problem(502, "Bad Gateway", str(e))
        parsed = json.loads(data)  # record count, as ours does for progress
        records = len(parsed) if isinstance(parsed, list) else 1
        attributes = json.dumps({"source": name, "endpoint": ep["name"], "extraction_id": ex_id, "page": "1",
                                 "url": url, "content_type": "application/json"})
        bus.execute("INSERT OR IGNORE INTO messages (topic, dedup_key, attributes, data, published_us) VALUES"
                    " (?,?,?,?,?)", ("pages", ex_id + ":1", attributes, data, int(time.time() * 1e6)))
        status, pages, nbytes, finished = "succeeded", 1, len(data), int(time.time() * 1e6)
    store.execute("INSERT INTO extractions (id, source, endpoint, params, status, pages, records, bytes, created_us,"
                  " finished_us) VALUES (?,?,?,?,?,?,?,?,?,?)",
                  (ex_id, name, ep["name"], json.dumps(params), status, pages, records, nbytes, now, finished))
    return JSONResponse({"id": ex_id, "status": status}, status_code=202,
                        headers={"Location": f"/v1/extractions/{ex_id}"})


@app.get("/v1/extractions/{ex_id}")
async def get_extraction(ex_id: str):
    row = store.execute("SELECT id, source, endpoint, params, status, pages, records, bytes, error, created_us,"
                        " finished_us FROM extractions WHERE id = ?", (ex_id,)).fetchone()
    if row is None:
        return problem(404, "Not Found", f"no such extraction: {ex_id}")
    out = {"id": row[0], "source": row[1], "endpoint": row[2], "params": json.loads(row[3]), "status": row[4],
           "pages": row[5], "records": row[6], "bytes": row[7],
           "created_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(row[9] / 1e6)) + "Z"}
    if row[10]:
        out["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(row[10] / 1e6)) + "Z"
    if row[8]:
        out["error"] = row[8]
    return out


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}

