#include "api/extraction_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <stdexcept>

namespace apilake {
namespace {

// WAL frames after which a checkpoint is asked for (SQLite's default autocheckpoint threshold).
constexpr int kCheckpointFrames = 1000;
// Group commit coalescing (writer()): a batch of 2..kCoalesceBelow-1 writes waits kCoalesceWait for
// more. Measured at c=64 (docs/performance.md, API round 6): 150 us cuts CPU/request ~5 % at the same
// req/s; 400 us cut it ~15 % but lost ~10 % req/s (the clients wait longer for their answers).
constexpr std::size_t kCoalesceBelow = 32;
constexpr std::chrono::microseconds kCoalesceWait{150};
// Rows the owner keeps in memory (first read, first evicted): a few MB.
constexpr std::size_t kCachedRows = 16384;

// The stores of this process that own their file, by the file's canonical path: another store of the
// same file in this process tells its owner after each commit. Lock order: registry, then a cache.
struct OwnerRegistry {
  std::mutex mu;
  std::unordered_map<std::string, ExtractionStore*> owners;
};
OwnerRegistry& owner_registry() {
  static OwnerRegistry r;
  return r;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string column_text(sqlite3_stmt* s, int col) {
  auto p = sqlite3_column_text(s, col);
  return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s, col)) : std::string();
}

// A prepared statement that finalizes itself; binds by position.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("extraction store: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(std::string("extraction store: ") + sqlite3_errmsg(db_));
  }
  std::string text(int col) { return column_text(s_, col); }
  int64_t int64(int col) { return sqlite3_column_int64(s_, col); }
  sqlite3_stmt* raw() { return s_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

constexpr const char* kColumns =
    "id, source, endpoint, params, status, pages, records, bytes, error, created_us, finished_us";

// A row of kColumns.
Extraction read_row(sqlite3_stmt* s) {
  Extraction e;
  e.id = column_text(s, 0);
  e.source = column_text(s, 1);
  e.endpoint = column_text(s, 2);
  e.params_json = column_text(s, 3);
  e.status = column_text(s, 4);
  e.pages = sqlite3_column_int64(s, 5);
  e.records = sqlite3_column_int64(s, 6);
  e.bytes = sqlite3_column_int64(s, 7);
  e.error = column_text(s, 8);
  e.created_us = sqlite3_column_int64(s, 9);
  e.finished_us = sqlite3_column_int64(s, 10);
  return e;
}
Extraction read_row(Stmt& s) { return read_row(s.raw()); }

}  // namespace

