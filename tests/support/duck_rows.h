// rows_text(): a DuckDB query's whole result as one comparable string, rows ending in ';' and
// columns joined by ',', NULL for a null value ("1,a;2,NULL;"). Throws what the query throws.
#pragma once
#include <string>

#include "duck/duck.h"

namespace apilake::test {

inline std::string rows_text(duck::Database& db, const std::string& sql) {
  duck::Connection con(db);
  auto r = con.query(sql);
  std::string out;
  for (std::size_t i = 0; i < r.row_count(); ++i) {
    for (std::size_t c = 0; c < r.column_count(); ++c) out += (c ? "," : "") + r.text(c, i).value_or("NULL");
    out += ";";
  }
  return out;
}

}  // namespace apilake::test
