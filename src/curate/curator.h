// The curator: a BatchHandler for the "curate" subscription. For each message (one raw page) it
// selects the records (endpoint.records_pointer), applies the endpoint's schema, and stages
//   curated/<source>/<endpoint>/YYYY/MM/DD/HH/<first>-<last>.parquet   (valid rows + lineage columns
//                                                                      _extraction_id, _message_id, _ingested_at)
//   deadletter/<source>/<endpoint>/YYYY/MM/DD/HH/<first>-<last>.jsonl  (one line per refused record:
//                                                                      {"record","reason","field","detail",
//                                                                       "message_id","extraction_id","page"})
// hour = ingestion hour (the message's publish time). File names derive from the batch's first and
// last message ids, so a rewrite replaces. A page that is not JSON dead-letters as one parse_error line
// holding the raw body as a string.
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

class Curator final : public BatchHandler {
 public:
  // sources: the loaded definitions (looked up by the message's source/endpoint attributes).
  Curator(const std::vector<Source>& sources, duck::Database& db, std::filesystem::path staging_dir);
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
