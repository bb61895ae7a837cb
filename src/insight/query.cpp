#include "insight/query.h"

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <exception>
#include <map>
#include <string_view>
#include <system_error>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace apilake {
namespace {

namespace fs = std::filesystem;

std::string normalize_root(const std::string& lake_root) {
  if (lake_root.empty()) throw QueryError(500, "query service: empty lake root");
  std::string root = fs::absolute(fs::path(lake_root)).lexically_normal().string();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  // allowed_directories=['/'] would open the whole machine to SQL.
  if (root == "/") throw QueryError(500, "query service: the lake root must not be /");
  return root;
}

duck::Options db_options(const std::string& root, const QueryOptions& o) {
  duck::Options d;
  d.threads = o.threads;
  d.memory_limit = o.memory_limit;
  // Inside the lake so the spill files fall under allowed_directories, and under _staging, which no
  // dataset glob covers.
  fs::path tmp = fs::path(root) / "_staging" / "duckdb_tmp";
  fs::create_directories(tmp);
  d.temp_directory = tmp.string();
  return d;
}

std::string type_name(duckdb_logical_type t);

std::string base_type_name(duckdb_type id) {
  switch (id) {
    case DUCKDB_TYPE_BOOLEAN: return "BOOLEAN";
    case DUCKDB_TYPE_TINYINT: return "TINYINT";
    case DUCKDB_TYPE_SMALLINT: return "SMALLINT";
    case DUCKDB_TYPE_INTEGER: return "INTEGER";
    case DUCKDB_TYPE_BIGINT: return "BIGINT";
    case DUCKDB_TYPE_UTINYINT: return "UTINYINT";
    case DUCKDB_TYPE_USMALLINT: return "USMALLINT";
    case DUCKDB_TYPE_UINTEGER: return "UINTEGER";
    case DUCKDB_TYPE_UBIGINT: return "UBIGINT";
    case DUCKDB_TYPE_FLOAT: return "FLOAT";
    case DUCKDB_TYPE_DOUBLE: return "DOUBLE";
    case DUCKDB_TYPE_TIMESTAMP: return "TIMESTAMP";
    case DUCKDB_TYPE_DATE: return "DATE";
    case DUCKDB_TYPE_TIME: return "TIME";
    case DUCKDB_TYPE_INTERVAL: return "INTERVAL";
    case DUCKDB_TYPE_HUGEINT: return "HUGEINT";
    case DUCKDB_TYPE_UHUGEINT: return "UHUGEINT";
    case DUCKDB_TYPE_VARCHAR: return "VARCHAR";
    case DUCKDB_TYPE_BLOB: return "BLOB";
    case DUCKDB_TYPE_DECIMAL: return "DECIMAL";
    case DUCKDB_TYPE_TIMESTAMP_S: return "TIMESTAMP_S";
    case DUCKDB_TYPE_TIMESTAMP_MS: return "TIMESTAMP_MS";
    case DUCKDB_TYPE_TIMESTAMP_NS: return "TIMESTAMP_NS";
    case DUCKDB_TYPE_ENUM: return "ENUM";
    case DUCKDB_TYPE_LIST: return "LIST";
    case DUCKDB_TYPE_STRUCT: return "STRUCT";
    case DUCKDB_TYPE_MAP: return "MAP";
    case DUCKDB_TYPE_ARRAY: return "ARRAY";
    case DUCKDB_TYPE_UUID: return "UUID";
    case DUCKDB_TYPE_UNION: return "UNION";
    case DUCKDB_TYPE_BIT: return "BIT";
    case DUCKDB_TYPE_TIME_TZ: return "TIME WITH TIME ZONE";
    case DUCKDB_TYPE_TIMESTAMP_TZ: return "TIMESTAMP WITH TIME ZONE";
    case DUCKDB_TYPE_BIGNUM: return "BIGNUM";
    case DUCKDB_TYPE_SQLNULL: return "NULL";
    case DUCKDB_TYPE_TIME_NS: return "TIME_NS";
    default: return "UNKNOWN";
  }
}

std::string take_string(char* s) {  // DuckDB-allocated string -> std::string
  std::string out = s ? s : "";
  if (s) duckdb_free(s);
  return out;
}

struct LogicalType {
  duckdb_logical_type t;
  ~LogicalType() { duckdb_destroy_logical_type(&t); }
};

std::string type_name(duckdb_logical_type t) {
  std::string alias = take_string(duckdb_logical_type_get_alias(t));
  if (!alias.empty()) return alias;  // e.g. JSON
  duckdb_type id = duckdb_get_type_id(t);
  switch (id) {
    case DUCKDB_TYPE_DECIMAL:
      return fmt::format("DECIMAL({},{})", duckdb_decimal_width(t), duckdb_decimal_scale(t));
    case DUCKDB_TYPE_LIST: {
      LogicalType child{duckdb_list_type_child_type(t)};
      return type_name(child.t) + "[]";
    }
    case DUCKDB_TYPE_ARRAY: {
      LogicalType child{duckdb_array_type_child_type(t)};
      return fmt::format("{}[{}]", type_name(child.t), duckdb_array_type_array_size(t));
    }
    case DUCKDB_TYPE_MAP: {
      LogicalType k{duckdb_map_type_key_type(t)}, v{duckdb_map_type_value_type(t)};
      return fmt::format("MAP({}, {})", type_name(k.t), type_name(v.t));
    }
    case DUCKDB_TYPE_STRUCT:
    case DUCKDB_TYPE_UNION: {
      bool is_struct = id == DUCKDB_TYPE_STRUCT;
      idx_t n = is_struct ? duckdb_struct_type_child_count(t) : duckdb_union_type_member_count(t);
      std::string out = is_struct ? "STRUCT(" : "UNION(";
      for (idx_t i = 0; i < n; ++i) {
        std::string name = take_string(is_struct ? duckdb_struct_type_child_name(t, i)
                                                 : duckdb_union_type_member_name(t, i));
        LogicalType child{is_struct ? duckdb_struct_type_child_type(t, i)
                                    : duckdb_union_type_member_type(t, i)};
        if (i) out += ", ";
        out += duck::quote_ident(name) + " " + type_name(child.t);
      }
      return out + ")";
    }
    default:
      return base_type_name(id);
  }
}

struct Prepared {
  duckdb_prepared_statement p = nullptr;
  Prepared() = default;
  Prepared(const Prepared&) = delete;
  Prepared& operator=(const Prepared&) = delete;
  ~Prepared() {
    if (p) duckdb_destroy_prepare(&p);
  }
  std::string error() const {
    const char* e = p ? duckdb_prepare_error(p) : nullptr;
    return e ? e : "failed to prepare the statement";
  }
};

struct Extracted {
  duckdb_extracted_statements e = nullptr;
  Extracted() = default;
  Extracted(const Extracted&) = delete;
  Extracted& operator=(const Extracted&) = delete;
  ~Extracted() {
    if (e) duckdb_destroy_extracted(&e);
  }
};

// Interrupts the connection once the timeout passes. It keeps interrupting until stopped: an
// interrupt that lands between two DuckDB calls (prepare, then execute) could otherwise be lost
// when the next call starts.
class Watchdog {
 public:
  Watchdog(duck::Connection& con, std::chrono::milliseconds timeout)
      : thread_([this, &con, timeout] {
          std::unique_lock lk(m_);
          if (cv_.wait_for(lk, timeout, [this] { return done_; })) return;
          fired_ = true;
          do {
            con.interrupt();
          } while (!cv_.wait_for(lk, std::chrono::milliseconds(20), [this] { return done_; }));
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() { stop(); }

  // Returns whether the watchdog fired.
  bool stop() {
    {
      std::lock_guard lk(m_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

std::string strip_trailing(const std::string& sql) {
  std::size_t end = sql.find_last_not_of(" \t\r\n\f\v;");
  return end == std::string::npos ? std::string() : sql.substr(0, end + 1);
}

}  // namespace

QueryService::QueryService(std::string lake_root, const std::vector<Source>& sources,
                           QueryOptions options)
try : root_(normalize_root(lake_root)),
      options_(std::move(options)),
      db_(db_options(root_, options_)),
      admin_(db_) {
  std::map<std::string, std::string> owner;  // view name -> "source/endpoint"
  for (const auto& s : sources) {
    for (const auto& e : s.endpoints) {
      std::string view = s.name + "_" + e.name;
      std::string id = s.name + "/" + e.name;
      auto [it, fresh] = owner.emplace(view, id);
      if (!fresh) {
        throw QueryError(500, fmt::format("query service: datasets {} and {} both map to view {}",
                                          it->second, id, view));
      }
      datasets_.emplace_back(view, root_ + "/curated/" + id);
    }
  }
  // Timestamps with a time zone print in UTC whatever the machine's zone is.
  admin_.execute("SET GLOBAL TimeZone='UTC'");  // plain SET would be this session only
  // Order matters: DuckDB refuses allowed_directories once external access is off, and nothing can
  // be changed after lock_configuration. The spill directory is inside the lake anyway.
  admin_.execute("SET allowed_directories=[" + duck::quote_literal(root_ + "/") + "]");
  admin_.execute("SET enable_external_access=false");
  admin_.execute("SET lock_configuration=true");
  query_ = std::make_unique<duck::Connection>(db_);
} catch (const duck::Error& e) {
  throw QueryError(500, std::string("query service: ") + e.what());
} catch (const fs::filesystem_error& e) {
  throw QueryError(500, std::string("query service: ") + e.what());
}

namespace {
std::string pick_root(Lake& lake, const std::string& cache_dir) {
  if (!lake.local_root().empty()) return lake.local_root();
  if (cache_dir.empty()) throw QueryError(500, "query service: an object-store lake needs a local cache directory");
  return cache_dir;
}
}  // namespace

QueryService::QueryService(Lake& lake, const std::string& cache_dir, const std::vector<Source>& sources,
                           QueryOptions options)
    : QueryService(pick_root(lake, cache_dir), sources, std::move(options)) {
  if (!lake.local_root().empty()) return;  // DuckDB reads a local lake in place
  try {
    // The cache lives at the root the session may read (allowed_directories): nothing else is.
    cache_ = std::make_unique<LakeCache>(lake, root_, options_.cache_refresh);
  } catch (const std::exception& e) {
    throw QueryError(500, std::string("query service: cannot set up the lake cache: ") + e.what());
  }
}

QueryService::~QueryService() = default;

void QueryService::sync_cache() {
  if (!cache_) return;
  try {
    cache_->refresh();
    cache_synced_ = true;
  } catch (const std::exception& e) {
    // Cached files are whole copies of immutable objects, so a stale cache still answers correctly
    // for what it holds; a cache that never synced would answer "no data", which would be a lie.
    if (!cache_synced_) throw QueryError(500, std::string("cannot read the lake: ") + e.what());
    spdlog::warn("insight: lake cache refresh failed, answering from the cached files: {}", e.what());
  }
}

void QueryService::refresh_views() {
  for (auto& d : datasets_) {
    try {
      d.sync(admin_);
    } catch (const duck::Error& e) {
      // One unreadable dataset must not take every query down; retried before the next query.
      spdlog::warn("insight: cannot create view {}: {}", d.name(), e.what());
    }
  }
}

std::vector<std::string> QueryService::views() {
  std::lock_guard lk(mu_);
  try {
    sync_cache();
  } catch (const QueryError& e) {
    spdlog::warn("insight: {}", e.what());  // listing views is best effort; queries report it
  }
  refresh_views();
  std::vector<std::string> out;
  for (const auto& d : datasets_)
    if (d.exists()) out.push_back(d.name());
  std::sort(out.begin(), out.end());
  return out;
}

QueryResult QueryService::run(const std::string& sql) {
  if (sql.find('\0') != std::string::npos) throw QueryError(400, "SQL contains a NUL byte");
  std::lock_guard lk(mu_);
  sync_cache();
  refresh_views();
  std::optional<QueryResult> result;
  std::exception_ptr error;
  bool timed_out = false;
  {
    Watchdog watchdog(*query_, options_.timeout);
    try {
      try {
        result = execute(sql);
      } catch (const duck::Error& e) {
        // The views follow the files as listed just before; a file removed (compaction) or rewritten
        // since then makes the statement fail. List the datasets again and run it again, once.
        if (!stale_view_error(e.what())) throw;
        refresh_views();
        result = execute(sql);
      }
    } catch (...) {
      error = std::current_exception();
    }
    timed_out = watchdog.stop();
  }
  // Fresh connection after a timeout: no interrupt may linger into the next query.
  if (timed_out) query_ = std::make_unique<duck::Connection>(db_);
  if (result) return std::move(*result);  // finished just as the timeout hit: still an answer
  try {
    std::rethrow_exception(error);
  } catch (const duck::Error& e) {
    if (timed_out) {
      throw QueryError(408, fmt::format("query timed out after {} ms", options_.timeout.count()));
    }
    throw QueryError(400, e.what());
  }
}

// Throws duck::Error for DuckDB's errors and QueryError(400) for statements that are not a SELECT.
QueryResult QueryService::execute(const std::string& sql) {
  duckdb_connection con = query_->raw();
  Extracted ex;
  idx_t count = duckdb_extract_statements(con, sql.c_str(), &ex.e);
  if (count == 0) {
    const char* err = ex.e ? duckdb_extract_statements_error(ex.e) : nullptr;
    if (err && *err) throw duck::Error(err);
    throw QueryError(400, "empty query: expected a single SELECT statement");
  }
  if (count > 1) {
    throw QueryError(400, fmt::format("expected a single SELECT statement, got {} statements", count));
  }
  Prepared user;
  if (duckdb_prepare_extracted_statement(con, ex.e, 0, &user.p) == DuckDBError) {
    throw duck::Error(user.error());
  }
  if (duckdb_prepared_statement_type(user.p) != DUCKDB_STATEMENT_TYPE_SELECT) {
    throw QueryError(400, "only a single SELECT statement is allowed");
  }

  QueryResult out;
  idx_t ncols = duckdb_prepared_statement_column_count(user.p);
  for (idx_t c = 0; c < ncols; ++c) {
    out.columns.push_back(
        take_string(const_cast<char*>(duckdb_prepared_statement_column_name(user.p, c))));
    LogicalType t{duckdb_prepared_statement_column_logical_type(user.p, c)};
    out.types.push_back(type_name(t.t));
  }

  // Run it wrapped: the LIMIT keeps DuckDB from materialising more than max_rows + 1 rows, and the
  // casts make DuckDB render every value itself (the same text for every type, nested ones too).
  // Names and types come from the unwrapped statement (the wrapper renames duplicate columns).
  // Statements that cannot sit in a subquery (e.g. PRAGMA table_info) run as they are.
  const std::size_t cap = std::min<std::size_t>(options_.max_rows, std::size_t{1} << 62) + 1;
  Prepared wrapped;
  std::string wrapped_sql = fmt::format("SELECT CAST(COLUMNS(*) AS VARCHAR) FROM (\n{}\n) LIMIT {}",
                                        strip_trailing(sql), cap);
  bool use_wrapped = duckdb_prepare(con, wrapped_sql.c_str(), &wrapped.p) == DuckDBSuccess &&
                     duckdb_prepared_statement_type(wrapped.p) == DUCKDB_STATEMENT_TYPE_SELECT &&
                     duckdb_prepared_statement_column_count(wrapped.p) == ncols;

  duckdb_result raw;
  if (duckdb_execute_prepared(use_wrapped ? wrapped.p : user.p, &raw) == DuckDBError) {
    const char* err = duckdb_result_error(&raw);
    std::string msg = err ? err : "query failed";
    duckdb_destroy_result(&raw);
    throw duck::Error(msg);
  }
  duck::Result result(raw);
  std::size_t nrows = result.row_count();
  std::size_t keep = std::min(nrows, options_.max_rows);
  out.truncated = nrows > options_.max_rows;
  out.rows.reserve(keep);
  for (std::size_t r = 0; r < keep; ++r) {
    std::vector<std::optional<std::string>> row;
    row.reserve(ncols);
    for (idx_t c = 0; c < ncols; ++c) row.push_back(result.text(c, r));
    out.rows.push_back(std::move(row));
  }
  return out;
}

}  // namespace apilake
