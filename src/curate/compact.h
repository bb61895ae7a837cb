// Compaction of curated hours (docs/lake.md, "Compaction"): every Parquet file of
//   curated/<source>/<endpoint>/<hour dir>/        (the endpoint's layout)
// is merged into one file, compact-<hash of the input names>.parquet, rows in file-name (= message)
// order, with the row count checked before anything is replaced.
// Local lake: the hour directory is swapped for a directory holding only the output with
// renameat2(RENAME_EXCHANGE) — one atomic step, so a listing sees all the inputs or the output, never
// both or neither. A file the curator commits into the hour while the merge runs (or while the swap
// happens) is moved into the new directory; if its rename races the removal of the old directory it
// fails and the consumer's roll-forward retries it into the new one. Nothing committed is deleted.
// Object lake (S3/GCS): no atomic multi-object swap. An intent object <hour>/_compaction.json
// {output, inputs} is written first, then the output is uploaded, then the inputs are deleted, then
// the intent. A listing during those few requests can see the output and some inputs; a crash leaves
// the intent, and the next compaction of the hour finishes (output exists: delete the inputs) or
// drops it (output missing: inputs untouched) before doing anything else. Files not in `inputs`
// (late arrivals) are never touched.
// Exactly-once is unaffected: the ledger dedups redelivered messages by message id, not file name;
// `in_flight` (the ledger's pending batches) must be false for every input, so a batch that recovery
// may still roll forward or abandon is never merged away.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
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
// file. Works on a local lake (local_root() set) and on an object lake. Throws CompactError (bad
// hour, in-flight input, row count mismatch, a filesystem that cannot exchange directories, lake
// errors) with the hour's rows all still visible.
CompactResult compact_hour(Lake& lake, duck::Database& db, const Source& source, const Endpoint& endpoint,
                           const std::string& hour,
                           const std::function<bool(const std::string&)>& in_flight = nullptr);

// A curated hour worth compacting.
struct HourFiles {
  std::string hour;       // "YYYY-MM-DDTHH"
  std::string dir;        // lake-relative hour directory
  std::size_t files = 0;  // Parquet files in it
};

// Hours of the endpoint that are closed — ended at least `grace_us` before now_us, so late batches
// for them are unlikely — and hold more than one Parquet file (or an unfinished object-lake intent).
// Directories that are not an hour of the endpoint's layout are ignored. Sorted by hour.
std::vector<HourFiles> closed_hours(Lake& lake, const Source& source, const Endpoint& endpoint, int64_t now_us,
                                    int64_t grace_us);

struct AutoCompactOptions {
  std::chrono::seconds interval{60};  // between passes; 0 = the task does not run
  std::chrono::seconds grace{300};
  // Lake paths of files that pending ledger batches will commit; called at most once per hour, after
  // its listing (a file in the listing of a pending batch was prepared before the listing, so the
  // snapshot sees it). nullptr = none.
  std::function<std::set<std::string>()> pending_files;
  std::function<int64_t()> now_us;                         // the clock (default: system clock)
};

// The background task of the curate role: every `interval`, compacts every closed hour of every
// endpoint (closed_hours), one at a time, logging one line per compaction. A failing hour (in-flight
// batch, lake error) is logged and retried on the next pass; it never stops the task.
class AutoCompactor {
 public:
  AutoCompactor(Lake& lake, duck::Database& db, const std::vector<Source>& sources, AutoCompactOptions options);
  ~AutoCompactor();
  void start();  // no-op when interval is 0
  void stop();   // waits for the pass under way
  std::vector<CompactResult> run_once();  // one pass, on the caller's thread
  uint64_t compactions() const { return compactions_.load(std::memory_order_relaxed); }
  uint64_t files_merged() const { return files_merged_.load(std::memory_order_relaxed); }
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

 private:
  Lake& lake_;
  duck::Database& db_;
  const std::vector<Source>& sources_;
  AutoCompactOptions options_;
  std::atomic<uint64_t> compactions_{0}, files_merged_{0}, failures_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace apilake
