// rows_text(): a DuckDB query's whole result as one comparable string, rows ending in ';' and
// columns joined by ',', NULL for a null value ("1,a;2,NULL;"). Throws what the query throws.
// write_parquet(): a Parquet file written by a DuckDB of the tests' own (not the one under test).
#pragma once
#include <filesystem>
#include <string>

#include "duck/duck.h"

namespace apilake::test {

inline std::string rows_text(duck::Connection& con, const std::string& sql) {
  auto r = con.query(sql);
  std::string out;
  for (std::size_t i = 0; i < r.row_count(); ++i) {
    for (std::size_t c = 0; c < r.column_count(); ++c) out += (c ? "," : "") + r.text(c, i).value_or("NULL");
    out += ";";
  }
  return out;
}

inline std::string rows_text(duck::Database& db, const std::string& sql) {
  duck::Connection con(db);
  return rows_text(con, sql);
}

inline void write_parquet(const std::filesystem::path& file, const std::string& select) {
  static duck::Database writer;
  duck::Connection con(writer);
  std::filesystem::create_directories(file.parent_path());
  con.execute("COPY (" + select + ") TO " + duck::quote_literal(file.string()) + " (FORMAT parquet)");
}

}  // namespace apilake::test
