#include "bus/sqlite_bus.h"

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace apilake {

namespace {

// Schema. Notes on choices that are not obvious:
// - messages.id is AUTOINCREMENT: acked messages are deleted, and a plain rowid table may hand a
//   deleted id out again, which the ledger's seen() would then mistake for an old message.
// - dedup keys live in their own table so they outlive the message they point to: a publisher that
//   resumes an interrupted extraction must not re-inject a page that was consumed and pruned.
// - an acked delivery is deleted rather than kept as 'acked'; a message with no delivery rows left
//   (and in no prepared ledger batch) is deleted. Only dead letters and dedup keys accumulate.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS topics(name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS subscriptions(name TEXT PRIMARY KEY, topic TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS subscriptions_topic ON subscriptions(topic);
CREATE TABLE IF NOT EXISTS messages(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL,
  data BLOB NOT NULL,
  attributes BLOB NOT NULL,
  publish_time_us INTEGER NOT NULL,
  dedup_key TEXT);
CREATE TABLE IF NOT EXISTS dedup_keys(
  topic TEXT NOT NULL, key TEXT NOT NULL, message_id INTEGER NOT NULL,
  PRIMARY KEY(topic, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries(
  subscription TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_until_us INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'waiting',
  ack_id TEXT,
  PRIMARY KEY(subscription, message_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_message ON deliveries(message_id);
CREATE TABLE IF NOT EXISTS batches(
  consumer TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  state TEXT NOT NULL,
  files BLOB NOT NULL,
  counts BLOB NOT NULL,
  created_us INTEGER NOT NULL,
  committed_us INTEGER,
  PRIMARY KEY(consumer, batch_id));
CREATE INDEX IF NOT EXISTS batches_state ON batches(consumer, state);
CREATE TABLE IF NOT EXISTS batch_messages(
  consumer TEXT NOT NULL,
  message_id TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  ack_id TEXT NOT NULL,
  PRIMARY KEY(consumer, message_id));
CREATE INDEX IF NOT EXISTS batch_messages_batch ON batch_messages(consumer, batch_id);
CREATE INDEX IF NOT EXISTS batch_messages_message ON batch_messages(message_id);
CREATE TABLE IF NOT EXISTS batch_counts(
  consumer TEXT NOT NULL,
  extraction_id TEXT NOT NULL,
  rows INTEGER NOT NULL DEFAULT 0,
  deadlettered INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(consumer, extraction_id)) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Internal encoding of string lists (attributes, file lists, counts): "<length>:<bytes>" repeated.
// Length-prefixed so any byte may appear in a value, and no JSON dependency is needed for a format
// nothing outside this file reads.
std::string encode(const std::vector<std::string_view>& fields) {
  std::string out;
  for (auto f : fields) {
    out += std::to_string(f.size());
    out += ':';
    out.append(f.data(), f.size());
  }
  return out;
}

std::vector<std::string> decode(std::string_view in) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < in.size()) {
    const auto colon = in.find(':', pos);
    std::size_t len = 0;
    if (colon == std::string_view::npos) throw std::runtime_error("bus database: corrupt encoded field list");
    auto [p, ec] = std::from_chars(in.data() + pos, in.data() + colon, len);
    if (ec != std::errc() || p != in.data() + colon || len > in.size() - colon - 1)
      throw std::runtime_error("bus database: corrupt encoded field list");
    out.emplace_back(in.substr(colon + 1, len));
    pos = colon + 1 + len;
  }
  return out;
}

std::string encode_attributes(const Attributes& a) {
  std::vector<std::string_view> f;
  for (const auto& [k, v] : a) {
    f.push_back(k);
    f.push_back(v);
  }
  return encode(f);
}

Attributes decode_attributes(std::string_view s) {
  auto f = decode(s);
  if (f.size() % 2) throw std::runtime_error("bus database: corrupt attributes");
  Attributes a;
  for (std::size_t i = 0; i < f.size(); i += 2) a.emplace(std::move(f[i]), std::move(f[i + 1]));
  return a;
}

std::string encode_files(const std::vector<StagedFile>& files) {
  std::vector<std::string_view> f;
  for (const auto& s : files) {
    f.push_back(s.staged);
    f.push_back(s.final);
  }
  return encode(f);
}

std::vector<StagedFile> decode_files(std::string_view s) {
  auto f = decode(s);
  if (f.size() % 2) throw std::runtime_error("bus database: corrupt batch file list");
  std::vector<StagedFile> out;
  for (std::size_t i = 0; i < f.size(); i += 2) out.push_back({std::move(f[i]), std::move(f[i + 1])});
  return out;
}

std::string encode_counts(const std::map<std::string, ExtractionCounts>& counts) {
  std::vector<std::string> nums;  // keeps the string_views below alive
  nums.reserve(counts.size() * 2);
  std::vector<std::string_view> f;
  for (const auto& [id, c] : counts) {
    nums.push_back(std::to_string(c.rows));
    nums.push_back(std::to_string(c.deadlettered));
  }
  std::size_t i = 0;
  for (const auto& [id, c] : counts) {
    f.push_back(id);
    f.push_back(nums[i++]);
    f.push_back(nums[i++]);
  }
  return encode(f);
}

int64_t parse_i64(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) throw std::runtime_error("bus database: corrupt number");
  return v;
}

std::map<std::string, ExtractionCounts> decode_counts(std::string_view s) {
  auto f = decode(s);
  if (f.size() % 3) throw std::runtime_error("bus database: corrupt batch counts");
  std::map<std::string, ExtractionCounts> out;
  for (std::size_t i = 0; i < f.size(); i += 3) out[f[i]] = {parse_i64(f[i + 1]), parse_i64(f[i + 2])};
  return out;
}

// A message id of this bus is the decimal text of a positive integer.
std::optional<int64_t> message_number(std::string_view id) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), v);
  if (ec != std::errc() || p != id.data() + id.size() || v <= 0) return std::nullopt;
  return v;
}

