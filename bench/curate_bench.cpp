// The curate hot path against its anchors, on the same generated records, in the same run (issue 7,
// item 2; ratios only: the machine is shared and noisy).
//   simdjson_ondemand  — the ceiling: one on-demand parse of every page touching every value
//                        (strings unescaped, numbers parsed), nothing else
//   simdjson_dom       — the same with simdjson's DOM parser (run-time CPU dispatch), for reference
//   validate           — records selected and validated (RecordValidator, the curator's own path),
//                        no sink: the "parse + validate" stage
//   validate_legacy    — the same through select_records' strings (the path before issue 7)
//   curate_stage       — Curator::stage() on all pages as one batch: rows to Parquet (zstd) + dead
//                        letters, staged files removed after each iteration
//   duckdb_ndjson      — DuckDB read_ndjson(columns=…) → COPY (FORMAT parquet, COMPRESSION zstd) over
//                        the same records as one NDJSON file (invalid rows ignored), threads=1 and 2
// Each reports items_per_second = records/s and bytes_per_second = input bytes/s (page bytes; the
// NDJSON file for DuckDB, which holds the same records without the page wrappers).
// The input: GitHub-issue-like records (ids, strings with escapes, nested user object, labels list of
// objects, ISO timestamps, nullable fields), in pages of ~1 KB to ~1 MB, ~5 % invalid records of
// several kinds (bad number text, missing required, bad timestamp, value outside the enum, labels not
// a list, a record that is not an object), from a fixed seed. APILAKE_BENCH_CURATE_RECORDS sets the
// record count (default 12000, ~10 MB).
// Usage: build/bench/curate_bench [--benchmark_filter=...]
// Case names are stable (the bench table uses them): BM_simdjson_ondemand, BM_simdjson_dom,
// BM_validate, BM_validate_legacy, BM_curate_stage/threads:1, BM_curate_stage/real_time/threads:2,
// BM_duckdb_ndjson/threads:1, BM_duckdb_ndjson/threads:2/real_time. Single-thread rates are per CPU
// second of the benchmark thread (the machine is shared); the two-thread ones per wall second.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "curate/curator.h"
#include "curate/schema.h"
#include "definition/records.h"
#include "duck/duck.h"

namespace fs = std::filesystem;
using namespace apilake;

namespace {

// Deterministic on every platform (std distributions are implementation-defined).
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

const char* kWords[] = {"crash", "when", "parsing", "nested", "fields", "timeout", "on", "large", "pages", "fix",
                        "the", "retry", "loop", "añadir", "soporte", "für", "Übersicht", "utf-8", "ok", "regression"};

std::string words(Rng& r, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += kWords[r.below(std::size(kWords))];
  }
  return s;
}

std::string iso(Rng& r) {
  return fmt::format("\"20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z\"", 20 + r.below(6), 1 + r.below(12), 1 + r.below(28),
                     r.below(24), r.below(60), r.below(60));
}

std::string user(Rng& r) {
  const uint64_t id = 1000 + r.below(900000);
  return fmt::format(R"({{"login":"user{}","id":{},"node_id":"MDQ6VXNlcj{}","type":"User","site_admin":{},)"
                     R"("avatar_url":"https://avatars.example.com/u/{}?v=4"}})",
                     id, id, id, r.below(20) == 0 ? "true" : "false", id);
}

