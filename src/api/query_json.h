// The answer of POST /v1/query as JSON text:
//   {"columns":[..],"types":[..],"rows":[[..],..],"truncated":false}
// Each cell is typed by its column's DuckDB type. Integers, floating point and DECIMAL/HUGEINT are JSON
// numbers written from DuckDB's own text, so nothing is rounded on the way: a DECIMAL(38,10) or a
// HUGEINT keeps every digit and a DOUBLE keeps DuckDB's shortest round-trip form ("0.043739", not a
// re-printed binary double). A number DuckDB prints outside JSON's grammar (inf, -inf, nan) is a
// string. BOOLEAN is true/false, SQL NULL is null, every other type is its text as a string.
#pragma once
#include <string>
#include <string_view>

#include "insight/query.h"

namespace apilake {

// True when `text` is a number by RFC 8259's grammar (what may be written into JSON unquoted).
bool is_json_number(std::string_view text);

std::string query_answer_json(const QueryResult& result);

}  // namespace apilake
