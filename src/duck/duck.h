// The one DuckDB wrapper (C API), serving the Parquet writer and the SQL engine.
// A Database is opened once per process (opening costs 30-40 ms); Connections are cheap and
// not thread-safe (one per thread). Extension auto-install/-load is always off: nothing goes to
// the network.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <duckdb.h>

namespace apilake::duck {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string path = ":memory:";
  int threads = 1;
  std::string memory_limit = "1GB";
  std::string temp_directory;  // "" = DuckDB's default
};

// Checks the loaded libduckdb matches the header we built against; throws otherwise.
void check_library_version();
// The same check for a given version string (as duckdb_library_version() reports it).
void check_library_version(std::string_view loaded);
std::string library_version();   // what the loaded libduckdb reports, e.g. "v1.4.4"
std::string_view pinned_version();  // the DuckDB release apilake is built against

class Database {
 public:
  explicit Database(const Options& options = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  duckdb_database raw() const { return db_; }

 private:
  duckdb_database db_ = nullptr;
};

// A materialised result. Values are exposed as text (NULL = nullopt) plus the DuckDB type, which is
// what the JSON API and the tests need; typed access is via raw().
class Result {
 public:
  explicit Result(duckdb_result r) : r_(r) {}
  ~Result();
  Result(Result&& o) noexcept;
  Result& operator=(Result&&) = delete;
  Result(const Result&) = delete;

  std::size_t column_count();
  std::size_t row_count();
  std::string column_name(std::size_t col);
  duckdb_type column_type(std::size_t col);
  std::optional<std::string> text(std::size_t col, std::size_t row);  // NULL -> nullopt
  bool is_null(std::size_t col, std::size_t row);
  int64_t int64(std::size_t col, std::size_t row);
  double dbl(std::size_t col, std::size_t row);
  bool boolean(std::size_t col, std::size_t row);
  duckdb_result* raw() { return &r_; }

 private:
  duckdb_result r_;
};

class Connection {
 public:
  explicit Connection(Database& db);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void execute(const std::string& sql);   // throws Error with DuckDB's message
  Result query(const std::string& sql);   // throws Error
  // Runs sql only if it prepares to a single SELECT statement; throws Error otherwise.
  Result query_select_only(const std::string& sql);
  void interrupt();                       // cancels the running query (from another thread)
  duckdb_connection raw() const { return con_; }

 private:
  duckdb_connection con_ = nullptr;
};

// Single-quoted SQL string literal.
std::string quote_literal(const std::string& s);
// Double-quoted SQL identifier.
std::string quote_ident(const std::string& s);

}  // namespace apilake::duck
