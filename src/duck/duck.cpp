#include "duck/duck.h"

#include <cstring>
#include <string_view>

#include <fmt/format.h>

namespace apilake::duck {

namespace {

// The version of third_party/duckdb (header and library come from two npm packages of this
// version). The library's SONAME is unversioned, so a different libduckdb.so could be picked up at
// run time; the C API struct layouts only match for the version we compiled against.
constexpr std::string_view kPinnedVersion = "v1.4.4";

// duckdb_config / duckdb_extracted_statements / duckdb_prepared_statement owners, so every early
// throw below still releases them.
struct Config {
  duckdb_config c = nullptr;
  ~Config() {
    if (c) duckdb_destroy_config(&c);
  }
};

struct Extracted {
  duckdb_extracted_statements e = nullptr;
  ~Extracted() {
    if (e) duckdb_destroy_extracted(&e);
  }
};

struct Prepared {
  duckdb_prepared_statement p = nullptr;
  ~Prepared() {
    if (p) duckdb_destroy_prepare(&p);
  }
};

void set(duckdb_config config, const char* name, const std::string& value) {
  if (duckdb_set_config(config, name, value.c_str()) == DuckDBError) {
    throw Error(fmt::format("DuckDB: invalid setting {} = '{}'", name, value));
  }
}

std::string result_error(duckdb_result* r, std::string_view fallback) {
  const char* msg = duckdb_result_error(r);
  return msg && *msg ? std::string(msg) : std::string(fallback);
}

}  // namespace

std::string library_version() {
  const char* v = duckdb_library_version();
  return v ? std::string(v) : std::string();
}

void check_library_version(std::string_view loaded) {
  // The library may append a source id ("v1.4.4 | 6ddac802ff"); only the release matters.
  const std::string_view release = loaded.substr(0, loaded.find_first_of(" |"));
  if (release != kPinnedVersion) {
    throw Error(fmt::format(
        "libduckdb version mismatch: the loaded library is '{}' but apilake was built against DuckDB {}; "
        "install the matching libduckdb.so (scripts/setup.sh) or rebuild with -DDUCKDB_ROOT=",
        loaded, kPinnedVersion));
  }
}

void check_library_version() { check_library_version(library_version()); }

std::string_view pinned_version() { return kPinnedVersion; }

Database::Database(const Options& options) {
  check_library_version();
  if (options.threads < 1) throw Error(fmt::format("DuckDB: threads must be >= 1, got {}", options.threads));
  Config config;
  if (duckdb_create_config(&config.c) == DuckDBError) throw Error("DuckDB: cannot create a configuration");
  set(config.c, "threads", std::to_string(options.threads));
  set(config.c, "memory_limit", options.memory_limit);
  // Never reach for the network: a query naming an extension we lack fails instead of downloading.
  set(config.c, "autoinstall_known_extensions", "false");
  set(config.c, "autoload_known_extensions", "false");
  if (!options.temp_directory.empty()) set(config.c, "temp_directory", options.temp_directory);
  // DuckDB keeps the bytes of every file it has read in an external file cache. A lake gains a file
  // per dataset per flush and the insight models re-read them after each batch, so the cache made the
  // process grow with the lake (bench/rss.py: +46 % RSS in 3 minutes). The OS page cache does this job.
  set(config.c, "enable_external_file_cache", "false");

  char* err = nullptr;
  if (duckdb_open_ext(options.path.c_str(), &db_, config.c, &err) == DuckDBError) {
    std::string msg = fmt::format("DuckDB: cannot open database '{}': {}", options.path, err ? err : "unknown error");
    if (err) duckdb_free(err);
    db_ = nullptr;
    throw Error(msg);
  }
  if (err) duckdb_free(err);
}

Database::~Database() {
  if (db_) duckdb_close(&db_);
}

// --- Result -------------------------------------------------------------------------------------

Result::~Result() { duckdb_destroy_result(&r_); }

Result::Result(Result&& o) noexcept : r_(o.r_) {
  // A zeroed duckdb_result owns nothing; destroying it is a no-op.
  std::memset(&o.r_, 0, sizeof(o.r_));
}

std::size_t Result::column_count() { return duckdb_column_count(&r_); }

std::size_t Result::row_count() {
  // duckdb_row_count is deprecated in favour of chunk iteration, but our results are materialised
  // (duckdb_query / duckdb_execute_prepared), for which it stays exact.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  return duckdb_row_count(&r_);
#pragma GCC diagnostic pop
}

std::string Result::column_name(std::size_t col) {
  if (col >= column_count()) throw Error(fmt::format("column {} out of range ({} columns)", col, column_count()));
  const char* n = duckdb_column_name(&r_, col);
  return n ? std::string(n) : std::string();
}

duckdb_type Result::column_type(std::size_t col) {
  if (col >= column_count()) throw Error(fmt::format("column {} out of range ({} columns)", col, column_count()));
  return duckdb_column_type(&r_, col);
}

namespace {
void check_cell(Result& r, std::size_t col, std::size_t row) {
  if (col >= r.column_count() || row >= r.row_count()) {
    throw Error(fmt::format("cell ({}, {}) out of range ({} columns, {} rows)", col, row, r.column_count(),
                            r.row_count()));
  }
}
}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

bool Result::is_null(std::size_t col, std::size_t row) {
  check_cell(*this, col, row);
  return duckdb_value_is_null(&r_, col, row);
}

std::optional<std::string> Result::text(std::size_t col, std::size_t row) {
  if (is_null(col, row)) return std::nullopt;
  char* v = duckdb_value_varchar(&r_, col, row);
  if (!v) return std::nullopt;
  std::string out(v);
  duckdb_free(v);
  return out;
}

int64_t Result::int64(std::size_t col, std::size_t row) {
  check_cell(*this, col, row);
  return duckdb_value_int64(&r_, col, row);
}

double Result::dbl(std::size_t col, std::size_t row) {
  check_cell(*this, col, row);
  return duckdb_value_double(&r_, col, row);
}

bool Result::boolean(std::size_t col, std::size_t row) {
  check_cell(*this, col, row);
  return duckdb_value_boolean(&r_, col, row);
}

#pragma GCC diagnostic pop

// --- Connection ---------------------------------------------------------------------------------

Connection::Connection(Database& db) {
  if (duckdb_connect(db.raw(), &con_) == DuckDBError) {
    con_ = nullptr;
    throw Error("DuckDB: cannot open a connection");
  }
}

Connection::~Connection() {
  if (con_) duckdb_disconnect(&con_);
}

void Connection::execute(const std::string& sql) { query(sql); }

Result Connection::query(const std::string& sql) {
  duckdb_result r;
  if (duckdb_query(con_, sql.c_str(), &r) == DuckDBError) {
    std::string msg = result_error(&r, "query failed");
    duckdb_destroy_result(&r);
    throw Error(msg);
  }
  return Result(r);
}

Result Connection::query_select_only(const std::string& sql) {
  Extracted ex;
  const idx_t count = duckdb_extract_statements(con_, sql.c_str(), &ex.e);
  if (count == 0) {
    const char* err = ex.e ? duckdb_extract_statements_error(ex.e) : nullptr;
    if (err && *err) throw Error(err);
    throw Error("only a single SELECT statement is allowed (the query is empty)");
  }
  if (count != 1) {
    throw Error(fmt::format("only a single SELECT statement is allowed (got {} statements)", count));
  }
  Prepared prep;
  if (duckdb_prepare_extracted_statement(con_, ex.e, 0, &prep.p) == DuckDBError) {
    const char* err = duckdb_prepare_error(prep.p);
    throw Error(err && *err ? err : "cannot prepare the statement");
  }
  // Checked on the prepared statement, not by parsing text: DuckDB itself decides what it would run.
  if (duckdb_prepared_statement_type(prep.p) != DUCKDB_STATEMENT_TYPE_SELECT) {
    throw Error("only a single SELECT statement is allowed");
  }
  duckdb_result r;
  if (duckdb_execute_prepared(prep.p, &r) == DuckDBError) {
    std::string msg = result_error(&r, "query failed");
    duckdb_destroy_result(&r);
    throw Error(msg);
  }
  return Result(r);
}

void Connection::interrupt() { duckdb_interrupt(con_); }

// --- quoting ------------------------------------------------------------------------------------

namespace {
std::string quote(const std::string& s, char q) {
  if (s.find('\0') != std::string::npos) throw Error("SQL text must not contain a NUL byte");
  std::string out;
  out.reserve(s.size() + 2);
  out += q;
  for (char c : s) {
    if (c == q) out += q;  // SQL escapes a quote by doubling it
    out += c;
  }
  out += q;
  return out;
}
}  // namespace

std::string quote_literal(const std::string& s) { return quote(s, '\''); }
std::string quote_ident(const std::string& s) { return quote(s, '"'); }

}  // namespace apilake::duck
