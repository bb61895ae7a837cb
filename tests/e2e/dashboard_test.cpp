// End to end for the dashboard at / against the real binary (`apilake up --demo`): a headless
// Chromium (tests/support/dashboard.mjs, playwright-core) drives the page, and the API routes the page
// needs (GET /v1/extractions?limit=N, GET /v1/status, the static assets) are checked over HTTP.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>

#include "harness.h"

namespace json = boost::json;
using namespace apilake;
using namespace apilake::test;

namespace {
namespace fs = std::filesystem;

std::string start_extraction(ApilakeProcess& app, const std::string& body, Headers headers = {}) {
  headers.emplace_back("Content-Type", "application/json");
  auto r = app.call("POST", "/v1/extractions", body, headers);
  if (r.status != 202) throw std::runtime_error("POST /v1/extractions: " + std::to_string(r.status) + " " + r.body);
  return std::string(json::parse(r.body).at("id").as_string());
}

json::object wait_curated(ApilakeProcess& app, const std::string& id) {
  for (int i = 0; i < 1200; ++i) {
    json::object o = json::parse(app.get("/v1/extractions/" + id).body).as_object();
    if (o.at("status").as_string() == "failed") return o;
    if (o.at("status").as_string() == "succeeded" &&
        o.at("curated").to_number<int64_t>() + o.at("deadlettered").to_number<int64_t>() ==
            o.at("records").to_number<int64_t>())
      return o;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("extraction did not finish");
}

}  // namespace

TEST(DashboardE2E, BrowserStartsExtractionsFromTheFormAndChartsEveryInsight) {
  if (!fs::exists("/usr/bin/chromium")) GTEST_SKIP() << "/usr/bin/chromium is not installed (apt chromium, scripts/setup.sh)";
  ApilakeProcess app(temp_dir("dashboard-e2e"));
  app.start();
  const fs::path artifacts = fs::path(APILAKE_BINARY).parent_path() / "artifacts";
  fs::create_directories(artifacts);
  const fs::path shot = artifacts / "dashboard.png";
  fs::remove(shot);
  const std::string base = "http://127.0.0.1:" + std::to_string(app.port());
  std::string out;
  try {
    out = run_command("node " + std::string(APILAKE_SOURCE_DIR) + "/tests/support/dashboard.mjs " + base + " " +
                      shot.string() + " 2>&1");
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  std::cout << "[ info ] dashboard screenshot: " << shot.string() << "\n";
  // The script's own checks passed (exit 0); its summary (the last line) says what it saw.
  std::string last = out.substr(0, out.find_last_not_of('\n') + 1);
  last = last.substr(last.rfind('\n') + 1);
  json::object summary = json::parse(last).as_object();
  EXPECT_TRUE(summary.at("failures").as_array().empty()) << out;
  EXPECT_TRUE(fs::exists(shot) && fs::file_size(shot) > 10000) << "no screenshot at " << shot;

  // The extractions the form started are the ones the API has, with the params typed in.
  json::object listed = json::parse(app.get("/v1/extractions?limit=10").body).as_object();
  const auto& items = listed.at("extractions").as_array();
  ASSERT_EQ(items.size(), 2u) << json::serialize(listed);
  EXPECT_EQ(items[0].at("source").as_string(), "openbrewerydb");  // newest first
  EXPECT_EQ(items[0].at("params").at("by_state").as_string(), "ohio");
  EXPECT_EQ(items[1].at("source").as_string(), "bcb_sgs");
  EXPECT_EQ(items[1].at("params").at("start").as_string(), "2024-01-01");
  for (const auto& x : items) EXPECT_EQ(x.at("status").as_string(), "succeeded");

  // Every chart the page drew matches an insight with data, point for point with its rows.
  const auto& charts = summary.at("charts").as_object();
  for (const auto& name : summary.at("insights_with_data").as_array()) {
    std::string n(name.as_string());
    ASSERT_TRUE(charts.contains(n)) << n;
    json::object insight = json::parse(app.get("/v1/insights/" + n + "?format=json").body).as_object();
    const auto rows = static_cast<int64_t>(insight.at("rows").as_array().size());
    for (const auto& len : charts.at(n).as_array()) EXPECT_EQ(len.to_number<int64_t>(), std::min<int64_t>(rows, 30)) << n;
  }
}

TEST(DashboardE2E, ServesThePageAssetsStatusAndRecentExtractions) {
  ApilakeProcess app(temp_dir("dashboard-api-e2e"), {"--api-key", "k-dash-test"});
  app.start();

  // The page and its assets, same-origin only; nothing outside the roots.
  auto page = app.get("/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.header("content-type").value_or("").find("text/html"), std::string::npos);
  for (const char* asset : {"/assets/chart.js", "/ui/app.js", "/ui/style.css"}) {
    EXPECT_NE(page.body.find(std::string("\"") + asset + "\""), std::string::npos) << asset;
    auto a = app.get(asset);
    EXPECT_EQ(a.status, 200) << asset;
  }
  EXPECT_EQ(page.body.find("http"), std::string::npos) << "no CDN: every asset is same-origin";
  EXPECT_NE(app.get("/assets/chart.js").body.find("Chart"), std::string::npos);
  EXPECT_EQ(app.get("/ui/../index.html").status, 404);
  EXPECT_EQ(app.get("/ui/nope.js").status, 404);
  EXPECT_EQ(app.call("POST", "/", "").status, 405);

  // GETs stay open with keys configured; POST needs one.
  auto empty = app.get("/v1/extractions");
  ASSERT_EQ(empty.status, 200) << empty.body;
  EXPECT_TRUE(json::parse(empty.body).at("extractions").as_array().empty());
  EXPECT_EQ(app.post("/v1/extractions", R"({"source":"bcb_sgs"})").status, 401);
  for (const char* bad : {"0", "101", "abc", "-1"})
    EXPECT_EQ(app.get(std::string("/v1/extractions?limit=") + bad).status, 400) << bad;

  Headers key{{"Authorization", "Bearer k-dash-test"}};
  auto first = start_extraction(app, R"({"source":"bcb_sgs","endpoint":"series","params":{"series":11,"start":"2024-01-01","end":"2024-01-31"}})", key);
  auto ex1 = wait_curated(app, first);
  ASSERT_EQ(ex1.at("status").as_string(), "succeeded") << json::serialize(ex1);
  auto second = start_extraction(app, R"({"source":"openbrewerydb","endpoint":"breweries","params":{"by_state":"ohio"}})", key);
  auto ex2 = wait_curated(app, second);
  ASSERT_EQ(ex2.at("status").as_string(), "succeeded") << json::serialize(ex2);

  // Newest first, each item exactly what GET /v1/extractions/{id} says; limit cuts the list.
  auto all = json::parse(app.get("/v1/extractions?limit=5").body).at("extractions").as_array();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].at("id").as_string(), second);
  EXPECT_EQ(all[1].at("id").as_string(), first);
  EXPECT_EQ(all[0], json::parse(app.get("/v1/extractions/" + second).body));
  EXPECT_EQ(all[1], json::parse(app.get("/v1/extractions/" + first).body));
  auto one = json::parse(app.get("/v1/extractions?limit=1").body).at("extractions").as_array();
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].at("id").as_string(), second);

  // Status: the counters agree with the extractions, and with /metrics.
  json::object st = json::parse(app.get("/v1/status").body).as_object();
  EXPECT_EQ(st.at("bus").as_string(), "sqlite");
  EXPECT_EQ(st.at("lake").as_string(), "local");
  EXPECT_GT(st.at("uptime_seconds").to_number<double>(), 0.0);
  const int64_t curated = ex1.at("curated").to_number<int64_t>() + ex2.at("curated").to_number<int64_t>();
  const int64_t dead = ex1.at("deadlettered").to_number<int64_t>() + ex2.at("deadlettered").to_number<int64_t>();
  EXPECT_GT(dead, 0);  // the brewery fixture plants a record without a name
  EXPECT_EQ(st.at("curate").at("records").to_number<int64_t>(), curated);
  EXPECT_EQ(st.at("curate").at("deadlettered").to_number<int64_t>(), dead);
  EXPECT_EQ(st.at("pages_published").to_number<int64_t>(),
            ex1.at("pages").to_number<int64_t>() + ex2.at("pages").to_number<int64_t>());
  const auto& backlog = st.at("backlog").as_object();
  EXPECT_TRUE(backlog.contains("archive") && backlog.contains("curate")) << json::serialize(st);
  EXPECT_EQ(backlog.at("curate").to_number<int64_t>(), 0);  // everything curated
  auto metrics = app.get("/metrics").body;
  EXPECT_NE(metrics.find("apilake_records_committed_total{consumer=\"curate\"} " + std::to_string(curated) + "\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("apilake_bus_backlog_messages{subscription=\"curate\"} 0\n"), std::string::npos);
  EXPECT_NE(metrics.find("apilake_info{bus=\"sqlite\",lake=\"local\"} 1\n"), std::string::npos);

  // /v1/sources carries the constraints the form applies.
  auto sources = json::parse(app.get("/v1/sources").body);
  bool saw_bounds = false, saw_enum = false;
  for (const auto& s : sources.at("sources").as_array())
    for (const auto& e : s.at("endpoints").as_array())
      for (const auto& [name, spec] : e.at("params").as_object()) {
        saw_bounds = saw_bounds || spec.as_object().contains("minimum") || spec.as_object().contains("maximum");
        saw_enum = saw_enum || spec.as_object().contains("enum");
      }
  EXPECT_TRUE(saw_bounds);
  EXPECT_TRUE(saw_enum);
}
