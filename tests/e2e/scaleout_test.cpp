// Scale-out end to end (issue 5, "Tests"): the real Pub/Sub emulator and a real S3 server (s3rver) on
// loopback, then 2 `apilake serve --demo`, 3 `apilake curate` and 1 `apilake archive` processes sharing
// the subscriptions of one topic and one s3:// lake. Extractions go round-robin to the two API
// processes; one curator is SIGKILLed after a third of them were submitted (its leased messages come
// back after the ack deadline and another curator takes them). When every extraction is done, the lake
// is downloaded and counted with independent readers: every (extraction, page) archived exactly once
// (python3-avro), every valid record curated exactly once (DuckDB read_parquet), dead letters exactly
// the fixtures' planted bad records, every object readable after download.
// Two smaller tests on the same engines: a curator killed between prepare and commit and restarted
// under the same instance name (`--index`) completes its batch once; pages published twice (new
// message ids, same dedup key) are archived once and curated once.
//
// Size: kExtractions = 200 (100 bcb_sgs × 1 page × 22 records, 100 openbrewerydb × 3 pages × 47
// records: 400 pages, 6900 records) — many batches on every curator and the kill lands mid-run, while
// the whole test stays well under a minute on 2 shared cores.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "bus/object_ledger.h"
#include "bus/pubsub_bus.h"
#include "bus/pubsub_emulator.h"  // tests/bus/: the emulator harness shared with test_bus
#include "duck/duck.h"
#include "harness.h"
#include "lake/s3_lake.h"
#include "lake/s3_server.h"       // tests/lake/: the s3rver harness shared with test_lake

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace apilake;
using namespace apilake::test;

namespace {

[[maybe_unused]] auto* const kEmulatorEnv = ::testing::AddGlobalTestEnvironment(new PubSubEmulatorEnvironment);

constexpr int kExtractions = 200;
constexpr auto kConsumeTimeout = std::chrono::seconds(180);
const std::string kSources = std::string(APILAKE_SOURCE_DIR) + "/sources";

// The fixtures' planted bad records (see each source's fixtures/replay.yaml): bcb_sgs has a "valor"
// of "" (a required double), openbrewerydb a null "name" (required). Counted from the page bodies so
// the expectation follows the fixtures, not a constant.
int64_t planted_bad_records(const std::string& body) {
  int64_t n = 0;
  const json::value page = json::parse(body);
  for (const auto& v : page.as_array()) {
    const auto& o = v.as_object();
    if (auto* valor = o.if_contains("valor"); valor && valor->is_string() && valor->as_string().empty()) ++n;
    if (auto* name = o.if_contains("name"); name && name->is_null()) ++n;
  }
  return n;
}

struct Archived {
  std::string extraction_id, page, message_id, data;
};

std::vector<Archived> read_archive(const fs::path& raw_dir) {
  std::vector<Archived> out;
  if (!fs::exists(raw_dir)) return out;
  std::istringstream lines(run_command("/usr/bin/python3 " + std::string(APILAKE_SOURCE_DIR) +
                                       "/tests/e2e/read_avro.py " + raw_dir.string()));
  std::string line;
  while (std::getline(lines, line)) {
    auto v = json::parse(line).as_object();
    auto& attrs = v["attributes"].as_object();
    out.push_back({std::string(attrs["extraction_id"].as_string()), std::string(attrs["page"].as_string()),
                   std::string(v["message_id"].as_string()), b64decode(std::string(v["data"].as_string()))});
  }
  return out;
}

// Per extraction: dead letters under deadletter/**.jsonl (each line must parse).
std::map<std::string, int64_t> deadletters_by_extraction(const fs::path& dir) {
  std::map<std::string, int64_t> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    EXPECT_EQ(e.path().extension(), ".jsonl") << "unexpected file in deadletter/: " << e.path();
    std::ifstream f(e.path());
    std::string line;
    while (std::getline(f, line))
      if (!line.empty()) out[std::string(json::parse(line).as_object().at("extraction_id").as_string())]++;
  }
  return out;
}

HttpResponse http(uint16_t port, const std::string& method, const std::string& path, const std::string& body = "") {
  HttpOptions o;
  o.timeout = std::chrono::seconds(20);
  static thread_local HttpClient client(o);
  HttpRequest r;
  r.method = method;
  r.url = "http://127.0.0.1:" + std::to_string(port) + path;
  r.body = body;
  r.headers = {{"Content-Type", "application/json"}};
  return client.perform(r);
}

