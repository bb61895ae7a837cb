// The pipeline, wired from configuration. One code path for both modes: which Bus and Lake sit
// behind the seams is chosen by config (bus.kind: sqlite | pubsub; data_dir: a directory or
// s3:// / gs://), and which roles run in this process by the command:
//   apilake up       all roles (the embedded default: SQLite bus + local directory)
//   apilake serve    API + fetch workers        apilake archive / curate   one consumer each
// Any number of serve/archive/curate processes may share a Pub/Sub subscription and an object lake.
#pragma once
#include <memory>
#include <vector>

#include "config/config.h"

namespace apilake {

class ExtractionService;
class ExtractionStore;
class Ledger;
struct Source;

struct Roles {
  bool api = true;       // HTTP API + fetch workers (publish pages)
  bool archive = true;   // consumer of the "archive" subscription
  bool curate = true;    // consumer of the "curate" subscription
  static Roles all() { return {}; }
};

class Pipeline {
 public:
  Pipeline(Config config, Roles roles = Roles::all());  // throws on bad config / sources / data dir
  ~Pipeline();
  void start();             // recovery, consumers, fetch workers, then the HTTP server
  // For in-process callers (`apilake extract`): the same start without the HTTP API (nothing binds).
  void start_without_api();
  const std::vector<Source>& sources() const;   // as loaded (demo: base_url pointed at the replay)
  ExtractionService& extractions();
  ExtractionStore& extraction_store();
  Ledger& ledger();                              // curated / dead-lettered counts per extraction
  std::size_t curate_backlog();                  // messages the curator has yet to take (embedded bus only)
  void stop();              // HTTP first, then fetchers, then consumers
  uint16_t port() const;    // the API's bound port

 private:
  void start(bool serve_http);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs the pipeline with these roles until SIGINT/SIGTERM; returns the process exit code.
int run_pipeline(Config config, Roles roles, const char* what);
inline int run_up(Config config) { return run_pipeline(std::move(config), Roles::all(), "apilake up"); }

}  // namespace apilake
