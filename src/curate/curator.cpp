#include "curate/curator.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <random>
#include <set>
#include <tuple>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "curate/deadletter_json.h"
#include "curate/layout.h"
#include "curate/schema.h"
#include "curate/schema_registry.h"
#include "definition/records.h"
#include "lake/lake.h"

namespace apilake {

namespace fs = std::filesystem;

namespace {

// A page that cannot be split into records keeps at most this much of its body in the dead letter
// (the archive holds the whole page anyway).
constexpr std::size_t kMaxRawRecord = std::size_t{1} << 20;

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Message ids are decimal strings on both buses; zero-padding them makes file names sort in
// message order. Anything else is reduced to characters that are safe in a file name.
std::string name_part(const std::string& id) {
  if (all_digits(id)) return id.size() >= 12 ? id : std::string(12 - id.size(), '0') + id;
  std::string out;
  for (char c : id) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
    out += ok ? c : '_';
  }
  return out.empty() ? std::string("_") : out;
}

// Order of padded ids: numeric for digit strings of any length, then lexicographic.
bool id_less(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

// A folder name taken from a message attribute, used only for datasets we do not know (known ones
// use the definition's names): anything that is not a plain name goes to "_unknown".
std::string safe_segment(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 200) return "_unknown";
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) return "_unknown";
  }
  return s;
}

std::string attribute(const Message& m, const char* key) {
  auto it = m.attributes.find(key);
  return it == m.attributes.end() ? std::string() : it->second;
}

std::string truncated(const std::string& s) { return s.size() > kMaxRawRecord ? s.substr(0, kMaxRawRecord) : s; }

std::string unique_tag() {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t salt = std::random_device{}();
  return fmt::format("curate-{}-{:x}-{}", ::getpid(), salt, counter.fetch_add(1));
}

}  // namespace

struct Curator::State {
  struct Dataset {
    const Source* source = nullptr;
    const Endpoint* endpoint = nullptr;
    std::unique_ptr<RecordValidator> validator;  // null when the schema cannot be applied
    std::string schema_error;
    std::vector<Column> columns;  // schema fields + lineage columns
    Schema schema;                // the endpoint's schema + columns added by schema.evolution: evolve

    // current: the declared schema, plus (evolve) the columns of the latest registered version.
    Dataset(const Source& s, const Endpoint& e, Schema current) : source(&s), endpoint(&e), schema(std::move(current)) {
      // A schema the validator refuses must not block the other datasets of the batch: its pages
      // dead-letter (invalid_schema) and can be replayed once the definition is fixed.
      try {
        validator = std::make_unique<RecordValidator>(schema);
      } catch (const std::exception& ex) {
        schema_error = ex.what();
        spdlog::error("curate: {}/{}: {}", s.name, e.name, schema_error);
      }
      for (const auto& f : schema.fields) columns.push_back({f.name, f.type, f});  // f: decimal/struct/list details
      append_lineage_columns(columns);
      batch.reset(columns);
      part_col = partition_column(e);
    }
    // The batch's valid rows, as typed columns (columns: as above); cleared by each stage(), so its
    // buffers keep their capacity from one batch to the next. Groups select their rows by index.
    ColumnBatch batch;
    int part_col = -1;  // partition_by field index, -1 = ingestion hour
    // Registry files (path, content) staged by an earlier batch and not yet seen in the lake.
    std::vector<std::pair<std::string, std::string>> unconfirmed;
  };

  // Everything one batch produces for one (source, endpoint, zone + hour directory).
  struct Group {
    Dataset* dataset = nullptr;  // nullptr: unknown dataset, dead letters only
    std::string dir;             // "curated/<s>/<e>/<hour dir>/" or "deadletter/<s>/<e>/YYYY/MM/DD/HH/"
    std::size_t row_group_rows = 0;
    Endpoint::Files files;
    // Name source: "" = this group's own messages (event-time partitions); else the key of the
    // (dataset, ingestion hour) range, shared by its dead-letter file and its curated file, so both
    // are named from every message of the batch that touched that dataset and hour.
    std::string range_key;
    std::vector<uint32_t> rows;  // indices into dataset->batch, in message order
    std::string deadletters;     // JSON lines
    std::string first, last;  // padded message ids
    void saw(const std::string& id) {
      if (first.empty() || id_less(id, first)) first = id;
      if (last.empty() || id_less(last, id)) last = id;
    }
  };

