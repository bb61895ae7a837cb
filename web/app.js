// The apilake dashboard: plain JS over the HTTP API, no build step. It polls
//   GET /v1/status (backlog, counters), GET /v1/extractions?limit=N, GET /v1/datasets,
//   GET /v1/deadletters, GET /v1/insights (+ /v1/insights/{name}?format=json when one changed),
// builds the extraction form from GET /v1/sources, and POSTs /v1/extractions.
// Everything from the server is written with textContent (never innerHTML): values are data.
"use strict";

const POLL_MS = 1500;
const state = {
  sources: [],          // [{source, endpoint}] in the order of the <select>
  lastStatus: null,     // previous /v1/status, for the curated/min rate
  rate: null,
  insightVersion: {},   // name -> refreshed_at of the chart on the page
  following: null,      // id of the extraction the form started
};

// ---- small helpers ---------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function duration(s) {
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

function num(n) { return n == null ? "–" : Number(n).toLocaleString("en-US"); }

function td(text, cls) { return el("td", cls ? { class: cls, text: String(text) } : { text: String(text) }); }

function fillBody(table, rows) {
  const body = document.querySelector(`#${table} tbody`);
  body.replaceChildren(...rows);
}

// GET as JSON; throws with the problem's detail on a non-2xx answer.
async function getJson(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error((body && (body.detail || body.title)) || `${path}: HTTP ${r.status}`);
  return body;
}

// One poller per panel: a failing panel says so and the others keep going.
function poll(fn, ms) {
  const run = async () => {
    try { await fn(); } catch (e) { console.warn(fn.name, e.message); }
    setTimeout(run, ms);
  };
  run();
}

// ---- pipeline status -------------------------------------------------------------------------------
async function refreshStatus() {
  const s = await getJson("/v1/status");
  document.getElementById("deployment").textContent = `bus: ${s.bus} · lake: ${s.lake}`;
  document.getElementById("stat-uptime").textContent = duration(s.uptime_seconds);
  document.getElementById("stat-pages").textContent = num(s.pages_published);
  document.getElementById("stat-curated").textContent = num(s.curate.records);
  document.getElementById("stat-dead").textContent = num(s.curate.deadlettered);
  // Throughput from two samples of the same counters /metrics exposes.
  const prev = state.lastStatus;
  if (prev && s.uptime_seconds > prev.uptime_seconds) {
    const perMin = ((s.curate.records - prev.curate.records) / (s.uptime_seconds - prev.uptime_seconds)) * 60;
    // Smoothed so one busy poll does not make the number jump about.
    state.rate = state.rate == null ? perMin : 0.7 * state.rate + 0.3 * perMin;
    document.getElementById("stat-rate").textContent = num(Math.round(state.rate));
  }
  state.lastStatus = s;
  const rows = s.backlog == null
    ? [el("tr", {}, el("td", { colspan: "2", class: "muted", text: "not counted by this bus (see its monitoring)" }))]
    : Object.entries(s.backlog).map(([sub, n]) => el("tr", {}, td(sub), td(num(n), "num")));
  fillBody("backlog", rows);
}

async function refreshExtractions() {
  const { extractions } = await getJson("/v1/extractions?limit=15");
  const rows = extractions.map((x) => {
    const done = x.curated + x.deadlettered;
    const bar = el("progress", { max: String(Math.max(x.records, 1)), value: String(Math.min(done, x.records)) });
    const status = el("td", { class: `status-${x.status}`, text: x.status });
    if (x.error) status.title = x.error;
    return el("tr", { "data-id": x.id },
      el("td", {}, el("code", { text: x.id.slice(0, 8) })), td(`${x.source}.${x.endpoint}`), status,
      td(num(x.pages), "num"), td(num(x.records), "num"), td(num(x.curated), "num"), td(num(x.deadlettered), "num"),
      el("td", {}, bar), td(x.created_at.replace("T", " ").replace(/\.\d+Z$|Z$/, "")));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "9", class: "muted", text: "none yet: start one above" })));
  fillBody("extraction-table", rows);
}

async function refreshDatasets() {
  const { datasets } = await getJson("/v1/datasets");
  const rows = datasets.map((d) => el("tr", {},
    td(d.name), td(num(d.rows), "num"), td(num(d.files), "num"), td(bytes(d.bytes), "num"),
    td(num(d.hours.length), "num"), td(d.last_update ? d.last_update.replace("T", " ").slice(0, 19) : "–")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "no datasets" })));
  fillBody("datasets", rows);
}

