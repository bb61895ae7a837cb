// A typed row: what the schema produces from one record, and what the Parquet sink writes.
// Value is recursive (a struct holds Values, a list holds Values), so it is a small class deriving
// from the variant; std::get / std::holds_alternative / std::visit work on it as on the variant.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace apilake {

struct DateDays { int32_t days; };           // days since 1970-01-01
struct TimestampUs { int64_t micros; };       // UTC microseconds since the epoch

// An exact decimal: unscaled * 10^-scale. 128 bits hold DECIMAL(38, s), DuckDB's maximum.
__extension__ typedef __int128 Int128;  // __extension__: a GNU type, allowed under -Wpedantic
__extension__ typedef unsigned __int128 UInt128;
struct Decimal {
  Int128 unscaled = 0;
  int scale = 0;
  bool operator==(const Decimal&) const = default;
};
std::string to_string(const Decimal& d);  // "-12.340" (scale digits after the point); in schema.cpp

struct Value;
struct StructValue { std::vector<Value> fields; };  // one Value per struct field, in declared order
struct ListValue { std::vector<Value> items; };

using ValueVariant = std::variant<std::monostate, std::string, int64_t, double, bool, DateDays, TimestampUs, Decimal,
                                  StructValue, ListValue>;
struct Value : ValueVariant {
  using ValueVariant::ValueVariant;
  using ValueVariant::operator=;
};

using Row = std::vector<Value>;              // one Value per schema field, in schema order

}  // namespace apilake
