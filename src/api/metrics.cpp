#include "api/metrics.h"

#include <fmt/format.h>

namespace apilake {
namespace {
constexpr auto kRelaxed = std::memory_order_relaxed;

std::size_t bucket_of(double seconds) {
  std::size_t i = 0;
  while (i < Metrics::kBuckets.size() && seconds > Metrics::kBuckets[i]) ++i;
  return i;
}

template <class Buckets>
void histogram(std::string& out, const std::string& name, const std::string& labels, const Buckets& b,
               uint64_t sum_us) {
  uint64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < b.size(); ++i) {
    cumulative += b[i].load(kRelaxed);
    std::string le = i < Metrics::kBuckets.size() ? fmt::format("{}", Metrics::kBuckets[i]) : "+Inf";
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, le, cumulative);
  }
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, static_cast<double>(sum_us) / 1e6);
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, cumulative);
}
}  // namespace

const std::vector<std::string>& Metrics::routes() {
  // Index = slot in routes_; "other" last. At most routes_.size() entries.
  static const std::vector<std::string> r = {
      "/healthz",         "/v1/sources",          "/v1/extractions", "/v1/extractions/{id}",
      "/v1/query",        "/v1/insights",         "/v1/insights/{name}", "/v1/datasets",
      "/v1/deadletters",  "/v1/deadletters/{rest}",  "/openapi.json",   "/docs",
      "/docs/{file}",     "/metrics",             "/",               "/v1/status",
      "/ui/{file}",       "/assets/chart.js",     "/v1/pubsub/push", "other"};
  return r;
}

std::string Metrics::route_of(const std::string& path) {
  auto starts = [&](std::string_view p) { return path.rfind(p, 0) == 0 && path.size() > p.size(); };
  for (const auto& r : routes())
    if (r.find('{') == std::string::npos && r != "other" && path == r) return r;
  if (starts("/v1/extractions/")) return "/v1/extractions/{id}";
  if (starts("/v1/insights/")) return "/v1/insights/{name}";
  if (starts("/v1/deadletters/")) return "/v1/deadletters/{rest}";
  if (starts("/docs/")) return "/docs/{file}";
  if (starts("/ui/")) return "/ui/{file}";
  return "other";
}

void Metrics::observe_request(const std::string& path, int status, double seconds) {
  const std::string route = route_of(path);
  const auto& names = routes();
  std::size_t i = 0;
  while (i + 1 < names.size() && names[i] != route) ++i;
  Route& r = routes_[i];
  if (status >= 0 && static_cast<std::size_t>(status) < kStatuses) r.by_status[status].fetch_add(1, kRelaxed);
  r.buckets[bucket_of(seconds)].fetch_add(1, kRelaxed);
  r.sum_us.fetch_add(static_cast<uint64_t>(seconds * 1e6), kRelaxed);
  r.count.fetch_add(1, kRelaxed);
}

void Metrics::add_pages_published(int64_t pages) { pages_.fetch_add(static_cast<uint64_t>(pages), kRelaxed); }

void Metrics::observe_batch(const std::string& consumer, int64_t messages, int64_t rows, int64_t deadlettered,
                            double flush_seconds) {
  Consumer& c = consumers_[consumer == "curate" ? 1 : 0];
  c.batches.fetch_add(1, kRelaxed);
  c.messages.fetch_add(static_cast<uint64_t>(messages), kRelaxed);
  c.rows.fetch_add(static_cast<uint64_t>(rows), kRelaxed);
  c.deadlettered.fetch_add(static_cast<uint64_t>(deadlettered), kRelaxed);
  c.flush_buckets[bucket_of(flush_seconds)].fetch_add(1, kRelaxed);
  c.flush_sum_us.fetch_add(static_cast<uint64_t>(flush_seconds * 1e6), kRelaxed);
}

void Metrics::add_collector(Collector c) {
  std::lock_guard lk(collectors_mu_);
  collectors_.push_back(std::move(c));
}

void Metrics::add_gauge(std::string name, std::string help, std::string label, std::function<Samples()> read) {
  std::lock_guard lk(collectors_mu_);
  gauges_.push_back(Gauge{std::move(name), std::move(help), std::move(label), std::move(read)});
}

void Metrics::set_deployment(std::string bus, std::string lake) {
  std::lock_guard lk(collectors_mu_);
  bus_ = std::move(bus);
  lake_ = std::move(lake);
}

