#include "curate/parquet_sink.h"

#include <atomic>
#include <cstring>

#include <fmt/format.h>

#include "lake/lake.h"

namespace apilake {

namespace {

duckdb_type duck_type(FieldType t) {
  switch (t) {
    case FieldType::String: return DUCKDB_TYPE_VARCHAR;
    case FieldType::Int64: return DUCKDB_TYPE_BIGINT;
    case FieldType::Double: return DUCKDB_TYPE_DOUBLE;
    case FieldType::Bool: return DUCKDB_TYPE_BOOLEAN;
    case FieldType::Date: return DUCKDB_TYPE_DATE;
    // TIMESTAMPTZ is UTC microseconds in DuckDB and is written to Parquet as
    // TIMESTAMP(isAdjustedToUTC=true, MICROS), which every reader accepts.
    case FieldType::Timestamp: return DUCKDB_TYPE_TIMESTAMP_TZ;
  }
  throw duck::Error("unknown field type");
}

const char* sql_type(FieldType t) {
  switch (t) {
    case FieldType::String: return "VARCHAR";
    case FieldType::Int64: return "BIGINT";
    case FieldType::Double: return "DOUBLE";
    case FieldType::Bool: return "BOOLEAN";
    case FieldType::Date: return "DATE";
    case FieldType::Timestamp: return "TIMESTAMP WITH TIME ZONE";
  }
  throw duck::Error("unknown field type");
}

const char* value_kind(const Value& v) {
  switch (v.index()) {
    case 0: return "null";
    case 1: return "string";
    case 2: return "int64";
    case 3: return "double";
    case 4: return "bool";
    case 5: return "date";
    case 6: return "timestamp";
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

template <typename T>
const T& expect(const Value& v, const Column& col, std::size_t row) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw duck::Error(fmt::format("row {}: column '{}' is {} but holds a {} value", row, col.name,
                                sql_type(col.type), value_kind(v)));
}

// Writes rows [begin, begin + n) into the chunk's vectors directly (the fast path of the appender).
void fill(duckdb_data_chunk chunk, const std::vector<Column>& columns, const std::vector<Row>& rows,
          std::size_t begin, std::size_t n) {
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const Column& col = columns[c];
    duckdb_vector vec = duckdb_data_chunk_get_vector(chunk, c);
    duckdb_vector_ensure_validity_writable(vec);
    uint64_t* validity = duckdb_vector_get_validity(vec);
    void* data = duckdb_vector_get_data(vec);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t r = begin + i;
      const Value& v = rows[r][c];
      if (std::holds_alternative<std::monostate>(v)) {
        duckdb_validity_set_row_invalid(validity, i);
        continue;
      }
      duckdb_validity_set_row_valid(validity, i);
      switch (col.type) {
        case FieldType::String: {
          const std::string& s = expect<std::string>(v, col, r);
          duckdb_vector_assign_string_element_len(vec, i, s.data(), s.size());
          break;
        }
        case FieldType::Int64:
          static_cast<int64_t*>(data)[i] = expect<int64_t>(v, col, r);
          break;
        case FieldType::Double:
          static_cast<double*>(data)[i] = expect<double>(v, col, r);
          break;
        case FieldType::Bool:
          static_cast<bool*>(data)[i] = expect<bool>(v, col, r);
          break;
        case FieldType::Date:
          static_cast<duckdb_date*>(data)[i] = duckdb_date{expect<DateDays>(v, col, r).days};
          break;
        case FieldType::Timestamp:
          static_cast<duckdb_timestamp*>(data)[i] = duckdb_timestamp{expect<TimestampUs>(v, col, r).micros};
          break;
      }
    }
  }
  duckdb_data_chunk_set_size(chunk, n);
}

}  // namespace

ParquetSink::ParquetSink(duck::Database& db) : con_(db) {}

void ParquetSink::write(const std::filesystem::path& path, const std::vector<Column>& columns,
                        const std::vector<Row>& rows, std::size_t row_group_rows) {
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
    ddl += duck::quote_ident(columns[c].name) + " " + sql_type(columns[c].type);
  }
  ddl += ")";
  con_.execute(ddl);
  DropTable drop{con_, table};

  {
    Appender app;
    if (duckdb_appender_create_ext(con_.raw(), "temp", "main", table.c_str(), &app.a) == DuckDBError) {
      app.fail("cannot create an appender");
    }
    LogicalTypes types;
    types.types.reserve(columns.size());
    for (const auto& col : columns) types.types.push_back(duckdb_create_logical_type(duck_type(col.type)));

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

  const std::string row_groups = row_group_rows ? fmt::format(", ROW_GROUP_SIZE {}", row_group_rows) : "";
  con_.execute(fmt::format("COPY temp.main.{} TO {} (FORMAT parquet, COMPRESSION zstd{})", table,
                           duck::quote_literal(path.string()), row_groups));
  fsync_file(path);
}

}  // namespace apilake