// One record; kind 0 = valid, 1..6 = the invalid kinds.
std::string record(Rng& r, uint64_t id, int kind) {
  if (kind == 6) return std::to_string(id);  // not an object
  std::string labels = "[";
  const int nl = static_cast<int>(r.below(4));
  static const char* kLabels[] = {"bug", "enhancement", "good first issue", "help wanted", "question"};
  for (int i = 0; i < nl; ++i) {
    if (i) labels += ',';
    labels += fmt::format(R"({{"id":{},"name":"{}","color":"{:06x}","default":{}}})", 100 + r.below(50),
                          kLabels[r.below(5)], r.below(0xffffff), r.below(2) ? "true" : "false");
  }
  labels += ']';
  const bool closed = r.below(3) == 0;
  std::string o = "{";
  o += kind == 1 ? fmt::format(R"("id":"x{}",)", id) : fmt::format(R"("id":{},)", id);
  o += fmt::format(R"("node_id":"MDU6SXNzdWU{}","number":{},)", id, id % 100000);
  if (kind != 2) o += fmt::format(R"("title":"{}",)", words(r, 3 + static_cast<int>(r.below(8))));
  o += fmt::format(R"("state":"{}",)", kind == 4 ? "reopened" : closed ? "closed" : "open");
  o += fmt::format(R"("locked":{},"comments":{},)", r.below(10) == 0 ? "true" : "false", r.below(40));
  o += fmt::format(R"("created_at":{},)", kind == 3 ? "\"yesterday\"" : iso(r));
  o += fmt::format(R"("updated_at":{},"closed_at":{},)", iso(r), closed ? iso(r) : "null");
  o += fmt::format(R"("score":{}.{},)", r.below(100), r.below(1000));
  o += fmt::format(R"("user":{},)", user(r));
  o += fmt::format(R"("assignee":{},)", r.below(2) ? user(r) : "null");
  o += fmt::format(R"("labels":{},)", kind == 5 ? "\"bug\"" : labels);
  o += fmt::format(R"("html_url":"https://github.example.com/org/repo/issues/{}",)", id % 100000);
  o += fmt::format(R"("body":"{}\n\n\"steps\":\t{}",)", words(r, 10 + static_cast<int>(r.below(40))),
                   words(r, 5));
  o += fmt::format(R"("reactions":{{"total_count":{},"+1":{},"-1":0,"laugh":0}},)", r.below(9), r.below(5));
  o += R"("author_association":"CONTRIBUTOR"})";
  return o;
}

FieldSpec field(std::string name, FieldType type, std::string path, bool required = false) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  f.path = std::move(path);
  f.required = required;
  return f;
}

Endpoint issues_endpoint() {
  Endpoint e;
  e.name = "issues";
  e.records_pointer = "/items";
  FieldSpec state = field("state", FieldType::Enum, "/state", true);
  state.values = {"open", "closed"};
  FieldSpec user_struct = field("user", FieldType::Struct, "/user");
  user_struct.fields = {field("login", FieldType::String, "/login"), field("id", FieldType::Int64, "/id"),
                        field("site_admin", FieldType::Bool, "/site_admin")};
  FieldSpec labels = field("labels", FieldType::List, "/labels");
  FieldSpec label = field("item", FieldType::Struct, "");
  label.fields = {field("id", FieldType::Int64, "/id"), field("name", FieldType::String, "/name")};
  labels.items = {label};
  e.schema.fields = {field("id", FieldType::Int64, "/id", true),
                     field("number", FieldType::Int64, "/number"),
                     field("title", FieldType::String, "/title", true),
                     state,
                     field("locked", FieldType::Bool, "/locked"),
                     field("comments", FieldType::Int64, "/comments"),
                     field("created_at", FieldType::Timestamp, "/created_at", true),
                     field("updated_at", FieldType::Timestamp, "/updated_at"),
                     field("closed_at", FieldType::Timestamp, "/closed_at"),
                     field("score", FieldType::Double, "/score"),
                     field("assignee_login", FieldType::String, "/assignee/login"),
                     user_struct,
                     labels,
                     field("reactions_total", FieldType::Int64, "/reactions/total_count"),
                     field("body", FieldType::String, "/body")};
  return e;
}