ExtractionStore::ExtractionStore(const std::filesystem::path& db_file) {
  std::filesystem::create_directories(db_file.parent_path());
  if (sqlite3_open(db_file.c_str(), &db_) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("cannot open " + db_file.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  // NORMAL in WAL mode: a committed insert survives a process crash (SIGKILL); only an OS crash
  // can lose the last transactions. The pages themselves are durable in the bus (FULL).
  exec("PRAGMA synchronous=NORMAL");
  exec(
      "CREATE TABLE IF NOT EXISTS extractions ("
      " id TEXT PRIMARY KEY, source TEXT NOT NULL, endpoint TEXT NOT NULL, params TEXT NOT NULL,"
      " status TEXT NOT NULL, pages INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL DEFAULT 0,"
      " bytes INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', created_us INTEGER NOT NULL,"
      " finished_us INTEGER NOT NULL DEFAULT 0)");
  exec("CREATE INDEX IF NOT EXISTS extractions_status ON extractions(status, created_us)");
  // (the hot-path statements are prepared at the end, once every table exists)
  exec(
      "CREATE TABLE IF NOT EXISTS incremental_state ("
      " source TEXT NOT NULL, endpoint TEXT NOT NULL, params_key TEXT NOT NULL, value TEXT NOT NULL,"
      " updated_us INTEGER NOT NULL, PRIMARY KEY (source, endpoint, params_key))");
  auto prepare = [&](const std::string& sql, sqlite3_stmt** out) {
    if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, out, nullptr) != SQLITE_OK) {
      std::string msg = sqlite3_errmsg(db_);
      for (auto* st : {insert_stmt_, get_stmt_, running_stmt_, page_stmt_, finish_stmt_}) sqlite3_finalize(st);
      sqlite3_close(db_);
      throw std::runtime_error("extraction store: " + msg);
    }
  };
  prepare("INSERT INTO extractions (id, source, endpoint, params, status, created_us) VALUES (?,?,?,?,?,?)",
          &insert_stmt_);
  prepare(std::string("SELECT ") + kColumns + " FROM extractions WHERE id = ?", &get_stmt_);
  prepare("UPDATE extractions SET status = 'running' WHERE id = ?", &running_stmt_);
  prepare("UPDATE extractions SET pages = pages + 1, records = records + ?, bytes = bytes + ? WHERE id = ?",
          &page_stmt_);
  prepare("UPDATE extractions SET status = ?, error = ?, finished_us = ?, pages = pages + ?, records = records + ?,"
          " bytes = bytes + ? WHERE id = ?",
          &finish_stmt_);
  // Checkpoints run on their own connection and thread instead of inside the commit that crosses the
  // threshold (SQLite's autocheckpoint): the writer, and the answers waiting for it, never wait for
  // the checkpoint's fsyncs. The WAL hook replaces the autocheckpoint.
  if (sqlite3_open(db_file.c_str(), &checkpoint_db_) != SQLITE_OK) {
    std::string msg = checkpoint_db_ ? sqlite3_errmsg(checkpoint_db_) : "out of memory";
    sqlite3_close(checkpoint_db_);
    for (auto* st : {insert_stmt_, get_stmt_, running_stmt_, page_stmt_, finish_stmt_}) sqlite3_finalize(st);
    sqlite3_close(db_);
    throw std::runtime_error("cannot open " + db_file.string() + ": " + msg);
  }
  sqlite3_busy_timeout(checkpoint_db_, 5000);
  sqlite3_exec(checkpoint_db_, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
  // Ownership (the row cache): the first store of this file in this process takes the owner lock; a
  // second one here stays uncached; one in another process is refused, since the owner's cache could
  // not see its writes.
  key_ = std::filesystem::weakly_canonical(std::filesystem::absolute(db_file)).string();
  {
    auto& reg = owner_registry();
    std::lock_guard lock(reg.mu);
    if (!reg.owners.count(key_)) {
      const std::string lock_file = key_ + ".owner";
      const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      std::string why;
      if (fd < 0) why = "cannot open " + lock_file + ": " + std::strerror(errno);
      else if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        why = errno == EWOULDBLOCK ? db_file.string() + " is in use by another process (one process with the API role "
                                                        "per state directory)"
                                   : "cannot lock " + lock_file + ": " + std::strerror(errno);
        ::close(fd);
      }
      if (!why.empty()) {
        sqlite3_close(checkpoint_db_);
        for (auto* st : {insert_stmt_, get_stmt_, running_stmt_, page_stmt_, finish_stmt_}) sqlite3_finalize(st);
        sqlite3_close(db_);
        throw std::runtime_error("extraction store: " + why);
      }
      owner_fd_ = fd;
      reg.owners[key_] = this;
    }
  }
  sqlite3_wal_hook(
      db_,
      [](void* self, sqlite3*, const char*, int frames) {
        if (frames >= kCheckpointFrames) static_cast<ExtractionStore*>(self)->request_checkpoint();
        return SQLITE_OK;
      },
      this);
  checkpointer_ = std::thread([this] { checkpointer(); });
  writer_ = std::thread([this] { writer(); });
}

void ExtractionStore::request_checkpoint() {
  {
    std::lock_guard lock(checkpoint_mu_);
    checkpoint_wanted_ = true;
  }
  checkpoint_cv_.notify_one();
}

void ExtractionStore::checkpointer() {
  std::unique_lock lock(checkpoint_mu_);
  for (;;) {
    checkpoint_cv_.wait(lock, [&] { return checkpoint_closing_ || checkpoint_wanted_; });
    if (checkpoint_closing_) return;
    checkpoint_wanted_ = false;
    lock.unlock();
    // PASSIVE: copies what no reader still needs, never blocks the writer; the next threshold
    // crossing asks again for the rest.
    // (BUSY: another connection is checkpointing this file right now.)
    const int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
      spdlog::warn("extraction store: checkpoint failed: {}", sqlite3_errmsg(checkpoint_db_));
    lock.lock();
  }
}

