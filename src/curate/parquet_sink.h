// Typed rows -> one Parquet file (ZSTD, microsecond timestamps) through DuckDB's COPY, which reads the
// rows straight from the caller's vector through a table function registered per sink (no table in
// between). The file is written at `path` (a staging path) and fsynced before write() returns; on an
// error nothing is left at `path`. One write at a time per sink (it owns one connection).
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "curate/row.h"
#include "definition/definition.h"
#include "duck/duck.h"

namespace apilake {

struct SinkFeed;  // parquet_sink.cpp: what the sink's table function reads

struct Column {
  std::string name;
  FieldType type;
  // Decimal (precision, scale), Struct (fields) and List (items) read their details here; the
  // sink ignores spec.name/type/path. Enum is written as VARCHAR (Parquet has no portable enum).
  FieldSpec spec = {};
};

class ParquetSink {
 public:
  explicit ParquetSink(duck::Database& db);  // throws duck::Error
  ~ParquetSink();
  ParquetSink(const ParquetSink&) = delete;
  ParquetSink& operator=(const ParquetSink&) = delete;
  // Writes rows (each with one Value per column, in column order) to path. Throws duck::Error.
  // row_group_rows: Parquet ROW_GROUP_SIZE (0 = DuckDB's default, 122880).
  // kv_metadata: Parquet key-value metadata of the file (e.g. apilake_schema_version).
  void write(const std::filesystem::path& path, const std::vector<Column>& columns, const std::vector<Row>& rows,
             std::size_t row_group_rows = 0, const std::map<std::string, std::string>& kv_metadata = {});

 private:
  duck::Connection con_;
  std::string function_;      // the table function's name, unique in the database
  SinkFeed* feed_ = nullptr;  // its extra info, owned by DuckDB's catalog (outlives the sink)
};

}  // namespace apilake