async function refreshDeadLetters() {
  const { datasets } = await getJson("/v1/deadletters");
  // The API counts per dataset, hour and reason; the panel sums the hours.
  const sums = new Map();
  for (const r of datasets) {
    const key = `${r.dataset}\u0000${r.reason}`;
    const s = sums.get(key) || { dataset: r.dataset, reason: r.reason, count: 0, pending: 0 };
    s.count += r.count;
    s.pending += r.pending;
    sums.set(key, s);
  }
  const rows = [...sums.values()].sort((a, b) => b.count - a.count).map((s) => el("tr", {},
    td(s.dataset), td(s.reason), td(num(s.count), "num"), td(num(s.pending), "num")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "no dead letters" })));
  fillBody("deadletter-table", rows);
}

// ---- insights: one chart each --------------------------------------------------------------------
const NUMERIC = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL.*)$/;
const TIMELIKE = /^(DATE|TIMESTAMP.*|TIME)$/;

// x: the first date/time column, else the first text column; y: the numeric columns.
// A time series' columns before x are its keys (GROUP BY series, month: the series code is not a
// measure): one line per key value and measure.
function chartShape(columns) {
  const x = columns.find((c) => TIMELIKE.test(c.type)) || columns.find((c) => !NUMERIC.test(c.type));
  const time = !!x && TIMELIKE.test(x.type);
  const keys = time ? columns.slice(0, columns.indexOf(x)) : [];
  const ys = columns.filter((c) => NUMERIC.test(c.type) && c !== x && !keys.includes(c));
  return { x, ys, keys, time };
}

const PALETTE = ["#2364aa", "#e07a1f", "#1e7b34", "#b3261e", "#7b4ea3", "#3a9ea5", "#8c6d1f"];

function insightCard(info) {
  let card = document.getElementById(`insight-${info.name}`);
  if (!card) {
    card = el("div", { class: "chart", id: `insight-${info.name}` },
      el("h3", { text: info.name }), el("p", { class: "muted description", text: info.description }),
      el("div", { class: "canvas-box" }, el("canvas", { "data-insight": info.name })),
      el("p", { class: "muted freshness" }));
    document.getElementById("insight-charts").append(card);
  }
  return card;
}

async function drawInsight(info) {
  const data = await getJson(`/v1/insights/${encodeURIComponent(info.name)}?format=json`);
  const { x, ys, keys, time } = chartShape(data.columns);
  const card = insightCard(info);
  const canvas = card.querySelector("canvas");
  if (!x || !ys.length) {
    card.querySelector(".freshness").textContent = "no numeric columns to chart";
    return;
  }
  // Time series read left to right; categories largest first, at most 30 bars.
  let rows = data.rows.slice();
  if (time) rows.sort((a, b) => String(a[x.name]).localeCompare(String(b[x.name])));
  else rows = rows.sort((a, b) => (b[ys[0].name] ?? 0) - (a[ys[0].name] ?? 0)).slice(0, 30);
  // Categories: label each bar with the text columns that tell rows apart (by_city: the city, not
  // the state every row shares); all of them when none does.
  let labelCols = [x];
  if (!time) {
    const text = data.columns.filter((c) => !NUMERIC.test(c.type));
    const varying = text.filter((c) => new Set(rows.map((r) => r[c.name])).size > 1);
    labelCols = varying.length ? varying : text;
  }
  const show = (v) => (v == null ? "(none)" : String(v).replace(/T00:00:00(\.0+)?Z?$/, ""));
  let labels = rows.map((r) => labelCols.map((c) => show(r[c.name])).join(" · "));
  // Time series: one x per distinct time, one line per (key value, measure), null where a key has no row.
  const groups = new Map();
  for (const r of rows) {
    const k = keys.map((c) => `${c.name} ${show(r[c.name])}`).join(", ");
    if (!groups.has(k)) groups.set(k, new Map());
    groups.get(k).set(show(r[x.name]), r);
  }
  if (time) labels = [...new Set(labels)];
  const series = time
    ? [...groups].flatMap(([k, byX]) => ys.map((c) => ({ label: k ? `${k}: ${c.name}` : c.name,
                                                          data: labels.map((l) => byX.get(l)?.[c.name] ?? null) })))
    : ys.map((c) => ({ label: c.name, data: rows.map((r) => r[c.name]) }));
  const datasets = series.map((d, i) => ({
    ...d,
    borderColor: PALETTE[i % PALETTE.length],
    backgroundColor: PALETTE[i % PALETTE.length] + (time ? "" : "cc"),
    pointRadius: labels.length > 60 ? 0 : 3,
    spanGaps: true,
  }));
  const existing = window.Chart.getChart(canvas);
  if (existing) {
    existing.data.labels = labels;
    existing.data.datasets = datasets;
    existing.update();
  } else {
    new window.Chart(canvas, {
      type: time ? "line" : "bar",
      data: { labels, datasets },
      options: { animation: false, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
                 plugins: { legend: { position: "bottom" } } },
    });
  }
  card.querySelector(".freshness").textContent =
    `${num(data.rows.length)} rows · data through ${data.data_through || "–"} · refreshed ${data.refreshed_at}`;
}