ExtractionStore::~ExtractionStore() {
  {
    std::lock_guard lock(commit_mu_);
    closing_ = true;
  }
  commit_cv_.notify_all();
  writer_.join();  // answers every queued insert first
  {
    std::lock_guard lock(checkpoint_mu_);
    checkpoint_closing_ = true;
  }
  checkpoint_cv_.notify_all();
  checkpointer_.join();
  sqlite3_close(checkpoint_db_);
  for (auto* st : {insert_stmt_, get_stmt_, running_stmt_, page_stmt_, finish_stmt_}) sqlite3_finalize(st);
  sqlite3_close(db_);
  if (owner_fd_ >= 0) {
    {
      auto& reg = owner_registry();
      std::lock_guard lock(reg.mu);
      reg.owners.erase(key_);
    }
    ::close(owner_fd_);  // releases the owner lock
  }
}

void ExtractionStore::cache_put(Extraction e) {
  auto row = std::make_shared<const Extraction>(std::move(e));  // allocated before the lock
  std::lock_guard lock(cache_mu_);
  cache_put_locked(std::move(row));
}

void ExtractionStore::cache_put_locked(std::shared_ptr<const Extraction> row) {
  auto [it, added] = rows_.try_emplace(row->id);
  if (added) {
    order_.push_back(&it->first);  // a node's key stays put until the node is erased
    if (order_.size() > kCachedRows) {
      rows_.erase(rows_.find(*order_.front()));
      order_.pop_front();
    }
  }
  it->second = std::move(row);
}

void ExtractionStore::cache_clear() {
  std::lock_guard lock(cache_mu_);
  rows_.clear();
  order_.clear();
  ++generation_;
}

void ExtractionStore::after_foreign_commit() {
  auto& reg = owner_registry();
  std::lock_guard lock(reg.mu);
  if (auto it = reg.owners.find(key_); it != reg.owners.end() && it->second != this) it->second->cache_clear();
}

void ExtractionStore::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("extraction store: " + msg);
  }
}

void ExtractionStore::enqueue(PendingWrite w) {
  bool first;
  {
    std::lock_guard lock(commit_mu_);
    first = pending_.empty();
    pending_.push_back(std::move(w));
  }
  // The writer waits only while nothing is pending: whoever queued the first write woke it already.
  if (first) commit_cv_.notify_one();
}

void ExtractionStore::write_and_wait(PendingWrite w) {
  std::promise<std::string> result;
  auto future = result.get_future();
  w.done = [&result](const std::string& error) { result.set_value(error); };
  enqueue(std::move(w));
  if (auto error = future.get(); !error.empty()) throw std::runtime_error(error);
}

void ExtractionStore::insert(const Extraction& e) { write_and_wait(PendingWrite{PendingWrite::Kind::Insert, e, {}, {}}); }

void ExtractionStore::insert_async(Extraction e, InsertDone done) {
  enqueue(PendingWrite{PendingWrite::Kind::Insert, std::move(e), std::move(done), {}});
}

void ExtractionStore::writer() {
  std::vector<PendingWrite> batch;
  for (;;) {
    {
      std::unique_lock lock(commit_mu_);
      commit_cv_.wait(lock, [&] { return closing_ || !pending_.empty(); });
      if (pending_.empty()) return;  // closing, and every queued row answered
      batch.swap(pending_);          // rows queued while the previous batch committed: the next batch
      // Under load (more than one write arrived during the previous commit) a small batch waits a
      // moment for the writes still on their way: fewer, larger commits — fewer WAL frames, lock
      // syscalls and checkpoint passes per row. A lone write (an idle store) commits at once.
      if (batch.size() > 1 && batch.size() < kCoalesceBelow && !closing_) {
        commit_cv_.wait_for(lock, kCoalesceWait, [&] { return closing_; });
        for (auto& w : pending_) batch.push_back(std::move(w));
        pending_.clear();
      }
    }
    commit_batch(batch);
    for (auto& p : batch) {
      try {
        p.done(p.error);
      } catch (const std::exception& ex) {
        spdlog::error("extraction store: an insert callback failed: {}", ex.what());
      }
    }
    batch.clear();
  }
}