// DuckDB's columns={…} for the same fields (its JSON reader maps by top-level key, so the
// nested-pointer fields are read through their parent objects).
const char* kDuckColumns =
    "{id: 'BIGINT', number: 'BIGINT', title: 'VARCHAR', state: 'VARCHAR', locked: 'BOOLEAN', comments: 'BIGINT', "
    "created_at: 'TIMESTAMPTZ', updated_at: 'TIMESTAMPTZ', closed_at: 'TIMESTAMPTZ', score: 'DOUBLE', "
    "\"user\": 'STRUCT(login VARCHAR, id BIGINT, site_admin BOOLEAN)', assignee: 'STRUCT(login VARCHAR)', "
    "labels: 'STRUCT(id BIGINT, name VARCHAR)[]', reactions: 'STRUCT(total_count BIGINT)', body: 'VARCHAR'}";

struct Input {
  std::vector<Source> sources;
  std::vector<Message> batch;     // one page per message
  std::vector<std::string> records;
  std::size_t page_bytes = 0;
  std::size_t record_count = 0;
  fs::path dir;
  fs::path ndjson;
  std::size_t ndjson_bytes = 0;

  Input() {
    std::size_t n = 12000;
    if (const char* v = std::getenv("APILAKE_BENCH_CURATE_RECORDS")) n = std::stoul(v);
    Source s;
    s.name = "github";
    s.endpoints = {issues_endpoint()};
    sources = {s};
    Rng r{0x9E3779B97F4A7C15ULL};
    // Page sizes cycle from ~2 KB to ~1 MB (about 800 bytes a record).
    const std::size_t sizes[] = {2, 8, 32, 128, 512, 1200};
    uint64_t id = 1;
    for (std::size_t k = 0; record_count < n; ++k) {
      const std::size_t count = std::min(sizes[k % std::size(sizes)], n - record_count);
      std::string page = R"({"total_count":)" + std::to_string(count) + R"(,"incomplete_results":false,"items":[)";
      for (std::size_t i = 0; i < count; ++i) {
        const int kind = r.below(100) < 5 ? 1 + static_cast<int>(r.below(6)) : 0;
        std::string rec = record(r, id++, kind);
        if (i) page += ',';
        page += rec;
        records.push_back(std::move(rec));
      }
      page += "]}";
      record_count += count;
      page_bytes += page.size();
      Message m;
      m.id = std::to_string(k + 1);
      m.ack_id = m.id;
      m.data = std::move(page);
      m.attributes = {{"source", "github"}, {"endpoint", "issues"}, {"extraction_id", "bench"},
                      {"page", std::to_string(k + 1)}};
      m.publish_time_us = 1764144900000000;
      batch.push_back(std::move(m));
    }
    dir = fs::temp_directory_path() / fmt::format("apilake-curate-bench-{}", ::getpid());
    fs::create_directories(dir);
    ndjson = dir / "records.ndjson";
    std::ofstream out(ndjson, std::ios::binary);
    for (const auto& rec : records) {
      out << rec << '\n';
      ndjson_bytes += rec.size() + 1;
    }
  }
  ~Input() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

Input& input() {
  static Input in;
  return in;
}

void report(benchmark::State& state, std::size_t records, std::size_t bytes) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * records));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