async function refreshInsights() {
  const { insights } = await getJson("/v1/insights");
  for (const info of insights) {
    // Only insights with data: the others would answer 404 ("no data yet").
    if (info.rows == null || state.insightVersion[info.name] === info.refreshed_at) continue;
    await drawInsight(info);
    state.insightVersion[info.name] = info.refreshed_at;
  }
  const box = document.getElementById("insight-charts");
  const placeholder = box.querySelector(":scope > p");
  const charts = box.querySelector(".chart");
  if (charts && placeholder) placeholder.remove();
  if (!charts && !placeholder) box.append(el("p", { class: "muted", text: "No insight has data yet: run an extraction." }));
}

// ---- the extraction form -------------------------------------------------------------------------
function inputFor(name, spec) {
  const attrs = { name, id: `param-${name}` };
  let input;
  if (spec.type === "enum" || spec.type === "boolean") {
    const values = spec.type === "enum" ? spec.enum : ["true", "false"];
    input = el("select", attrs);
    if (!spec.required) input.append(el("option", { value: "", text: "(not set)" }));
    for (const v of values) input.append(el("option", { value: v, text: v }));
  } else {
    const type = spec.type === "integer" || spec.type === "number" ? "number" : spec.type === "date" ? "date" : "text";
    input = el("input", { ...attrs, type });
    if (spec.type === "integer") input.step = "1";
    if (spec.type === "number") input.step = "any";
    if (spec.minimum != null && type !== "text") input.min = spec.minimum;
    if (spec.maximum != null && type !== "text") input.max = spec.maximum;
  }
  if (spec.default != null) input.value = String(spec.default);
  return input;
}

function hintFor(spec) {
  const parts = [spec.type === "list" ? `list of ${spec.items}, comma-separated` : spec.type];
  if (spec.required) parts.push("required");
  if (spec.enum && spec.type === "list") parts.push(`one of ${spec.enum.join(", ")}`);
  if (spec.minimum != null || spec.maximum != null) parts.push(`${spec.minimum ?? "…"} to ${spec.maximum ?? "…"}`);
  if (spec.pattern) parts.push(`pattern ${spec.pattern}`);
  if (spec.default != null) parts.push(`default ${spec.default}`);
  return parts.join(" · ") + (spec.description ? ` — ${spec.description}` : "");
}

function currentEndpoint() {
  return state.sources[Number(document.getElementById("source-select").value)];
}

function renderForm() {
  const { endpoint } = currentEndpoint();
  document.getElementById("source-description").textContent = endpoint.description;
  const fields = Object.entries(endpoint.params).map(([name, spec]) =>
    el("label", { "data-param": name }, el("span", { class: "name", text: name }), " ", inputFor(name, spec),
       el("span", { class: "hint", text: hintFor(spec) })));
  document.getElementById("param-fields").replaceChildren(...fields);
}

function fillExample() {
  const { endpoint } = currentEndpoint();
  for (const [name, value] of Object.entries(endpoint.example)) {
    const input = document.getElementById(`param-${name}`);
    if (input) input.value = Array.isArray(value) ? value.join(",") : String(value);
  }
}

