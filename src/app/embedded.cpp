#include "app/embedded.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>

#include "api/api.h"
#include "api/extraction_service.h"
#include "api/extraction_store.h"
#include "app/commands.h"
#include "app/observers.h"
#include "api/metrics.h"
#include "api/static_files.h"
#include "insight/models.h"
#include "app/replay.h"
#include "archive/archiver.h"
#include "bus/consumer.h"
#include "bus/fault.h"
#include "bus/sqlite_bus.h"
#include "curate/curator.h"
#include "curate/deadletters.h"
#include "definition/definition.h"
#include "duck/duck.h"
#include "insight/query.h"
#include "lake/lake.h"
#include "net/http_server.h"

namespace apilake {

namespace {
constexpr const char* kTopic = "pages";
}

struct EmbeddedPipeline::Impl {
  Config config;
  std::vector<Source> sources;
  std::unique_ptr<ReplayServer> replay;
  std::unique_ptr<LocalLake> lake;
  std::unique_ptr<SqliteBus> bus;
  std::unique_ptr<ExtractionStore> store;
  std::unique_ptr<duck::Database> curate_db;
  std::unique_ptr<Archiver> archiver;
  std::unique_ptr<Curator> curator;
  std::unique_ptr<DeadLetters> deadletters;  // /v1/deadletters (replays with the definitions loaded at start)
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<InsightService> insights;        // models materialised after curated batches
  std::unique_ptr<PipelineObservers> observers;    // metrics + insight hooks around bus/ledger/handlers
  std::unique_ptr<Consumer> archive_consumer;
  std::unique_ptr<Consumer> curate_consumer;
  std::unique_ptr<ExtractionService> extractions;
  std::unique_ptr<QueryService> query;
  std::unique_ptr<Api> api;
  std::unique_ptr<HttpServer> server;
};

EmbeddedPipeline::EmbeddedPipeline(Config config) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.config = std::move(config);
  const Config& c = m.config;
  if (!is_loopback(c.host) && c.api_keys.empty())
    throw std::invalid_argument("refusing to bind " + c.host +
                                " without API keys: set APILAKE_API_KEYS or --api-key, or bind 127.0.0.1");

  duck::check_library_version();
  // Test-only crash injection (bus/fault.h): refuse a malformed APILAKE_FAULT now, and say loudly
  // when one is armed.
  if (fault_arm()) spdlog::warn("APILAKE_FAULT={} is armed: this process will kill itself there", std::getenv("APILAKE_FAULT"));
  m.sources = load_sources(c.sources_dir);
  if (c.demo) {
    m.replay = std::make_unique<ReplayServer>(m.sources, 0);
    m.replay->start();
    for (auto& s : m.sources) {
      if (!std::filesystem::exists(s.dir / "fixtures" / "replay.yaml")) continue;
      s.base_url = m.replay->base_url_for(s);
      spdlog::info("demo: source {} replays recorded responses from {}", s.name, s.base_url);
    }
  }

  const auto data = std::filesystem::absolute(c.data_dir).lexically_normal();
  m.lake = std::make_unique<LocalLake>(data);
  SqliteBusOptions bus_options;
  bus_options.max_delivery_attempts = c.max_delivery_attempts;
  m.bus = std::make_unique<SqliteBus>(data / "_state" / "bus.db", bus_options);
  m.bus->create_topic(kTopic);
  m.bus->create_subscription("archive", kTopic);
  m.bus->create_subscription("curate", kTopic);
  m.store = std::make_unique<ExtractionStore>(data / "_state" / "extractions.db");

  duck::Options curate_db;
  curate_db.threads = 1;
  curate_db.memory_limit = "512MB";
  curate_db.temp_directory = (m.lake->staging_dir() / "duckdb_curate").string();
  m.curate_db = std::make_unique<duck::Database>(curate_db);

  m.archiver = std::make_unique<Archiver>("archive", m.lake->staging_dir());
  m.curator = std::make_unique<Curator>(m.sources, *m.curate_db, m.lake->staging_dir());
  auto commit_file = [lake = m.lake.get()](const StagedFile& f) { lake->commit_staged(f.staged, f.final); };
  auto consumer_options = [&](const char* name) {
    ConsumerOptions o;
    o.consumer = name;
    o.subscription = name;
    o.max_messages = c.batch_max_messages;
    o.max_age = std::chrono::milliseconds(c.batch_max_age_ms);
    o.lease = std::chrono::seconds(c.ack_deadline_s);
    return o;
  };
  m.metrics = std::make_unique<Metrics>();
  m.insights = std::make_unique<InsightService>(m.lake->local_root(), m.sources, load_models(m.sources));
  m.observers = std::make_unique<PipelineObservers>(*m.bus, *m.metrics, m.insights.get(), *m.archiver, *m.curator);
  m.archive_consumer = std::make_unique<Consumer>(*m.bus, m.observers->archive_ledger, m.observers->archive_handler,
                                                  commit_file, consumer_options("archive"));
  m.curate_consumer = std::make_unique<Consumer>(*m.bus, m.observers->curate_ledger, m.observers->curate_handler,
                                                 commit_file, consumer_options("curate"));

