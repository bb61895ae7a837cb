// Insight models: SQL files next to the source definitions (sources/<source>/insights/<name>.sql)
// materialised by DuckDB as Parquet under DATA/insights/<name>/.
//
// A model file starts with a header of SQL comments, then one SELECT over the dataset views
// (<source>_<endpoint>, the same views POST /v1/query sees):
//   -- name: bcb_sgs_monthly            (required; [a-z0-9_]+, unique; defaults to the file stem)
//   -- description: Monthly mean ...    (required)
//   -- datasets: bcb_sgs_series         (required; comma-separated views the SELECT reads)
//   -- refresh: after_batch | every 60s (default after_batch: after each curated batch of a dataset)
//
// after_batch, debounced (InsightOptions): a batch is reflected `gather` (100 ms) after it commits
// when the model has not been materialised for `min_interval` (default 2 s) — a lone extraction shows
// as before (bench/rss.py: ~1.3 s after it succeeds); under sustained load a model is materialised at most once
// per min_interval (measured from the end of its previous refresh), and batches arriving meanwhile are
// folded into that next refresh. The latest batch is always reflected: a batch never waits more than
// min_interval + one refresh. Each refresh re-reads every file of its datasets, so refreshing after
// every 1 s flush made the refresher a busy loop whose cost grows with the lake (docs/performance.md,
// "Memory").
//
// Atomic replace, "current pointer" style: a refresh writes <name>-<version>.parquet in the lake's
// staging dir, renames it into DATA/insights/<name>/, then atomically replaces current.json (the
// pointer: file, rows, columns, refreshed_at, data_through), then removes files older than the
// previous one. A reader that follows current.json always finds one complete file (the previous file
// is kept for a whole refresh cycle). <version> is a hash of the SQL and the input files (path, size):
// a refresh with unchanged inputs writes nothing.
// data_through = max(_ingested_at) over the model's datasets (the time of the data it covers).
//
// Object-store lake (s3:// / gs://): the same models, through a local directory the service owns.
// A refresh first mirrors the curated objects (insight/lake_cache.h), runs the SQL on the copies,
// uploads insights/<name>/<name>-<version>.parquet (one PUT or a completed multipart upload: the
// object name is the commit point) and only then PUTs insights/<name>/current.json. Readers (any
// process) GET current.json and download the named file once into the local directory (names are
// versions, so a cached copy never goes stale). Several processes refreshing at once is harmless:
// equal inputs give the same version (nothing written twice), and a refresh never replaces a pointer
// whose data_through is newer than its own; an object is removed only once it is two pointers old.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "definition/definition.h"
#include "duck/duck.h"
#include "insight/dataset_view.h"
#include "insight/lake_cache.h"

namespace apilake {

// A model file that cannot be loaded: what() is "FILE:LINE: message".
struct InsightError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct InsightModel {
  std::string name;
  std::string description;
  std::vector<std::string> datasets;     // view names the SQL reads
  bool after_batch = true;               // refresh after each curated batch of one of `datasets`
  std::chrono::seconds every{0};         // > 0: (also) refresh on this period
  std::string sql;                       // the SELECT (header comments stripped)
  std::filesystem::path file;
};

// Parses one model file's text. known_datasets: every view name the sources declare (an unknown one
// in `datasets` is an error). Throws InsightError naming file and line.
InsightModel parse_model(const std::string& text, const std::filesystem::path& file,
                         const std::set<std::string>& known_datasets);
// Loads <source.dir>/insights/*.sql of every source (sorted); throws InsightError on the first bad
// file or a duplicate name.
std::vector<InsightModel> load_models(const std::vector<Source>& sources);

// How often the refresher may materialise an after_batch model (see the header comment).
struct InsightOptions {
  std::chrono::milliseconds min_interval{2000};  // between the end of one refresh and the next start
  std::chrono::milliseconds gather{100};         // pause after a notification: one refresh per batch
};

struct InsightColumn {
  std::string name;
  std::string type;   // DuckDB type name
};

// What current.json says about a model's materialisation.
struct InsightState {
  std::string file;              // file name inside DATA/insights/<name>/ (also the ETag)
  int64_t rows = 0;
  std::vector<InsightColumn> columns;
  int64_t refreshed_us = 0;      // when the file was written
  int64_t data_through_us = 0;   // max(_ingested_at) of the inputs; 0 = unknown
  std::string version;
  std::string previous;          // the file the pointer named before this one ("" = none)
};

struct InsightInfo {
  const InsightModel* model;
  std::optional<InsightState> state;   // nullopt: never materialised (no input data yet)
  std::string last_error;              // of the latest refresh attempt ("" = fine)
};

struct RenderedInsight {
  std::string body;
  std::string content_type;
  InsightState state;
};

// What GET /v1/datasets reports about one dataset, read from the lake as it is now.
struct DatasetStats {
  std::string name;                 // view name <source>_<endpoint>
  std::string source, endpoint;
  int64_t rows = 0;                 // curated rows (Parquet metadata counts)
  int64_t files = 0;                // curated Parquet files
  int64_t bytes = 0;                // curated bytes on disk
  std::vector<std::string> hours;   // "YYYY-MM-DDTHH" present in the curated zone, sorted
  int64_t last_update_us = 0;       // newest curated file's mtime; 0 = none
  int64_t deadletters = 0;          // dead-lettered records (lines of the dead-letter files)
  int64_t deadletter_bytes = 0;
};

class InsightService {
 public:
  // lake_root: absolute local lake directory. Opens its own DuckDB database, locked down like
  // QueryService (reads only inside the lake). Throws InsightError when DuckDB cannot be set up.
  InsightService(std::string lake_root, const std::vector<Source>& sources, std::vector<InsightModel> models,
                 InsightOptions options = {});
  // Over any lake: a local lake (local_root() != "") as above; an object-store lake through
  // cache_dir, a local directory the service owns (curated copies, downloaded insight files, DuckDB
  // spill). The lake must outlive the service. Throws InsightError when DuckDB or the directory
  // cannot be set up.
  InsightService(Lake& lake, const std::string& cache_dir, const std::vector<Source>& sources,
                 std::vector<InsightModel> models, InsightOptions options = {});
  ~InsightService();   // stops the refresher

