#!/usr/bin/env bash
# The single bench entry point (issue 7): builds apilake and bench/*.cpp in build-bench/ (Release,
# -DAPILAKE_BENCH=ON), runs every part against its anchor in the same run, and prints ONE table —
# figure | ours | anchor | ratio | target | met? — also written to build-bench/bench-table.md. Raw
# outputs of each part are kept in build-bench/bench-out/. How to read it: docs/performance.md.
#   curate  bench/curate_bench (Google Benchmark, JSON): curator vs DuckDB read_ndjson→parquet, simdjson
#   api     bench/api_bench.py: wrk against apilake vs the FastAPI anchor (bench/anchors/)
#   bus     bench/bus_bench (Google Benchmark, JSON): SQLite bus vs the Pub/Sub emulator
#   e2e     bench/e2e_latency.py: POST → rows queryable, embedded bus and Pub/Sub emulator
#   rss     bench/rss.py: RSS of `apilake up` under a sustained load (APILAKE_RSS_SECONDS, default 180)
# A part that is not built or fails shows "not built" / "failed" in its rows; the others still run.
# Usage: bash scripts/bench.sh [part …]   (default: all parts, in the order above)
# Env: BENCH_SKIP_BUILD=1 (reuse build-bench/), BENCH_TABLE_ONLY=1 (only reprint the table from the
# outputs of the last run), and each part's own knobs (see the files above).
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="$here/build-bench"
out="$build/bench-out"
py=/usr/bin/python3   # python3-avro etc. live there; the python3 first on PATH may be a pyenv
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(curate api bus e2e rss)

# --- build ------------------------------------------------------------------------------------
# Release is -O3, where GCC 12 reports false -Wrestrict positives inside std::string (GCC PR 105651),
# so warnings are not errors here; the regular builds (RelWithDebInfo) keep -Werror.
mkdir -p "$out"
declare -A built=()
[ -n "${BENCH_TABLE_ONLY:-}" ] && BENCH_SKIP_BUILD=1
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  echo "bench: building in $build (Release)…" >&2
  if ! cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DAPILAKE_BENCH=ON -DAPILAKE_TESTS=OFF \
       -DAPILAKE_WERROR=OFF >"$out/build.log" 2>&1 ||
     ! cmake --build "$build" --target apilake -j"$(nproc)" >>"$out/build.log" 2>&1; then
    echo "bench: building apilake failed; see $out/build.log" >&2
    tail -20 "$out/build.log" >&2
    exit 1
  fi
