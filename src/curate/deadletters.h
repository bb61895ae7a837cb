// Dead letters you can work with (docs/lake.md): counts, samples and replay of
//   deadletter/<source>/<endpoint>/YYYY/MM/DD/HH/<name>.jsonl      (written by the curator)
// Every line keeps its original reason (parse_error, missing_required, type_mismatch, out_of_range,
// unknown_field, bad_format, or page-level unknown_dataset / invalid_schema). Replay state lives
// beside each file in <name>.jsonl.replayed.json (dead letters are marked, never deleted):
//   {"replayed":[line numbers], "failing":{"line":{"reason","field","detail"}},
//    "generations":[{"gen","at","lines","files"}], "in_progress":{"gen","files"} | null}
// Replay re-curates the pending lines with the *current* definition (under schema.evolution: evolve,
// plus the latest registered schema version, which a still-unknown key evolves further; see
// docs/schema.md); works on any Lake (local or object store); valid rows go to
//   curated/<source>/<endpoint>/<hour dir>/replay-<YYYYMMDDHH>-<name>-r<gen>[-pNNN].parquet
// with the original lineage (_extraction_id, _message_id, _ingested_at) and _replayed_at set.
// Idempotent: names are deterministic; "in_progress" is recorded before the files are committed and
// cleared with the line marks after, so a replay interrupted in between removes its files and redoes
// the same generation; lines already marked are never written again. A page-level line is replayed
// only when every record of the page now passes (else it stays pending, with the new reason).
// Dead letters are read with plain file reads through the Lake (not DuckDB's read_json): the counts
// need the sidecar marks joined in, the "record" member has no fixed type, and the Lake seam stays
// the one way to the files (local or object store).
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "curate/parquet_sink.h"
#include "definition/definition.h"
#include "duck/duck.h"
#include "lake/lake.h"

namespace apilake {

struct DeadLetterCount {
  std::string dataset;  // <source>_<endpoint> (the SQL view's name)
  std::string hour;     // YYYY-MM-DDTHH (ingestion hour)
  std::string reason;   // the original reason
  int64_t count = 0;
  int64_t replayed = 0;
  int64_t pending = 0;  // count - replayed
};

struct ReplayResult {
  int64_t files = 0;          // dead-letter files with pending lines looked at
  int64_t replayed = 0;       // lines marked replayed by this call
  int64_t rows = 0;           // curated rows written
  int64_t still_failing = 0;  // pending lines the current definition still refuses
  std::vector<std::string> written;  // lake paths of the Parquet files written
};

// A dataset name that matches no dead-letter folder and no definition.
struct UnknownDataset : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class DeadLetters {
 public:
  // sources: the definitions to replay with (after the fix). db: for the Parquet writer.
  DeadLetters(const std::vector<Source>& sources, Lake& lake, duck::Database& db);

  std::vector<DeadLetterCount> counts();  // sorted by dataset, hour, reason

  // Lines of one dataset (oldest first), each the dead-letter object plus "replayed" (bool), "file"
  // and "line"; reason "" = any; at most `limit`.
  std::vector<std::string> samples(const std::string& dataset, const std::string& reason, std::size_t limit);

  // dataset: "<source>_<endpoint>" or "<source>/<endpoint>"; from/to: inclusive ingestion hours
  // "YYYY-MM-DDTHH" ("" = open). Throws UnknownDataset, or std::runtime_error when the dataset's
  // schema cannot be applied.
  ReplayResult replay(const std::string& dataset, const std::string& from = "", const std::string& to = "");

  // "YYYY-MM-DDTHH" check used by the CLI and the API for --from/--to.
  static bool valid_hour(const std::string& hour);

 private:
  struct Dir {
    std::string source, endpoint;
  };
  std::vector<Dir> dirs();                       // dead-letter dataset folders present in the lake
  Dir resolve(const std::string& dataset);       // throws UnknownDataset
  const Endpoint* endpoint(const Dir& d) const;  // nullptr when not defined

  const std::vector<Source>& sources_;
  Lake& lake_;
  ParquetSink sink_;
  std::mutex mu_;  // one replay at a time in this process (a lock file covers other processes)
};

}  // namespace apilake
