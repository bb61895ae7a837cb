// Compaction of one curated hour (docs/lake.md): every Parquet file of
//   curated/<source>/<endpoint>/<hour dir>/        (the endpoint's layout)
// is merged into one file, compact-<hash of the input names>.parquet, and the hour directory is
// swapped for a directory holding only that file with renameat2(RENAME_EXCHANGE) — one atomic step,
// so a directory listing sees either all the inputs or the output, never both or neither. A reader
// that listed the inputs before the swap and opens one after it fails with "file not found" (and can
// retry); it never counts a row twice or misses one. A file committed into the hour while the merge
// ran is moved into the new directory right after the swap.
// Exactly-once is unaffected: the ledger dedups redelivered messages by message id, not by file
// name; `in_flight` (the ledger's pending batches) must be false for every input, so a batch that
// recovery may still roll forward or abandon is never merged away. Local lakes only.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "definition/definition.h"
#include "duck/duck.h"
#include "lake/lake.h"

namespace apilake {

struct CompactResult {
  std::string dir;        // lake-relative hour directory
  int64_t inputs = 0;     // files merged (0 or 1: nothing was done)
  int64_t rows = 0;       // rows in the output (= rows of the inputs)
  std::string output;     // lake path of the merged file ("" when nothing was done)
};

struct CompactError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// hour: "YYYY-MM-DDTHH". in_flight(lake_path): true when a pending ledger batch will commit that
// file. Throws CompactError (bad hour, non-local lake, in-flight input, row count mismatch, a
// filesystem that cannot exchange directories) with the hour left as it was.
CompactResult compact_hour(Lake& lake, duck::Database& db, const Source& source, const Endpoint& endpoint,
                           const std::string& hour,
                           const std::function<bool(const std::string&)>& in_flight = nullptr);

}  // namespace apilake
