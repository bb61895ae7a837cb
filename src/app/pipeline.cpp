#include "app/pipeline.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>

#include <cerrno>
#include <cstring>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

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
#include "bus/object_ledger.h"
#include "bus/pubsub_bus.h"
#include "bus/push.h"
#include "bus/sqlite_bus.h"
#include "curate/compact.h"
#include "curate/curator.h"
#include "curate/deadletters.h"
#include "definition/definition.h"
#include "duck/duck.h"
#include "insight/query.h"
#include "app/lake_object_store.h"
#include "lake/lake.h"
#include "lake/open_lake.h"
#include "net/google_auth.h"
#include "net/http_server.h"

namespace apilake {

struct Pipeline::Impl {
  // Instance lock (object lakes, lock_instance()); first member, so it is released last.
  struct InstanceLock {
    int fd = -1;
    ~InstanceLock() {
      if (fd >= 0) ::close(fd);
    }
  } instance_lock;
  Config config;
  Roles roles;
  std::vector<Source> sources;
  std::unique_ptr<ReplayServer> replay;
  std::unique_ptr<Lake> lake;
  std::filesystem::path state_dir;                 // local SQLite state of this process
  // The bus seam: the embedded SQLite bus is its own ledger; on Pub/Sub the ledger lives in the lake.
  std::unique_ptr<SqliteBus> sqlite;
  std::unique_ptr<GoogleTokenSource> token;
  std::unique_ptr<PubSubBus> pubsub;
  std::unique_ptr<LakeObjectStore> ledger_store;
  std::unique_ptr<ObjectLedger> object_ledger;
  Bus* bus = nullptr;
  Ledger* ledger = nullptr;
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
  std::unique_ptr<AutoCompactor> compactor;        // curate role: merges closed hours (compact.interval)
  std::unique_ptr<PushReceiver> push;
  std::unique_ptr<ExtractionService> extractions;
  std::unique_ptr<QueryService> query;
  std::unique_ptr<Api> api;
  std::unique_ptr<HttpServer> server;
};

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::invalid_argument("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// This process's name in the lake ledger: consumer.instance, else <host>-<role>-<consumer.index>.
// Stable across restarts on purpose: a restarted curator rolls forward the prepared batches left
// under its name (their staged files are in its staging dir, which is named after it too). Unique
// among live processes: lock_instance() refuses a second process with the same name on this host.
std::string instance_name(const Config& c, const Roles& r) {
  if (!c.consumer_instance.empty()) {
    const auto& n = c.consumer_instance;
    if (n == "." || n == ".." || n.size() > 200 ||
        n.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != std::string::npos)
      throw std::invalid_argument("consumer.instance '" + n + "' must be 1-200 of A-Z a-z 0-9 . _ -");
    return n;
  }
  if (c.consumer_index < 0) throw std::invalid_argument("consumer.index must not be negative");
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  std::string role = r.api ? "serve" : r.curate ? "curate" : "archive";
  return std::string(host) + "-" + role + "-" + std::to_string(c.consumer_index);
}

// Holds an exclusive lock on <state>/<instance>.lock for the life of the process: two live processes
// sharing an instance name would roll each other's in-flight batches forward and share staging.
int lock_instance(const std::filesystem::path& state_root, const std::string& instance) {
  std::filesystem::create_directories(state_root);
  const auto path = state_root / (instance + ".lock");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    throw std::invalid_argument("instance name '" + instance + "' is in use by another process on this host (" +
                                path.string() + "): give each process its own --index or consumer.instance");
  }
  return fd;
}

}  // namespace

