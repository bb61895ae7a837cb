#include "archive/archiver.h"

#include <avro.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <random>
#include <stdexcept>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "lake/lake.h"

namespace apilake {

namespace fs = std::filesystem;

namespace {

// Mirrors the records a Pub/Sub Cloud Storage subscription writes with write_metadata, so the raw
// zone reads the same whichever bus produced it.
constexpr char kSchemaJson[] =
    R"({"type":"record","name":"PubsubMessage","namespace":"apilake","fields":[)"
    R"({"name":"subscription_name","type":"string"},)"
    R"({"name":"message_id","type":"string"},)"
    R"({"name":"publish_time","type":{"type":"long","logicalType":"timestamp-micros"}},)"
    R"({"name":"attributes","type":{"type":"map","values":"string"}},)"
    R"({"name":"data","type":"bytes"}]})";

// avro-c refuses a record larger than the block (it cannot split one), and pages can be large.
constexpr std::size_t kMinBlockSize = 1 << 20;

[[noreturn]] void avro_fail(const std::string& what, int rc) {
  throw std::runtime_error(fmt::format("avro: {} failed (rc={}): {}", what, rc, avro_strerror()));
}

void check(int rc, const char* what) {
  if (rc != 0) avro_fail(what, rc);
}

// Upper bound of one record's binary encoding: every length/long is a zig-zag varint of <= 10 bytes.
std::size_t record_bound(const std::string& subscription, const Message& m) {
  std::size_t n = subscription.size() + m.id.size() + m.data.size() + 6 * 10;
  for (const auto& [k, v] : m.attributes) n += k.size() + v.size() + 2 * 10;
  return n;
}

struct SchemaGuard {
  avro_schema_t s = nullptr;
  ~SchemaGuard() { if (s) avro_schema_decref(s); }
};
struct IfaceGuard {
  avro_value_iface_t* i = nullptr;
  ~IfaceGuard() { if (i) avro_value_iface_decref(i); }
};
struct ValueGuard {
  avro_value_t v{};
  bool live = false;
  ~ValueGuard() { if (live) avro_value_decref(&v); }
};

// Strings go through set_string_len, whose size counts a terminating NUL (avro-c's convention);
// std::string::c_str() provides it, and embedded NULs survive because the length is explicit.
void set_string(avro_value_t* field, const std::string& s, const char* what) {
  check(avro_value_set_string_len(field, const_cast<char*>(s.c_str()), s.size() + 1), what);
}

void fill(avro_value_t* rec, const std::string& subscription, const Message& m) {
  avro_value_t field;
  check(avro_value_get_by_name(rec, "subscription_name", &field, nullptr), "get subscription_name");
  set_string(&field, subscription, "set subscription_name");
  check(avro_value_get_by_name(rec, "message_id", &field, nullptr), "get message_id");
  set_string(&field, m.id, "set message_id");
  check(avro_value_get_by_name(rec, "publish_time", &field, nullptr), "get publish_time");
  check(avro_value_set_long(&field, m.publish_time_us), "set publish_time");
  check(avro_value_get_by_name(rec, "attributes", &field, nullptr), "get attributes");
  for (const auto& [key, value] : m.attributes) {
    // Map keys cross avro-c as C strings: an embedded NUL would silently truncate the key.
    if (key.find('\0') != std::string::npos)
      throw std::invalid_argument(fmt::format("message {}: attribute key contains a NUL byte", m.id));
    avro_value_t entry;
    check(avro_value_add(&field, key.c_str(), &entry, nullptr, nullptr), "add attribute");
    set_string(&entry, value, "set attribute value");
  }
  check(avro_value_get_by_name(rec, "data", &field, nullptr), "get data");
  // set_bytes copies; an empty body is legal and must not pass a null pointer.
  static char empty = 0;
  void* buf = m.data.empty() ? &empty : const_cast<char*>(m.data.data());
  check(avro_value_set_bytes(&field, buf, m.data.size()), "set data");
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= '0' && c <= '9'; });
}

// Message ids become file names: numeric ids are zero-padded so names sort like the ids; anything
// else is reduced to a safe character set.
std::string id_part(const std::string& id) {
  if (all_digits(id)) return id.size() >= 12 ? id : std::string(12 - id.size(), '0') + id;
  std::string out;
  for (unsigned char c : id) out += (std::isalnum(c) || c == '_') ? static_cast<char>(c) : '_';
  return out.empty() ? "_" : out;
}

// Numeric ids compare as numbers (without overflow: by length first), others as strings.
bool id_less(const std::string& a, const std::string& b) {
  if (all_digits(a) && all_digits(b)) {
    const auto sa = a.find_first_not_of('0'), sb = b.find_first_not_of('0');
    const std::string_view va = sa == std::string::npos ? "" : std::string_view(a).substr(sa);
    const std::string_view vb = sb == std::string::npos ? "" : std::string_view(b).substr(sb);
    if (va.size() != vb.size()) return va.size() < vb.size();
    return va < vb;
  }
  return a < b;
}