  const std::vector<InsightModel>& models() const { return models_; }
  const InsightModel* model(const std::string& name) const;

  // Materialises `name` if its inputs changed since the current file (or force). Returns true when
  // a new file was written; false when nothing changed or no input has data yet. Throws
  // InsightError (the current file stays as it was).
  bool refresh(const std::string& name, bool force = false);

  std::vector<InsightInfo> list();
  std::optional<InsightState> state(const std::string& name);
  // The current file as "parquet", "json" ({name, refreshed_at, data_through, columns, rows:[{..}]})
  // or "csv" (header line, RFC 4180 quoting). nullopt when not materialised yet. Throws
  // std::invalid_argument for another format.
  std::optional<RenderedInsight> render(const std::string& name, const std::string& format);

  // Refresher: a thread refreshing after_batch models after notify_batch() names one of their
  // datasets (debounced: InsightOptions), periodic ones on their period, and everything once at start.
  void notify_batch(const std::vector<std::string>& datasets);
  void start();
  void stop();
  // Materialisations run so far: refresh() calls (the refresher's or direct) that read the inputs
  // with DuckDB, failed ones included; a call that found the inputs unchanged does not count.
  uint64_t refreshes() const { return refreshes_.load(std::memory_order_relaxed); }

  // Local directory of the materialised files (object lakes: the downloaded copies).
  std::string insights_dir() const { return root_ + "/insights"; }
  // One entry per declared dataset (zeros when it has no data yet).
  std::vector<DatasetStats> dataset_stats();

 private:
  void init(const std::vector<Source>& sources);
  void loop();
  // Syncs the views of these datasets with their files (insight/dataset_view.h); throws duck::Error
  // for the first that cannot be read. Caller holds duck_mu_.
  void ensure_views(const std::vector<std::string>& datasets);
  bool has_view(const std::string& name) const;   // caller holds duck_mu_
  std::string input_version(const InsightModel& m);
  // The current pointer; with_file: and its file is present locally (object lakes: downloaded).
  // Caller holds duck_mu_. Object-lake read errors throw InsightError.
  std::optional<InsightState> read_pointer(const std::string& name, bool with_file = true);
  std::optional<InsightState> read_lake_pointer(const std::string& name);   // object lakes
  // Object lakes: uploads the staged result, then the pointer; false when a newer one won.
  bool publish_to_lake(const std::string& name, const std::filesystem::path& staged, InsightState s);

  Lake* lake_ = nullptr;                 // object-store lakes only
  std::unique_ptr<LakeCache> lake_cache_;   // object-store lakes: the curated objects, local

  std::string root_;
  std::vector<InsightModel> models_;
  InsightOptions options_;
  std::atomic<uint64_t> refreshes_{0};
  std::vector<std::pair<std::string, std::string>> dataset_ids_;  // source, endpoint (same order as views_)
  std::vector<DatasetView> views_;   // one per dataset: name, curated dir, its files (insight/dataset_view.h)
  std::unique_ptr<duck::Database> db_;
  std::unique_ptr<duck::Connection> con_;
  std::mutex duck_mu_;        // DuckDB work and file replacement
  std::mutex state_mu_;
  std::map<std::string, std::string> errors_;
  std::map<std::string, RenderedInsight> cache_;   // key: name + "\n" + format

  std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  std::set<std::string> dirty_;
  bool stopping_ = false;
  std::thread thread_;
};

// Time helpers shared by the insight/ and dataset serving: RFC 3339 UTC with microseconds.
std::string iso_utc(int64_t us);

}  // namespace apilake