Pipeline::Pipeline(Config config, Roles roles) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.config = std::move(config);
  m.roles = roles;
  const Config& c = m.config;
  if (roles.api && !is_loopback(c.host) && c.api_keys.empty())
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

  // --- the lake seam -------------------------------------------------------------------------
  const bool object_lake = is_object_store_uri(c.data_dir);
  const std::string instance = instance_name(c, roles);
  std::filesystem::path local = object_lake ? std::filesystem::path(c.cache_dir.empty()
                                                                        ? std::filesystem::temp_directory_path() / "apilake-cache"
                                                                        : std::filesystem::path(c.cache_dir))
                                            : std::filesystem::absolute(c.data_dir).lexically_normal();
  LakeOptions lake_options;
  lake_options.endpoint = c.s3_endpoint;
  // Object lake: each process stages in its own directory (its ledger names those files).
  if (object_lake) {
    m.instance_lock.fd = lock_instance(local / "state", instance);
    lake_options.staging_dir = local / "staging" / instance;
  }
  m.lake = open_lake(object_lake ? c.data_dir : local.string(), lake_options);
  m.state_dir = object_lake ? local / "state" / instance : local / "_state";

  // --- the bus seam --------------------------------------------------------------------------
  if (c.bus_kind == "sqlite") {
    SqliteBusOptions bus_options;
    bus_options.max_delivery_attempts = c.max_delivery_attempts;
    m.sqlite = std::make_unique<SqliteBus>(m.state_dir / "bus.db", bus_options);
    m.bus = m.sqlite.get();
    m.ledger = m.sqlite.get();
  } else if (c.bus_kind == "pubsub") {
    PubSubOptions po = PubSubOptions::from_environment(c.pubsub_project);
    if (!c.pubsub_endpoint.empty()) po.endpoint = c.pubsub_endpoint;
    const bool emulator = std::getenv("PUBSUB_EMULATOR_HOST") || po.endpoint.rfind("http://", 0) == 0;
    if (!emulator) {
      m.token = std::make_unique<GoogleTokenSource>(
          c.pubsub_credentials.empty()
              ? GoogleTokenSource::metadata_server()
              : GoogleTokenSource::service_account(parse_service_account_key(read_file(c.pubsub_credentials))));
      po.access_token = [t = m.token.get()] { return t->token(); };
    }
    po.ordering = c.pubsub_ordering;
    po.ack_deadline_s = std::max(10, c.ack_deadline_s);
    po.max_delivery_attempts = std::max(5, c.max_delivery_attempts);
    // The emulator crashes when a subscription has both ordering and a dead-letter policy
    // (shared/notes/pubsub.md); real Pub/Sub supports both.
    if (!(emulator && po.ordering)) po.dead_letter_topic = c.bus_topic + "-dead";
    m.pubsub = std::make_unique<PubSubBus>(po);
    m.bus = m.pubsub.get();
    m.ledger_store = std::make_unique<LakeObjectStore>(*m.lake);
    ObjectLedgerOptions lo;
    lo.instance = instance;
    m.object_ledger = std::make_unique<ObjectLedger>(*m.ledger_store, *m.pubsub, lo);
    m.ledger = m.object_ledger.get();
    if (!po.dead_letter_topic.empty()) m.bus->create_topic(po.dead_letter_topic);
  } else {
    throw std::invalid_argument("bus.kind must be sqlite or pubsub, not '" + c.bus_kind + "'");
  }
  m.bus->create_topic(c.bus_topic);
  m.bus->create_subscription("archive", c.bus_topic);
  m.bus->create_subscription("curate", c.bus_topic);

  // --- stages ----------------------------------------------------------------------------------
  duck::Options curate_db;
  curate_db.threads = 1;
  curate_db.memory_limit = "512MB";
  curate_db.temp_directory = (m.lake->staging_dir() / "duckdb_curate").string();
  m.curate_db = std::make_unique<duck::Database>(curate_db);

  m.archiver = std::make_unique<Archiver>("archive", m.lake->staging_dir());
  m.curator = std::make_unique<Curator>(m.sources, *m.curate_db, m.lake->staging_dir(), m.lake.get());
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
  m.metrics->set_deployment(c.bus_kind, object_lake ? "object" : "local");
  // Insights: on a local lake in place; on an object lake through this process's own cache
  // directory. There the curate role refreshes them (it knows when data changed) and publishes them
  // to the lake; serve reads the published files (docs/insights.md, "Scale-out"). An archiver needs none.
  if (c.insights_min_interval_ms < 0)
    throw std::invalid_argument("insights.min_interval_ms must be >= 0, got " + std::to_string(c.insights_min_interval_ms));
  InsightOptions io;
  io.min_interval = std::chrono::milliseconds(c.insights_min_interval_ms);
  if (!object_lake)
    m.insights = std::make_unique<InsightService>(m.lake->local_root(), m.sources, load_models(m.sources), io);
  else if (roles.api || roles.curate)
    m.insights = std::make_unique<InsightService>(*m.lake, (local / "insight" / instance).string(), m.sources,
                                                  load_models(m.sources), io);
  if (m.insights)
    m.metrics->add_collector([i = m.insights.get()](std::string& out) {
      out += "# HELP apilake_insight_refreshes_total Insight materialisations run (inputs read; docs/insights.md).\n"
             "# TYPE apilake_insight_refreshes_total counter\n";
      out += "apilake_insight_refreshes_total " + std::to_string(i->refreshes()) + "\n";
    });
  m.observers = std::make_unique<PipelineObservers>(*m.bus, *m.ledger, m.sqlite.get(), *m.metrics, m.insights.get(),
                                                    *m.archiver, *m.curator);
  if (roles.archive)
    m.archive_consumer = std::make_unique<Consumer>(*m.bus, m.observers->archive_ledger, m.observers->archive_handler,
                                                    commit_file, consumer_options("archive"));
  if (roles.curate)
    m.curate_consumer = std::make_unique<Consumer>(*m.bus, m.observers->curate_ledger, m.observers->curate_handler,
                                                   commit_file, consumer_options("curate"));
  // Compaction of closed hours (docs/lake.md). On an object lake only the curate process with
  // consumer.index 0 runs it: two compactors racing on one hour could each upload a merge.
  if (roles.curate && c.compact_interval_s != 0 && (!object_lake || c.consumer_index == 0)) {
    AutoCompactOptions co;
    co.interval = std::chrono::seconds(c.compact_interval_s);
    co.grace = std::chrono::seconds(c.compact_grace_s);
    co.pending_files = [ledger = m.ledger] {
      std::set<std::string> files;
      for (const auto& b : ledger->pending("curate"))
        for (const auto& f : b.files) files.insert(f.final);
      return files;
    };
    m.compactor = std::make_unique<AutoCompactor>(*m.lake, *m.curate_db, m.sources, std::move(co));
    m.metrics->add_collector([a = m.compactor.get()](std::string& out) {
      out += "# HELP apilake_compactions_total Curated hours compacted by the background task.\n"
             "# TYPE apilake_compactions_total counter\n";
      out += "apilake_compactions_total " + std::to_string(a->compactions()) + "\n";
      out += "# HELP apilake_compaction_files_merged_total Files merged away by the background task.\n"
             "# TYPE apilake_compaction_files_merged_total counter\n";
      out += "apilake_compaction_files_merged_total " + std::to_string(a->files_merged()) + "\n";
      out += "# HELP apilake_compaction_failures_total Hours the background task skipped for a pass (retried).\n"
             "# TYPE apilake_compaction_failures_total counter\n";
      out += "apilake_compaction_failures_total " + std::to_string(a->failures()) + "\n";
    });
  }
  if (!roles.api) return;

  // --- API + fetch workers -------------------------------------------------------------------------
  m.store = std::make_unique<ExtractionStore>(m.state_dir / "extractions.db");
  ExtractionServiceOptions ex;
  ex.topic = c.bus_topic;
  ex.workers = c.fetch_workers;
  m.extractions = std::make_unique<ExtractionService>(m.sources, *m.store, m.observers->counting_bus, ex);

  QueryOptions qo;
  qo.timeout = std::chrono::milliseconds(c.query_timeout_ms);
  if (object_lake)
    m.query = std::make_unique<QueryService>(*m.lake, (local / "query" / instance).string(), m.sources, qo);
  else
    m.query = std::make_unique<QueryService>(m.lake->local_root(), m.sources, qo);

  ApiDeps deps{&m.sources, m.store.get(), m.extractions.get(), m.ledger, m.query.get(), c.api_keys};
  m.deadletters = std::make_unique<DeadLetters>(m.sources, *m.lake, *m.curate_db);
  deps.deadletters = m.deadletters.get();
  deps.insights = m.insights.get();
  deps.metrics = m.metrics.get();
  if (m.archive_consumer || m.curate_consumer) {
    // Push subscriptions (Cloud Run style) reach the same consumers through POST /v1/pubsub/push.
    m.push = std::make_unique<PushReceiver>(c.push_token);
    if (m.archive_consumer) m.push->add("archive", *m.archive_consumer);
    if (m.curate_consumer) m.push->add("curate", *m.curate_consumer);
    deps.push = m.push.get();
  }
  deps.node_modules = find_node_modules(c.sources_dir, "swagger-ui-dist");
  if (deps.node_modules.empty()) spdlog::warn("swagger-ui-dist not found (npm ci): /docs answers 503");
  deps.web_dir = find_web_dir(c.sources_dir);
  if (deps.web_dir.empty()) spdlog::warn("web/ (the dashboard) not found: / answers 503");
  m.api = std::make_unique<Api>(deps);
  ServerOptions so;
  so.host = c.host;
  so.port = c.port;
  so.threads = c.http_threads;
  // Asynchronous: POST /v1/extractions answers after the group commit without holding an io thread.
  m.server = std::make_unique<HttpServer>(so, [api = m.api.get(), metrics = m.metrics.get()](const ServerRequest& r,
                                                                                             Responder reply) {
    api->handle_async(r, [reply = std::move(reply), metrics, path = r.path,
                          t0 = std::chrono::steady_clock::now()](ServerResponse resp) {
      metrics->observe_request(path, resp.status,
                               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      reply(std::move(resp));
    });
  });
}

