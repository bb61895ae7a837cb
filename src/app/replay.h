// Replays the bundled sources' recorded responses (sources/<name>/fixtures/replay.yaml, format in
// docs/sources.md) on loopback, so the demo and the tests run offline against real HTTP.
// Source <name> is served under http://127.0.0.1:PORT/<name>/...
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "definition/definition.h"

namespace apilake {

class ReplayServer {
 public:
  // Loads fixtures of every source in `sources` that has fixtures/replay.yaml (throws on bad files).
  explicit ReplayServer(const std::vector<Source>& sources, uint16_t port = 0);
  ~ReplayServer();
  void start();
  uint16_t port() const;
  // The base URL to give source `name` so its requests reach this replay: keeps the original
  // base_url's path prefix, e.g. https://api.x.org/v1 -> http://127.0.0.1:PORT/<name>/v1
  std::string base_url_for(const Source& source) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace apilake