  State(duck::Database& db, Lake* lake) : sink(db), registry(lake) {}

  // nullptr when the definitions hold no such source/endpoint.
  Dataset* dataset(const std::vector<Source>& sources, const std::string& source, const std::string& endpoint) {
    const std::string key = source + '\0' + endpoint;
    if (auto it = datasets.find(key); it != datasets.end()) return it->second.get();
    for (const auto& s : sources) {
      if (s.name != source) continue;
      for (const auto& e : s.endpoints) {
        if (e.name != endpoint) continue;
        // evolve: continue from the registry (columns and version numbering survive a restart).
        Schema current = registry && e.schema.evolution == Evolution::Evolve
                             ? current_schema(*registry, s.name, e.name, e.schema)
                             : e.schema;
        return datasets.emplace(key, std::make_unique<Dataset>(s, e, std::move(current))).first->second.get();
      }
    }
    return nullptr;
  }

  // A batch that evolved a schema can fail before its files reach the lake (staging throws, the ledger's
  // prepare fails, the process is told to nack): the in-memory schema is then ahead of the registry and
  // a redelivery would be curated as version N while v<N>.json is never written. So before each batch
  // a dataset whose staged versions are not all in the registry is dropped and read again from the
  // registry (its next message rebuilds it); the redelivered records evolve it again and stage v<N>.json
  // with their batch. A committed batch costs one registry read per version it added. Without a
  // registry nothing can be checked: the in-memory schema is kept.
  void settle_evolutions() {
    for (auto it = datasets.begin(); it != datasets.end();) {
      auto& unconfirmed = it->second->unconfirmed;
      bool committed = true;
      if (registry)
        for (const auto& [path, content] : unconfirmed)
          if (registry->get(path) != content) committed = false;
      if (committed) {
        unconfirmed.clear();
        ++it;
      } else {
        spdlog::warn("curate: {}/{}: the batch that evolved schema v{} was not committed; rolling back to the "
                     "registered schema",
                     it->second->source->name, it->second->endpoint->name, it->second->schema.version);
        it = datasets.erase(it);
      }
    }
  }

  ParquetSink sink;
  Lake* registry = nullptr;  // the lake's schema registry; null: versions are not read back
  simdjson::dom::parser parser;
  std::map<std::string, std::unique_ptr<Dataset>> datasets;
};

Curator::Curator(const std::vector<Source>& sources, duck::Database& db, fs::path staging_dir, Lake* registry)
    : sources_(sources), db_(db), staging_(std::move(staging_dir)), state_(std::make_unique<State>(db, registry)) {
  fs::create_directories(staging_);
}

Curator::~Curator() = default;

