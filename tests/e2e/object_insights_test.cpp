// Insights on an object-store lake, end to end (issue 5 item 5 + issue 6): the real Pub/Sub emulator
// and s3rver on loopback, an `apilake curate` and an `apilake serve --demo` process sharing one s3://
// lake. An extraction is curated; the curator refreshes bcb_sgs_monthly after its batch and publishes
// it under insights/ in the lake; the serve process (which never refreshes) serves it as json, csv and
// parquet, with values equal to the model's SQL run by DuckDB over the downloaded curated objects.
// Also: at start-up the curator sweeps its own leftover staging files, and only its own.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <tuple>
#include <sstream>

#include "bus/pubsub_emulator.h"  // tests/bus/: the emulator harness shared with test_bus
#include "duck/duck.h"
#include "harness.h"
#include "insight/models.h"
#include "lake/s3_lake.h"
#include "lake/s3_server.h"  // tests/lake/

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace apilake;
using namespace apilake::test;

namespace {

[[maybe_unused]] auto* const kEmulator = ::testing::AddGlobalTestEnvironment(new PubSubEmulatorEnvironment);

const std::string kSources = std::string(APILAKE_SOURCE_DIR) + "/sources";

HttpResponse call(uint16_t port, const std::string& method, const std::string& path, const std::string& body = "",
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpOptions o;
  o.timeout = std::chrono::seconds(20);
  HttpClient client(o);
  HttpRequest r;
  r.method = method;
  r.url = "http://127.0.0.1:" + std::to_string(port) + path;
  r.body = body;
  headers.emplace_back("Content-Type", "application/json");
  r.headers = std::move(headers);
  return client.perform(r);
}

std::string header(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    std::string lk = k;
    for (auto& c : lk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lk == name) return v;
  }
  return "";
}