// Never throws: each write's outcome lands in its PendingWrite. A write that fails alone (a
// duplicate id) fails only itself; a failed transaction fails every write of the batch.
void ExtractionStore::commit_batch(std::vector<PendingWrite>& batch) {
  std::lock_guard lock(mu_);
  auto error = [&] { return std::string("extraction store: ") + sqlite3_errmsg(db_); };
  auto fail_all = [&](const std::string& msg) {
    for (auto& p : batch)
      if (p.error.empty()) p.error = msg;
  };
  if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return fail_all(error());
  // The owner's cache gets an update of a row it holds as committed: read back inside this
  // transaction, put once COMMIT succeeded. mu_ is held throughout: no cache miss fills in between.
  // Inserted rows are not put (the accept path's writer stays lean): the first get() reads them.
  std::vector<std::shared_ptr<const Extraction>> updated;
  for (auto& p : batch) {
    const Extraction& e = p.row;
    auto text = [](sqlite3_stmt* st, int i, const std::string& v) {
      sqlite3_bind_text(st, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    };
    sqlite3_stmt* s = nullptr;
    switch (p.kind) {
      case PendingWrite::Kind::Insert:
        s = insert_stmt_;
        text(s, 1, e.id);
        text(s, 2, e.source);
        text(s, 3, e.endpoint);
        text(s, 4, e.params_json);
        text(s, 5, e.status);
        sqlite3_bind_int64(s, 6, e.created_us ? e.created_us : now_us());
        break;
      case PendingWrite::Kind::Running:
        s = running_stmt_;
        text(s, 1, e.id);
        break;
      case PendingWrite::Kind::Page:
        s = page_stmt_;
        sqlite3_bind_int64(s, 1, e.records);
        sqlite3_bind_int64(s, 2, e.bytes);
        text(s, 3, e.id);
        break;
      case PendingWrite::Kind::Finish:
        s = finish_stmt_;
        text(s, 1, e.status);
        text(s, 2, e.error);
        sqlite3_bind_int64(s, 3, e.finished_us);
        sqlite3_bind_int64(s, 4, e.pages);
        sqlite3_bind_int64(s, 5, e.records);
        sqlite3_bind_int64(s, 6, e.bytes);
        text(s, 7, e.id);
        break;
    }
    const int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) p.error = error();
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE && sqlite3_get_autocommit(db_)) {
      // SQLite rolled the whole transaction back (I/O error, disk full): nothing of it is stored.
      return fail_all(p.error);
    }
    if (rc != SQLITE_DONE || owner_fd_ < 0 || p.kind == PendingWrite::Kind::Insert) continue;
    bool held;
    {
      std::lock_guard cache_lock(cache_mu_);
      held = rows_.count(e.id) > 0;
    }
    if (!held) continue;
    try {
      if (auto now = read_one(e.id)) updated.push_back(std::make_shared<const Extraction>(std::move(*now)));
    } catch (const std::exception&) {
      std::lock_guard cache_lock(cache_mu_);  // cannot tell the row as committed: forget it
      if (auto it = rows_.find(e.id); it != rows_.end()) {
        std::erase(order_, &it->first);
        rows_.erase(it);
      }
    }
  }
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    const std::string msg = error();
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    fail_all(msg);
    return;
  }
  if (owner_fd_ < 0) return after_foreign_commit();
  if (updated.empty()) return;
  std::lock_guard cache_lock(cache_mu_);
  for (auto& row : updated) cache_put_locked(std::move(row));
}

std::optional<Extraction> ExtractionStore::read_one(const std::string& id) {
  sqlite3_stmt* s = get_stmt_;
  sqlite3_bind_text(s, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
  std::optional<Extraction> out;
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) out = read_row(s);
  const std::string msg = rc == SQLITE_ROW || rc == SQLITE_DONE ? std::string() : sqlite3_errmsg(db_);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (!msg.empty()) throw std::runtime_error("extraction store: " + msg);
  return out;
}

std::optional<Extraction> ExtractionStore::get(const std::string& id) {
  if (owner_fd_ < 0) {
    std::lock_guard lock(mu_);
    return read_one(id);
  }
  // The owner: from memory when held (no SQLite read transaction, no wait for the writer's mu_).
  uint64_t generation;
  std::shared_ptr<const Extraction> held;
  {
    std::lock_guard cache_lock(cache_mu_);
    if (auto it = rows_.find(id); it != rows_.end()) held = it->second;
    generation = generation_;
  }
  if (held) return *held;
  std::lock_guard lock(mu_);
  auto out = read_one(id);
  if (out) {
    // Not filled when another store of the file committed (and cleared the cache) since the lookup:
    // what was read may predate that commit.
    bool fresh;
    {
      std::lock_guard cache_lock(cache_mu_);
      fresh = generation_ == generation;
    }
    if (fresh) cache_put(*out);
  }
  return out;
}