namespace {

// One dead-letter line. `record` is JSON text: the record's own text minified (record_json) when it is
// JSON, so that the line can be queried and replayed exactly as it was fetched (no DOM round trip). level "page" marks a whole page
// kept as a string (replay re-splits it); ingested_at_us lets a replay keep the original _ingested_at.
std::string deadletter_line(std::string_view record, const std::string& reason, const std::string& field,
                            const std::string& detail, const Message& m, const char* level) {
  // The line line_with_record(record, object) would give for these members in this order, written
  // straight out (each string through Boost.JSON's own serializer, so the escaping is the same): a
  // boost::json::object built and serialised per dead letter was ~15k instructions.
  std::string line;
  line.reserve(record.size() + detail.size() + 256);
  auto member = [&line](const char* key, std::string_view value) {
    line += key;
    line += boost::json::serialize(boost::json::string_view(value.data(), value.size()));
  };
  line += "{\"record\":";  // "record" is spliced in as text (curate/deadletter_json.h)
  line += record;
  member(",\"level\":", level);
  line += ",\"ingested_at_us\":";
  line += std::to_string(m.publish_time_us);
  member(",\"reason\":", reason);
  member(",\"field\":", field);
  member(",\"detail\":", detail);
  member(",\"message_id\":", m.id);
  member(",\"extraction_id\":", attribute(m, "extraction_id"));
  const std::string page = attribute(m, "page");
  if (all_digits(page) && page.size() < 19) {
    line += ",\"page\":";
    line += std::to_string(std::stoll(page));
  } else {
    member(",\"page\":", page);
  }
  member(",\"source\":", attribute(m, "source"));
  member(",\"endpoint\":", attribute(m, "endpoint"));
  // The extraction's params (compact JSON), so a replay can fill from_param fields (docs/schema.md).
  if (const std::string params = attribute(m, "params"); !params.empty()) member(",\"params\":", params);
  line += "}\n";
  return line;
}


// layout.h's partition_time, for row r of a batch.
int64_t partition_time(int column, const ColumnBatch& batch, std::size_t r, int64_t ingested_us) {
  if (column < 0 || static_cast<std::size_t>(column) >= batch.width()) return ingested_us;
  const auto k = static_cast<std::size_t>(column);
  if (batch.is_null(r, k)) return ingested_us;  // NULL: the row still has a home, its ingestion hour
  const ColumnBatch::Data& d = batch.column(k);
  if (d.type == FieldType::Date) return int64_t{d.i32[r]} * 86'400'000'000LL;
  if (d.type == FieldType::Timestamp) return d.i64[r];
  return ingested_us;
}

void write_file(const fs::path& path, const std::string& bytes) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("cannot create {}", path.string()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw std::runtime_error(fmt::format("cannot write {}", path.string()));
  }
  fsync_file(path);
}

}  // namespace