Metrics::Snapshot Metrics::snapshot() {
  Snapshot s;
  s.uptime_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  s.pages_published = pages_.load(kRelaxed);
  ConsumerCounts* out[] = {&s.archive, &s.curate};
  for (std::size_t i = 0; i < 2; ++i)
    *out[i] = ConsumerCounts{consumers_[i].batches.load(kRelaxed), consumers_[i].messages.load(kRelaxed),
                             consumers_[i].rows.load(kRelaxed), consumers_[i].deadlettered.load(kRelaxed)};
  std::vector<Gauge> gauges;
  {
    std::lock_guard lk(collectors_mu_);
    gauges = gauges_;
    s.bus = bus_;
    s.lake = lake_;
  }
  for (const auto& g : gauges) s.gauges[g.name] = g.read();
  return s;
}

std::string Metrics::render() {
  std::string out;
  const auto& names = routes();
  out += "# HELP apilake_http_requests_total HTTP requests by route template and status.\n"
         "# TYPE apilake_http_requests_total counter\n";
  for (std::size_t i = 0; i < names.size(); ++i)
    for (std::size_t s = 0; s < kStatuses; ++s)
      if (auto n = routes_[i].by_status[s].load(kRelaxed))
        out += fmt::format("apilake_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", names[i], s, n);
  out += "# HELP apilake_http_request_duration_seconds Time to handle a request (handler only).\n"
         "# TYPE apilake_http_request_duration_seconds histogram\n";
  for (std::size_t i = 0; i < names.size(); ++i)
    if (routes_[i].count.load(kRelaxed))
      histogram(out, "apilake_http_request_duration_seconds", fmt::format("route=\"{}\"", names[i]),
                routes_[i].buckets, routes_[i].sum_us.load(kRelaxed));
  out += "# HELP apilake_pages_published_total Pages fetched from upstream APIs and published to the bus.\n"
         "# TYPE apilake_pages_published_total counter\n";
  out += fmt::format("apilake_pages_published_total {}\n", pages_.load(kRelaxed));
  const char* consumer_names[] = {"archive", "curate"};
  struct Counter {
    const char* name;
    const char* help;
    std::atomic<uint64_t> Consumer::*field;
  };
  const Counter counters[] = {
      {"apilake_batches_committed_total", "Batches committed (files in place and messages acked).", &Consumer::batches},
      {"apilake_messages_committed_total", "Bus messages (pages) in committed batches.", &Consumer::messages},
      {"apilake_records_committed_total", "Records written: curated rows (curate), archived messages (archive).", &Consumer::rows},
      {"apilake_records_deadlettered_total", "Records written to dead letters.", &Consumer::deadlettered}};
  for (const auto& c : counters) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", c.name, c.help, c.name);
    for (std::size_t i = 0; i < 2; ++i)
      out += fmt::format("{}{{consumer=\"{}\"}} {}\n", c.name, consumer_names[i], (consumers_[i].*c.field).load(kRelaxed));
  }
  out += "# HELP apilake_batch_flush_seconds Time from staging a batch to its commit.\n"
         "# TYPE apilake_batch_flush_seconds histogram\n";
  for (std::size_t i = 0; i < 2; ++i)
    histogram(out, "apilake_batch_flush_seconds", fmt::format("consumer=\"{}\"", consumer_names[i]),
              consumers_[i].flush_buckets, consumers_[i].flush_sum_us.load(kRelaxed));
  std::vector<Collector> collectors;
  std::vector<Gauge> gauges;
  std::string bus, lake;
  {
    std::lock_guard lk(collectors_mu_);
    collectors = collectors_;
    gauges = gauges_;
    bus = bus_;
    lake = lake_;
  }
  out += fmt::format("# HELP apilake_uptime_seconds Seconds since this process started.\n"
                     "# TYPE apilake_uptime_seconds gauge\napilake_uptime_seconds {:.3f}\n",
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  if (!bus.empty())
    out += fmt::format("# HELP apilake_info What this process runs on.\n# TYPE apilake_info gauge\n"
                       "apilake_info{{bus=\"{}\",lake=\"{}\"}} 1\n", bus, lake);
  for (const auto& g : gauges) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", g.name, g.help, g.name);
    for (const auto& [label, value] : g.read()) out += fmt::format("{}{{{}=\"{}\"}} {}\n", g.name, g.label, label, value);
  }
  for (const auto& c : collectors) c(out);
  return out;
}

}  // namespace apilake
