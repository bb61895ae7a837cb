// Rows of one dataset as typed column buffers: what the validator writes and the Parquet sink reads.
// Per column a validity byte vector and, by type, one flat buffer: int64 (Int64, Timestamp µs),
// int32 (Date days), double, uint8 (Bool), Int128 (Decimal unscaled, the column's scale), strings as
// one byte arena + offsets (String, Enum). Nested columns hold typed child columns the same way: a
// Struct one child per field (one entry per struct entry, NULL under a NULL struct), a List one
// element child plus offsets. No allocation per cell: a string is copied once into its arena.
// Rows are built one at a time: begin_row() appends a row of NULLs, set_*(k, ...) sets column k of
// that (last) row, rollback_row() removes it again with every nested entry it appended (a refused
// record leaves nothing).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "curate/row.h"
#include "definition/definition.h"

namespace apilake {

struct Column {
  std::string name;
  FieldType type;
  // Decimal (precision, scale), Struct (fields) and List (items) read their details here; the
  // sink ignores spec.name/type/path. Enum is written as VARCHAR (Parquet has no portable enum).
  FieldSpec spec = {};
};

class ColumnBatch {
 public:
  // One column (or a struct member / list element column): `size()` entries.
  struct Data {
    FieldType type = FieldType::String;
    int precision = 0, scale = 0;   // Decimal
    std::vector<uint8_t> valid;     // 1 = a value, 0 = NULL; one per entry
    std::vector<int64_t> i64;       // Int64, Timestamp
    std::vector<int32_t> i32;       // Date
    std::vector<double> f64;        // Double
    std::vector<uint8_t> b;         // Bool
    std::vector<Int128> dec;        // Decimal
    std::vector<uint64_t> offsets;  // String/Enum: entry i is arena[offsets[i], offsets[i + 1]); size() + 1
    std::string arena;
    std::vector<uint64_t> items;    // List: entry i's elements are children[0] entries [items[i], items[i + 1])
    std::vector<Data> children;     // Struct: one per field, in order; List: the element column

    Data() : Data(FieldType::String, FieldSpec{}) {}
    Data(FieldType t, const FieldSpec& spec);  // spec: decimal details, struct fields, list items
    std::size_t size() const { return valid.size(); }
    std::string_view str(std::size_t i) const {
      return std::string_view(arena.data() + offsets[i], offsets[i + 1] - offsets[i]);
    }
    // Appends a NULL entry (a struct's children get one too). Inline: begin_row() calls it for every
    // column of every row, the hottest part of starting a row. Forced: g++ -O2 kept it out of line,
    // and the call per column cost ~4 % of parse + validate (measured, round 4).
    [[gnu::always_inline]] void push_null() {
      valid.push_back(0);
      switch (type) {
        case FieldType::String:
        case FieldType::Enum: offsets.push_back(arena.size()); break;
        case FieldType::Int64:
        case FieldType::Timestamp: i64.push_back(0); break;
        case FieldType::Date: i32.push_back(0); break;
        case FieldType::Double: f64.push_back(0); break;
        case FieldType::Bool: b.push_back(0); break;
        case FieldType::Decimal: dec.push_back(0); break;
        case FieldType::Struct: push_null_members(); break;
        case FieldType::List: items.push_back(items.back()); break;
      }
    }
    void truncate(std::size_t n);  // keeps entries [0, n), with what they hold in child columns
    // The last entry. The setter must match the type (the validator only calls the one its plan names).
    void put_string(std::string_view s);  // String, Enum
    void put_int64(int64_t v) { valid.back() = 1; i64.back() = v; }
    void put_double(double v) { valid.back() = 1; f64.back() = v; }
    void put_bool(bool v) { valid.back() = 1; b.back() = v ? 1 : 0; }
    void put_date(DateDays v) { valid.back() = 1; i32.back() = v.days; }
    void put_timestamp(TimestampUs v) { valid.back() = 1; i64.back() = v.micros; }
    void put_decimal(Int128 unscaled) { valid.back() = 1; dec.back() = unscaled; }
    // Struct: marks the entry valid; its members are the children's last entries (NULL until set).
    // List: marks it valid; elements are appended to children[0] (push_null, then put), then
    // end_list() closes the entry.
    void begin_nested() { valid.back() = 1; }
    void end_list() { items.back() = children[0].size(); }
    void put_null();  // the last entry back to NULL (drops what it held)
    // Any Value (monostate = NULL) as the last entry, checked against the type: "" when set, else what
    // is wrong ("holds a string value", "decimal of scale 3 in a DECIMAL(9,2) column"); then NULL.
    std::string put_value(const Value& v);
    Value value(std::size_t i) const;  // entry i as a Value (StructValue/ListValue for nested)

   private:
    void push_null_members();  // a struct's children (recursive, so out of line)
  };

  ColumnBatch() = default;
  explicit ColumnBatch(std::vector<Column> columns) { reset(std::move(columns)); }
  void reset(std::vector<Column> columns);  // new columns, no rows
  void clear();                             // no rows; columns and buffer capacity kept
  // A new column at position `at` (schema evolution): NULL in every row already there.
  void insert_column(std::size_t at, Column column);

  std::size_t size() const { return rows_; }
  std::size_t width() const { return data_.size(); }
  const std::vector<Column>& columns() const { return columns_; }
  const Data& column(std::size_t k) const { return data_[k]; }
  Data& column(std::size_t k) { return data_[k]; }  // its last entry is the last row's cell

  void begin_row();     // appends a row, every column NULL
  void rollback_row();  // removes the last row (no-op without rows)

  // Column k of the last row.
  void set_string(std::size_t k, std::string_view s) { data_[k].put_string(s); }
  void set_int64(std::size_t k, int64_t v) { data_[k].put_int64(v); }
  void set_timestamp(std::size_t k, TimestampUs v) { data_[k].put_timestamp(v); }
  void set_null(std::size_t k) { data_[k].put_null(); }
  std::string set_value(std::size_t k, const Value& v) { return data_[k].put_value(v); }

  bool is_null(std::size_t r, std::size_t k) const { return !data_[k].valid[r]; }
  Value value(std::size_t r, std::size_t k) const { return data_[k].value(r); }
  Row row(std::size_t r) const;
  // Uncompressed size estimate of row r for file rotation: 8 per row, string length + 4 per text
  // value, 8 per other cell (the rule layout.h's file_slices applies to a Row).
  std::size_t estimated_bytes(std::size_t r) const;

 private:
  std::vector<Column> columns_;
  std::vector<Data> data_;
  std::size_t rows_ = 0;
};

}  // namespace apilake
