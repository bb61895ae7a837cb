// A typed row: what the schema produces from one record, and what the Parquet sink writes.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace apilake {

struct DateDays { int32_t days; };           // days since 1970-01-01
struct TimestampUs { int64_t micros; };       // UTC microseconds since the epoch

using Value = std::variant<std::monostate, std::string, int64_t, double, bool, DateDays, TimestampUs>;
using Row = std::vector<Value>;              // one Value per schema field, in schema order

}  // namespace apilake
