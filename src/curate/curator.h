// The curator: a BatchHandler for the "curate" subscription. For each message (one raw page) it
// selects the records (endpoint.records_pointer), applies the endpoint's schema, and stages
//   curated/<source>/<endpoint>/YYYY/MM/DD/HH/<first>-<last>.parquet   (valid rows + lineage columns
//                                                                      _extraction_id, _message_id, _ingested_at)
//   deadletter/<source>/<endpoint>/YYYY/MM/DD/HH/<first>-<last>.jsonl  (one line per refused record:
//                                                                      {"record","reason","field","detail",
//                                                                       "message_id","extraction_id","page",
//                                                                       "source","endpoint"})
// (plus _replayed_at, NULL here; see curate/layout.h). Curated rows go to the endpoint's layout (seed
// YYYY/MM/DD/HH or hive year=/month=/day=/hour=) at their partition hour (partition_by field, else the
// ingestion hour), so one batch can write several hours; a group above files.max_rows / max_mb is
// rotated into <first>-<last>-pNNN files. Dead-letter lines also carry "level" (page|record) and
// "ingested_at_us"; they stay at the ingestion hour, seed layout. File names derive from the first and last
// message ids (zero-padded to 12 digits) of the batch's messages that went into that file, so a
// rewrite replaces. A page that is not JSON, or whose records_pointer is missing or points at a
// scalar, dead-letters as one parse_error line holding the raw body (first 1 MiB) as a string; so does
// a page of an unknown source/endpoint (unknown_dataset; names that are not plain file names go under
// _unknown/_unknown) or of an endpoint whose schema RecordValidator refuses (invalid_schema).
// The batch always proceeds.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bus/consumer.h"
#include "curate/parquet_sink.h"
#include "definition/definition.h"
#include "duck/duck.h"

namespace apilake {

class Lake;

class Curator final : public BatchHandler {
 public:
  // sources: the loaded definitions (looked up by the message's source/endpoint attributes).
  // registry: the lake holding _schemas/ (curate/schema_registry.h); an evolve dataset starts from its
  // latest version and new versions never overwrite one there. nullptr: start from the declaration.
  Curator(const std::vector<Source>& sources, duck::Database& db, std::filesystem::path staging_dir,
          Lake* registry = nullptr);
  ~Curator() override;
  PreparedBatch stage(const std::vector<Message>& batch) override;

 private:
  struct State;  // parser, sink and one RecordValidator per dataset, reused across batches
  const std::vector<Source>& sources_;
  duck::Database& db_;
  std::filesystem::path staging_;
  std::unique_ptr<State> state_;
};

}  // namespace apilake
