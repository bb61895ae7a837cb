// Durable record of extractions (SQLite, WAL): what was asked, its fetch progress and outcome.
// Curated/dead-lettered counts are not stored here: they come from the delivery ledger, written in
// the same transaction as the curator's acks, so they are exact after crashes.
//
// Owner and row cache: the first store to open a file holds its owner lock (`<db>.owner`, flock) and
// keeps the rows get() has read in memory, so repeated gets (clients polling GET /v1/extractions/{id})
// need no SQLite read transaction. The cache is exact: every write of the owner to a held row updates
// it after its commit and before the write is acknowledged, and another store opened on the same file
// *in this process* (uncached) clears it after each of its commits. A store in another process cannot
// open a file whose owner is alive (std::runtime_error): one process with the API role per state
// directory. (The ledger's counts that GET also shows are read as before: another process writes them.)
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace apilake {

struct Extraction {
  std::string id;
  std::string source;
  std::string endpoint;
  std::string params_json;   // the validated params as a JSON object
  std::string status;        // queued | running | succeeded | failed
  int64_t pages = 0;
  int64_t records = 0;
  int64_t bytes = 0;
  std::string error;
  int64_t created_us = 0;
  int64_t finished_us = 0;
};

class ExtractionStore {
 public:
  explicit ExtractionStore(const std::filesystem::path& db_file);
  ~ExtractionStore();
  ExtractionStore(const ExtractionStore&) = delete;
  ExtractionStore& operator=(const ExtractionStore&) = delete;

  // Durable (committed) when it returns; throws std::runtime_error when the row cannot be stored.
  void insert(const Extraction& e);
  // The same, asynchronous: `done` runs on the store's writer thread once the row is committed
  // (error empty) or refused (error says why). Group commit: the writer stores every row queued
  // meanwhile in one transaction (one WAL write), so the API's io threads never wait for SQLite;
  // under load (several writes queued) it waits up to 150 us for more before committing.
  // `done` must not throw or block long.
  using InsertDone = std::function<void(const std::string& error)>;
  void insert_async(Extraction e, InsertDone done);
  std::optional<Extraction> get(const std::string& id);
  // set_running, add_page and finish are durable (committed) when they return, like insert, and go
  // through the same group-commit writer: concurrent fetch workers' updates (and accepted inserts)
  // share one transaction instead of one commit each. They throw std::runtime_error on failure.
  void set_running(const std::string& id);
  void add_page(const std::string& id, int64_t records, int64_t bytes);
  // Resets progress counters (an interrupted extraction runs again from page 1; the bus drops the
  // pages it already has by their dedup key).
  void reset_progress(const std::string& id);
  // A page's counts (add_page's arguments).
  struct PageCounts {
    int64_t records = 0;
    int64_t bytes = 0;
  };
  // `last_page`: that page is added (as add_page would) in the same write — an extraction's last page
  // and its end are one commit.
  void finish(const std::string& id, bool ok, const std::string& error,
              const std::optional<PageCounts>& last_page = std::nullopt);
  // Whether get() is served from the row cache (this store owns the file; see the top of this file).
  bool cached() const { return owner_fd_ >= 0; }
  std::vector<Extraction> unfinished();             // queued or running, oldest first
  std::vector<Extraction> recent(std::size_t limit);  // any status, newest first (GET /v1/extractions)

  // Incremental state: the highest cursor value fetched by a successful extraction, per (source,
  // endpoint, params key — the params except the incremental one). Survives restarts.
  std::optional<std::string> incremental_state(const std::string& source, const std::string& endpoint,
                                               const std::string& params_key);
  // Stores `value` unless the stored one is not less than it (`less` orders cursor values).
  void save_incremental_state(const std::string& source, const std::string& endpoint,
                              const std::string& params_key, const std::string& value,
                              const std::function<bool(const std::string&, const std::string&)>& less);

 private:
  void exec(const std::string& sql);
  // One write queued for the group-commit writer: an insert of `row`, or an update of row.id
  // (Page: += row.records/bytes; Finish: row.status, row.error, row.finished_us, and += row.pages/
  // records/bytes).
  struct PendingWrite {
    enum class Kind { Insert, Running, Page, Finish };
    Kind kind = Kind::Insert;
    Extraction row;
    InsertDone done;
    std::string error;  // empty: committed
  };
  void enqueue(PendingWrite w);
  void write_and_wait(PendingWrite w);  // enqueue, wait for the commit, throw its error
  void writer();
  void commit_batch(std::vector<PendingWrite>& batch);
  // Reads one row with get_stmt_ (under mu_; inside the writer's transaction it sees that transaction).
  std::optional<Extraction> read_one(const std::string& id);
  // Row cache (owner only). `rows_` and `order_` (insertion order, for eviction) under cache_mu_;
  // changed only while mu_ is held too, or cleared (with generation_ bumped) by another store of the
  // same file in this process after it committed — a miss fills only if no clear happened meanwhile.
  void cache_put(Extraction e);     // under mu_
  void cache_put_locked(std::shared_ptr<const Extraction> row);  // under mu_ and cache_mu_
  void cache_clear();               // from another store after its commit
  void after_foreign_commit();      // non-owner: clears the owner's cache (same file, this process)
  std::mutex cache_mu_;
  // Immutable rows, shared: a hit copies the pointer under the lock and the row after it.
  std::unordered_map<std::string, std::shared_ptr<const Extraction>> rows_;
  std::deque<const std::string*> order_;  // rows_' keys
  uint64_t generation_ = 0;
  int owner_fd_ = -1;               // the owner lock's fd; -1: not the owner (uncached)
  std::string key_;                 // the file's canonical path (the in-process registry's key)
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  // Hot-path statements, prepared once; used only under mu_.
  sqlite3_stmt* insert_stmt_ = nullptr;
  sqlite3_stmt* get_stmt_ = nullptr;
  sqlite3_stmt* running_stmt_ = nullptr;  // the writer's updates (writer thread only, under mu_)
  sqlite3_stmt* page_stmt_ = nullptr;
  sqlite3_stmt* finish_stmt_ = nullptr;
  // Group commit: rows queued by insert_async, written by one writer thread.
  std::mutex commit_mu_;
  std::condition_variable commit_cv_;
  std::vector<PendingWrite> pending_;
  bool closing_ = false;
  std::thread writer_;
  // WAL checkpoints, off the writer's path: its own connection and thread, woken by the WAL hook.
  void request_checkpoint();
  void checkpointer();
  sqlite3* checkpoint_db_ = nullptr;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;
  bool checkpoint_closing_ = false;
  std::thread checkpointer_;
};

}  // namespace apilake
