#include "api/extraction_store.h"

#include <sqlite3.h>

#include <chrono>
#include <stdexcept>

namespace apilake {
namespace {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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
  std::string text(int col) {
    auto p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, col)) : std::string();
  }
  int64_t int64(int col) { return sqlite3_column_int64(s_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

constexpr const char* kColumns =
    "id, source, endpoint, params, status, pages, records, bytes, error, created_us, finished_us";

Extraction read_row(Stmt& s) {
  Extraction e;
  e.id = s.text(0);
  e.source = s.text(1);
  e.endpoint = s.text(2);
  e.params_json = s.text(3);
  e.status = s.text(4);
  e.pages = s.int64(5);
  e.records = s.int64(6);
  e.bytes = s.int64(7);
  e.error = s.text(8);
  e.created_us = s.int64(9);
  e.finished_us = s.int64(10);
  return e;
}

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
  exec(
      "CREATE TABLE IF NOT EXISTS incremental_state ("
      " source TEXT NOT NULL, endpoint TEXT NOT NULL, params_key TEXT NOT NULL, value TEXT NOT NULL,"
      " updated_us INTEGER NOT NULL, PRIMARY KEY (source, endpoint, params_key))");
}

ExtractionStore::~ExtractionStore() { sqlite3_close(db_); }

void ExtractionStore::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("extraction store: " + msg);
  }
}

void ExtractionStore::insert(const Extraction& e) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "INSERT INTO extractions (id, source, endpoint, params, status, created_us) VALUES (?,?,?,?,?,?)");
  s.bind(1, e.id).bind(2, e.source).bind(3, e.endpoint).bind(4, e.params_json).bind(5, e.status);
  s.bind(6, e.created_us ? e.created_us : now_us());
  s.step();
}

std::optional<Extraction> ExtractionStore::get(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kColumns + " FROM extractions WHERE id = ?").c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_row(s);
}

void ExtractionStore::set_running(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt(db_, "UPDATE extractions SET status = 'running' WHERE id = ?").bind(1, id).step();
}

void ExtractionStore::add_page(const std::string& id, int64_t records, int64_t bytes) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE extractions SET pages = pages + 1, records = records + ?, bytes = bytes + ? WHERE id = ?");
  s.bind(1, records).bind(2, bytes).bind(3, id).step();
}

void ExtractionStore::reset_progress(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt(db_, "UPDATE extractions SET pages = 0, records = 0, bytes = 0, status = 'queued' WHERE id = ?")
      .bind(1, id)
      .step();
}

void ExtractionStore::finish(const std::string& id, bool ok, const std::string& error) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE extractions SET status = ?, error = ?, finished_us = ? WHERE id = ?");
  s.bind(1, std::string(ok ? "succeeded" : "failed")).bind(2, error).bind(3, now_us()).bind(4, id).step();
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

}  // namespace apilake