TEST(ObjectInsights, CuratorRefreshesServeServesValuesEqualToDuckDbOverTheLake) {
  const std::string emulator = PubSubEmulator::host();
  S3Server& s3 = S3Server::shared();
  const auto dir = temp_dir("objinsight");
  const std::string prefix = "objinsight-" + dir.filename().string();
  const std::string project = "objinsight-" + std::to_string(::getpid());
  {
    std::ofstream cfg(dir / "apilake.yaml");
    cfg << "data_dir: s3://" << S3Server::kBucket << "/" << prefix << "\n"
        << "s3: {endpoint: " << s3.endpoint() << ", region: us-east-1}\n"
        << "bus: {kind: pubsub, topic: pages}\n"
        << "pubsub: {project: " << project << ", endpoint: http://" << emulator << "}\n"
        << "sources: " << kSources << "\n"
        << "batch_max_age_ms: 300\n"
        << "ack_deadline_s: 10\n"
        << "log_level: info\n";
  }
  const std::string config = (dir / "apilake.yaml").string();
  const fs::path curate_cache = dir / "cache-curate";

  // Leftovers of a crashed earlier run of this curator (its staging dir is staging/<instance>), and
  // a file of another instance on the same host, which must survive.
  fs::create_directories(curate_cache / "staging" / "curator-a");
  fs::create_directories(curate_cache / "staging" / "curator-b");
  std::ofstream(curate_cache / "staging" / "curator-a" / "curate-000001.parquet") << "half a file";
  std::ofstream(curate_cache / "staging" / "curator-b" / "curate-000002.parquet") << "not ours";

  auto role = [&](const std::string& name, const std::string& instance, std::vector<std::string> extra) {
    std::vector<std::string> args = {APILAKE_BINARY, name, "--config", config};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<std::pair<std::string, std::string>> env = {
        {"AWS_ACCESS_KEY_ID", "S3RVER"}, {"AWS_SECRET_ACCESS_KEY", "S3RVER"},
        {"APILAKE_CACHE_DIR", (dir / ("cache-" + name)).string()},
        {"APILAKE_CONSUMER_INSTANCE", instance}};
    auto p = std::make_unique<ChildProcess>(args, env, dir / (name + ".log"));
    p->start();
    return p;
  };
  auto curator = role("curate", "curator-a", {});
  const uint16_t port = free_port();
  auto serve = role("serve", "serve-a", {"--port", std::to_string(port), "--demo"});
  ASSERT_NO_THROW(serve->wait_healthy(port, std::chrono::seconds(60)));

  // Nothing curated yet: the insight is listed, without data.
  auto listed = call(port, "GET", "/v1/insights");
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_EQ(call(port, "GET", "/v1/insights/bcb_sgs_monthly").status, 404);

  // Two extractions (fixtures: series 11 in January 2024 with one planted bad record, series 433
  // for the 12 months of 2023), so the insight has two series and is refreshed more than once.
  std::vector<std::string> ids;
  for (const auto& [series, start, end] : std::vector<std::tuple<int, std::string, std::string>>{
           {11, "2024-01-01", "2024-01-31"}, {433, "2023-01-01", "2023-12-31"}}) {
    json::object body{{"source", "bcb_sgs"},
                      {"endpoint", "series"},
                      {"params", json::object{{"series", series}, {"start", start}, {"end", end}}}};
    auto r = call(port, "POST", "/v1/extractions", json::serialize(body));
    ASSERT_EQ(r.status, 202) << r.body;
    ids.emplace_back(json::parse(r.body).as_object()["id"].as_string());
  }
  for (const auto& id : ids) {
    json::object st;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (std::chrono::steady_clock::now() < until) {
      st = json::parse(call(port, "GET", "/v1/extractions/" + id).body).as_object();
      if (st["status"].as_string() == "failed") break;
      if (st["status"].as_string() == "succeeded" && st["curated"].as_int64() > 0 &&
          st["curated"].as_int64() + st["deadlettered"].as_int64() == st["records"].as_int64())
        break;
      ASSERT_TRUE(curator->running()) << curator->log_tail();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(st["status"].as_string(), "succeeded") << json::serialize(st) << "\n" << serve->log_tail();
    ASSERT_EQ(st["curated"].as_int64() + st["deadlettered"].as_int64(), st["records"].as_int64()) << json::serialize(st);
  }

  // The lake as it is now, downloaded, and what the model computes over it.
  S3Lake lake(s3.config(prefix, dir / "staging-test"));
  const fs::path local = dir / "lake";
  for (const auto& path : lake.list("curated")) {
    fs::create_directories((local / path).parent_path());
    std::ofstream(local / path, std::ios::binary) << *lake.get(path);
  }
  const InsightModel model = parse_model(slurp(kSources + "/bcb_sgs/insights/bcb_sgs_monthly.sql"),
                                         "bcb_sgs_monthly.sql", {"bcb_sgs_series"});
  duck::Database db;
  duck::Connection con(db);
  con.execute("SET TimeZone='UTC'");
  con.execute("CREATE VIEW bcb_sgs_series AS SELECT * FROM read_parquet(" +
              duck::quote_literal((local / "curated/bcb_sgs/series/**/*.parquet").string()) +
              ", union_by_name=true, hive_partitioning=false)");
  auto through = con.query("SELECT CAST(max(_ingested_at) AS VARCHAR) FROM bcb_sgs_series");
  auto expected_rows = con.query("SELECT CAST(to_json(t) AS VARCHAR) FROM (" + model.sql + ") t");
  ASSERT_EQ(expected_rows.row_count(), 13u);   // series 11: January 2024; series 433: 12 months of 2023

  // The curator refreshes after its last batch; the serve process picks the new pointer up.
  HttpResponse js;
  json::object doc;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    js = call(port, "GET", "/v1/insights/bcb_sgs_monthly?format=json");
    if (js.status == 200) {
      doc = json::parse(js.body).as_object();
      if (doc["rows"].as_array().size() == expected_rows.row_count()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(js.status, 200) << js.body << "\n" << curator->log_tail();
  const auto& rows = doc["rows"].as_array();
  ASSERT_EQ(rows.size(), expected_rows.row_count()) << js.body;
  for (std::size_t i = 0; i < rows.size(); ++i)
    EXPECT_EQ(rows[i], json::parse(*expected_rows.text(0, i))) << "row " << i;
  EXPECT_TRUE(doc["data_through"].is_string());

  // The published objects: data file + pointer, nothing else; the parquet served is that object.
  auto pointer = json::parse(*lake.get("insights/bcb_sgs_monthly/current.json")).as_object();
  const std::string file(pointer["file"].as_string());
  EXPECT_EQ(lake.list("insights/bcb_sgs_monthly"),
            (std::vector<std::string>{"insights/bcb_sgs_monthly/" + file, "insights/bcb_sgs_monthly/current.json"}));
  EXPECT_EQ(pointer["rows"].as_int64(), static_cast<int64_t>(rows.size()));
  EXPECT_EQ(std::string(doc["data_through"].as_string()).substr(0, 19),
            through.text(0, 0).value_or("").substr(0, 19).replace(10, 1, "T"));

  auto pq = call(port, "GET", "/v1/insights/bcb_sgs_monthly?format=parquet");
  ASSERT_EQ(pq.status, 200);
  EXPECT_EQ(pq.body, *lake.get("insights/bcb_sgs_monthly/" + file));
  const fs::path served = dir / "served.parquet";
  std::ofstream(served, std::ios::binary) << pq.body;
  auto diff = con.query("SELECT count(*) FROM ((SELECT * FROM read_parquet(" + duck::quote_literal(served.string()) +
                        ") EXCEPT ALL (" + model.sql + ")) UNION ALL ((" + model.sql + ") EXCEPT ALL SELECT * FROM read_parquet(" +
                        duck::quote_literal(served.string()) + ")))");
  EXPECT_EQ(diff.int64(0, 0), 0) << "served parquet differs from DuckDB over the lake";

  auto csv = call(port, "GET", "/v1/insights/bcb_sgs_monthly?format=csv");
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.body.rfind("series,month,mean,min,max,observations,mom_change,mom_change_pct\r\n", 0), 0u) << csv.body;
  auto expected_csv = con.query("SELECT CAST(COLUMNS(*) AS VARCHAR) FROM (" + model.sql + ")");
  std::string want = "series,month,mean,min,max,observations,mom_change,mom_change_pct\r\n";
  for (std::size_t i = 0; i < expected_csv.row_count(); ++i) {
    for (std::size_t c = 0; c < expected_csv.column_count(); ++c)
      want += (c ? "," : "") + expected_csv.text(c, i).value_or("");
    want += "\r\n";
  }
  EXPECT_EQ(csv.body, want);

  // ETag/Last-Modified as on a local lake, and a 304 for the same version.
  const std::string etag = header(csv, "etag");
  EXPECT_EQ(etag, "\"" + file + ".csv\"");
  EXPECT_FALSE(header(csv, "last-modified").empty());
  EXPECT_EQ(call(port, "GET", "/v1/insights/bcb_sgs_monthly?format=csv", "", {{"If-None-Match", etag}}).status, 304);

  // The list shows freshness from the lake's pointer.
  listed = call(port, "GET", "/v1/insights");
  ASSERT_EQ(listed.status, 200);
  bool found = false;
  // Keep the parsed document alive: a range-for over a member of a temporary would dangle.
  const json::value list_doc = json::parse(listed.body);
  for (const auto& i : list_doc.as_object().at("insights").as_array()) {
    if (i.as_object().at("name").as_string() != "bcb_sgs_monthly") continue;
    found = true;
    EXPECT_EQ(i.as_object().at("rows").as_int64(), static_cast<int64_t>(rows.size())) << json::serialize(i);
  }
  EXPECT_TRUE(found);

  // Start-up sweep: the curator's own leftover is gone, the other instance's file is untouched.
  EXPECT_FALSE(fs::exists(curate_cache / "staging" / "curator-a" / "curate-000001.parquet"));
  EXPECT_TRUE(fs::exists(curate_cache / "staging" / "curator-b" / "curate-000002.parquet"));

  serve->kill(SIGTERM);
  curator->kill(SIGTERM);
  EXPECT_TRUE(serve->exit_status() && WIFEXITED(*serve->exit_status()) && WEXITSTATUS(*serve->exit_status()) == 0);
  EXPECT_TRUE(curator->exit_status() && WIFEXITED(*curator->exit_status()) && WEXITSTATUS(*curator->exit_status()) == 0);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