// ack ids are "<message id>:<delivery attempt>", unique per delivery.
std::optional<int64_t> ack_message(std::string_view ack_id) {
  const auto colon = ack_id.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return message_number(ack_id.substr(0, colon));
}

}  // namespace

// Cached prepared statements, keyed by their SQL text.
struct SqliteBus::Statements {
  sqlite3* db = nullptr;
  std::unordered_map<std::string_view, sqlite3_stmt*> cache;

  ~Statements() {
    for (auto& [sql, s] : cache) sqlite3_finalize(s);
  }

  // One use of a cached statement: reset and unbound when it goes out of scope.
  class Use {
   public:
    Use(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
    ~Use() {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

    Use& bind(int i, int64_t v) {
      check(sqlite3_bind_int64(s_, i, v));
      return *this;
    }
    Use& bind(int i, std::string_view v) {
      check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
      return *this;
    }
    Use& bind_blob(int i, std::string_view v) {
      check(sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
      return *this;
    }
    Use& bind_null(int i) {
      check(sqlite3_bind_null(s_, i));
      return *this;
    }
    // true: a row is available; false: done.
    bool step() {
      const int rc = sqlite3_step(s_);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      throw std::runtime_error(fmt::format("bus database: {} (in: {})", sqlite3_errmsg(db_), sqlite3_sql(s_)));
    }
    void run() {
      while (step()) {
      }
    }
    int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
    bool is_null(int c) { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
    // spare: capacity reserved past the end (message bodies keep kMessageDataSlack, bus.h).
    std::string str(int c, std::size_t spare = 0) {
      const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
      const auto n = static_cast<std::size_t>(sqlite3_column_bytes(s_, c));
      std::string out;
      out.reserve(n + spare);
      if (p) out.assign(p, n);
      return out;
    }

   private:
    void check(int rc) {
      if (rc != SQLITE_OK) throw std::runtime_error(fmt::format("bus database: bind failed: {}", sqlite3_errmsg(db_)));
    }
    sqlite3* db_;
    sqlite3_stmt* s_;
  };

  // sql must be a string literal (the cache keys on its address-stable text).
  Use operator()(const char* sql) {
    auto it = cache.find(sql);
    if (it == cache.end()) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
        throw std::runtime_error(fmt::format("bus database: cannot prepare statement: {}", sqlite3_errmsg(db)));
      it = cache.emplace(sql, s).first;
    }
    return Use(db, it->second);
  }
};

namespace {

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw std::runtime_error(fmt::format("bus database: {}", msg));
  }
}

// A write transaction; rolled back unless commit() is reached. IMMEDIATE takes the write lock up
// front, so a second process on the same file waits (busy_timeout) instead of failing mid-way.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { exec(db_, "BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    exec(db_, "COMMIT");
    done_ = true;
  }

