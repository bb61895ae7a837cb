#include "api/query_json.h"

#include "api/json_write.h"

namespace apilake {
namespace {

bool is_integer_type(std::string_view t) {
  return t == "BIGINT" || t == "INTEGER" || t == "SMALLINT" || t == "TINYINT" || t == "HUGEINT" || t == "UBIGINT" ||
         t == "UINTEGER" || t == "USMALLINT" || t == "UTINYINT" || t == "UHUGEINT";
}
bool is_float_type(std::string_view t) { return t == "DOUBLE" || t == "FLOAT" || t.rfind("DECIMAL", 0) == 0; }

bool digit(char c) { return c >= '0' && c <= '9'; }

void cell(std::string& out, const std::optional<std::string>& text, std::string_view type) {
  if (!text) {
    out += "null";
  } else if ((is_integer_type(type) || is_float_type(type)) && is_json_number(*text)) {
    out += *text;
  } else if (type == "BOOLEAN" && (*text == "true" || *text == "false")) {
    out += *text;
  } else {
    json_write::string(out, *text);
  }
}

void string_array(std::string& out, const std::vector<std::string>& items) {
  out += '[';
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    json_write::string(out, items[i]);
  }
  out += ']';
}

}  // namespace

bool is_json_number(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i == n) return false;
  if (s[i] == '0') {
    ++i;
  } else if (digit(s[i])) {
    while (i < n && digit(s[i])) ++i;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (i == n || !digit(s[i])) return false;
    while (i < n && digit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i == n || !digit(s[i])) return false;
    while (i < n && digit(s[i])) ++i;
  }
  return i == n;
}

std::string query_answer_json(const QueryResult& r) {
  std::string out;
  out.reserve(64 + r.rows.size() * (8 + r.columns.size() * 12));
  out += "{\"columns\":";
  string_array(out, r.columns);
  out += ",\"types\":";
  string_array(out, r.types);
  out += ",\"rows\":[";
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    if (i) out += ',';
    out += '[';
    const auto& row = r.rows[i];
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (c) out += ',';
      cell(out, row[c], c < r.types.size() ? std::string_view(r.types[c]) : std::string_view());
    }
    out += ']';
  }
  out += "],\"truncated\":";
  out += r.truncated ? "true" : "false";
  out += '}';
  return out;
}

}  // namespace apilake
