// Reads a Parquet file with DuckDB and with an independent implementation (hyparquet, via node and
// tests/support/read_parquet.mjs) and compares every value. Returns "" when they agree, else a
// description of the first difference (use: EXPECT_EQ(compare_parquet_readers(f), "")).
// Scalars are compared exactly (doubles to 1e-12 relative); nested values (list/struct) as JSON.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "duck/duck.h"

namespace apilake::test {

inline std::string run_node_reader(const std::string& file) {
  const std::string cmd = fmt::format("node {}/tests/support/read_parquet.mjs '{}' 2>&1", APILAKE_SOURCE_DIR, file);
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "";
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (::pclose(p) != 0) throw std::runtime_error("hyparquet reader failed on " + file + ": " + out);
  return out;
}

// JSON equality with numbers compared by value (DuckDB prints 1.5 for a DECIMAL, hyparquet 1.5 or "15"-scaled
// values as numbers; 1 and 1.0 are the same number).
inline bool same_json(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_number() && b.is_number()) {
    const double x = a.to_number<double>(), y = b.to_number<double>();
    return std::fabs(x - y) <= 1e-12 * std::max(1.0, std::fabs(x));
  }
  if (a.is_number() && b.is_string()) return std::to_string(a.to_number<double>()) == std::to_string(std::stod(std::string(b.as_string())));
  if (a.is_string() && b.is_int64() && a.as_string().size() == 10) {  // a nested DATE: ISO text vs days
    const std::string d(a.as_string());
    const std::chrono::year_month_day ymd{std::chrono::year(std::stoi(d.substr(0, 4))),
                                          std::chrono::month(static_cast<unsigned>(std::stoi(d.substr(5, 2)))),
                                          std::chrono::day(static_cast<unsigned>(std::stoi(d.substr(8, 2))))};
    return std::chrono::sys_days(ymd).time_since_epoch().count() == b.as_int64();
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto &x = a.as_array(), &y = b.as_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!same_json(x[i], y[i])) return false;
    return true;
  }
  if (a.is_object()) {
    const auto &x = a.as_object(), &y = b.as_object();
    if (x.size() != y.size()) return false;
    for (const auto& kv : x) {
      auto* v = y.if_contains(kv.key());
      if (!v || !same_json(kv.value(), *v)) return false;
    }
    return true;
  }
  return a == b;
}

inline std::string compare_parquet_readers(const std::string& file) {
  namespace json = boost::json;
  duck::Database db;
  duck::Connection con(db);
  con.execute("SET TimeZone='UTC'");
  const std::string src = "read_parquet(" + duck::quote_literal(file) + ", hive_partitioning=false)";
  auto desc = con.query("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM " + src + ")");
  std::vector<std::string> names, types;
  std::string select;
  for (std::size_t i = 0; i < desc.row_count(); ++i) {
    names.push_back(*desc.text(0, i));
    types.push_back(*desc.text(1, i));
    const std::string c = duck::quote_ident(names.back());
    const std::string& t = types.back();
    std::string e;
    const bool nested = t.find('[') != std::string::npos || t.rfind("STRUCT", 0) == 0 || t.rfind("MAP", 0) == 0;
    if (nested) e = "CAST(to_json(" + c + ") AS VARCHAR)";
    else if (t == "DATE") e = "CAST(" + c + " - DATE '1970-01-01' AS VARCHAR)";
    else if (t.rfind("TIMESTAMP", 0) == 0) e = "CAST(epoch_us(" + c + ") AS VARCHAR)";
    else if (t == "DOUBLE" || t == "FLOAT" || t.rfind("DECIMAL", 0) == 0) e = "CAST(CAST(" + c + " AS DOUBLE) AS VARCHAR)";
    else if (t == "VARCHAR" || t == "BIGINT" || t == "INTEGER" || t == "BOOLEAN") e = "CAST(" + c + " AS VARCHAR)";
    else e = "CAST(to_json(" + c + ") AS VARCHAR)";
    select += (select.empty() ? "" : ", ") + e;
  }
  auto duck_rows = con.query("SELECT " + select + " FROM " + src);
  const json::value other = json::parse(run_node_reader(file));
  const auto& cols = other.at("columns").as_array();
  const auto& rows = other.at("rows").as_array();
  if (cols.size() != names.size()) return fmt::format("{}: {} columns in DuckDB, {} in hyparquet", file, names.size(), cols.size());
  for (std::size_t c = 0; c < names.size(); ++c)
    if (cols[c].as_string() != names[c]) return fmt::format("{}: column {} is {} vs {}", file, c, names[c], json::serialize(cols[c]));
  if (rows.size() != duck_rows.row_count())
    return fmt::format("{}: {} rows in DuckDB, {} in hyparquet", file, duck_rows.row_count(), rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r].as_array();
    for (std::size_t c = 0; c < names.size(); ++c) {
      const auto d = duck_rows.text(c, r);
      const json::value& h = row[c];
      const std::string where = fmt::format("{}: row {} column {} ({})", file, r, names[c], types[c]);
      if (!d || h.is_null()) {
        if (d.has_value() != !h.is_null()) return where + ": NULL in only one reader";
        continue;
      }
      const std::string& t = types[c];
      if (t.find('[') != std::string::npos || t.rfind("STRUCT", 0) == 0 || t.rfind("MAP", 0) == 0) {
        json::error_code ec;
        const json::value dv = json::parse(*d, ec);
        if (ec || !same_json(dv, h)) return where + fmt::format(": {} vs {}", *d, json::serialize(h));
      } else if (t == "DOUBLE" || t == "FLOAT" || t.rfind("DECIMAL", 0) == 0) {
        const double a = std::stod(*d);
        const double b = h.is_number() ? h.to_number<double>() : std::nan("");
        if (!(std::fabs(a - b) <= 1e-12 * std::max(1.0, std::fabs(a)))) return where + fmt::format(": {} vs {}", *d, json::serialize(h));
      } else if (t == "DATE") {
        if (!h.is_int64() || std::to_string(h.as_int64()) != *d) return where + fmt::format(": {} vs {}", *d, json::serialize(h));
      } else if (t == "BOOLEAN") {
        if (!h.is_bool() || (h.as_bool() ? "true" : "false") != *d) return where + fmt::format(": {} vs {}", *d, json::serialize(h));
      } else if (h.is_string()) {
        if (h.as_string() != *d) return where + fmt::format(": {} vs {}", *d, json::serialize(h));
      } else {
        // Nested: compare as parsed JSON.
        json::error_code ec;
        const json::value dv = json::parse(*d, ec);
        if (ec || dv != h) return where + fmt::format(": {} vs {}", *d, json::serialize(h));
      }
    }
  }
  return "";
}

}  // namespace apilake::test
