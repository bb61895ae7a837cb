// SQL over the lake: one read-only DuckDB session with a view per dataset named
// <source>_<endpoint> over curated/<source>/<endpoint>/**/*.parquet (every column of every file:
// insight/dataset_view.h). Only a single
// SELECT is accepted; the session can read nothing outside the lake (allowed_directories,
// enable_external_access=false, lock_configuration) and queries time out.
// A dataset's view appears once its folder holds a .parquet file and follows its files (checked before
// every query, no restart needed). Queries run one at a time (DuckDB itself uses `threads` for each).
// Over an object-store lake (local_root() == ""), the service queries a local cache of the curated
// Parquet objects (insight/lake_cache.h) refreshed before each query, at most every cache_refresh.
#pragma once
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "definition/definition.h"
#include "duck/duck.h"
#include "insight/dataset_view.h"
#include "insight/lake_cache.h"
#include "lake/lake.h"

namespace apilake {

struct QueryError : std::runtime_error {
  int status;  // 400 for the user's SQL, 408 timeout, 500 otherwise
  QueryError(int s, const std::string& msg) : std::runtime_error(msg), status(s) {}
};

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::string> types;                                 // DuckDB type names
  std::vector<std::vector<std::optional<std::string>>> rows;       // text form; JSON typing by the API
  bool truncated = false;                                          // more than max_rows rows existed
};

struct QueryOptions {
  std::chrono::milliseconds timeout{10000};
  std::size_t max_rows = 10000;
  int threads = 2;
  std::string memory_limit = "1GB";
  std::chrono::milliseconds cache_refresh{500};  // object-store lakes: least time between refreshes
};

class QueryService {
 public:
  // lake_root: absolute local directory of the lake.
  // Throws QueryError(500) when DuckDB cannot be set up.
  QueryService(std::string lake_root, const std::vector<Source>& sources, QueryOptions options = {});
  // Over any lake: a local lake is queried in place; an object-store lake through a cache in
  // cache_dir (a local directory the service owns; only it is readable by SQL). The lake must
  // outlive the service. Throws QueryError(500) when DuckDB or the cache cannot be set up.
  QueryService(Lake& lake, const std::string& cache_dir, const std::vector<Source>& sources,
               QueryOptions options = {});
  ~QueryService();
  // 400: not a single SELECT, SQL error, file outside the lake; 408: timeout. Text values are
  // DuckDB's own VARCHAR casts (dates ISO, TIMESTAMPTZ in UTC, lists/structs as DuckDB prints them).
  QueryResult run(const std::string& sql);   // throws QueryError
  std::vector<std::string> views();          // the dataset views that exist now (sorted)

 private:
  void refresh_views();  // caller holds mu_
  void sync_cache();     // caller holds mu_; no-op for a local lake
  QueryResult execute(const std::string& sql);  // on query_, caller holds mu_
  std::string root_;
  std::vector<DatasetView> datasets_;
  QueryOptions options_;
  duck::Database db_;
  duck::Connection admin_;   // creates views (before and after lock)
  std::unique_ptr<duck::Connection> query_;  // runs user SQL; replaced after a timeout
  std::unique_ptr<LakeCache> cache_;          // object-store lakes only
  bool cache_synced_ = false;
  std::mutex mu_;
};

}  // namespace apilake
