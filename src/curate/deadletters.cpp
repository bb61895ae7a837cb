#include "curate/deadletters.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include <boost/json.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bus/ledger.h"
#include "curate/deadletter_json.h"
#include "curate/layout.h"
#include "curate/schema.h"
#include "curate/schema_registry.h"
#include "definition/records.h"

namespace apilake {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSidecar = ".replayed.json";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::vector<std::string> split_path(const std::string& p) {
  std::vector<std::string> out;
  std::size_t b = 0;
  while (b <= p.size()) {
    auto e = p.find('/', b);
    if (e == std::string::npos) e = p.size();
    out.push_back(p.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

// A dead-letter file: deadletter/<s>/<e>/YYYY/MM/DD/HH/<name>.jsonl
struct DlFile {
  std::string path, source, endpoint, hour /* YYYY-MM-DDTHH */, stem;
};
std::optional<DlFile> parse_dl_path(const std::string& path) {
  if (!ends_with(path, ".jsonl")) return std::nullopt;
  auto parts = split_path(path);
  if (parts.size() != 8 || parts[0] != "deadletter") return std::nullopt;
  DlFile f{path, parts[1], parts[2], fmt::format("{}-{}-{}T{}", parts[3], parts[4], parts[5], parts[6]),
           parts[7].substr(0, parts[7].size() - 6)};
  return f;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t b = 0;
  while (b < text.size()) {
    auto e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    if (e > b) out.push_back(text.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

struct Sidecar {
  std::set<int64_t> replayed;
  json::object failing;
  json::array generations;
  json::value in_progress = nullptr;

  static Sidecar load(Lake& lake, const std::string& path) {
    Sidecar s;
    auto text = lake.get(path + std::string(kSidecar));
    if (!text) return s;
    json::error_code ec;
    json::value v = json::parse(*text, ec);
    if (ec || !v.is_object()) throw std::runtime_error(fmt::format("corrupt replay marks {}{}", path, kSidecar));
    const auto& o = v.as_object();
    if (auto* r = o.if_contains("replayed"); r && r->is_array())
      for (const auto& x : r->as_array())
        if (x.is_int64()) s.replayed.insert(x.as_int64());
    if (auto* f = o.if_contains("failing"); f && f->is_object()) s.failing = f->as_object();
    if (auto* g = o.if_contains("generations"); g && g->is_array()) s.generations = g->as_array();
    if (auto* p = o.if_contains("in_progress")) s.in_progress = *p;
    return s;
  }
  void save(Lake& lake, const std::string& path) const {
    json::array r;
    for (auto x : replayed) r.push_back(x);
    lake.put(path + std::string(kSidecar),
             json::serialize(json::object{{"replayed", std::move(r)},
                                          {"failing", failing},
                                          {"generations", generations},
                                          {"in_progress", in_progress}}));
  }
};

std::string iso_now(int64_t us) {
  using namespace std::chrono;
  return fmt::format("{:%FT%T}Z", sys_time<microseconds>(microseconds(us)));
}

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

// Hour "YYYY-MM-DDTHH" -> microseconds at its start (for dead letters written before ingested_at_us).
int64_t hour_start_us(const std::string& hour) {
  const int y = std::stoi(hour.substr(0, 4));
  const unsigned m = static_cast<unsigned>(std::stoi(hour.substr(5, 2)));
  const unsigned d = static_cast<unsigned>(std::stoi(hour.substr(8, 2)));
  const int h = std::stoi(hour.substr(11, 2));
  return (int64_t{days_from_civil(y, m, d)} * 24 + h) * 3'600'000'000LL;
}

std::string str(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Holds an exclusive flock on a file (released on destruction): replays in other processes wait.
struct FileLock {
  int fd = -1;
  explicit FileLock(const fs::path& file) {
    fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(fmt::format("cannot open lock file {}", file.string()));
    if (::flock(fd, LOCK_EX) != 0) {
      ::close(fd);
      throw std::runtime_error(fmt::format("cannot lock {}", file.string()));
    }
  }
  ~FileLock() {
    if (fd >= 0) ::close(fd);
  }
};

std::string unique_tag() {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t salt = std::random_device{}();
  return fmt::format("replay-{}-{:x}-{}", ::getpid(), salt, counter.fetch_add(1));
}

}  // namespace

DeadLetters::DeadLetters(const std::vector<Source>& sources, Lake& lake, duck::Database& db)
    : sources_(sources), lake_(lake), sink_(db) {}

bool DeadLetters::valid_hour(const std::string& h) {
  if (h.size() != 13 || h[4] != '-' || h[7] != '-' || h[10] != 'T') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12})
    if (h[i] < '0' || h[i] > '9') return false;
  const int m = std::stoi(h.substr(5, 2)), d = std::stoi(h.substr(8, 2)), hh = std::stoi(h.substr(11, 2));
  return m >= 1 && m <= 12 && d >= 1 && d <= 31 && hh <= 23;
}

std::vector<DeadLetters::Dir> DeadLetters::dirs() {
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& p : lake_.list("deadletter")) {
    if (auto f = parse_dl_path(p)) seen.emplace(f->source, f->endpoint);
  }
  std::vector<Dir> out;
  for (const auto& [s, e] : seen) out.push_back({s, e});
  return out;
}

const Endpoint* DeadLetters::endpoint(const Dir& d) const {
  for (const auto& s : sources_)
    if (s.name == d.source) return s.endpoint(d.endpoint);
  return nullptr;
}

DeadLetters::Dir DeadLetters::resolve(const std::string& dataset) {
  auto matches = [&](const std::string& s, const std::string& e) {
    return dataset == s + "_" + e || dataset == s + "/" + e;
  };
  for (const auto& d : dirs())
    if (matches(d.source, d.endpoint)) return d;
  for (const auto& s : sources_)
    for (const auto& e : s.endpoints)
      if (matches(s.name, e.name)) return {s.name, e.name};
  throw UnknownDataset(fmt::format("unknown dataset '{}' (no dead letters and no definition)", dataset));
}

std::vector<DeadLetterCount> DeadLetters::counts() {
  std::map<std::tuple<std::string, std::string, std::string>, DeadLetterCount> acc;
  for (const auto& p : lake_.list("deadletter")) {
    auto f = parse_dl_path(p);
    if (!f) continue;
    auto text = lake_.get(p);
    if (!text) continue;  // removed meanwhile
    const Sidecar marks = Sidecar::load(lake_, p);
    const auto lines = lines_of(*text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      json::error_code ec;
      json::value v = json::parse(lines[i], ec);
      const std::string reason = (!ec && v.is_object()) ? str(v.as_object(), "reason") : "unreadable";
      const std::string dataset = f->source + "_" + f->endpoint;
      auto& c = acc[{dataset, f->hour, reason}];
      c.dataset = dataset;
      c.hour = f->hour;
      c.reason = reason;
      ++c.count;
      if (marks.replayed.count(static_cast<int64_t>(i))) ++c.replayed;
      c.pending = c.count - c.replayed;
    }
  }
  std::vector<DeadLetterCount> out;
  for (auto& [k, c] : acc) out.push_back(std::move(c));
  return out;
}

std::vector<std::string> DeadLetters::samples(const std::string& dataset, const std::string& reason,
                                              std::size_t limit) {
  const Dir d = resolve(dataset);
  std::vector<std::string> out;
  for (const auto& p : lake_.list("deadletter/" + d.source + "/" + d.endpoint)) {
    if (out.size() >= limit) break;
    auto f = parse_dl_path(p);
    if (!f) continue;
    auto text = lake_.get(p);
    if (!text) continue;
    const Sidecar marks = Sidecar::load(lake_, p);
    const auto lines = lines_of(*text);
    for (std::size_t i = 0; i < lines.size() && out.size() < limit; ++i) {
      json::error_code ec;
      json::value v = json::parse(lines[i], ec);
      if (ec || !v.is_object()) continue;
      auto& o = v.as_object();
      if (!reason.empty() && str(o, "reason") != reason) continue;
      o["replayed"] = marks.replayed.count(static_cast<int64_t>(i)) > 0;
      o["file"] = p;
      o["line"] = static_cast<int64_t>(i);
      const auto raw = raw_record(lines[i]);  // the record's own text, not Boost.JSON's re-print
      if (!raw) {
        out.push_back(json::serialize(o));
        continue;
      }
      o.erase("record");
      out.push_back(line_with_record(*raw, o));
    }
  }
  return out;
}

ReplayResult DeadLetters::replay(const std::string& dataset, const std::string& from, const std::string& to) {
  std::lock_guard lk(mu_);
  FileLock flock(lake_.staging_dir() / "deadletters.lock");
  const Dir d = resolve(dataset);
  const Endpoint* ep = endpoint(d);
  if (!ep) throw UnknownDataset(fmt::format("dataset '{}' has no definition to replay with", dataset));
  // evolve: replay with the schema in force, as the curator does (the declaration plus the columns of
  // the latest registered version), so replayed rows keep the evolved columns; a record bringing keys
  // that are still unknown evolves it further (a new registered version). Other policies: the declaration.
  const bool evolve = ep->schema.evolution == Evolution::Evolve;
  Schema schema = evolve ? current_schema(lake_, d.source, d.endpoint, ep->schema) : ep->schema;
  auto validator = std::make_unique<RecordValidator>(schema);  // throws std::invalid_argument when unusable

  std::vector<Column> columns;
  auto set_columns = [&] {
    columns.clear();
    for (const auto& f : schema.fields) columns.push_back({f.name, f.type, f});  // f: decimal/struct/list details
    append_lineage_columns(columns);
  };
  set_columns();
  const std::size_t lineage = columns.size() - schema.fields.size();
  const int part_col = partition_column(*ep);
  ReplayResult result;
  for (const auto& p : lake_.list("deadletter/" + d.source + "/" + d.endpoint)) {
    auto f = parse_dl_path(p);
    if (!f) continue;
    if (!from.empty() && f->hour < from) continue;
    if (!to.empty() && f->hour > to) continue;
    auto text = lake_.get(p);
    if (!text) continue;
    Sidecar marks = Sidecar::load(lake_, p);
    const auto lines = lines_of(*text);

    // An earlier replay stopped between committing its files and marking its lines: undo its files
    // (the same generation is redone below, possibly with a different set of rows).
    if (marks.in_progress.is_object()) {
      if (auto* files = marks.in_progress.as_object().if_contains("files"); files && files->is_array())
        for (const auto& x : files->as_array())
          if (x.is_string()) lake_.remove(std::string(x.as_string()));
      marks.in_progress = nullptr;
    }

    std::vector<int64_t> pending;
    for (std::size_t i = 0; i < lines.size(); ++i)
      if (!marks.replayed.count(static_cast<int64_t>(i))) pending.push_back(static_cast<int64_t>(i));
    if (pending.empty()) continue;
    ++result.files;

    const int64_t replayed_at = now_us();
    std::map<std::string, std::vector<Row>> by_dir;  // curated hour dir -> rows
    std::vector<int64_t> ok_lines;
    for (int64_t i : pending) {
      json::error_code ec;
      json::value v = json::parse(lines[static_cast<std::size_t>(i)], ec);
      if (ec || !v.is_object()) {
        marks.failing[std::to_string(i)] = json::object{{"reason", "parse_error"}, {"detail", "unreadable line"}};
        ++result.still_failing;
        continue;
      }
      const auto& o = v.as_object();
      const json::value* record = o.if_contains("record");
      const std::string reason = str(o, "reason");
      std::string level = str(o, "level");
      if (level.empty())  // lines written before "level" existed
        level = (reason == "unknown_dataset" || reason == "invalid_schema" ||
                 (reason == "parse_error" && record && record->is_string()))
                    ? "page"
                    : "record";
      int64_t ingested = hour_start_us(f->hour);
      if (auto* t = o.if_contains("ingested_at_us"); t && t->is_int64()) ingested = t->as_int64();
      const auto params = message_params(str(o, "params"));  // from_param fields (docs/schema.md)
      validator->set_params(params);

      // The records this line stands for, as JSON texts.
      std::vector<std::string> records;
      std::optional<Reason> refusal;
      if (!record) {
        refusal = Reason{"parse_error", "", "dead letter without a record"};
      } else if (level == "page") {
        const std::string body =
            record->is_string() ? std::string(record->as_string()) : raw_record(lines[static_cast<std::size_t>(i)]).value_or("null");
        // The records as the curator selects them (record_shape, record_context, big integers).
        try {
          records = select_records(body, *ep);
        } catch (const RecordError& e) {
          refusal = Reason{"parse_error", "", e.what()};
        }
      } else if (auto raw = raw_record(lines[static_cast<std::size_t>(i)])) {
        records.push_back(std::move(*raw));  // as fetched: a DOM round trip would rewrite its numbers
      } else {
        refusal = Reason{"parse_error", "", "dead letter without a readable record"};
      }

      std::vector<Row> rows;
      for (const auto& r : records) {
        if (refusal) break;
        Outcome out = validator->apply(r);
        if (out.row && !out.unknown.empty() && evolve && evolve_schema(schema, out.unknown) > 0) {
          // Registered before any file naming it is committed; never overwrites a version (the same
          // content is reused, other content moves this one to N+1).
          if (claim_schema_version(lake_, d.source, d.endpoint, schema))
            lake_.put(schema_registry_path(d.source, d.endpoint, schema.version), schema_json(schema));
          spdlog::info("deadletters: {}/{} evolved to schema v{} while replaying", d.source, d.endpoint,
                       schema.version);
          validator = std::make_unique<RecordValidator>(schema);
          validator->set_params(params);
          set_columns();
          out = validator->apply(r);
        }
        if (!out.row) {
          refusal = out.reason.value_or(Reason{"parse_error", "", "the schema gave no reason"});
          break;
        }
        Row row = std::move(*out.row);
        row.emplace_back(str(o, "extraction_id"));
        row.emplace_back(str(o, "message_id"));
        row.emplace_back(TimestampUs{ingested});
        row.emplace_back(TimestampUs{replayed_at});
        rows.push_back(std::move(row));
      }
      if (refusal) {
        marks.failing[std::to_string(i)] =
            json::object{{"reason", refusal->code}, {"field", refusal->field}, {"detail", refusal->detail}};
        ++result.still_failing;
        continue;
      }
      marks.failing.erase(std::to_string(i));
      ok_lines.push_back(i);
      for (auto& row : rows) {
        const std::string dir = "curated/" + d.source + "/" + d.endpoint + "/" +
                                hour_dir(ep->layout, partition_time(part_col, row, ingested)) + "/";
        by_dir[dir].push_back(std::move(row));
      }
    }

    if (ok_lines.empty()) {
      marks.save(lake_, p);  // remember the new reasons of the still failing lines
      continue;
    }

    // Names and staged files first, then "in_progress", then the commit, then the marks.
    const int64_t gen = static_cast<int64_t>(marks.generations.size()) + 1;
    std::string hour_compact = f->hour;
    hour_compact.erase(std::remove_if(hour_compact.begin(), hour_compact.end(),
                                      [](char c) { return c == '-' || c == 'T'; }),
                       hour_compact.end());
    const std::string base = fmt::format("replay-{}-{}-r{}", hour_compact, f->stem, gen);
    std::vector<StagedFile> staged;
    // The schema version the rows follow (docs/schema.md "Evolution"), in each file's metadata.
    const std::map<std::string, std::string> schema_kv = {{"apilake_schema_version", std::to_string(schema.version)}};
    try {
      for (auto& [dir, rows] : by_dir) {
        // Rows read before a column was added in this replay lack it: NULL, before the lineage columns.
        for (Row& row : rows)
          if (row.size() < columns.size())
            row.insert(row.end() - static_cast<std::ptrdiff_t>(lineage), columns.size() - row.size(), Value{});
        const auto slices = file_slices(rows, ep->files);
        for (std::size_t k = 0; k < slices.size(); ++k) {
          const auto [b, e] = slices[k];
          const std::vector<Row> part(rows.begin() + static_cast<std::ptrdiff_t>(b),
                                      rows.begin() + static_cast<std::ptrdiff_t>(e));
          const fs::path s = lake_.staging_dir() / (unique_tag() + ".parquet");
          staged.push_back({s.string(), dir + (slices.size() == 1 ? base : fmt::format("{}-p{:03}", base, k)) +
                                            ".parquet"});
          sink_.write(s, columns, part, static_cast<std::size_t>(ep->files.row_group_rows), schema_kv);
          result.rows += static_cast<int64_t>(part.size());
        }
      }
    } catch (...) {
      for (const auto& s : staged) {
        std::error_code ec;
        fs::remove(s.staged, ec);
      }
      throw;
    }
    json::array names;
    for (const auto& s : staged) names.push_back(json::string(s.final));
    marks.in_progress = json::object{{"gen", gen}, {"files", names}};
    marks.save(lake_, p);
    for (const auto& s : staged) {
      lake_.commit_staged(s.staged, s.final);
      result.written.push_back(s.final);
    }
    json::array done;
    for (auto i : ok_lines) {
      marks.replayed.insert(i);
      done.push_back(i);
    }
    marks.generations.push_back(
        json::object{{"gen", gen}, {"at", iso_now(replayed_at)}, {"lines", std::move(done)}, {"files", names}});
    marks.in_progress = nullptr;
    marks.save(lake_, p);
    result.replayed += static_cast<int64_t>(ok_lines.size());
    spdlog::info("deadletters: replayed {} line(s) of {} into {} file(s)", ok_lines.size(), p, staged.size());
  }
  return result;
}

}  // namespace apilake