 private:
  sqlite3* db_;
  bool done_ = false;
};

}  // namespace

// counts() without a SQLite read per GET /v1/extractions/{id}. Exact, not a TTL: batch_counts changes
// only in commit(), which bumps a 64-bit counter in "<db file>-ledger-version" (mmapped: every process
// on this database shares it) before BEGIN and after COMMIT. A cached figure is used while the counter
// still has the value it had when the cache was filled; a moved counter drops every entry. The counter
// is read before the SQLite read that fills an entry, so a commit racing with that read leaves the
// entry already stale rather than wrong. Left: a process that dies between its COMMIT and the second
// bump leaves figures read in that window stale until the next commit by anyone. Without the file
// (in-memory database, unwritable directory) nothing is cached.
struct SqliteBus::CountsCache {
  static constexpr std::size_t kMaxEntries = 65536;  // then start over: a bound, not an eviction policy
  std::mutex mu;
  uint64_t* shared = nullptr;  // the mapped counter; null until open() succeeded
  bool tried = false;
  uint64_t version = 0;        // the counter's value the entries were read under
  std::unordered_map<std::string, ExtractionCounts> entries;  // consumer + '\0' + extraction id

  CountsCache() = default;
  CountsCache(const CountsCache&) = delete;
  CountsCache& operator=(const CountsCache&) = delete;
  ~CountsCache() {
    if (shared) munmap(shared, sizeof(uint64_t));
  }
  // Maps the counter file once; caller holds mu and the bus mutex (db is not used concurrently).
  bool open(sqlite3* db) {
    if (tried) return shared != nullptr;
    tried = true;
    const char* name = sqlite3_db_filename(db, "main");
    if (!name || !*name) return false;
    const std::string path = std::string(name) + "-ledger-version";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    struct stat st {};
    // Growing a fresh file to 8 bytes zero-fills it; a racing process doing the same changes nothing.
    if (fstat(fd, &st) != 0 || (st.st_size < static_cast<off_t>(sizeof(uint64_t)) && ftruncate(fd, sizeof(uint64_t)) != 0)) {
      ::close(fd);
      return false;
    }
    void* p = mmap(nullptr, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return false;
    shared = static_cast<uint64_t*>(p);
    return true;
  }
  uint64_t load() const { return std::atomic_ref<uint64_t>(*shared).load(std::memory_order_acquire); }
  // Caller holds mu; drops the entries when the counter moved since they were read.
  void sync() {
    const uint64_t now = load();
    if (now != version) {
      entries.clear();
      version = now;
    }
  }
};

SqliteBus::SqliteBus(const std::filesystem::path& db_file, SqliteBusOptions options)
    : options_(options), stmts_(std::make_unique<Statements>()), counts_cache_(std::make_unique<CountsCache>()) {
  if (options_.max_delivery_attempts < 1)
    throw std::invalid_argument(fmt::format("max_delivery_attempts must be at least 1 (got {})",
                                            options_.max_delivery_attempts));
  if (db_file.has_parent_path()) std::filesystem::create_directories(db_file.parent_path());
  // One connection serialised by mu_, so SQLite's own connection mutex is not needed.
  const int rc = sqlite3_open_v2(db_file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(fmt::format("cannot open bus database {}: {}", db_file.string(), msg));
  }
  try {
    sqlite3_busy_timeout(db_, 10000);
    // 16 KB pages for a new database: a ~21 KB page body is then a 4.6 KB local part + one overflow
    // page (2 WAL frames) instead of 6 frames of 4 KB, each frame 2 pwrites. Only takes effect
    // before the first table exists; an existing database keeps its page size (SQLite ignores
    // the pragma there, and a WAL database cannot change it), so both open the same way.
    // synchronous=FULL: publish() and commit() promise durability when they return.
    exec(db_, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    exec(db_, kSchema);
  } catch (const std::exception& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(fmt::format("cannot initialise bus database {}: {}", db_file.string(), e.what()));
  }
  stmts_->db = db_;
}

SqliteBus::~SqliteBus() {
  stmts_.reset();  // statements must be finalised before the connection closes
  if (db_) sqlite3_close(db_);
}

void SqliteBus::create_topic(const std::string& topic) {
  if (topic.empty()) throw std::invalid_argument("topic name must not be empty");
  std::lock_guard lock(mu_);
  (*stmts_)("INSERT INTO topics(name) VALUES(?) ON CONFLICT DO NOTHING").bind(1, topic).run();
}

void SqliteBus::create_subscription(const std::string& subscription, const std::string& topic) {
  if (subscription.empty()) throw std::invalid_argument("subscription name must not be empty");
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  {
    auto q = (*stmts_)("SELECT 1 FROM topics WHERE name = ?");
    if (!q.bind(1, topic).step())
      throw std::invalid_argument(fmt::format("cannot subscribe {} to topic {}: no such topic", subscription, topic));
  }
  {
    auto q = (*stmts_)("SELECT topic FROM subscriptions WHERE name = ?");
    if (q.bind(1, subscription).step()) {
      const auto existing = q.str(0);
      if (existing != topic)
        throw std::invalid_argument(
            fmt::format("subscription {} already exists on topic {} (not {})", subscription, existing, topic));
      return;  // idempotent
    }
  }
  (*stmts_)("INSERT INTO subscriptions(name, topic) VALUES(?, ?)").bind(1, subscription).bind(2, topic).run();
  tx.commit();
}

std::vector<std::string> SqliteBus::publish(const std::string& topic, const std::vector<OutMessage>& batch) {
  std::vector<std::string> ids;
  ids.reserve(batch.size());
  if (batch.empty()) return ids;
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  {
    auto q = (*stmts_)("SELECT 1 FROM topics WHERE name = ?");
    if (!q.bind(1, topic).step())
      throw std::invalid_argument(fmt::format("cannot publish to topic {}: no such topic", topic));
  }
  const int64_t t = now_us();
  for (const auto& m : batch) {
    if (!m.dedup_key.empty()) {
      auto q = (*stmts_)("SELECT 1 FROM dedup_keys WHERE topic = ? AND key = ?");
      if (q.bind(1, topic).bind(2, m.dedup_key).step()) {
        ids.emplace_back();
        continue;
      }
    }
    int64_t id = 0;
    {
      auto q = (*stmts_)(
          "INSERT INTO messages(topic, data, attributes, publish_time_us, dedup_key) VALUES(?, ?, ?, ?, ?) RETURNING id");
      q.bind(1, topic).bind_blob(2, m.data).bind_blob(3, encode_attributes(m.attributes)).bind(4, t);
      if (m.dedup_key.empty())
        q.bind_null(5);
      else
        q.bind(5, m.dedup_key);
      if (!q.step()) throw std::runtime_error("bus database: insert returned no id");
      id = q.i64(0);
      q.run();
    }
    if (!m.dedup_key.empty())
      (*stmts_)("INSERT INTO dedup_keys(topic, key, message_id) VALUES(?, ?, ?)")
          .bind(1, topic)
          .bind(2, m.dedup_key)
          .bind(3, id)
          .run();
    (*stmts_)(
        "INSERT INTO deliveries(subscription, message_id) SELECT name, ? FROM subscriptions WHERE topic = ?")
        .bind(1, id)
        .bind(2, topic)
        .run();
    // A topic without subscriptions keeps nothing (as Pub/Sub); the id is still unique (AUTOINCREMENT).
    if (sqlite3_changes(db_) == 0) (*stmts_)("DELETE FROM messages WHERE id = ?").bind(1, id).run();
    ids.push_back(std::to_string(id));
  }
  tx.commit();
  return ids;
}

void SqliteBus::require_subscription(const std::string& subscription) {
  auto q = (*stmts_)("SELECT 1 FROM subscriptions WHERE name = ?");
  if (!q.bind(1, subscription).step())
    throw std::invalid_argument(fmt::format("no such subscription: {}", subscription));
}

std::vector<Message> SqliteBus::pull(const std::string& subscription, std::size_t max, std::chrono::seconds lease) {
  std::vector<Message> out;
  if (max == 0) return out;
  if (lease.count() < 0) throw std::invalid_argument("lease must not be negative");
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  require_subscription(subscription);
  const int64_t now = now_us();
  const int64_t until = now + std::chrono::duration_cast<std::chrono::microseconds>(lease).count();
  // Exhausted deliveries found here turn dead and are not returned, so look again until `max`
  // messages are leased or nothing deliverable is left.
  int64_t after = 0;
  while (out.size() < max) {
    struct Row {
      int64_t id, attempts;
      std::string data, attributes;
      int64_t publish_time_us;
    };
    std::vector<Row> rows;
    {
      auto q = (*stmts_)(
          "SELECT d.message_id, d.attempts, m.data, m.attributes, m.publish_time_us "
          "FROM deliveries d JOIN messages m ON m.id = d.message_id "
          "WHERE d.subscription = ? AND d.message_id > ? "
          "AND (d.state = 'waiting' OR (d.state = 'leased' AND d.lease_until_us <= ?)) "
          "ORDER BY d.message_id LIMIT ?");
      q.bind(1, subscription).bind(2, after).bind(3, now).bind(4, static_cast<int64_t>(max - out.size()));
      while (q.step()) rows.push_back({q.i64(0), q.i64(1), q.str(2, kMessageDataSlack), q.str(3), q.i64(4)});
    }
    if (rows.empty()) break;
    for (auto& r : rows) {
      after = r.id;
      const int64_t attempt = r.attempts + 1;
      if (attempt > options_.max_delivery_attempts) {
        (*stmts_)("UPDATE deliveries SET state = 'dead', ack_id = NULL, lease_until_us = 0 "
                  "WHERE subscription = ? AND message_id = ?")
            .bind(1, subscription)
            .bind(2, r.id)
            .run();
        spdlog::warn("bus: message {} dead-lettered on {} after {} delivery attempts", r.id, subscription, r.attempts);
        continue;
      }
      Message m;
      m.id = std::to_string(r.id);
      m.ack_id = fmt::format("{}:{}", r.id, attempt);
      m.data = std::move(r.data);
      m.attributes = decode_attributes(r.attributes);
      m.publish_time_us = r.publish_time_us;
      m.delivery_attempt = static_cast<int>(attempt);
      (*stmts_)("UPDATE deliveries SET state = 'leased', attempts = ?, lease_until_us = ?, ack_id = ? "
                "WHERE subscription = ? AND message_id = ?")
          .bind(1, attempt)
          .bind(2, until)
          .bind(3, m.ack_id)
          .bind(4, subscription)
          .bind(5, r.id)
          .run();
      out.push_back(std::move(m));
    }
  }
  tx.commit();
  return out;
}

// Deletes message `id` once no subscription needs it and no prepared ledger batch may still have to
// hand it back (abandon). Caller holds mu_ inside a transaction.
void SqliteBus::prune(int64_t id) {
  {
    auto q = (*stmts_)("SELECT 1 FROM deliveries WHERE message_id = ? LIMIT 1");
    if (q.bind(1, id).step()) return;
  }
  {
    auto q = (*stmts_)(
        "SELECT 1 FROM batch_messages bm JOIN batches b ON b.consumer = bm.consumer AND b.batch_id = bm.batch_id "
        "WHERE bm.message_id = ? AND b.state = 'prepared' LIMIT 1");
    if (q.bind(1, std::to_string(id)).step()) return;
  }
  (*stmts_)("DELETE FROM messages WHERE id = ?").bind(1, id).run();
}

void SqliteBus::ack(const std::string& subscription, const std::vector<std::string>& ack_ids) {
  if (ack_ids.empty()) return;
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  for (const auto& a : ack_ids) {
    const auto id = ack_message(a);
    if (!id) continue;  // not one of ours: nothing can match it
    // Only the current delivery's ack id counts: a late ack from a superseded delivery is ignored.
    (*stmts_)("DELETE FROM deliveries WHERE subscription = ? AND message_id = ? AND ack_id = ? AND state = 'leased'")
        .bind(1, subscription)
        .bind(2, *id)
        .bind(3, a)
        .run();
    if (sqlite3_changes(db_) > 0) prune(*id);
  }
  tx.commit();
}

void SqliteBus::nack(const std::string& subscription, const std::vector<std::string>& ack_ids) {
  if (ack_ids.empty()) return;
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  for (const auto& a : ack_ids) {
    const auto id = ack_message(a);
    if (!id) continue;
    // A nack of the last allowed attempt dead-letters at once rather than at the next pull, so
    // dead_letters() and backlog() are right without another pull.
    (*stmts_)("UPDATE deliveries SET state = CASE WHEN attempts >= ? THEN 'dead' ELSE 'waiting' END, "
              "lease_until_us = 0, ack_id = NULL "
              "WHERE subscription = ? AND message_id = ? AND ack_id = ? AND state = 'leased'")
        .bind(1, static_cast<int64_t>(options_.max_delivery_attempts))
        .bind(2, subscription)
        .bind(3, *id)
        .bind(4, a)
        .run();
  }
  tx.commit();
}

void SqliteBus::extend(const std::string& subscription, const std::vector<std::string>& ack_ids,
                       std::chrono::seconds lease) {
  if (ack_ids.empty()) return;
  if (lease.count() < 0) throw std::invalid_argument("lease must not be negative");
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  const int64_t until = now_us() + std::chrono::duration_cast<std::chrono::microseconds>(lease).count();
  for (const auto& a : ack_ids) {
    const auto id = ack_message(a);
    if (!id) continue;
    (*stmts_)("UPDATE deliveries SET lease_until_us = ? "
              "WHERE subscription = ? AND message_id = ? AND ack_id = ? AND state = 'leased'")
        .bind(1, until)
        .bind(2, subscription)
        .bind(3, *id)
        .bind(4, a)
        .run();
  }
  tx.commit();
}

void SqliteBus::prepare(const PreparedBatch& batch) {
  if (batch.consumer.empty()) throw std::invalid_argument("prepare: batch has no consumer");
  if (batch.batch_id.empty()) throw std::invalid_argument("prepare: batch has no id");
  if (batch.ack_ids.size() != batch.message_ids.size())
    throw std::invalid_argument(fmt::format("prepare: batch {} has {} message ids but {} ack ids", batch.batch_id,
                                            batch.message_ids.size(), batch.ack_ids.size()));
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  {
    auto q = (*stmts_)("SELECT state FROM batches WHERE consumer = ? AND batch_id = ?");
    if (q.bind(1, batch.consumer).bind(2, batch.batch_id).step())
      throw std::invalid_argument(
          fmt::format("prepare: batch {} of {} already exists ({})", batch.batch_id, batch.consumer, q.str(0)));
  }
  (*stmts_)("INSERT INTO batches(consumer, batch_id, state, files, counts, created_us) VALUES(?, ?, 'prepared', ?, ?, ?)")
      .bind(1, batch.consumer)
      .bind(2, batch.batch_id)
      .bind_blob(3, encode_files(batch.files))
      .bind_blob(4, encode_counts(batch.counts))
      .bind(5, now_us())
      .run();
  for (std::size_t i = 0; i < batch.message_ids.size(); ++i) {
    {
      // A message in two batches would land in the lake twice: refuse the second.
      auto q = (*stmts_)("SELECT batch_id FROM batch_messages WHERE consumer = ? AND message_id = ?");
      if (q.bind(1, batch.consumer).bind(2, batch.message_ids[i]).step())
        throw std::invalid_argument(fmt::format("prepare: message {} of batch {} is already in batch {} of {}",
                                                batch.message_ids[i], batch.batch_id, q.str(0), batch.consumer));
    }
    (*stmts_)("INSERT INTO batch_messages(consumer, message_id, batch_id, ack_id) VALUES(?, ?, ?, ?)")
        .bind(1, batch.consumer)
        .bind(2, batch.message_ids[i])
        .bind(3, batch.batch_id)
        .bind(4, batch.ack_ids[i])
        .run();
  }
  tx.commit();
}

void SqliteBus::commit(const PreparedBatch& batch, const std::string& subscription) {
  std::lock_guard lock(mu_);
  // Before and after: a reader that fills its cache between the two bumps is invalidated by the second.
  auto bump_counts_version = [this] {
    std::lock_guard cache_lock(counts_cache_->mu);
    if (counts_cache_->open(db_)) std::atomic_ref<uint64_t>(*counts_cache_->shared).fetch_add(1);
  };
  bump_counts_version();
  Transaction tx(db_);
  require_subscription(subscription);
  std::string counts_blob;
  {
    auto q = (*stmts_)("SELECT state, counts FROM batches WHERE consumer = ? AND batch_id = ?");
    if (!q.bind(1, batch.consumer).bind(2, batch.batch_id).step())
      throw std::invalid_argument(
          fmt::format("commit: batch {} of {} was never prepared", batch.batch_id, batch.consumer));
    if (q.str(0) == "committed") return;  // idempotent: a retried commit changes nothing
    counts_blob = q.str(1);
  }
  (*stmts_)("UPDATE batches SET state = 'committed', committed_us = ? WHERE consumer = ? AND batch_id = ?")
      .bind(1, now_us())
      .bind(2, batch.consumer)
      .bind(3, batch.batch_id)
      .run();
  // What was prepared is what gets counted and acked, whatever the caller's copy says.
  for (const auto& [extraction, c] : decode_counts(counts_blob)) {
    (*stmts_)("INSERT INTO batch_counts(consumer, extraction_id, rows, deadlettered) VALUES(?, ?, ?, ?) "
              "ON CONFLICT(consumer, extraction_id) DO UPDATE SET rows = rows + excluded.rows, "
              "deadlettered = deadlettered + excluded.deadlettered")
        .bind(1, batch.consumer)
        .bind(2, extraction)
        .bind(3, c.rows)
        .bind(4, c.deadlettered)
        .run();
  }
  std::vector<int64_t> ids;
  {
    auto q = (*stmts_)("SELECT message_id FROM batch_messages WHERE consumer = ? AND batch_id = ?");
    q.bind(1, batch.consumer).bind(2, batch.batch_id);
    while (q.step())
      if (auto id = message_number(q.str(0))) ids.push_back(*id);
  }
  // Acked by message id, not by the recorded ack ids: those go stale when a lease expires while the
  // batch is pending, and a message in a committed file must never be delivered to this
  // subscription again, whichever delivery of it is current.
  for (int64_t id : ids) {
    (*stmts_)("DELETE FROM deliveries WHERE subscription = ? AND message_id = ?").bind(1, subscription).bind(2, id).run();
    prune(id);
  }
  tx.commit();
  bump_counts_version();
}

void SqliteBus::abandon(const PreparedBatch& batch, const std::string& subscription) {
  std::lock_guard lock(mu_);
  Transaction tx(db_);
  require_subscription(subscription);
  {
    auto q = (*stmts_)("SELECT state FROM batches WHERE consumer = ? AND batch_id = ?");
    if (!q.bind(1, batch.consumer).bind(2, batch.batch_id).step()) return;  // nothing to undo
    if (q.str(0) == "committed")
      throw std::invalid_argument(
          fmt::format("abandon: batch {} of {} is already committed", batch.batch_id, batch.consumer));
  }
  std::vector<int64_t> ids;
  {
    auto q = (*stmts_)("SELECT message_id FROM batch_messages WHERE consumer = ? AND batch_id = ?");
    q.bind(1, batch.consumer).bind(2, batch.batch_id);
    while (q.step())
      if (auto id = message_number(q.str(0))) ids.push_back(*id);
  }
  // Redelivered copies of these messages may have been acked as duplicates while the batch was
  // pending; bring every one back (messages in a prepared batch are never pruned, so they exist).
  for (int64_t id : ids) {
    (*stmts_)("INSERT INTO deliveries(subscription, message_id) SELECT ?, id FROM messages WHERE id = ? "
              "ON CONFLICT(subscription, message_id) DO UPDATE SET state = 'waiting', lease_until_us = 0, "
              "ack_id = NULL WHERE state <> 'dead'")
        .bind(1, subscription)
        .bind(2, id)
        .run();
  }
  (*stmts_)("DELETE FROM batch_messages WHERE consumer = ? AND batch_id = ?")
      .bind(1, batch.consumer)
      .bind(2, batch.batch_id)
      .run();
  (*stmts_)("DELETE FROM batches WHERE consumer = ? AND batch_id = ?").bind(1, batch.consumer).bind(2, batch.batch_id).run();
  tx.commit();
}

std::vector<PreparedBatch> SqliteBus::pending(const std::string& consumer) {
  std::lock_guard lock(mu_);
  std::vector<PreparedBatch> out;
  {
    auto q = (*stmts_)(
        "SELECT batch_id, files, counts FROM batches WHERE consumer = ? AND state = 'prepared' ORDER BY created_us, rowid");
    q.bind(1, consumer);
    while (q.step()) {
      PreparedBatch b;
      b.consumer = consumer;
      b.batch_id = q.str(0);
      b.files = decode_files(q.str(1));
      b.counts = decode_counts(q.str(2));
      out.push_back(std::move(b));
    }
  }
  for (auto& b : out) {
    auto q = (*stmts_)("SELECT message_id, ack_id FROM batch_messages WHERE consumer = ? AND batch_id = ? ORDER BY rowid");
    q.bind(1, consumer).bind(2, b.batch_id);
    while (q.step()) {
      b.message_ids.push_back(q.str(0));
      b.ack_ids.push_back(q.str(1));
    }
  }
  return out;
}

bool SqliteBus::seen(const std::string& consumer, const std::string& message_id) {
  std::lock_guard lock(mu_);
  auto q = (*stmts_)("SELECT 1 FROM batch_messages WHERE consumer = ? AND message_id = ?");
  return q.bind(1, consumer).bind(2, message_id).step();
}

ExtractionCounts SqliteBus::counts(const std::string& consumer, const std::string& extraction_id) {
  auto& cache = *counts_cache_;
  std::string key;
  key.reserve(consumer.size() + 1 + extraction_id.size());
  key.append(consumer).push_back('\0');
  key.append(extraction_id);
  {
    std::lock_guard cache_lock(cache.mu);
    if (cache.shared) {
      cache.sync();
      if (auto it = cache.entries.find(key); it != cache.entries.end()) return it->second;
    }
  }
  ExtractionCounts out;
  uint64_t read_under = 0;
  bool cacheable = false;
  {
    std::lock_guard lock(mu_);
    {
      std::lock_guard cache_lock(cache.mu);
      cacheable = cache.open(db_);
      if (cacheable) read_under = cache.load();  // before the read: see CountsCache
    }
    auto q = (*stmts_)("SELECT rows, deadlettered FROM batch_counts WHERE consumer = ? AND extraction_id = ?");
    if (q.bind(1, consumer).bind(2, extraction_id).step()) out = {q.i64(0), q.i64(1)};
  }
  if (cacheable) {
    std::lock_guard cache_lock(cache.mu);
    cache.sync();
    if (cache.version == read_under) {
      if (cache.entries.size() >= CountsCache::kMaxEntries) cache.entries.clear();
      cache.entries.emplace(std::move(key), out);
    }
  }
  return out;
}

std::vector<Message> SqliteBus::dead_letters(const std::string& subscription) {
  std::lock_guard lock(mu_);
  std::vector<Message> out;
  auto q = (*stmts_)(
      "SELECT m.id, m.data, m.attributes, m.publish_time_us, d.attempts "
      "FROM deliveries d JOIN messages m ON m.id = d.message_id "
      "WHERE d.subscription = ? AND d.state = 'dead' ORDER BY d.message_id");
  q.bind(1, subscription);
  while (q.step()) {
    Message m;
    m.id = std::to_string(q.i64(0));
    m.data = q.str(1);
    m.attributes = decode_attributes(q.str(2));
    m.publish_time_us = q.i64(3);
    m.delivery_attempt = static_cast<int>(q.i64(4));
    out.push_back(std::move(m));
  }
  return out;
}

std::size_t SqliteBus::backlog(const std::string& subscription) {
  std::lock_guard lock(mu_);
  auto q = (*stmts_)("SELECT COUNT(*) FROM deliveries WHERE subscription = ? AND state IN ('waiting', 'leased')");
  q.bind(1, subscription).step();
  return static_cast<std::size_t>(q.i64(0));
}

std::size_t SqliteBus::release_leases() {
  std::lock_guard lock(mu_);
  (*stmts_)("UPDATE deliveries SET state = 'waiting', lease_until_us = 0, ack_id = NULL WHERE state = 'leased'").run();
  return static_cast<std::size_t>(sqlite3_changes(db_));
}

}  // namespace apilake