fi
for src in "$here"/bench/*.cpp; do
  name="$(basename "$src" .cpp)"
  # One target at a time: a bench that does not compile (work in progress) only blanks its own rows.
  if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
    cmake --build "$build" --target "$name" -j"$(nproc)" >>"$out/build.log" 2>&1 ||
      echo "bench: $name did not build; see $out/build.log" >&2
  fi
  [ -x "$build/bench/$name" ] && built[$name]=1
done
export APILAKE_BINARY="$build/apilake"

# --- parts: each writes its raw output to $out/<part>.* and a status to $out/<part>.status ----------
run_part() {  # name, command…
  local name="$1"; shift
  echo "bench: $name…" >&2
  local t0=$SECONDS
  if "$@" >"$out/$name.out" 2>"$out/$name.err"; then echo ok >"$out/$name.status"
  else echo failed >"$out/$name.status"; echo "bench: $name failed; see $out/$name.err" >&2; tail -5 "$out/$name.err" >&2; fi
  echo "bench: $name took $((SECONDS - t0)) s" >&2
}
gbench() {  # name: a Google Benchmark binary, JSON to $out/<name>.json
  local name="$1"
  if [ -z "${built[$name]:-}" ]; then echo "not built" >"$out/$name.status"; return; fi
  rm -f "$out/$name.json"
  run_part "$name" "$build/bench/$name" --benchmark_out="$out/$name.json" --benchmark_out_format=json
}
[ -z "${BENCH_TABLE_ONLY:-}" ] && rm -f "$out"/*.status
for part in "${parts[@]}"; do
  [ -n "${BENCH_TABLE_ONLY:-}" ] && break
  case "$part" in
    curate) gbench curate_bench ;;
    bus)    gbench bus_bench ;;
    api)    if [ -f "$here/bench/api_bench.py" ]; then run_part api_bench "$py" "$here/bench/api_bench.py" --apilake "$APILAKE_BINARY"
            else echo "not built" >"$out/api_bench.status"; fi ;;
    e2e)    run_part e2e_latency "$py" "$here/bench/e2e_latency.py" ;;
    rss)    run_part rss "$py" "$here/bench/rss.py" ;;
    *) echo "bench: unknown part '$part' (curate api bus e2e rss)" >&2; exit 2 ;;
  esac
done

# --- the table ----------------------------------------------------------------------------------
"$py" - "$out" "$build/bench-table.md" "${parts[*]}" <<'PY'
import json, os, sys
out, table_path, parts = sys.argv[1], sys.argv[2], sys.argv[3].split()
rows = []  # (figure, ours, anchor, ratio, target, met)

def status(name):
    p = os.path.join(out, name + ".status")
    return open(p).read().strip() if os.path.exists(p) else "not run"

def blank(figures, why):
    for f in figures:
        rows.append((f, why, "", "", "", ""))

def fmt(v, unit=""):
    if v is None: return ""
    s = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3f}"
    return s + (" " + unit if unit else "")

def check(ratio, op, goal):
    if ratio is None: return ""
    return "yes" if (ratio >= goal if op == ">=" else ratio <= goal if op == "<=" else ratio < goal) else "no"

def gbench(name):
    st = status(name)
    if st != "ok":
        return None, st
    try:
        return {b["name"]: b for b in json.load(open(os.path.join(out, name + ".json")))["benchmarks"]}, "ok"
    except (OSError, ValueError, KeyError) as e:
        return None, f"failed ({e})"

def find(benches, prefix, *must):
    for n, b in benches.items():
        if n.split("/")[0] == prefix and all(m in n.split("/") for m in must):
            return b
    return None

# Curate hot path (bench/curate_bench): records/s and MB/s, ours vs DuckDB's plain conversion.
if "curate" in parts:
    b, st = gbench("curate_bench")
    figs = ["curate records/s, 1 thread (vs DuckDB ndjson→parquet)", "curate records/s, 2 threads (vs DuckDB)",
            "parse+validate MB/s (vs simdjson on-demand)"]
    if b is None:
        blank(figs, st)
    else:
        for t, f in ((1, figs[0]), (2, figs[1])):
            o, a = find(b, "BM_curate_stage", f"threads:{t}"), find(b, "BM_duckdb_ndjson", f"threads:{t}")
            if o and a:
                r = o["items_per_second"] / a["items_per_second"]
                rows.append((f, fmt(o["items_per_second"], "rec/s") + f" ({o['bytes_per_second'] / 1e6:.0f} MB/s)",
                             fmt(a["items_per_second"], "rec/s") + f" ({a['bytes_per_second'] / 1e6:.0f} MB/s)",
                             f"{r:.2f}x", "≥ 1.0x (stretch 1.5x)", check(r, ">=", 1.0)))
            else:
                blank([f], "case missing")
        o, a = find(b, "BM_validate"), find(b, "BM_simdjson_ondemand")
        if o and a:
            r = o["bytes_per_second"] / a["bytes_per_second"]
            rows.append((figs[2], fmt(o["bytes_per_second"] / 1e6, "MB/s"), fmt(a["bytes_per_second"] / 1e6, "MB/s"),
                         f"{r:.2f}x", "≥ 0.5x", check(r, ">=", 0.5)))
        else:
            blank([figs[2]], "case missing")

# API (bench/api_bench.py): ROW name ours anchor unit ratio p50 p99 ap50 ap99 cpu_us acpu_us [sys_us asys_us];
# FLOOR: the same for the no-op request (no target: it shows the least CPU per request either stack has).
if "api" in parts:
    st = status("api_bench")
    got, floor = [], []
    if st == "ok":
        for line in open(os.path.join(out, "api_bench.out")):
            f = line.rstrip("\n").split("\t")
            if f[0] in ("ROW", "FLOOR") and len(f) >= 12:
                (got if f[0] == "ROW" else floor).append(f[1:] + [""] * (13 - len(f[1:])))
    if not got:
        blank(["API accept, GET, full flow (vs FastAPI)"], st if st != "ok" else "no rows")

    def cpu_text(cpu, sys_us):
        return f"{float(cpu):.1f} µs" + (f" ({float(sys_us):.1f} kernel)" if sys_us else "")

    for name, ours, anchor, unit, ratio, p50, p99, ap50, ap99, cpu, acpu, sys_us, asys_us in (g[:13] for g in floor):
        rows.append((f"{name}: the HTTP + TCP floor", fmt(float(ours), unit), fmt(float(anchor), unit),
                     f"{float(ratio):.1f}x", "", ""))
        rows.append(("  CPU per no-op request", cpu_text(cpu, sys_us), cpu_text(acpu, asys_us),
                     f"1/{float(acpu) / float(cpu):.1f}", "", ""))
    for name, ours, anchor, unit, ratio, p50, p99, ap50, ap99, cpu, acpu, sys_us, asys_us in (g[:13] for g in got):
        full = name.startswith("full")
        goal = 20.0 if full else 10.0
        r = float(ratio)
        rows.append((name, fmt(float(ours), unit), fmt(float(anchor), unit), f"{r:.1f}x", f"≥ {goal:.0f}x",
                     check(r, ">=", goal)))
        c = float(cpu) / float(acpu) if float(acpu) > 0 else None
        rows.append((f"  CPU per request", cpu_text(cpu, sys_us), cpu_text(acpu, asys_us),
                     f"1/{1 / c:.1f}" if c else "", "" if full else "≤ 1/20", "" if full else check(c, "<=", 0.05)))
        rows.append((f"  p50 / p99 latency", f"{float(p50):.2f} / {float(p99):.2f} ms",
                     f"{float(ap50):.2f} / {float(ap99):.2f} ms", "", "" if full else "p99 < 5 ms",
                     "" if full else check(float(p99), "<", 5.0)))

# Bus (bench/bus_bench): SQLite bus vs the Pub/Sub emulator, 1 KB messages.
if "bus" in parts:
    b, st = gbench("bus_bench")
    figs = [("publish", "bus publish msg/s (SQLite vs Pub/Sub emulator)"),
            ("pull_ack", "bus pull+ack msg/s (SQLite vs emulator)"),
            ("round_trip", "bus round trip publish→pull→ack (SQLite vs emulator)")]
    if b is None:
        blank([f for _, f in figs], st)
    else:
        for case, f in figs:
            o, a = find(b, case, "sqlite"), find(b, case, "pubsub")
            if not (o and a):
                blank([f], "case missing")
            elif case == "round_trip":
                ol, al = 1e6 / o["items_per_second"], 1e6 / a["items_per_second"]
                rows.append((f, fmt(ol, "µs"), fmt(al, "µs"), f"1/{al / ol:.1f}", "", ""))
            else:
                r = o["items_per_second"] / a["items_per_second"]
                rows.append((f, fmt(o["items_per_second"], "msg/s"), fmt(a["items_per_second"], "msg/s"),
                             f"{r:.2f}x", "", ""))

# End to end and memory (bench/e2e_latency.py, bench/rss.py): ROW name ours anchor unit target met.
for part, name, figs in (("e2e", "e2e_latency", ["e2e POST→queryable p50/p99"]),
                         ("rss", "rss", ["RSS peak / steady / drift"])):
    if part not in parts:
        continue
    st = status(name)
    got = []
    if os.path.exists(os.path.join(out, name + ".out")):
        for line in open(os.path.join(out, name + ".out")):
            f = line.rstrip("\n").split("\t")
            if f[0] == "ROW" and len(f) >= 7:
                got.append(f[1:7])
    if not got:
        blank(figs, st if st != "ok" else "no rows")
    for fig, ours, anchor, unit, target, met in got:
        u, note = unit.split(" ")[0], unit.partition(" ")[2].strip(" ()")  # "s (anchor: flush floor)"
        ratio = f"{float(ours) / float(anchor):.2f}x" if anchor else ""
        anchor_cell = (f"{anchor} {u}" + (f" ({note.replace('anchor: ', '')})" if note else "")) if anchor else "—"
        rows.append((fig, f"{ours} {u}", anchor_cell, ratio, target, met))
    if got and st != "ok":  # e.g. the Pub/Sub mode failed after the embedded one reported
        blank([f"{name}: a mode failed"], st)

head = ("figure", "ours", "anchor", "ratio", "target", "met?")
lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
lines += ["| " + " | ".join(r) + " |" for r in rows]
text = "\n".join(lines) + "\n"
open(table_path, "w").write(text)
print(text, end="")
PY
echo "(table also in $build/bench-table.md; raw outputs in $out/)" >&2