  ExtractionServiceOptions ex;
  ex.topic = kTopic;
  ex.workers = c.fetch_workers;
  m.extractions = std::make_unique<ExtractionService>(m.sources, *m.store, m.observers->counting_bus, ex);

  QueryOptions qo;
  qo.timeout = std::chrono::milliseconds(c.query_timeout_ms);
  m.query = std::make_unique<QueryService>(m.lake->local_root(), m.sources, qo);

  ApiDeps deps{&m.sources, m.store.get(), m.extractions.get(), m.bus.get(), m.query.get(), c.api_keys};
  m.deadletters = std::make_unique<DeadLetters>(m.sources, *m.lake, *m.curate_db);
  deps.deadletters = m.deadletters.get();
  deps.insights = m.insights.get();
  deps.metrics = m.metrics.get();
  deps.node_modules = find_node_modules(c.sources_dir, "swagger-ui-dist");
  if (deps.node_modules.empty()) spdlog::warn("swagger-ui-dist not found (npm ci): /docs answers 503");
  m.api = std::make_unique<Api>(deps);
  ServerOptions so;
  so.host = c.host;
  so.port = c.port;
  so.threads = c.http_threads;
  m.server = std::make_unique<HttpServer>(so, [api = m.api.get(), metrics = m.metrics.get()](const ServerRequest& r) {
    auto t0 = std::chrono::steady_clock::now();
    ServerResponse resp = api->handle(r);
    metrics->observe_request(r.path, resp.status,
                             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return resp;
  });
}

EmbeddedPipeline::~EmbeddedPipeline() { stop(); }

void EmbeddedPipeline::start() { start(true); }
void EmbeddedPipeline::start_without_api() { start(false); }
const std::vector<Source>& EmbeddedPipeline::sources() const { return impl_->sources; }
ExtractionService& EmbeddedPipeline::extractions() { return *impl_->extractions; }
ExtractionStore& EmbeddedPipeline::extraction_store() { return *impl_->store; }
Ledger& EmbeddedPipeline::ledger() { return *impl_->bus; }
std::size_t EmbeddedPipeline::curate_backlog() { return impl_->bus->backlog("curate"); }

void EmbeddedPipeline::start(bool serve_http) {
  auto& m = *impl_;
  // Roll every prepared batch forward first; whatever is left in staging after that belongs to no
  // batch (a crash mid-write) and is swept, so staging never grows across crashes.
  // This process owns the embedded bus: leases still held belong to a previous run that died, so
  // their messages are redelivered now rather than after the ack deadline.
  if (auto n = m.bus->release_leases()) spdlog::info("bus: {} deliveries of a previous run redelivered", n);
  m.archive_consumer->recover();
  m.curate_consumer->recover();
  // A batch recover() could not finish yet (lake unreachable) keeps its staged files: sweeping them
  // would turn a retry into an abandon.
  std::set<std::filesystem::path> keep;
  for (const char* consumer : {"archive", "curate"})
    for (const auto& b : m.bus->pending(consumer))
      for (const auto& f : b.files) keep.insert(std::filesystem::path(f.staged).lexically_normal());
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(m.lake->staging_dir(), ec))
    if (e.is_regular_file() && !keep.count(e.path().lexically_normal())) std::filesystem::remove(e.path(), ec);
  m.archive_consumer->start();
  m.curate_consumer->start();
  m.extractions->start();
  m.insights->start();
  if (!serve_http) return;
  m.server->start();
  spdlog::info("apilake up: API on http://{}:{} — data in {}", m.config.host, m.server->port(), m.lake->local_root());
  if (m.config.api_keys.empty())
    spdlog::warn("no API keys configured: the API is open (allowed only on loopback)");
}

void EmbeddedPipeline::stop() {
  auto& m = *impl_;
  if (m.server) m.server->stop();
  if (m.extractions) m.extractions->stop();
  if (m.curate_consumer) m.curate_consumer->stop();
  if (m.archive_consumer) m.archive_consumer->stop();
  if (m.insights) m.insights->stop();
}

uint16_t EmbeddedPipeline::port() const { return impl_->server->port(); }

int run_up(Config config) {
  // Block the signals before any thread starts so every thread inherits the mask and sigwait below
  // is the only receiver.
  block_stop_signals();
  std::optional<EmbeddedPipeline> pipeline;
  try {
    pipeline.emplace(std::move(config));
    pipeline->start();
  } catch (const std::exception& e) {
    spdlog::error("apilake up: {}", e.what());
    return 1;
  }
  int sig = wait_for_stop_signal();
  spdlog::info("apilake up: signal {} received, stopping", sig);
  pipeline->stop();
  return 0;
}

}  // namespace apilake