// Touches every value: strings unescaped, numbers parsed, booleans and nulls checked.
simdjson::error_code touch(simdjson::ondemand::value v, uint64_t& sink) {
  using simdjson::ondemand::json_type;
  json_type t;
  if (auto e = v.type().get(t)) return e;
  switch (t) {
    case json_type::object: {
      simdjson::ondemand::object o;
      if (auto e = v.get_object().get(o)) return e;
      for (auto f : o) {
        std::string_view k;
        if (auto e = f.unescaped_key().get(k)) return e;
        sink += k.size();
        if (auto e = touch(f.value(), sink)) return e;
      }
      return simdjson::SUCCESS;
    }
    case json_type::array: {
      simdjson::ondemand::array a;
      if (auto e = v.get_array().get(a)) return e;
      for (auto x : a) {
        simdjson::ondemand::value xv;
        if (auto e = x.get(xv)) return e;
        if (auto e = touch(xv, sink)) return e;
      }
      return simdjson::SUCCESS;
    }
    case json_type::string: {
      std::string_view s;
      if (auto e = v.get_string().get(s)) return e;
      sink += s.size();
      return simdjson::SUCCESS;
    }
    case json_type::number: {
      simdjson::ondemand::number n;
      if (auto e = v.get_number().get(n)) return e;
      sink += n.is_double() ? static_cast<uint64_t>(n.get_double()) : static_cast<uint64_t>(n.get_int64());
      return simdjson::SUCCESS;
    }
    case json_type::boolean: {
      bool b = false;
      if (auto e = v.get_bool().get(b)) return e;
      sink += b;
      return simdjson::SUCCESS;
    }
    case json_type::null: {
      bool n = false;
      if (auto e = v.is_null().get(n)) return e;
      sink += n;
      return simdjson::SUCCESS;
    }
  }
  return simdjson::SUCCESS;
}

void BM_simdjson_ondemand(benchmark::State& state) {
  Input& in = input();
  std::vector<simdjson::padded_string> pages;
  for (const auto& m : in.batch) pages.emplace_back(m.data);
  simdjson::ondemand::parser parser;
  for (auto _ : state) {
    uint64_t sink = 0;
    for (const auto& p : pages) {
      simdjson::ondemand::document doc;
      simdjson::ondemand::value root;
      if (parser.iterate(p).get(doc) || doc.get_value().get(root) || touch(root, sink)) {
        state.SkipWithError("simdjson refused a page");
        return;
      }
    }
    benchmark::DoNotOptimize(sink);
  }
  // The kernel inlined into this code (simdjson::builtin_implementation() would name the shared
  // library's, not ours).
#define APILAKE_STR2(x) #x
#define APILAKE_STR(x) APILAKE_STR2(x)
  state.SetLabel(APILAKE_STR(SIMDJSON_BUILTIN_IMPLEMENTATION));
  report(state, in.record_count, in.page_bytes);
}
BENCHMARK(BM_simdjson_ondemand)->Unit(benchmark::kMillisecond);