json::object example_of(uint16_t port, const std::string& source, const std::string& endpoint) {
  auto r = http(port, "GET", "/v1/sources");
  EXPECT_EQ(r.status, 200) << r.body;
  json::value all = json::parse(r.body);
  for (auto& s : all.as_object()["sources"].as_array())
    if (s.as_object().at("name").as_string() == source)
      for (auto& e : s.as_object().at("endpoints").as_array())
        if (e.as_object().at("name").as_string() == endpoint) return e.as_object().at("example").as_object();
  ADD_FAILURE() << "no example for " << source << "." << endpoint;
  return {};
}

// Archived messages per extraction, from the archiver's committed manifests in the lake ledger.
std::map<std::string, int64_t> archived_counts(S3Lake& lake) {
  std::map<std::string, int64_t> out;
  for (const auto& path : lake.list("_ledger/archive")) {
    if (path.size() < 15 || path.compare(path.size() - 15, 15, ".committed.json") != 0) continue;
    auto text = lake.get(path);
    if (!text) continue;
    for (const auto& [id, c] : parse_manifest(*text).counts) out[id] += c.rows;
  }
  return out;
}

// Committed curate batches whose manifest names the curator started with `--index index` as owner
// (instance names are <host>-curate-<index>, src/app/pipeline.cpp).
std::vector<std::string> curate_batches_by(S3Lake& lake, int index) {
  std::vector<std::string> out;
  const std::string suffix = "-curate-" + std::to_string(index);
  for (const auto& path : lake.list("_ledger/curate")) {
    if (path.size() < 15 || path.compare(path.size() - 15, 15, ".committed.json") != 0) continue;
    auto text = lake.get(path);
    std::string owner;
    if (text) parse_manifest(*text, &owner);
    if (owner.size() >= suffix.size() && owner.compare(owner.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(path);
  }
  return out;
}

struct Submitted {
  std::string id;
  std::size_t serve = 0;  // index of the serve process that accepted it (its store has the status)
  std::string source;
};

TEST(ScaleOut, TwoServeThreeCurateOneArchiveOverPubSubAndS3WithACuratorKilled) {
  // --- The distributed engines: real Pub/Sub emulator and s3rver, on loopback. ------------------
  const std::string emulator = PubSubEmulator::host();
  S3Server& s3 = S3Server::shared();
  const auto dir = temp_dir("scaleout");
  const std::string prefix = "scaleout-" + dir.filename().string();
  const std::string binary = APILAKE_BINARY;
  ASSERT_TRUE(fs::exists(binary)) << binary << " is not built";

  {
    std::ofstream cfg(dir / "apilake.yaml");
    cfg << "data_dir: s3://" << S3Server::kBucket << "/" << prefix << "\n"
        << "s3: {endpoint: " << s3.endpoint() << ", region: us-east-1}\n"
        << "bus: {kind: pubsub, topic: pages}\n"
        << "pubsub: {project: scaleout, endpoint: http://" << emulator << ", ordering: true}\n"
        << "sources: " << kSources << "\n"
        << "batch_max_age_ms: 1000\n"
        // Pub/Sub's minimum: the killed curator's leased messages are redelivered after 10 s.
        << "ack_deadline_s: 10\n"
        << "log_level: warn\n";
  }
  const std::string config = (dir / "apilake.yaml").string();

  // --- The roles. -----------------------------------------------------------------------------
  std::vector<std::unique_ptr<ChildProcess>> serves, curators, archivers;
  std::vector<uint16_t> ports;
  auto role = [&](const std::string& name, int n, std::vector<std::string> extra) {
    // --index: each process of a role its own stable instance name (and so its own ledger identity).
    std::vector<std::string> args = {binary, name, "--config", config, "--index", std::to_string(n)};
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string tag = name + std::to_string(n);
    std::vector<std::pair<std::string, std::string>> env = {
        {"AWS_ACCESS_KEY_ID", "S3RVER"},
        {"AWS_SECRET_ACCESS_KEY", "S3RVER"},
        {"APILAKE_CACHE_DIR", (dir / ("cache-" + tag)).string()},
    };
    auto p = std::make_unique<ChildProcess>(args, env, dir / (tag + ".log"));
    p->start();
    return p;
  };
  archivers.push_back(role("archive", 0, {}));
  for (int i = 0; i < 3; ++i) curators.push_back(role("curate", i, {}));
  for (int i = 0; i < 2; ++i) {
    ports.push_back(free_port());
    serves.push_back(role("serve", i, {"--port", std::to_string(ports.back()), "--demo"}));
  }
  for (std::size_t i = 0; i < serves.size(); ++i) ASSERT_NO_THROW(serves[i]->wait_healthy(ports[i], std::chrono::seconds(60)));
  auto all_roles = [&] {
    std::vector<ChildProcess*> out;
    for (auto* group : {&serves, &curators, &archivers})
      for (auto& p : *group) out.push_back(p.get());
    return out;
  };
  for (auto* p : all_roles()) ASSERT_TRUE(p->running()) << p->describe() << " exited:\n" << p->log_tail();

  // --- Submit, round-robin, alternating datasets; kill a curator a third of the way in. ----------
  const json::object bcb = example_of(ports[0], "bcb_sgs", "series");
  const json::object brewery = example_of(ports[0], "openbrewerydb", "breweries");
  auto lake_config = s3.config(prefix, dir / "staging-test");
  lake_config.retry.max_attempts = 4;
  S3Lake lake(lake_config);
  std::vector<Submitted> submitted;
  std::size_t killed_after = 0;
  auto killed_at = std::chrono::steady_clock::now();
  const pid_t killed_pid = curators[0]->pid();
  auto kill_curator = [&] {
    curators[0]->kill(SIGKILL);
    killed_after = submitted.size();
    killed_at = std::chrono::steady_clock::now();
  };
  for (int i = 0; i < kExtractions; ++i) {
    const bool is_bcb = i % 2 == 0;
    json::object body{{"source", is_bcb ? "bcb_sgs" : "openbrewerydb"},
                      {"endpoint", is_bcb ? "series" : "breweries"},
                      {"params", is_bcb ? bcb : brewery}};
    const std::size_t s = static_cast<std::size_t>(i) % serves.size();
    auto r = http(ports[s], "POST", "/v1/extractions", json::serialize(body));
    ASSERT_EQ(r.status, 202) << "extraction " << i << " on serve" << s << ": " << r.body;
    submitted.push_back({std::string(json::parse(r.body).as_object()["id"].as_string()), s,
                         is_bcb ? "bcb_sgs" : "openbrewerydb"});
    // Paced (~3 s for all) so that pages keep arriving while the curators run and the kill finds
    // the first curator holding an open batch of leased, unacked messages.
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    // Mid-run: from a third of the way in, the first curator dies as soon as it has committed a
    // batch (so it was consuming; it keeps pulling, so it usually holds leased messages too).
    if (i >= kExtractions / 3 && curators[0]->running() && !curate_batches_by(lake, 0).empty())
      kill_curator();
  }
  if (curators[0]->running()) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (curate_batches_by(lake, 0).empty() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_FALSE(curate_batches_by(lake, 0).empty())
        << "curator 0 committed nothing within 60 s:\n" << curators[0]->log_tail();
    kill_curator();
  }
  ASSERT_TRUE(curators[0]->exit_status() && WIFSIGNALED(*curators[0]->exit_status()));

  std::printf("[ scaleout ] curator pid %d SIGKILLed after %zu of %d extractions were submitted\n",
              static_cast<int>(killed_pid), killed_after, kExtractions);

  // --- Wait until every extraction succeeded, was fully curated and fully archived. ---------------
  std::map<std::string, json::object> status;
  std::set<std::string> waiting;
  for (const auto& s : submitted) waiting.insert(s.id);
  std::map<std::string, int64_t> archived;
  const auto deadline = std::chrono::steady_clock::now() + kConsumeTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const auto& s : submitted) {
      if (!waiting.count(s.id)) continue;
      auto r = http(ports[s.serve], "GET", "/v1/extractions/" + s.id);
      ASSERT_EQ(r.status, 200) << s.id << ": " << r.body;
      auto o = json::parse(r.body).as_object();
      status[s.id] = o;
      ASSERT_NE(o["status"].as_string(), "failed") << json::serialize(o);
      if (o["status"].as_string() == "succeeded" &&
          o["curated"].as_int64() + o["deadlettered"].as_int64() == o["records"].as_int64())
        waiting.erase(s.id);
    }
    if (waiting.empty()) {
      archived = archived_counts(lake);
      bool all = true;
      for (const auto& s : submitted) all = all && archived[s.id] >= status[s.id]["pages"].as_int64();
      if (all) break;
    }
    for (auto* p : all_roles())
      if (p != curators[0].get()) {
        ASSERT_TRUE(p->running()) << p->describe() << " exited:\n" << p->log_tail();
      }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  std::printf("[ scaleout ] everything consumed %.1f s after the kill\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count());
  ASSERT_TRUE(waiting.empty()) << waiting.size() << " of " << kExtractions
                               << " extractions not fully curated within " << kConsumeTimeout.count()
                               << " s, e.g. " << json::serialize(status[*waiting.begin()]);
  {
    int64_t short_of = 0;
    for (const auto& s : submitted) short_of += std::max<int64_t>(0, status[s.id]["pages"].as_int64() - archived[s.id]);
    ASSERT_EQ(short_of, 0) << "pages not archived within " << kConsumeTimeout.count() << " s";
  }
  // The subscription is shared: every curator took part (the killed one before it died).
  for (std::size_t i = 1; i < curators.size(); ++i)
    EXPECT_FALSE(curate_batches_by(lake, static_cast<int>(i)).empty()) << "curator " << i << " committed nothing";
  // A clean stop of every role: what is in the lake now is final.
  for (auto* p : all_roles()) p->kill(SIGTERM);
  for (std::size_t i = 1; i < curators.size(); ++i)
    EXPECT_TRUE(curators[i]->exit_status() && WIFEXITED(*curators[i]->exit_status()))
        << curators[i]->describe() << " did not stop cleanly:\n" << curators[i]->log_tail();

  // --- Download the lake. -----------------------------------------------------------------------
  const fs::path local = dir / "lake";
  std::size_t objects = 0;
  for (const auto& path : lake.list("")) {
    auto bytes = lake.get(path);
    ASSERT_TRUE(bytes.has_value()) << path << " listed but not readable";
    fs::create_directories((local / path).parent_path());
    std::ofstream(local / path, std::ios::binary) << *bytes;
    ++objects;
  }
  ASSERT_GT(objects, 0u);
  // Every object belongs to a known zone, in its format; manifests parse (checked here); Avro,
  // Parquet and dead-letter files are read below. A partial or stray object fails the test.
  for (const auto& path : lake.list("")) {
    const std::string zone = path.substr(0, path.find('/'));
    const std::string ext = fs::path(path).extension().string();
    if (zone == "_ledger") {
      EXPECT_EQ(ext, ".json") << path;
      EXPECT_NO_THROW(parse_manifest(slurp(local / path))) << path;
    } else {
      EXPECT_TRUE((zone == "raw" && ext == ".avro") || (zone == "curated" && ext == ".parquet") ||
                  (zone == "deadletter" && ext == ".jsonl") ||
                  // insight models materialised by the curate role (docs/insights.md, Scale-out)
                  (zone == "insights" && (ext == ".parquet" || fs::path(path).filename() == "current.json")))
          << "unexpected object in the lake: " << path;
    }
  }

  // --- Archive: each (extraction, page) exactly once, byte-identical to a fixture body. -----------
  std::set<std::string> bodies;
  for (const char* source : {"bcb_sgs", "openbrewerydb"}) bodies.merge(fixture_bodies(source));
  std::map<std::string, std::map<std::string, int>> page_copies;
  std::map<std::string, std::set<std::string>> archived_message_ids;
  std::map<std::string, int64_t> records, expected_dead;
  for (const auto& m : read_archive(local / "raw")) {
    EXPECT_TRUE(bodies.count(m.data)) << "archived page of " << m.extraction_id << " is not a fixture body";
    archived_message_ids[m.extraction_id].insert(m.message_id);
    if (++page_copies[m.extraction_id][m.page] == 1) {
      records[m.extraction_id] += static_cast<int64_t>(json::parse(m.data).as_array().size());
      expected_dead[m.extraction_id] += planted_bad_records(m.data);
    }
  }

  // --- Curated: every object readable by DuckDB; rows per extraction; no duplicates. ---------------
  duck::Database db;
  duck::Connection con(db);
  std::size_t parquet_files = 0;
  for (const auto& e : fs::recursive_directory_iterator(local / "curated")) {
    if (!e.is_regular_file()) continue;
    EXPECT_EQ(e.path().extension(), ".parquet") << e.path();
    EXPECT_NO_THROW(con.query("SELECT count(*) FROM read_parquet(" + duck::quote_literal(e.path().string()) + ")"))
        << e.path();
    ++parquet_files;
  }
  EXPECT_GT(parquet_files, 0u);
  std::map<std::string, int64_t> rows;
  for (const char* ds : {"bcb_sgs/series", "openbrewerydb/breweries"}) {
    const std::string files = duck::quote_literal((local / "curated" / ds / "**" / "*.parquet").string());
    auto res = con.query("SELECT _extraction_id, count(*) FROM read_parquet(" + files + ") GROUP BY 1");
    for (std::size_t r = 0; r < res.row_count(); ++r) rows[*res.text(0, r)] += res.int64(1, r);
    // The same record of the same message twice = curated twice (a redelivery written again).
    auto dups = con.query("SELECT count(*), coalesce(sum(c), 0) FROM (SELECT * EXCLUDE (_ingested_at, _replayed_at), "
                          "count(*) AS c FROM read_parquet(" + files + ") GROUP BY ALL HAVING count(*) > 1)");
    EXPECT_EQ(dups.int64(0, 0), 0) << ds << ": " << dups.int64(1, 0) << " rows are copies of another row";
    // Every curated row comes from a message the archiver holds for the same extraction.
    auto ids = con.query("SELECT DISTINCT _extraction_id, _message_id FROM read_parquet(" + files + ")");
    for (std::size_t r = 0; r < ids.row_count(); ++r)
      EXPECT_TRUE(archived_message_ids[*ids.text(0, r)].count(*ids.text(1, r)))
          << ds << ": rows of message " << *ids.text(1, r) << " not archived for " << *ids.text(0, r);
  }
  auto dead = deadletters_by_extraction(local / "deadletter");

  // --- Per extraction. ----------------------------------------------------------------------------
  int64_t total_records = 0;
  for (const auto& s : submitted) {
    auto& st = status[s.id];
    const std::string& id = s.id;
    EXPECT_EQ(static_cast<int64_t>(page_copies[id].size()), st["pages"].as_int64()) << id << ": a page not archived";
    for (const auto& [page, copies] : page_copies[id]) EXPECT_EQ(copies, 1) << id << " page " << page << " archived";
    EXPECT_EQ(records[id], st["records"].as_int64()) << id;
    EXPECT_GT(records[id], 0) << id;
    EXPECT_EQ(dead[id], expected_dead[id]) << id << " (" << s.source << "): dead letters vs planted bad records";
    EXPECT_EQ(rows[id], records[id] - expected_dead[id]) << id << " (" << s.source << "): curated rows vs valid records";
    EXPECT_EQ(rows[id], st["curated"].as_int64()) << id;
    EXPECT_EQ(dead[id], st["deadlettered"].as_int64()) << id;
    total_records += records[id];
  }
  EXPECT_EQ(rows.size(), submitted.size()) << "curated rows of extractions nobody submitted";
  // The fixtures plant one bad record per extraction of each of these datasets (not a vacuous check).
  EXPECT_EQ(expected_dead[submitted[0].id], 1);
  EXPECT_EQ(expected_dead[submitted[1].id], 1);
  EXPECT_GT(total_records, 0);

  std::error_code ec;
  fs::remove_all(dir, ec);
}

// A curator killed between prepare and commit (APILAKE_FAULT, src/bus/fault.h) and started again
// under the same instance name (`--index 0`) rolls its own prepared batch forward at start-up: the
// batch commits under its original id, once, and every record is curated exactly once.
TEST(ScaleOut, ARestartedCuratorCompletesItsPreparedBatchOnce) {
  const std::string emulator = PubSubEmulator::host();
  S3Server& s3 = S3Server::shared();
  const auto dir = temp_dir("restart");
  const std::string prefix = "restart-" + dir.filename().string();
  const std::string binary = APILAKE_BINARY;
  {
    std::ofstream cfg(dir / "apilake.yaml");
    cfg << "data_dir: s3://" << S3Server::kBucket << "/" << prefix << "\n"
        << "s3: {endpoint: " << s3.endpoint() << ", region: us-east-1}\n"
        << "bus: {kind: pubsub, topic: pages}\n"
        // Its own project: topics and subscriptions apart from the other test's on the same emulator.
        << "pubsub: {project: restart-" << ::getpid() << ", endpoint: http://" << emulator << ", ordering: true}\n"
        << "sources: " << kSources << "\n"
        << "batch_max_age_ms: 300\n"
        << "ack_deadline_s: 10\n"
        << "log_level: info\n";
  }
  const std::string config = (dir / "apilake.yaml").string();
  auto role = [&](const std::string& name, std::vector<std::string> extra,
                  std::vector<std::pair<std::string, std::string>> env, const std::string& log) {
    std::vector<std::string> args = {binary, name, "--config", config, "--index", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    env.push_back({"AWS_ACCESS_KEY_ID", "S3RVER"});
    env.push_back({"AWS_SECRET_ACCESS_KEY", "S3RVER"});
    env.push_back({"APILAKE_CACHE_DIR", (dir / ("cache-" + name)).string()});  // the same across the restart
    auto p = std::make_unique<ChildProcess>(args, env, dir / log);
    p->start();
    return p;
  };
  auto curator = role("curate", {}, {{"APILAKE_FAULT", "curate:after_prepare"}}, "curate-1.log");
  const uint16_t port = free_port();
  auto serve = role("serve", {"--port", std::to_string(port), "--demo"}, {}, "serve.log");
  ASSERT_NO_THROW(serve->wait_healthy(port, std::chrono::seconds(60)));

  const json::object brewery = example_of(port, "openbrewerydb", "breweries");
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    json::object body{{"source", "openbrewerydb"}, {"endpoint", "breweries"}, {"params", brewery}};
    auto r = http(port, "POST", "/v1/extractions", json::serialize(body));
    ASSERT_EQ(r.status, 202) << r.body;
    ids.emplace_back(json::parse(r.body).as_object()["id"].as_string());
  }
  // The fault kills the curator right after its first prepare.
  const auto status = curator->wait_exit(std::chrono::seconds(60));
  ASSERT_TRUE(status && WIFSIGNALED(*status)) << "the curator did not die at the fault:\n" << curator->log_tail();

  auto lake_config = s3.config(prefix, dir / "staging-test");
  S3Lake lake(lake_config);
  auto manifests = [&](const std::string& suffix) {
    std::vector<std::string> out;
    for (const auto& path : lake.list("_ledger/curate/"))
      if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
        out.push_back(path);
    return out;
  };
  const auto prepared = manifests(".prepared.json");
  ASSERT_EQ(prepared.size(), 1u) << "one prepared batch left by the killed curator";
  EXPECT_TRUE(manifests(".committed.json").empty());
  std::string owner;
  const PreparedBatch left = parse_manifest(*lake.get(prepared[0]), &owner);
  EXPECT_EQ(owner.substr(owner.size() - 9), "-curate-0") << owner;
  ASSERT_FALSE(left.message_ids.empty());

  // Restart under the same instance name, no fault.
  curator = role("curate", {}, {}, "curate-2.log");
  std::map<std::string, json::object> st;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::size_t done = 0;
  while (done < ids.size() && std::chrono::steady_clock::now() < deadline) {
    done = 0;
    for (const auto& id : ids) {
      auto r = http(port, "GET", "/v1/extractions/" + id);
      ASSERT_EQ(r.status, 200) << r.body;
      st[id] = json::parse(r.body).as_object();
      auto& o = st[id];
      if (o["status"].as_string() == "succeeded" &&
          o["curated"].as_int64() + o["deadlettered"].as_int64() == o["records"].as_int64())
        ++done;
    }
    ASSERT_TRUE(curator->running()) << curator->log_tail();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(done, ids.size()) << "not fully curated after the restart:\n" << curator->log_tail();
  curator->kill(SIGTERM);
  serve->kill(SIGTERM);

  // The predecessor's batch: committed under its own id by the same instance (rolled forward, not
  // redone), its prepared object gone, each message in exactly one committed batch.
  EXPECT_TRUE(lake.exists(ObjectLedger::committed_path("curate", left.batch_id)));
  EXPECT_FALSE(lake.exists(prepared[0]));
  EXPECT_NE(slurp(curator->log()).find("rolled pending batch " + left.batch_id + " forward"), std::string::npos)
      << curator->log_tail();
  std::map<std::string, int> batches_of;
  for (const auto& path : manifests(".committed.json")) {
    std::string o;
    for (const auto& id : parse_manifest(*lake.get(path), &o).message_ids) ++batches_of[id];
    EXPECT_EQ(o, owner) << path;
  }
  for (const auto& id : left.message_ids) EXPECT_EQ(batches_of[id], 1) << "message " << id;
  for (const auto& [id, n] : batches_of) EXPECT_EQ(n, 1) << "message " << id << " committed " << n << " times";

  // Rows: exactly the valid records, no copies.
  const fs::path local = dir / "lake";
  for (const auto& path : lake.list("curated/")) {
    fs::create_directories((local / path).parent_path());
    std::ofstream(local / path, std::ios::binary) << *lake.get(path);
  }
  duck::Database db;
  duck::Connection con(db);
  const std::string files = duck::quote_literal((local / "curated" / "**" / "*.parquet").string());
  auto res = con.query("SELECT _extraction_id, count(*) FROM read_parquet(" + files + ") GROUP BY 1");
  std::map<std::string, int64_t> rows;
  for (std::size_t r = 0; r < res.row_count(); ++r) rows[*res.text(0, r)] = res.int64(1, r);
  for (const auto& id : ids) {
    EXPECT_GT(rows[id], 0) << id;
    EXPECT_EQ(rows[id], st[id]["curated"].as_int64()) << id;
  }
  auto dups = con.query("SELECT count(*) FROM (SELECT * EXCLUDE (_ingested_at, _replayed_at), count(*) AS c FROM "
                        "read_parquet(" + files + ") GROUP BY ALL HAVING count(*) > 1)");
  EXPECT_EQ(dups.int64(0, 0), 0) << "rows curated twice";
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// Sum of N over the consumer's log lines saying it acked N copies without writing them (a
// redelivery or republished page already in the ledger, or a copy riding in the same batch).
int64_t copies_acked(const fs::path& log) {
  static const std::regex re(R"(acking (\d+) redelivered messages already in the ledger|(\d+) republished copies)");
  const std::string text = slurp(log);
  int64_t n = 0;
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it)
    n += std::stoll((*it)[1].matched ? (*it)[1].str() : (*it)[2].str());
  return n;
}

// Pub/Sub cannot drop a page published twice (a serve process that died mid-extraction runs it
// again): the same (extraction, page) under a new message id must be archived once and curated once.
// The pages are captured from a tap subscription and published again, attributes (dedup_key
// included) unchanged.
TEST(ScaleOut, RepublishedPagesAreArchivedAndCuratedOnce) {
  const std::string emulator = PubSubEmulator::host();
  S3Server& s3 = S3Server::shared();
  const auto dir = temp_dir("republish");
  const std::string prefix = "republish-" + dir.filename().string();
  const std::string binary = APILAKE_BINARY;
  const std::string project = "republish-" + std::to_string(::getpid());
  {
    std::ofstream cfg(dir / "apilake.yaml");
    cfg << "data_dir: s3://" << S3Server::kBucket << "/" << prefix << "\n"
        << "s3: {endpoint: " << s3.endpoint() << ", region: us-east-1}\n"
        << "bus: {kind: pubsub, topic: pages}\n"
        << "pubsub: {project: " << project << ", endpoint: http://" << emulator << ", ordering: true}\n"
        << "sources: " << kSources << "\n"
        << "batch_max_age_ms: 300\n"
        << "ack_deadline_s: 10\n"
        << "log_level: info\n";
  }
  PubSubOptions po;
  po.project = project;
  po.endpoint = "http://" + emulator;
  PubSubBus bus(po);
  bus.create_topic("pages");
  bus.create_subscription("tap", "pages");  // before anything is published: sees every page

  const std::string config = (dir / "apilake.yaml").string();
  auto role = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args = {binary, name, "--config", config, "--index", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<std::pair<std::string, std::string>> env = {
        {"AWS_ACCESS_KEY_ID", "S3RVER"}, {"AWS_SECRET_ACCESS_KEY", "S3RVER"},
        {"APILAKE_CACHE_DIR", (dir / ("cache-" + name)).string()}};
    auto p = std::make_unique<ChildProcess>(args, env, dir / (name + ".log"));
    p->start();
    return p;
  };
  auto archiver = role("archive", {});
  auto curator = role("curate", {});
  const uint16_t port = free_port();
  auto serve = role("serve", {"--port", std::to_string(port), "--demo"});
  ASSERT_NO_THROW(serve->wait_healthy(port, std::chrono::seconds(60)));

  json::object body{{"source", "openbrewerydb"}, {"endpoint", "breweries"},
                    {"params", example_of(port, "openbrewerydb", "breweries")}};
  auto r = http(port, "POST", "/v1/extractions", json::serialize(body));
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id(json::parse(r.body).as_object()["id"].as_string());

  // Capture the pages as published, then publish them again.
  std::vector<Message> pages;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  json::object st;
  while (std::chrono::steady_clock::now() < until) {
    for (auto& m : bus.pull("tap", 100, std::chrono::seconds(60))) {
      bus.ack("tap", {m.ack_id});
      pages.push_back(std::move(m));
    }
    st = json::parse(http(port, "GET", "/v1/extractions/" + id).body).as_object();
    if (st["status"].as_string() == "succeeded" && static_cast<int64_t>(pages.size()) >= st["pages"].as_int64()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(st["status"].as_string(), "succeeded") << json::serialize(st);
  ASSERT_EQ(static_cast<int64_t>(pages.size()), st["pages"].as_int64());
  ASSERT_GT(pages.size(), 1u);
  std::vector<OutMessage> again;
  for (const auto& m : pages) {
    ASSERT_EQ(m.attributes.at("dedup_key"), id + ":" + m.attributes.at("page"));
    again.push_back({m.data, m.attributes, ""});
  }
  const auto new_ids = bus.publish("pages", again);
  for (std::size_t i = 0; i < pages.size(); ++i) EXPECT_NE(new_ids[i], pages[i].id);

  // Both consumers settle every copy (acked without writing), and the extraction is fully curated.
  const auto want = static_cast<int64_t>(pages.size());
  until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < until) {
    st = json::parse(http(port, "GET", "/v1/extractions/" + id).body).as_object();
    if (copies_acked(archiver->log()) >= want && copies_acked(curator->log()) >= want &&
        st["curated"].as_int64() + st["deadlettered"].as_int64() == st["records"].as_int64())
      break;
    ASSERT_TRUE(archiver->running() && curator->running());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(copies_acked(archiver->log()), want) << archiver->log_tail();
  EXPECT_EQ(copies_acked(curator->log()), want) << curator->log_tail();
  for (auto* p : {serve.get(), curator.get(), archiver.get()}) p->kill(SIGTERM);

  auto lake_config = s3.config(prefix, dir / "staging-test");
  S3Lake lake(lake_config);
  const fs::path local = dir / "lake";
  for (const auto& path : lake.list("")) {
    fs::create_directories((local / path).parent_path());
    std::ofstream(local / path, std::ios::binary) << *lake.get(path);
  }
  // Archive: one message per page, the original ids.
  std::map<std::string, int> copies;
  std::set<std::string> originals;
  for (const auto& m : pages) originals.insert(m.id);
  for (const auto& a : read_archive(local / "raw")) {
    ++copies[a.page];
    EXPECT_TRUE(originals.count(a.message_id)) << "a republished copy was archived: " << a.message_id;
  }
  EXPECT_EQ(static_cast<int64_t>(copies.size()), want);
  for (const auto& [page, n] : copies) EXPECT_EQ(n, 1) << "page " << page << " archived " << n << " times";
  // Curated: rows once.
  duck::Database db;
  duck::Connection con(db);
  const std::string files = duck::quote_literal((local / "curated" / "**" / "*.parquet").string());
  auto res = con.query("SELECT count(*), count(DISTINCT _message_id) FROM read_parquet(" + files + ")");
  EXPECT_EQ(res.int64(0, 0), st["curated"].as_int64());
  EXPECT_EQ(res.int64(1, 0), want) << "rows from more than one copy of a page";
  auto from_copies = con.query("SELECT count(*) FROM read_parquet(" + files + ") WHERE _message_id NOT IN (" +
                               [&] {
                                 std::string list;
                                 for (const auto& o : originals) list += (list.empty() ? "" : ",") + duck::quote_literal(o);
                                 return list;
                               }() + ")");
  EXPECT_EQ(from_copies.int64(0, 0), 0) << "rows curated from a republished copy";
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
