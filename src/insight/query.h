// SQL over the lake: one read-only DuckDB session with a view per dataset named
// <source>_<endpoint> over curated/<source>/<endpoint>/**/*.parquet (union_by_name). Only a single
// SELECT is accepted; the session can read nothing outside the lake (allowed_directories,
// enable_external_access=false, lock_configuration) and queries time out.
#pragma once
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "definition/definition.h"
#include "duck/duck.h"

namespace apilake {

struct QueryError : std::runtime_error {
  int status;  // 400 for the user's SQL, 408 timeout, 500 otherwise
  QueryError(int s, const std::string& msg) : std::runtime_error(msg), status(s) {}
};

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::string> types;                                 // DuckDB type names
  std::vector<std::vector<std::optional<std::string>>> rows;       // text form; JSON typing by the API
};

struct QueryOptions {
  std::chrono::milliseconds timeout{10000};
  std::size_t max_rows = 10000;
};

class QueryService {
 public:
  // lake_root: absolute local directory of the lake.
  QueryService(std::string lake_root, const std::vector<Source>& sources, QueryOptions options = {});
  QueryResult run(const std::string& sql);   // throws QueryError
  std::vector<std::string> views();          // the dataset views that exist now

 private:
  void refresh_views();
  std::string root_;
  std::vector<std::pair<std::string, std::string>> datasets_;  // view name, curated dir
  std::set<std::string> created_;
  QueryOptions options_;
  duck::Database db_;
  duck::Connection admin_;   // creates views (before and after lock)
  std::mutex mu_;
};

}  // namespace apilake