void BM_simdjson_dom(benchmark::State& state) {
  Input& in = input();
  simdjson::dom::parser parser;
  for (auto _ : state) {
    std::size_t n = 0;
    for (const auto& m : in.batch) {
      simdjson::dom::element root;
      if (parser.parse(m.data).get(root)) {
        state.SkipWithError("simdjson refused a page");
        return;
      }
      n += root["items"].get_array().size();
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetLabel(simdjson::get_active_implementation()->name());
  report(state, in.record_count, in.page_bytes);
}
BENCHMARK(BM_simdjson_dom)->Unit(benchmark::kMillisecond);

// The curator's path: visit_records (one DOM check + one on-demand read of the page) and
// RecordValidator::apply on each positioned record, writing the valid ones into a ColumnBatch (the
// typed columns the curator hands to the Parquet sink), emptied before each pass.
void BM_validate(benchmark::State& state) {
  Input& in = input();
  const Endpoint& endpoint = in.sources[0].endpoints[0];
  RecordValidator validator(endpoint.schema);
  std::vector<Column> columns;
  for (const FieldSpec& f : endpoint.schema.fields) columns.push_back({f.name, f.type, f});
  ColumnBatch batch(columns);
  std::size_t valid = 0;
  const std::function<void(PageRecord&)> on_record = [&](PageRecord& rec) {
    valid += validator.apply(rec.value, batch).valid() ? 1 : 0;
  };
  for (auto _ : state) {
    valid = 0;
    batch.clear();
    // As the curator calls it: in place when the body has simdjson's padding in its capacity.
    for (const auto& m : in.batch) visit_records(simdjson::padded_string_view(m.data), endpoint, on_record);
    benchmark::DoNotOptimize(valid);
  }
  state.counters["valid_share"] = static_cast<double>(valid) / static_cast<double>(in.record_count);
  // The share of the pages' bytes read in place (the rest is copied into a padded buffer first).
  std::size_t in_place = 0;
  for (const auto& m : in.batch)
    if (m.data.capacity() - m.data.size() >= simdjson::SIMDJSON_PADDING) in_place += m.data.size();
  state.counters["in_place_share"] = static_cast<double>(in_place) / static_cast<double>(in.page_bytes);
  report(state, in.record_count, in.page_bytes);
}
BENCHMARK(BM_validate)->Unit(benchmark::kMillisecond);

// The path before issue 7: select_records (DOM parse, each record minified to a string), then
// RecordValidator::apply(text) re-parsing each record. Kept to show the change in one run.
void BM_validate_legacy(benchmark::State& state) {
  Input& in = input();
  const Endpoint& endpoint = in.sources[0].endpoints[0];
  RecordValidator validator(endpoint.schema);
  std::size_t valid = 0;
  for (auto _ : state) {
    valid = 0;
    for (const auto& m : in.batch) {
      for (const std::string& rec : select_records(m.data, endpoint)) valid += validator.apply(rec).row ? 1 : 0;
    }
    benchmark::DoNotOptimize(valid);
  }
  state.counters["valid_share"] = static_cast<double>(valid) / static_cast<double>(in.record_count);
  report(state, in.record_count, in.page_bytes);
}
BENCHMARK(BM_validate_legacy)->Unit(benchmark::kMillisecond);

// Each thread runs its own Curator on its own DuckDB database (threads=1), as separate curate
// workers would; the rates are summed over threads.
void BM_curate_stage(benchmark::State& state) {
  Input& in = input();
  duck::Database db(duck::Options{});
  const fs::path staging = in.dir / fmt::format("staging-{}", state.thread_index());
  Curator curator(in.sources, db, staging);
  std::size_t files = 0;
  for (auto _ : state) {
    PreparedBatch out = curator.stage(in.batch);
    files = out.files.size();
    state.PauseTiming();
    for (const auto& f : out.files) fs::remove(f.staged);
    state.ResumeTiming();
  }
  state.counters["files"] = static_cast<double>(files);
  report(state, in.record_count, in.page_bytes);
}
// One thread: rates from the thread's CPU time (the machine is shared; "per core" is what counts).
// Two threads: wall time (CPU time would hide the second thread).
BENCHMARK(BM_curate_stage)->Unit(benchmark::kMillisecond)->Threads(1);
BENCHMARK(BM_curate_stage)->Unit(benchmark::kMillisecond)->UseRealTime()->Threads(2);

void BM_duckdb_ndjson(benchmark::State& state) {
  Input& in = input();
  duck::Options opt;
  opt.threads = static_cast<int>(state.range(0));
  duck::Database db(opt);
  duck::Connection con(db);
  const fs::path out = in.dir / "duckdb.parquet";
  const std::string sql = fmt::format(
      "COPY (SELECT * FROM read_ndjson({}, columns={}, ignore_errors=true)) TO {} (FORMAT parquet, "
      "COMPRESSION zstd)",
      duck::quote_literal(in.ndjson.string()), kDuckColumns, duck::quote_literal(out.string()));
  for (auto _ : state) con.execute(sql);
  auto r = con.query(fmt::format("SELECT count(*) FROM read_parquet({})", duck::quote_literal(out.string())));
  state.counters["rows_out"] = static_cast<double>(r.int64(0, 0));
  fs::remove(out);
  report(state, in.record_count, in.ndjson_bytes);
}
// threads=1 runs in the calling thread (CPU time, as BM_curate_stage/threads:1); threads=2, wall time.
BENCHMARK(BM_duckdb_ndjson)->ArgName("threads")->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_duckdb_ndjson)->ArgName("threads")->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