Pipeline::~Pipeline() { stop(); }

void Pipeline::start() { start(true); }
void Pipeline::start_without_api() { start(false); }
const std::vector<Source>& Pipeline::sources() const { return impl_->sources; }
ExtractionService& Pipeline::extractions() { return *impl_->extractions; }
ExtractionStore& Pipeline::extraction_store() { return *impl_->store; }
Ledger& Pipeline::ledger() { return *impl_->ledger; }
std::size_t Pipeline::curate_backlog() {
  if (!impl_->sqlite) throw std::logic_error("curate_backlog: only the embedded bus can count its backlog");
  return impl_->sqlite->backlog("curate");
}

void Pipeline::start(bool serve_http) {
  auto& m = *impl_;
  if (m.sqlite) {
    // The embedded bus belongs to this one process: leases still held belong to a previous run
    // that died, so their messages are redelivered now rather than after the ack deadline.
    if (auto n = m.sqlite->release_leases()) spdlog::info("bus: {} deliveries of a previous run redelivered", n);
  }
  // Roll every prepared batch forward first.
  if (m.archive_consumer) m.archive_consumer->recover();
  if (m.curate_consumer) m.curate_consumer->recover();
  {
    // Whatever is left in staging now belongs to no batch (a crash mid-write) and is swept, so
    // staging never grows across crashes. A batch recover() could not finish yet (lake unreachable)
    // keeps its staged files: sweeping them would turn a retry into an abandon. Object lakes: the
    // staging dir is this instance's own (staging/<instance>, held by lock_instance()) and its
    // ledger's pending() lists only this instance's batches, so only its own leftovers go.
    std::set<std::filesystem::path> keep;
    for (const char* consumer : {"archive", "curate"})
      for (const auto& b : m.ledger->pending(consumer))
        for (const auto& f : b.files) keep.insert(std::filesystem::path(f.staged).lexically_normal());
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(m.lake->staging_dir(), ec))
      if (e.is_regular_file() && !keep.count(e.path().lexically_normal())) std::filesystem::remove(e.path(), ec);
  }
  if (m.archive_consumer) m.archive_consumer->start();
  if (m.curate_consumer) m.curate_consumer->start();
  if (m.compactor) m.compactor->start();
  if (m.extractions) m.extractions->start();
  // The refresher runs where batches are curated (a local lake: the one process does everything).
  if (m.insights && (!m.lake->local_root().empty() || m.roles.curate)) m.insights->start();
  if (!serve_http || !m.server) return;
  m.server->start();
  spdlog::info("API on http://{}:{} — lake {}, bus {}", m.config.host, m.server->port(), m.config.data_dir,
               m.config.bus_kind);
  if (m.config.api_keys.empty())
    spdlog::warn("no API keys configured: the API is open (allowed only on loopback)");
}

void Pipeline::stop() {
  auto& m = *impl_;
  if (m.server) m.server->stop();
  if (m.extractions) m.extractions->stop();
  if (m.compactor) m.compactor->stop();
  if (m.curate_consumer) m.curate_consumer->stop();
  if (m.archive_consumer) m.archive_consumer->stop();
  if (m.insights) m.insights->stop();
}

uint16_t Pipeline::port() const { return impl_->server->port(); }

int run_pipeline(Config config, Roles roles, const char* what) {
  // Block the signals before any thread starts so every thread inherits the mask and sigwait below
  // is the only receiver.
  block_stop_signals();
  std::optional<Pipeline> pipeline;
  try {
    pipeline.emplace(std::move(config), roles);
    pipeline->start();
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", what, e.what());
    return 1;
  }
  spdlog::info("{}: running", what);
  int sig = wait_for_stop_signal();
  spdlog::info("{}: signal {} received, stopping", what, sig);
  pipeline->stop();
  return 0;
}

}  // namespace apilake
