#include "curate/parquet_sink.h"

#include <atomic>
#include <cstring>

#include <fmt/format.h>

#include "lake/lake.h"

namespace apilake {

namespace {

// The SQL type of a column (or of a struct member / list element, given as a FieldSpec).
std::string sql_type(FieldType t, const FieldSpec& spec) {
  switch (t) {
    case FieldType::String: return "VARCHAR";
    case FieldType::Enum: return "VARCHAR";
    case FieldType::Int64: return "BIGINT";
    case FieldType::Double: return "DOUBLE";
    case FieldType::Bool: return "BOOLEAN";
    case FieldType::Date: return "DATE";
    // TIMESTAMPTZ is UTC microseconds in DuckDB and is written to Parquet as
    // TIMESTAMP(isAdjustedToUTC=true, MICROS), which every reader accepts.
    case FieldType::Timestamp: return "TIMESTAMP WITH TIME ZONE";
    // Parquet DECIMAL(p,s); DuckDB stores it as int16/32/64/128 by precision.
    case FieldType::Decimal: return fmt::format("DECIMAL({},{})", spec.precision, spec.scale);
    case FieldType::Struct: {
      if (spec.fields.empty()) throw duck::Error("a struct column needs fields");
      std::string out = "STRUCT(";
      for (std::size_t i = 0; i < spec.fields.size(); ++i) {
        if (i) out += ", ";
        out += duck::quote_ident(spec.fields[i].name) + " " + sql_type(spec.fields[i].type, spec.fields[i]);
      }
      return out + ")";
    }
    case FieldType::List:
      if (spec.items.size() != 1) throw duck::Error("a list column needs one items spec");
      return sql_type(spec.items[0].type, spec.items[0]) + "[]";
  }
  throw duck::Error("unknown field type");
}

std::string sql_type(const Column& c) { return sql_type(c.type, c.spec); }

const char* value_kind(const Value& v) {
  switch (v.index()) {
    case 0: return "null";
    case 1: return "string";
    case 2: return "int64";
    case 3: return "double";
    case 4: return "bool";
    case 5: return "date";
    case 6: return "timestamp";
    case 7: return "decimal";
    case 8: return "struct";
    case 9: return "list";
  }
  return "?";
}

// Owners for the C API handles, so that an exception half-way through leaks nothing.
struct LogicalTypes {
  std::vector<duckdb_logical_type> types;
  ~LogicalTypes() {
    for (auto& t : types) duckdb_destroy_logical_type(&t);
  }
};

struct Chunk {
  duckdb_data_chunk c = nullptr;
  ~Chunk() {
    if (c) duckdb_destroy_data_chunk(&c);
  }
};

struct Appender {
  duckdb_appender a = nullptr;
  ~Appender() {
    if (a) duckdb_appender_destroy(&a);
  }
  [[noreturn]] void fail(const std::string& what) {
    duckdb_error_data err = duckdb_appender_error_data(a);
    std::string msg = fmt::format("{}: {}", what, err ? duckdb_error_data_message(err) : "unknown error");
    if (err) duckdb_destroy_error_data(&err);
    throw duck::Error(msg);
  }
};

// Drops the temporary table however write() ends.
struct DropTable {
  duck::Connection& con;
  std::string name;
  ~DropTable() {
    try {
      con.execute("DROP TABLE IF EXISTS temp.main." + name);
    } catch (...) {  // nothing useful to do: the table dies with the connection anyway
    }
  }
};

// `where` is a callable giving the location: the text is built only for the error (building it for
// every cell was a string allocation per value on the hot path).
template <typename T, typename Where>
const T& expect(const Value& v, const Where& where, FieldType t, const FieldSpec& spec) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw duck::Error(fmt::format("{} is {} but holds a {} value", where(), sql_type(t, spec), value_kind(v)));
}

// Writes values[0, n) into vec at rows [offset, offset + n). Recursive for struct members and list
// elements (their child vectors), which is how DuckDB's C API exposes nested data.
constexpr std::size_t kElement = static_cast<std::size_t>(-1);

void fill_vector(duckdb_vector vec, FieldType type, const FieldSpec& spec, const Value* const* values,
                 std::size_t n, std::size_t offset, const std::string& where, std::size_t row_base) {
  duckdb_vector_ensure_validity_writable(vec);
  uint64_t* validity = duckdb_vector_get_validity(vec);
  void* data = duckdb_vector_get_data(vec);
  // Top level: "row R: column 'c'"; inside a list: "column 'c'[] element E".
  auto where_at = [&](std::size_t i) {
    return row_base == kElement ? fmt::format("{} element {}", where, offset + i)
                                : fmt::format("row {}: {}", row_base + i, where);
  };
  for (std::size_t i = 0; i < n; ++i) {
    const Value& v = *values[i];
    const std::size_t at = offset + i;
    const auto here = [&] { return where_at(i); };
    if (std::holds_alternative<std::monostate>(v)) {
      duckdb_validity_set_row_invalid(validity, at);
      continue;
    }
    duckdb_validity_set_row_valid(validity, at);
    switch (type) {
      case FieldType::String:
      case FieldType::Enum: {
        const std::string& s = expect<std::string>(v, here, type, spec);
        duckdb_vector_assign_string_element_len(vec, at, s.data(), s.size());
        break;
      }
      case FieldType::Int64: static_cast<int64_t*>(data)[at] = expect<int64_t>(v, here, type, spec); break;
      case FieldType::Double: static_cast<double*>(data)[at] = expect<double>(v, here, type, spec); break;
      case FieldType::Bool: static_cast<bool*>(data)[at] = expect<bool>(v, here, type, spec); break;
      case FieldType::Date:
        static_cast<duckdb_date*>(data)[at] = duckdb_date{expect<DateDays>(v, here, type, spec).days};
        break;
      case FieldType::Timestamp:
        static_cast<duckdb_timestamp*>(data)[at] = duckdb_timestamp{expect<TimestampUs>(v, here, type, spec).micros};
        break;
      case FieldType::Decimal: {
        const Decimal& d = expect<Decimal>(v, here, type, spec);
        if (d.scale != spec.scale)
          throw duck::Error(fmt::format("{}: decimal of scale {} in a DECIMAL({},{}) column", where_at(i), d.scale,
                                        spec.precision, spec.scale));
        // The physical width follows the precision, as DuckDB lays DECIMAL out.
        if (spec.precision <= 4) static_cast<int16_t*>(data)[at] = static_cast<int16_t>(d.unscaled);
        else if (spec.precision <= 9) static_cast<int32_t*>(data)[at] = static_cast<int32_t>(d.unscaled);
        else if (spec.precision <= 18) static_cast<int64_t*>(data)[at] = static_cast<int64_t>(d.unscaled);
        else {
          const auto u = static_cast<UInt128>(d.unscaled);
          static_cast<duckdb_hugeint*>(data)[at] =
              duckdb_hugeint{static_cast<uint64_t>(u), static_cast<int64_t>(static_cast<uint64_t>(u >> 64))};
        }
        break;
      }
      case FieldType::Struct:
      case FieldType::List:
        break;  // below, column-wise
    }
  }
  if (type == FieldType::Struct) {
    static const Value kNull{};
    for (std::size_t k = 0; k < spec.fields.size(); ++k) {
      std::vector<const Value*> member(n, &kNull);  // a NULL struct has NULL members
      for (std::size_t i = 0; i < n; ++i) {
        if (std::holds_alternative<std::monostate>(*values[i])) continue;
        const StructValue& sv = expect<StructValue>(*values[i], [&] { return where_at(i); }, type, spec);
        if (sv.fields.size() != spec.fields.size())
          throw duck::Error(fmt::format("{}: struct value has {} members for {} fields", where_at(i), sv.fields.size(),
                                        spec.fields.size()));
        member[i] = &sv.fields[k];
      }
      fill_vector(duckdb_struct_vector_get_child(vec, k), spec.fields[k].type, spec.fields[k], member.data(), n,
                  offset, where + "." + spec.fields[k].name, row_base);
    }
  } else if (type == FieldType::List) {
    const FieldSpec& item = spec.items.at(0);
    auto* entries = static_cast<duckdb_list_entry*>(data);
    std::vector<const Value*> elements;
    const idx_t base = duckdb_list_vector_get_size(vec);
    for (std::size_t i = 0; i < n; ++i) {
      if (std::holds_alternative<std::monostate>(*values[i])) {
        entries[offset + i] = duckdb_list_entry{base + elements.size(), 0};
        continue;
      }
      const ListValue& lv = expect<ListValue>(*values[i], [&] { return where_at(i); }, type, spec);
      entries[offset + i] = duckdb_list_entry{base + elements.size(), lv.items.size()};
      for (const Value& x : lv.items) elements.push_back(&x);
    }
    if (duckdb_list_vector_reserve(vec, base + elements.size()) == DuckDBError)
      throw duck::Error(where + ": cannot reserve list space");
    fill_vector(duckdb_list_vector_get_child(vec), item.type, item, elements.data(), elements.size(), base,
                where + "[]", kElement);
    if (duckdb_list_vector_set_size(vec, base + elements.size()) == DuckDBError)
      throw duck::Error(where + ": cannot set list size");
  }
}

// Writes rows [begin, begin + n) into the chunk's vectors directly (the fast path of the appender).
void fill(duckdb_data_chunk chunk, const std::vector<Column>& columns, const std::vector<Row>& rows,
          std::size_t begin, std::size_t n) {
  std::vector<const Value*> values(n);
  for (std::size_t c = 0; c < columns.size(); ++c) {
    for (std::size_t i = 0; i < n; ++i) values[i] = &rows[begin + i][c];
    const std::string where = fmt::format("column '{}'", columns[c].name);
    fill_vector(duckdb_data_chunk_get_vector(chunk, c), columns[c].type, columns[c].spec, values.data(), n, 0, where,
                begin);
  }
  duckdb_data_chunk_set_size(chunk, n);
}

}  // namespace