// Attribute values pick directories, so they must stay one safe path segment each.
std::string segment(const Attributes& attrs, const char* key) {
  const auto it = attrs.find(key);
  if (it == attrs.end() || it->second.empty()) return "_unknown";
  std::string out;
  for (unsigned char c : it->second)
    out += (std::isalnum(c) || c == '_' || c == '-' || c == '.') ? static_cast<char>(c) : '_';
  if (out == "." || out == "..") out = "_" + out;
  return out;
}

std::string unique_token() {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t salt = std::random_device{}();
  return fmt::format("{}-{:x}-{}", ::getpid(), salt, counter.fetch_add(1));
}

}  // namespace

namespace {

void write_records(const fs::path& path, const std::string& subscription_name,
                   const std::vector<const Message*>& messages) {
  SchemaGuard schema;
  check(avro_schema_from_json_length(kSchemaJson, sizeof(kSchemaJson) - 1, &schema.s), "parse schema");
  IfaceGuard iface;
  iface.i = avro_generic_class_from_schema(schema.s);
  if (!iface.i) avro_fail("create value class", -1);
  ValueGuard rec;
  check(avro_generic_value_new(iface.i, &rec.v), "create value");
  rec.live = true;

  std::size_t block = kMinBlockSize;
  for (const Message* m : messages) block = std::max(block, record_bound(subscription_name, *m));

  // avro-c opens the file for exclusive creation; a leftover from a failed attempt is ours to replace.
  std::error_code ec;
  fs::remove(path, ec);
  avro_file_writer_t writer = nullptr;
  check(avro_file_writer_create_with_codec(path.c_str(), schema.s, &writer, "deflate", block), "create file writer");
  try {
    for (const Message* m : messages) {
      check(avro_value_reset(&rec.v), "reset record");
      fill(&rec.v, subscription_name, *m);
      check(avro_file_writer_append_value(writer, &rec.v), "append record");
    }
    avro_file_writer_t w = writer;
    writer = nullptr;
    check(avro_file_writer_close(w), "close file writer");
    fsync_file(path);
  } catch (...) {
    if (writer) avro_file_writer_close(writer);
    fs::remove(path, ec);
    throw;
  }
}

}  // namespace

void write_avro(const fs::path& path, const std::string& subscription_name, const std::vector<Message>& messages) {
  std::vector<const Message*> ptrs;
  ptrs.reserve(messages.size());
  for (const auto& m : messages) ptrs.push_back(&m);
  write_records(path, subscription_name, ptrs);
}

Archiver::Archiver(std::string subscription_name, fs::path staging_dir)
    : subscription_(std::move(subscription_name)), staging_(std::move(staging_dir)) {}

PreparedBatch Archiver::stage(const std::vector<Message>& batch) {
  PreparedBatch out;
  out.consumer = "archive";
  if (batch.empty()) return out;

  using Key = std::tuple<std::string, std::string, std::string>;  // source, endpoint, hour
  std::map<Key, std::vector<const Message*>> groups;
  const Message* first = &batch.front();
  const Message* last = &batch.front();
  for (const auto& m : batch) {
    groups[{segment(m.attributes, "source"), segment(m.attributes, "endpoint"), hour_path(m.publish_time_us)}]
        .push_back(&m);
    if (id_less(m.id, first->id)) first = &m;
    if (id_less(last->id, m.id)) last = &m;
    // Counts serve GET /v1/extractions/{id}; a message without an extraction id has no one to report to.
    const auto ex = m.attributes.find("extraction_id");
    if (ex != m.attributes.end()) out.counts[ex->second].rows += 1;
  }
  out.batch_id = fmt::format("archive-{}-{}", id_part(first->id), id_part(last->id));

  // The final name depends only on the messages, so a rewrite after a crash replaces the same file;
  // the staged name is unique so concurrent or retried batches never write over each other.
  const std::string token = unique_token();
  try {
    for (auto& [key, msgs] : groups) {
      std::stable_sort(msgs.begin(), msgs.end(), [](const Message* a, const Message* b) { return id_less(a->id, b->id); });
      const auto& [source, endpoint, hour] = key;
      const std::string name = fmt::format("{}-{}.avro", id_part(msgs.front()->id), id_part(msgs.back()->id));
      const fs::path staged = staging_ / fmt::format("archive-{}-{}-{}", token, out.files.size(), name);
      write_records(staged, subscription_, msgs);
      out.files.push_back({staged.string(), fmt::format("raw/{}/{}/{}/{}", source, endpoint, hour, name)});
    }
  } catch (...) {
    std::error_code ec;
    for (const auto& f : out.files) fs::remove(f.staged, ec);
    throw;
  }
  spdlog::debug("archive: staged {} messages into {} files ({})", batch.size(), out.files.size(), out.batch_id);
  return out;
}

}  // namespace apilake
