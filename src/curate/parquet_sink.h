// Typed rows -> one Parquet file (ZSTD, microsecond timestamps) through DuckDB's COPY, which reads the
// rows straight from the caller's ColumnBatch through a table function registered per sink (no table in
// between; fixed-width columns are copied buffer to vector, a run of rows with one memcpy). The file is
// written at `path` (a staging path) and fsynced before write() returns; on an error nothing is left at
// `path`. One write at a time per sink (it owns one connection).
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "curate/column_batch.h"
#include "curate/row.h"
#include "definition/definition.h"
#include "duck/duck.h"

namespace apilake {

struct SinkFeed;  // parquet_sink.cpp: what the sink's table function reads

class ParquetSink {
 public:
  explicit ParquetSink(duck::Database& db);  // throws duck::Error
  ~ParquetSink();
  ParquetSink(const ParquetSink&) = delete;
  ParquetSink& operator=(const ParquetSink&) = delete;
  // Writes rows of `batch` (its columns, in order) to path: rows[0, n) when `rows` is given (indices
  // into the batch, in file order), else batch rows [0, n). Throws duck::Error.
  // row_group_rows: Parquet ROW_GROUP_SIZE (0 = DuckDB's default, 122880).
  // kv_metadata: Parquet key-value metadata of the file (e.g. apilake_schema_version).
  void write(const std::filesystem::path& path, const ColumnBatch& batch, const uint32_t* rows, std::size_t n,
             std::size_t row_group_rows = 0, const std::map<std::string, std::string>& kv_metadata = {});
  // Rows (each with one Value per column, in column order): put in a ColumnBatch (a value of the wrong
  // kind is an error naming row and column), then written as above.
  void write(const std::filesystem::path& path, const std::vector<Column>& columns, const std::vector<Row>& rows,
             std::size_t row_group_rows = 0, const std::map<std::string, std::string>& kv_metadata = {});

 private:
  duck::Connection con_;
  std::string function_;      // the table function's name, unique in the database
  SinkFeed* feed_ = nullptr;  // its extra info, owned by DuckDB's catalog (outlives the sink)
};

}  // namespace apilake