PreparedBatch Curator::stage(const std::vector<Message>& batch) {
  using Group = State::Group;
  using Dataset = State::Dataset;
  PreparedBatch out;
  out.consumer = "curate";

  std::map<std::string, Group> groups;  // by Group::dir
  std::map<std::string, Group> ranges;  // (dataset, ingestion hour) -> first/last message ids
  std::set<std::string> seen;
  std::string batch_first, batch_last;
  state_->settle_evolutions();  // roll back schemas evolved by a batch that never reached the lake
  for (auto& [key, ds] : state_->datasets) ds->batch.clear();

  for (const Message& m : batch) {
    // A message delivered twice within one batch is curated once.
    if (!seen.insert(m.id).second) continue;
    out.message_ids.push_back(m.id);
    out.ack_ids.push_back(m.ack_id);
    const std::string id = name_part(m.id);
    if (batch_first.empty() || id_less(id, batch_first)) batch_first = id;
    if (batch_last.empty() || id_less(batch_last, id)) batch_last = id;

    const std::string source = attribute(m, "source");
    const std::string endpoint = attribute(m, "endpoint");
    ExtractionCounts& counts = out.counts[attribute(m, "extraction_id")];
    Dataset* ds = state_->dataset(sources_, source, endpoint);
    // Dead letters always go to the ingestion hour in the seed layout (a refused record has no
    // trustworthy event time); rows follow the endpoint's layout and partition_by.
    auto group = [&](bool curated, int64_t time_us) -> Group& {
      const std::string s = ds ? ds->source->name : safe_segment(source);
      const std::string e = ds ? ds->endpoint->name : safe_segment(endpoint);
      const auto layout = curated ? ds->endpoint->layout : Endpoint::Layout::Seed;
      const std::string dir =
          std::string(curated ? "curated/" : "deadletter/") + s + "/" + e + "/" + hour_dir(layout, time_us) + "/";
      const std::string range_key = s + "/" + e + "/" + hour_dir(Endpoint::Layout::Seed, m.publish_time_us);
      ranges[range_key].saw(id);
      Group& g = groups[dir];
      if (g.dir.empty()) {
        g.dataset = ds;
        g.dir = dir;
        if (!curated || ds->part_col < 0) g.range_key = range_key;
        if (ds) {
          g.files = ds->endpoint->files;
          g.row_group_rows = static_cast<std::size_t>(ds->endpoint->files.row_group_rows);
        }
      }
      g.saw(id);
      return g;
    };
    auto deadletters = [&]() -> std::string& { return group(false, m.publish_time_us).deadletters; };
    // The whole page as one dead letter (nothing is lost; the archive has it too).
    auto page_deadletter = [&](const std::string& reason, const std::string& field, const std::string& detail) {
      deadletters() += deadletter_line(boost::json::serialize(boost::json::string(truncated(m.data))), reason, field, detail, m, "page");
      ++counts.deadlettered;
    };

    if (!ds) {
      page_deadletter("unknown_dataset", "",
                      fmt::format("no definition for source '{}' endpoint '{}'", source, endpoint));
      continue;
    }

    if (!ds->validator) {
      page_deadletter("invalid_schema", "", ds->schema_error);
      continue;
    }
    // from_param fields take the extraction's request params (docs/schema.md "from_param").
    const auto params = message_params(attribute(m, "params"));
    ds->validator->set_params(params);

    // Per message, not per row: the lineage value, and the group the last row went to. Rows of one
    // message nearly always fall in one hour, and group() builds several strings and does two map
    // lookups; hour_dir() has hour granularity, so rows of the same UTC hour share a group.
    const std::string extraction_id = attribute(m, "extraction_id");
    constexpr int64_t kHourUs = 3'600'000'000;
    Group* row_group = nullptr;
    int64_t row_hour = 0;

    // Each record is validated straight from one on-demand read of the page (no per-record copy or
    // re-parse); its text is built only when needed (dead letter, re-read after an evolve).
    auto apply = [&](PageRecord& rec) {
      // A valid record becomes the batch's last row (the validator writes it straight into the columns).
      Outcome outcome = ds->validator->apply(rec.value, ds->batch);
      // schema.evolution: evolve: unknown keys become new nullable columns (a new schema version,
      // staged into the lake's schema registry with this batch), then the record is read again.
      if (outcome.valid() && !outcome.unknown.empty() && ds->schema.evolution == Evolution::Evolve) {
        ds->batch.rollback_row();
        const std::size_t before = ds->schema.fields.size();
        if (evolve_schema(ds->schema, outcome.unknown) > 0) {
          ds->validator = std::make_unique<RecordValidator>(ds->schema);
          ds->validator->set_params(params);
          for (std::size_t k = before; k < ds->schema.fields.size(); ++k) {
            const FieldSpec& f = ds->schema.fields[k];
            ds->columns.insert(ds->columns.begin() + static_cast<std::ptrdiff_t>(k), Column{f.name, f.type, f});
            // Rows already in the batch (any group) get NULL in the new column.
            ds->batch.insert_column(k, Column{f.name, f.type, f});
          }
          // Never overwrite a registered version: one with other content moves this one to N+1.
          if (!state_->registry ||
              claim_schema_version(*state_->registry, ds->source->name, ds->endpoint->name, ds->schema)) {
            const fs::path staged = staging_ / (unique_tag() + ".json");
            const std::string text = schema_json(ds->schema);
            const std::string path = schema_registry_path(ds->source->name, ds->endpoint->name, ds->schema.version);
            write_file(staged, text);
            out.files.push_back({staged.string(), path});
            ds->unconfirmed.emplace_back(path, text);  // checked by settle_evolutions() before the next batch
          }
        }
        outcome = ds->validator->apply(rec.text(), ds->batch);
      }
      if (outcome.valid()) {
        ColumnBatch& batch = ds->batch;
        const std::size_t r = batch.size() - 1;
        const std::size_t lineage = batch.width() - kLineageColumns;
        batch.set_string(lineage, extraction_id);
        batch.set_string(lineage + 1, m.id);
        batch.set_timestamp(lineage + 2, TimestampUs{m.publish_time_us});
        // lineage + 3, _replayed_at: NULL
        const int64_t t = partition_time(ds->part_col, batch, r, m.publish_time_us);
        const int64_t hour = t >= 0 ? t / kHourUs : -((-(t + 1)) / kHourUs) - 1;  // floor
        if (!row_group || hour != row_hour) {
          row_group = &group(true, t);
          row_hour = hour;
        }
        row_group->rows.push_back(static_cast<uint32_t>(r));
        ++counts.rows;
        // schema.evolution: discard_value: the row is curated without its unknown keys, and each dropped
        // value is kept as an extra dead-letter line (level "value"), not counted in `deadlettered`
        // (the record itself was curated; docs/schema.md "Accounting").
        // (evolve: keys that could not become a column, e.g. a name clash, are kept the same way)
        if (ds->schema.evolution == Evolution::DiscardValue || ds->schema.evolution == Evolution::Evolve)
          for (const UnknownField& u : outcome.unknown)
            deadletters() += deadletter_line(record_json(u.json), "unknown_field", u.key,
                                             "dropped by schema.evolution: discard_value; the record was curated",
                                             m, "value");
      } else {
        const Reason reason = outcome.reason.value_or(Reason{"parse_error", "", "the schema gave no reason"});
        // The page was checked whole before its first record: the record is valid JSON.
        deadletters() += deadletter_line(valid_record_json(rec.raw_text()), reason.code, reason.field, reason.detail, m, "record");
        ++counts.deadlettered;
      }
    };

    // Record selection is shared with the fetcher (definition/records.h), so both count alike; a page
    // it refuses is refused before any of its records is handed out.
    try {
      // Read in place when the bus left simdjson's padding in the body's capacity; else copied.
      visit_records(simdjson::padded_string_view(m.data), *ds->endpoint, apply);
    } catch (const RecordError& e) {
      page_deadletter("parse_error", "", e.what());
    }
  }

  out.batch_id = batch_first + "-" + batch_last;

  // Write every group's files; a failure removes what this batch staged and fails the batch.
  try {
    for (auto& [dir, g] : groups) {
      const Group& r = g.range_key.empty() ? g : ranges[g.range_key];
      const std::string name = r.first + "-" + r.last;
      if (!g.rows.empty()) {
        // Rotation: a group above the endpoint's row/size caps becomes several files, named
        // <first>-<last>-pNNN in row order (deterministic, so a rewrite still replaces).
        // Rows staged before an evolve in this batch hold NULL in the new columns (insert_column).
        const ColumnBatch& batch = g.dataset->batch;
        const auto slices =
            file_slices(g.rows.size(), g.files, [&](std::size_t i) { return batch.estimated_bytes(g.rows[i]); });
        // The schema version the rows follow (docs/schema.md "Evolution"), in the file's metadata.
        const std::map<std::string, std::string> schema_kv = {
            {"apilake_schema_version", std::to_string(g.dataset->schema.version)}};
        for (std::size_t k = 0; k < slices.size(); ++k) {
          const auto [b, e] = slices[k];
          const std::string file = slices.size() == 1 ? name : fmt::format("{}-p{:03}", name, k);
          const fs::path staged = staging_ / (unique_tag() + ".parquet");
          out.files.push_back({staged.string(), dir + file + ".parquet"});
          state_->sink.write(staged, batch, g.rows.data() + b, e - b, g.row_group_rows, schema_kv);
        }
      }
      if (!g.deadletters.empty()) {
        const fs::path staged = staging_ / (unique_tag() + ".jsonl");
        out.files.push_back({staged.string(), dir + name + ".jsonl"});
        write_file(staged, g.deadletters);
      }
    }
  } catch (...) {
    for (const auto& f : out.files) {
      std::error_code ec;
      fs::remove(f.staged, ec);
    }
    throw;
  }
  return out;
}

}  // namespace apilake