void ExtractionStore::set_running(const std::string& id) {
  PendingWrite w{PendingWrite::Kind::Running, {}, {}, {}};
  w.row.id = id;
  write_and_wait(std::move(w));
}

void ExtractionStore::add_page(const std::string& id, int64_t records, int64_t bytes) {
  PendingWrite w{PendingWrite::Kind::Page, {}, {}, {}};
  w.row.id = id;
  w.row.records = records;
  w.row.bytes = bytes;
  write_and_wait(std::move(w));
}

void ExtractionStore::reset_progress(const std::string& id) {
  std::lock_guard lock(mu_);
  try {
    Stmt(db_, "UPDATE extractions SET pages = 0, records = 0, bytes = 0, status = 'queued' WHERE id = ?")
        .bind(1, id)
        .step();
  } catch (...) {
    if (owner_fd_ >= 0) cache_clear();  // committed or not: the cache cannot tell
    throw;
  }
  if (owner_fd_ < 0) return after_foreign_commit();
  bool held;
  {
    std::lock_guard cache_lock(cache_mu_);
    held = rows_.count(id) > 0;
  }
  if (!held) return;
  std::optional<Extraction> now;
  try {
    now = read_one(id);
  } catch (...) {
    cache_clear();
    throw;
  }
  if (now) cache_put(std::move(*now));
}

void ExtractionStore::finish(const std::string& id, bool ok, const std::string& error,
                             const std::optional<PageCounts>& last_page) {
  PendingWrite w{PendingWrite::Kind::Finish, {}, {}, {}};
  w.row.id = id;
  if (last_page) {
    w.row.pages = 1;
    w.row.records = last_page->records;
    w.row.bytes = last_page->bytes;
  }
  w.row.status = ok ? "succeeded" : "failed";
  w.row.error = error;
  w.row.finished_us = now_us();
  write_and_wait(std::move(w));
}

std::optional<std::string> ExtractionStore::incremental_state(const std::string& source, const std::string& endpoint,
                                                              const std::string& params_key) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT value FROM incremental_state WHERE source = ? AND endpoint = ? AND params_key = ?");
  s.bind(1, source).bind(2, endpoint).bind(3, params_key);
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

void ExtractionStore::save_incremental_state(const std::string& source, const std::string& endpoint,
                                             const std::string& params_key, const std::string& value,
                                             const std::function<bool(const std::string&, const std::string&)>& less) {
  // Read and write under the store's mutex: two extractions finishing together keep the higher.
  std::lock_guard lock(mu_);
  {
    Stmt s(db_, "SELECT value FROM incremental_state WHERE source = ? AND endpoint = ? AND params_key = ?");
    s.bind(1, source).bind(2, endpoint).bind(3, params_key);
    if (s.step() && !less(s.text(0), value)) return;
  }
  Stmt s(db_,
         "INSERT INTO incremental_state (source, endpoint, params_key, value, updated_us) VALUES (?, ?, ?, ?, ?)"
         " ON CONFLICT (source, endpoint, params_key) DO UPDATE SET value = excluded.value,"
         " updated_us = excluded.updated_us");
  s.bind(1, source).bind(2, endpoint).bind(3, params_key).bind(4, value).bind(5, now_us());
  s.step();
}

std::vector<Extraction> ExtractionStore::unfinished() {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kColumns +
               " FROM extractions WHERE status IN ('queued','running') ORDER BY created_us")
                  .c_str());
  std::vector<Extraction> out;
  while (s.step()) out.push_back(read_row(s));
  return out;
}

std::vector<Extraction> ExtractionStore::recent(std::size_t limit) {
  std::lock_guard lock(mu_);
  // rowid breaks ties between extractions created in the same microsecond (insertion order).
  Stmt s(db_, (std::string("SELECT ") + kColumns + " FROM extractions ORDER BY created_us DESC, rowid DESC LIMIT ?")
                  .c_str());
  s.bind(1, static_cast<int64_t>(limit));
  std::vector<Extraction> out;
  while (s.step()) out.push_back(read_row(s));
  return out;
}

}  // namespace apilake
