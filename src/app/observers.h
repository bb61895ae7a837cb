// Wiring-level decorators that watch the embedded pipeline without the stages knowing: a Ledger that
// reports every committed batch (metrics; insight refresh after each curated batch), a BatchHandler
// that notes when a batch starts staging (flush latency), and a Bus that counts published pages.
// Each forwards everything else unchanged. One consumer thread per subscription uses each pair, so
// the stage start time needs no lock.
#pragma once
#include <atomic>
#include <chrono>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "api/metrics.h"
#include "bus/consumer.h"
#include "bus/sqlite_bus.h"
#include "insight/models.h"

namespace apilake {

class TimedHandler final : public BatchHandler {
 public:
  explicit TimedHandler(BatchHandler& inner) : inner_(inner) {}
  PreparedBatch stage(const std::vector<Message>& batch) override {
    started_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    return inner_.stage(batch);
  }
  // Seconds since the latest stage() began, or 0 when none did (a batch rolled forward at recovery).
  double take_elapsed() {
    auto t = started_.exchange(0, std::memory_order_relaxed);
    if (!t) return 0;
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    return std::chrono::duration<double>(std::chrono::steady_clock::duration(now - t)).count();
  }

 private:
  BatchHandler& inner_;
  std::atomic<std::chrono::steady_clock::rep> started_{0};
};

class ObservedLedger final : public Ledger {
 public:
  ObservedLedger(Ledger& inner, std::string consumer, TimedHandler& timer, Metrics& metrics, InsightService* insights)
      : inner_(inner), consumer_(std::move(consumer)), timer_(timer), metrics_(metrics), insights_(insights) {}
  void prepare(const PreparedBatch& b) override { inner_.prepare(b); }
  void commit(const PreparedBatch& b, const std::string& subscription) override {
    inner_.commit(b, subscription);
    int64_t rows = 0, dead = 0;
    for (const auto& [id, c] : b.counts) {
      rows += c.rows;
      dead += c.deadlettered;
    }
    metrics_.observe_batch(consumer_, static_cast<int64_t>(b.message_ids.size()), rows, dead, timer_.take_elapsed());
    if (!insights_ || consumer_ != "curate") return;
    // Final paths are curated/<source>/<endpoint>/...: the dataset view is <source>_<endpoint>.
    std::vector<std::string> datasets;
    for (const auto& f : b.files) {
      if (f.final.rfind("curated/", 0) != 0) continue;
      auto a = f.final.find('/', 8);
      auto e = a == std::string::npos ? a : f.final.find('/', a + 1);
      if (e == std::string::npos) continue;
      datasets.push_back(f.final.substr(8, a - 8) + "_" + f.final.substr(a + 1, e - a - 1));
    }
    if (!datasets.empty()) insights_->notify_batch(datasets);
  }
  std::vector<PreparedBatch> pending(const std::string& consumer) override { return inner_.pending(consumer); }
  void abandon(const PreparedBatch& b, const std::string& subscription) override { inner_.abandon(b, subscription); }
  bool seen(const std::string& consumer, const std::string& message_id) override { return inner_.seen(consumer, message_id); }
  bool seen_key(const std::string& consumer, const std::string& key) override { return inner_.seen_key(consumer, key); }
  ExtractionCounts counts(const std::string& consumer, const std::string& extraction_id) override {
    return inner_.counts(consumer, extraction_id);
  }

