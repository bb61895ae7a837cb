// `apilake up`: the whole pipeline in one process — API, embedded SQLite bus, archiver and curator
// over a local-directory lake, DuckDB for SQL. Constructing it wires everything; start() runs it.
#pragma once
#include <memory>

#include "config/config.h"

namespace apilake {

class EmbeddedPipeline {
 public:
  explicit EmbeddedPipeline(Config config);  // throws on bad config / sources / data dir
  ~EmbeddedPipeline();
  void start();             // recovery, consumers, fetch workers, then the HTTP server
  void stop();              // HTTP first, then fetchers, then consumers
  uint16_t port() const;    // the API's bound port

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs `apilake up` until SIGINT/SIGTERM; returns the process exit code.
int run_up(Config config);

}  // namespace apilake