ParquetSink::ParquetSink(duck::Database& db) : con_(db) {}

void ParquetSink::write(const std::filesystem::path& path, const std::vector<Column>& columns,
                        const std::vector<Row>& rows, std::size_t row_group_rows,
                        const std::map<std::string, std::string>& kv_metadata) {
  if (columns.empty()) throw duck::Error("ParquetSink: no columns");
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != columns.size()) {
      throw duck::Error(fmt::format("ParquetSink: row {} has {} values for {} columns", r, rows[r].size(),
                                    columns.size()));
    }
  }

  // Temporary tables live in the connection only; the counter keeps names unique within it.
  static std::atomic<std::uint64_t> counter{0};
  const std::string table = fmt::format("apilake_sink_{}", counter.fetch_add(1));

  std::string ddl = "CREATE TEMP TABLE " + table + " (";
  for (std::size_t c = 0; c < columns.size(); ++c) {
    if (c) ddl += ", ";
    ddl += duck::quote_ident(columns[c].name) + " " + sql_type(columns[c]);
  }
  ddl += ")";
  con_.execute(ddl);
  DropTable drop{con_, table};

  {
    Appender app;
    if (duckdb_appender_create_ext(con_.raw(), "temp", "main", table.c_str(), &app.a) == DuckDBError) {
      app.fail("cannot create an appender");
    }
    // The table's own column types (nested ones included), so the chunk matches the DDL exactly.
    LogicalTypes types;
    types.types.reserve(columns.size());
    for (std::size_t c = 0; c < columns.size(); ++c) types.types.push_back(duckdb_appender_column_type(app.a, c));

    const std::size_t cap = duckdb_vector_size();
    for (std::size_t begin = 0; begin < rows.size(); begin += cap) {
      // A fresh chunk per slice: string data assigned to a vector is owned by the chunk.
      Chunk chunk;
      chunk.c = duckdb_create_data_chunk(types.types.data(), types.types.size());
      if (!chunk.c) throw duck::Error("cannot create a data chunk");
      fill(chunk.c, columns, rows, begin, std::min(cap, rows.size() - begin));
      if (duckdb_append_data_chunk(app.a, chunk.c) == DuckDBError) app.fail("appending rows failed");
    }
    if (duckdb_appender_close(app.a) == DuckDBError) app.fail("flushing rows failed");
  }

  std::string options = row_group_rows ? fmt::format(", ROW_GROUP_SIZE {}", row_group_rows) : "";
  if (!kv_metadata.empty()) {
    std::string kv;
    for (const auto& [k, v] : kv_metadata) kv += (kv.empty() ? "" : ", ") + duck::quote_literal(k) + ": " + duck::quote_literal(v);
    options += ", KV_METADATA {" + kv + "}";
  }
  con_.execute(fmt::format("COPY temp.main.{} TO {} (FORMAT parquet, COMPRESSION zstd{})", table,
                           duck::quote_literal(path.string()), options));
  fsync_file(path);
}

}  // namespace apilake