 private:
  Ledger& inner_;
  std::string consumer_;
  TimedHandler& timer_;
  Metrics& metrics_;
  InsightService* insights_;
};

class CountingBus final : public Bus {
 public:
  CountingBus(Bus& inner, Metrics& metrics) : inner_(inner), metrics_(metrics) {}
  void create_topic(const std::string& t) override { inner_.create_topic(t); }
  void create_subscription(const std::string& s, const std::string& t) override { inner_.create_subscription(s, t); }
  std::vector<std::string> publish(const std::string& topic, const std::vector<OutMessage>& batch) override {
    auto ids = inner_.publish(topic, batch);
    int64_t n = 0;
    for (const auto& id : ids) n += id.empty() ? 0 : 1;  // "" = a duplicate the bus dropped
    metrics_.add_pages_published(n);
    return ids;
  }
  std::vector<Message> pull(const std::string& s, std::size_t max, std::chrono::seconds lease) override {
    return inner_.pull(s, max, lease);
  }
  void ack(const std::string& s, const std::vector<std::string>& ids) override { inner_.ack(s, ids); }
  void nack(const std::string& s, const std::vector<std::string>& ids) override { inner_.nack(s, ids); }
  void extend(const std::string& s, const std::vector<std::string>& ids, std::chrono::seconds lease) override {
    inner_.extend(s, ids, lease);
  }

 private:
  Bus& inner_;
  Metrics& metrics_;
};

// All of the above for the embedded pipeline, plus the scrape-time gauges.
struct PipelineObservers {
  // sqlite: the embedded bus, for the backlog gauge (nullptr on Pub/Sub, whose backlog is Cloud
  // Monitoring's num_undelivered_messages).
  PipelineObservers(Bus& bus, Ledger& ledger, SqliteBus* sqlite, Metrics& metrics, InsightService* insights,
                    BatchHandler& archiver, BatchHandler& curator)
      : archive_handler(archiver),
        curate_handler(curator),
        archive_ledger(ledger, "archive", archive_handler, metrics, insights),
        curate_ledger(ledger, "curate", curate_handler, metrics, insights),
        counting_bus(bus, metrics) {
    // A labelled gauge (not a text collector) so GET /v1/status reads the same numbers structured.
    if (sqlite)
      metrics.add_gauge("apilake_bus_backlog_messages", "Messages waiting (not acked, not dead) per subscription.",
                        "subscription", [sqlite] {
                          Metrics::Samples out;
                          for (const char* s : {"archive", "curate"})
                            out.emplace_back(s, static_cast<double>(sqlite->backlog(s)));
                          return out;
                        });
    if (!insights) return;
    metrics.add_collector([insights](std::string& out) {
      auto stats = insights->dataset_stats();
      out += "# HELP apilake_lake_curated_bytes Curated Parquet bytes on disk per dataset.\n"
             "# TYPE apilake_lake_curated_bytes gauge\n";
      for (const auto& d : stats) out += fmt::format("apilake_lake_curated_bytes{{dataset=\"{}\"}} {}\n", d.name, d.bytes);
      out += "# HELP apilake_lake_curated_files Curated Parquet files per dataset.\n"
             "# TYPE apilake_lake_curated_files gauge\n";
      for (const auto& d : stats) out += fmt::format("apilake_lake_curated_files{{dataset=\"{}\"}} {}\n", d.name, d.files);
      out += "# HELP apilake_lake_deadletter_bytes Dead-letter bytes on disk per dataset.\n"
             "# TYPE apilake_lake_deadletter_bytes gauge\n";
      for (const auto& d : stats)
        out += fmt::format("apilake_lake_deadletter_bytes{{dataset=\"{}\"}} {}\n", d.name, d.deadletter_bytes);
      out += "# HELP apilake_insight_refreshed_timestamp_seconds When each insight was last materialised.\n"
             "# TYPE apilake_insight_refreshed_timestamp_seconds gauge\n";
      for (const auto& i : insights->list())
        if (i.state)
          out += fmt::format("apilake_insight_refreshed_timestamp_seconds{{insight=\"{}\"}} {}\n", i.model->name,
                             static_cast<double>(i.state->refreshed_us) / 1e6);
    });
  }
  TimedHandler archive_handler, curate_handler;
  ObservedLedger archive_ledger, curate_ledger;
  CountingBus counting_bus;
};

}  // namespace apilake
