// Where curated rows go and how they are cut into files (docs/lake.md). Shared by the curator, dead-
// letter replay and compaction so that all three put rows in the same place.
//   hour_dir(seed, t) = "YYYY/MM/DD/HH"      hour_dir(hive, t) = "year=YYYY/month=MM/day=DD/hour=HH"
//   partition_time: the row's partition_by field (date -> 00:00 UTC of that day, timestamp as is), or
//   the ingestion time when the endpoint names none or the row's value is NULL.
//   file_slices: consecutive [begin, end) slices of at most files.max_rows rows and (estimated,
//   uncompressed) files.max_mb MiB each; at least one row per slice.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "curate/parquet_sink.h"
#include "curate/row.h"
#include "definition/definition.h"

namespace apilake {

std::string hour_dir(Endpoint::Layout layout, int64_t time_us);

// Index of the partition_by column in the schema's fields, -1 for the ingestion hour.
int partition_column(const Endpoint& endpoint);
int64_t partition_time(int column, const Row& row, int64_t ingested_us);

std::vector<std::pair<std::size_t, std::size_t>> file_slices(const std::vector<Row>& rows,
                                                             const Endpoint::Files& files);
// The same rule over `count` rows whose estimated sizes `bytes(i)` gives (the curator's column batch).
std::vector<std::pair<std::size_t, std::size_t>> file_slices(std::size_t count, const Endpoint::Files& files,
                                                             const std::function<std::size_t(std::size_t)>& bytes);

// The lineage columns every curated file ends with, after the schema's fields:
//   _extraction_id VARCHAR, _message_id VARCHAR, _ingested_at TIMESTAMPTZ,
//   _replayed_at TIMESTAMPTZ (NULL unless the row came from a dead-letter replay).
void append_lineage_columns(std::vector<Column>& columns);
inline constexpr std::size_t kLineageColumns = 4;

}  // namespace apilake
