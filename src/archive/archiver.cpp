#include "archive/archiver.h"

#include <avro.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <random>
#include <stdexcept>
#include <system_error>
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

// avro-c 1.11 has no logical types: it parses "logicalType" away and writes the bare long schema
// into the file header. Readers (Python, Java, BigQuery) need the annotation to see publish_time as
// a timestamp, as in Pub/Sub's own files, so the header is rebuilt with the declared schema JSON;
// the sync marker and the data blocks are copied byte for byte (kernel-side copy_file_range).
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { if (fd_ >= 0) ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void close_checked(const fs::path& p) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw std::system_error(errno, std::generic_category(), "close " + p.string());
  }
 private:
  int fd_;
};

struct HeaderReader {
  std::string buf;
  std::size_t pos = 0;
  const fs::path& file;
  unsigned char byte() {
    if (pos >= buf.size()) throw std::runtime_error("avro: truncated header in " + file.string());
    return static_cast<unsigned char>(buf[pos++]);
  }
  int64_t varlong() {
    uint64_t n = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const unsigned char b = byte();
      n |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return static_cast<int64_t>(n >> 1) ^ -static_cast<int64_t>(n & 1);
    }
    throw std::runtime_error("avro: bad varint in header of " + file.string());
  }
  std::string bytes() {
    const int64_t n = varlong();
    if (n < 0 || static_cast<uint64_t>(n) > buf.size() - pos) throw std::runtime_error("avro: bad header in " + file.string());
    std::string out = buf.substr(pos, static_cast<std::size_t>(n));
    pos += static_cast<std::size_t>(n);
    return out;
  }
};

void put_varlong(std::string& out, int64_t v) {
  uint64_t n = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

void put_bytes(std::string& out, const std::string& s) {
  put_varlong(out, static_cast<int64_t>(s.size()));
  out += s;
}

void restore_schema(const fs::path& written, const fs::path& dest, const std::string& schema_json) {
  Fd in(::open(written.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) throw std::system_error(errno, std::generic_category(), "open " + written.string());
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) throw std::system_error(errno, std::generic_category(), "stat " + written.string());
  // The header (magic, metadata map, sync marker) is well under 64 KiB: a schema and a codec name.
  HeaderReader h{std::string(std::min<std::size_t>(static_cast<std::size_t>(st.st_size), 1 << 16), '\0'), 0, written};
  if (::pread(in.get(), h.buf.data(), h.buf.size(), 0) != static_cast<ssize_t>(h.buf.size()))
    throw std::runtime_error("avro: cannot read header of " + written.string());
  for (const char c : std::string("Obj\x01", 4))
    if (h.byte() != static_cast<unsigned char>(c)) throw std::runtime_error("avro: bad magic in " + written.string());
  std::vector<std::pair<std::string, std::string>> meta;
  for (int64_t count = h.varlong(); count != 0; count = h.varlong()) {
    if (count < 0) {
      count = -count;
      h.varlong();  // block byte size, not needed
    }
    for (int64_t i = 0; i < count; ++i) {
      std::string key = h.bytes();
      std::string value = h.bytes();
      meta.emplace_back(std::move(key), std::move(value));
    }
  }
  std::string header("Obj\x01", 4);
  put_varlong(header, static_cast<int64_t>(meta.size()));
  for (auto& [key, value] : meta) {
    put_bytes(header, key);
    put_bytes(header, key == "avro.schema" ? schema_json : value);
  }
  put_varlong(header, 0);
  for (int i = 0; i < 16; ++i) header.push_back(static_cast<char>(h.byte()));  // sync marker

  Fd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (out.get() < 0) throw std::system_error(errno, std::generic_category(), "create " + dest.string());
  for (std::size_t done = 0; done < header.size();) {
    const ssize_t n = ::write(out.get(), header.data() + done, header.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "write " + dest.string());
    done += static_cast<std::size_t>(n);
  }
  off_t from = static_cast<off_t>(h.pos);
  while (from < st.st_size) {
    const ssize_t n = ::copy_file_range(in.get(), &from, out.get(), nullptr, static_cast<std::size_t>(st.st_size - from), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "copy into " + dest.string());
    if (n == 0) throw std::runtime_error("avro: " + written.string() + " shrank while being copied");
  }
  if (::fsync(out.get()) != 0) throw std::system_error(errno, std::generic_category(), "fsync " + dest.string());
  out.close_checked(dest);
}

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

  // avro-c writes a side file (opened for exclusive creation, so a leftover from a failed attempt
  // is removed first); restore_schema then produces path from it.
  fs::path side = path;
  side += ".avroc";
  std::error_code ec;
  fs::remove(side, ec);
  avro_file_writer_t writer = nullptr;
  check(avro_file_writer_create_with_codec(side.c_str(), schema.s, &writer, "deflate", block), "create file writer");
  try {
    for (const Message* m : messages) {
      check(avro_value_reset(&rec.v), "reset record");
      fill(&rec.v, subscription_name, *m);
      check(avro_file_writer_append_value(writer, &rec.v), "append record");
    }
    avro_file_writer_t w = writer;
    writer = nullptr;
    check(avro_file_writer_close(w), "close file writer");
    restore_schema(side, path, kSchemaJson);
    fs::remove(side);
    // The staged name must survive a crash too: the ledger records it before the commit.
    fsync_file(path.parent_path().empty() ? fs::path(".") : path.parent_path());
  } catch (...) {
    if (writer) avro_file_writer_close(writer);
    fs::remove(side, ec);
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
