// Prometheus metrics (text exposition format 0.0.4) for GET /metrics. Counters on the hot paths are
// relaxed atomics in fixed tables (no locks, no allocation per request): HTTP requests by route
// template + status, a latency histogram per route, pages published, per-consumer batches, rows,
// dead letters and flush (stage + commit) latency. Gauges that are read from elsewhere (bus backlog,
// lake sizes, insight freshness) come from collectors called at scrape time. snapshot() hands the same
// counters and labelled gauges to GET /v1/status as structured values (gathered once, for both).
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace apilake {

class Metrics {
 public:
  static constexpr std::array<double, 12> kBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,   0.25,   0.5,   1,    2.5,   10};
  // The route template of a path ("/v1/extractions/{id}", "/docs/{file}", ...; "other" if none).
  static std::string route_of(const std::string& path);

  void observe_request(const std::string& path, int status, double seconds);
  void add_pages_published(int64_t pages);
  // One committed batch of a consumer ("archive" | "curate").
  void observe_batch(const std::string& consumer, int64_t messages, int64_t rows, int64_t deadlettered,
                     double flush_seconds);

  // Appends exposition text (with its own # HELP/# TYPE lines) at scrape time.
  using Collector = std::function<void(std::string& out)>;
  void add_collector(Collector c);

  // A gauge with one label, read at scrape time: rendered in /metrics and returned by snapshot().
  using Samples = std::vector<std::pair<std::string, double>>;   // label value -> value
  void add_gauge(std::string name, std::string help, std::string label, std::function<Samples()> read);

  // What this process runs on (bus kind, lake kind): /metrics shows it as apilake_info{bus,lake} 1.
  void set_deployment(std::string bus, std::string lake);

  struct ConsumerCounts {
    uint64_t batches = 0, messages = 0, rows = 0, deadlettered = 0;
  };
  struct Snapshot {
    double uptime_seconds = 0;
    std::string bus, lake;
    uint64_t pages_published = 0;
    ConsumerCounts archive, curate;
    std::map<std::string, Samples> gauges;   // by gauge name
  };
  Snapshot snapshot();

  std::string render();

 private:
  static constexpr std::size_t kStatuses = 600;
  struct Route {
    std::array<std::atomic<uint64_t>, kStatuses> by_status{};
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets{};  // last = +Inf
    std::atomic<uint64_t> sum_us{0};
    std::atomic<uint64_t> count{0};
  };
  struct Consumer {
    std::atomic<uint64_t> batches{0}, messages{0}, rows{0}, deadlettered{0};
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> flush_buckets{};
    std::atomic<uint64_t> flush_sum_us{0};
  };
  static const std::vector<std::string>& routes();
  std::array<Route, 20> routes_{};   // one per entry of routes()
  std::array<Consumer, 2> consumers_{};   // archive, curate
  std::atomic<uint64_t> pages_{0};
  struct Gauge {
    std::string name, help, label;
    std::function<Samples()> read;
  };
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::mutex collectors_mu_;   // guards collectors_, gauges_, bus_, lake_
  std::vector<Collector> collectors_;
  std::vector<Gauge> gauges_;
  std::string bus_, lake_;
};

}  // namespace apilake
