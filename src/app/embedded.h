// `apilake up`: the whole pipeline in one process — API, embedded SQLite bus, archiver and curator
// over a local-directory lake, DuckDB for SQL. Constructing it wires everything; start() runs it.
#pragma once
#include <memory>
#include <vector>

#include "config/config.h"

namespace apilake {

class ExtractionService;
class ExtractionStore;
class Ledger;
struct Source;

class EmbeddedPipeline {
 public:
  explicit EmbeddedPipeline(Config config);  // throws on bad config / sources / data dir
  ~EmbeddedPipeline();
  void start();             // recovery, consumers, fetch workers, then the HTTP server
  // For in-process callers (`apilake extract`): the same start without the HTTP API (nothing binds).
  void start_without_api();
  const std::vector<Source>& sources() const;   // as loaded (demo: base_url pointed at the replay)
  ExtractionService& extractions();
  ExtractionStore& extraction_store();
  Ledger& ledger();                              // curated / dead-lettered counts per extraction
  std::size_t curate_backlog();                  // messages the curator has yet to take (not dead)
  void stop();              // HTTP first, then fetchers, then consumers
  uint16_t port() const;    // the API's bound port

 private:
  void start(bool serve_http);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs `apilake up` until SIGINT/SIGTERM; returns the process exit code.
int run_up(Config config);

}  // namespace apilake