// The form's values as the JSON params, checked against the declared constraints (the server
// checks again: this only saves a round trip and says which field is wrong).
function collectParams(endpoint) {
  const params = {};
  const errors = [];
  for (const [name, spec] of Object.entries(endpoint.params)) {
    const raw = document.getElementById(`param-${name}`).value.trim();
    if (raw === "") {
      if (spec.required && spec.default == null) errors.push(`${name} is required`);
      continue;
    }
    const type = spec.type === "list" ? spec.items : spec.type;
    const items = spec.type === "list" ? raw.split(",").map((s) => s.trim()).filter((s) => s) : [raw];
    const values = [];
    for (const item of items) {
      if ((type === "integer" && !/^-?\d+$/.test(item)) || (type === "number" && !Number.isFinite(Number(item)))) {
        errors.push(`${name}: '${item}' is not ${type === "integer" ? "an integer" : "a number"}`);
        continue;
      }
      if ((type === "integer" || type === "number") &&
          ((spec.minimum != null && Number(item) < Number(spec.minimum)) ||
           (spec.maximum != null && Number(item) > Number(spec.maximum)))) {
        errors.push(`${name}: ${item} is outside ${spec.minimum ?? "…"}..${spec.maximum ?? "…"}`);
        continue;
      }
      if (spec.enum && type === "enum" && !spec.enum.includes(item)) errors.push(`${name}: '${item}' is not one of ${spec.enum.join(", ")}`);
      if (spec.pattern) {
        let re = null;
        try { re = new RegExp(`^(?:${spec.pattern})$`); } catch { /* the server checks it */ }
        if (re && !re.test(item)) errors.push(`${name}: '${item}' does not match ${spec.pattern}`);
      }
      values.push(type === "integer" || type === "number" ? Number(item) : type === "boolean" ? item === "true" : item);
    }
    params[name] = spec.type === "list" ? values : values[0];
  }
  return { params, errors };
}

function showFollow(status, text, isError) {
  const follow = document.getElementById("follow");
  follow.dataset.status = status;
  follow.dataset.curated = "";
  follow.replaceChildren(el(isError ? "pre" : "p", { class: isError ? "error" : `status-${status}`, text }));
}

async function submitForm(event) {
  event.preventDefault();
  const { source, endpoint } = currentEndpoint();
  const { params, errors } = collectParams(endpoint);
  if (errors.length) return showFollow("invalid", errors.join("\n"), true);
  const headers = { "Content-Type": "application/json" };
  const key = document.getElementById("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  const button = document.getElementById("submit-button");
  button.disabled = true;
  // Clear the previous extraction's result at once (synchronously, before the first await), so the
  // panel never shows an old "succeeded" while the new request is in flight.
  state.following = null;
  showFollow("submitting", "starting the extraction…");
  try {
    const r = await fetch("/v1/extractions", {
      method: "POST", headers, body: JSON.stringify({ source: source.name, endpoint: endpoint.name, params }) });
    const body = await r.json().catch(() => ({}));
    if (r.status !== 202) {
      // The problem body as the server wrote it (RFC 9457): title, status, detail.
      const hint = r.status === 401 ? "\n(this server needs an API key: fill the API key field)" : "";
      return showFollow("failed", `${body.title || "HTTP " + r.status} (${r.status}): ${body.detail || ""}${hint}`, true);
    }
    state.following = body.id;
    showFollow("queued", `${body.id}: queued`);
    await follow(body.id);
  } catch (e) {
    showFollow("failed", e.message, true);
  } finally {
    button.disabled = false;
  }
}

// Follows one extraction until it ends, showing its progress.
async function follow(id) {
  for (;;) {
    const x = await getJson(`/v1/extractions/${encodeURIComponent(id)}`);
    if (state.following !== id) return;  // another submit took over
    const progress = `${x.pages} pages · ${num(x.records)} records · ${num(x.curated)} curated · ${num(x.deadlettered)} dead-lettered`;
    if (x.status === "failed") return showFollow("failed", `${id}: failed — ${x.error || "no detail"}`, true);
    showFollow(x.status, `${id}: ${x.status} — ${progress}`);
    // Done when fetched and every fetched record is curated or dead-lettered.
    if (x.status === "succeeded" && x.curated + x.deadlettered >= x.records) {
      document.getElementById("follow").dataset.curated = "1";
      return;
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

async function loadSources() {
  const { sources } = await getJson("/v1/sources");
  const select = document.getElementById("source-select");
  select.replaceChildren();
  for (const source of sources)
    for (const endpoint of source.endpoints) {
      select.append(el("option", { value: String(state.sources.length), text: `${source.name}.${endpoint.name}` }));
      state.sources.push({ source, endpoint });
    }
  select.addEventListener("change", renderForm);
  renderForm();
}

document.getElementById("extract-form").addEventListener("submit", submitForm);
document.getElementById("example-button").addEventListener("click", fillExample);
loadSources().catch((e) => showFollow("failed", `cannot load sources: ${e.message}`, true));
poll(refreshStatus, POLL_MS);
poll(refreshExtractions, POLL_MS);
poll(refreshDatasets, 5000);
poll(refreshDeadLetters, 5000);
poll(refreshInsights, 2000);
