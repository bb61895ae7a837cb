// End to end for insights, datasets, OpenAPI, Swagger UI and metrics against the real binary
// (`apilake up --demo`): numbers are checked against the lake read independently with DuckDB.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "duck/duck.h"
#include "harness.h"

namespace json = boost::json;
using namespace apilake;
using namespace apilake::test;

namespace {

namespace fs = std::filesystem;

json::value wait_extraction(ApilakeProcess& app, const std::string& id) {
  for (int i = 0; i < 600; ++i) {
    json::value v = json::parse(app.get("/v1/extractions/" + id).body);
    const auto& o = v.as_object();
    if (o.at("status").as_string() == "failed") return v;
    if (o.at("status").as_string() == "succeeded" &&
        o.at("curated").to_number<int64_t>() + o.at("deadlettered").to_number<int64_t>() == o.at("records").to_number<int64_t>())
      return v;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("extraction did not finish");
}

std::string start_extraction(ApilakeProcess& app, const std::string& body) {
  auto r = app.post("/v1/extractions", body);
  if (r.status != 202) throw std::runtime_error("POST /v1/extractions: " + std::to_string(r.status) + " " + r.body);
  return std::string(json::parse(r.body).at("id").as_string());
}

std::optional<json::object> insight_entry(ApilakeProcess& app, const std::string& name) {
  json::value v = json::parse(app.get("/v1/insights").body);
  for (const auto& i : v.at("insights").as_array())
    if (i.at("name").as_string() == name) return i.as_object();
  return std::nullopt;
}

// Waits until the insight's data_through reaches `through` (ISO text compares in time order).
json::object wait_insight(ApilakeProcess& app, const std::string& name, const std::string& through) {
  for (int i = 0; i < 600; ++i) {
    auto e = insight_entry(app, name);
    if (!e) throw std::runtime_error("insight not listed: " + name);
    if (e->at("data_through").is_string() && std::string(e->at("data_through").as_string()) >= through) return *e;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("insight " + name + " never covered " + through);
}

std::string curated_glob(const fs::path& data, const std::string& source, const std::string& endpoint) {
  return duck::quote_literal((data / "curated" / source / endpoint).string() + "/**/*.parquet");
}

}  // namespace

TEST(InsightsE2E, FreshAfterExtractionServedInThreeFormatsWithConditionalGets) {
  ApilakeProcess app(temp_dir("insights-e2e"));
  app.start();
  // Before any data: listed, nothing materialised, the data route says so.
  auto before = insight_entry(app, "bcb_sgs_monthly");
  ASSERT_TRUE(before);
  EXPECT_TRUE(before->at("rows").is_null());
  EXPECT_EQ(app.get("/v1/insights/bcb_sgs_monthly").status, 404);
  EXPECT_EQ(app.get("/v1/insights/nope").status, 404);
  EXPECT_EQ(app.get("/v1/insights/bcb_sgs_monthly?format=xml").status, 400);

  auto id = start_extraction(app, R"({"source":"bcb_sgs","endpoint":"series","params":{"series":11,"start":"2024-01-01","end":"2024-01-31"}})");
  auto ex = wait_extraction(app, id);
  ASSERT_EQ(ex.at("status").as_string(), "succeeded") << json::serialize(ex);
  auto finished = std::chrono::steady_clock::now();

  // Independent reading of the lake: the month's mean/min/max and the latest ingestion time.
  duck::Database db;
  duck::Connection con(db);
  con.execute("SET TimeZone='UTC'");
  auto expect = con.query("SELECT avg(value), min(value), max(value), count(*), "
                          "strftime(max(_ingested_at), '%Y-%m-%dT%H:%M:%S.%fZ') FROM (SELECT DISTINCT date, value, "
                          "max(_ingested_at) OVER () AS _ingested_at FROM read_parquet(" +
                          curated_glob(app.data_dir(), "bcb_sgs", "series") + "))");
  const std::string through = *expect.text(4, 0);
  auto entry = wait_insight(app, "bcb_sgs_monthly", through);
  // Reported, not asserted (speed belongs in bench/): how long after the extraction it was fresh.
  std::cout << "[ info ] bcb_sgs_monthly fresh "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - finished).count()
            << " ms after the extraction finished\n";
  EXPECT_EQ(entry.at("rows").to_number<int64_t>(), 1);
  EXPECT_TRUE(entry.at("error").is_null());

  // JSON
  auto j = app.get("/v1/insights/bcb_sgs_monthly?format=json");
  ASSERT_EQ(j.status, 200) << j.body;
  json::object body = json::parse(j.body).as_object();
  ASSERT_EQ(body.at("rows").as_array().size(), 1u);
  const auto& row = body.at("rows").as_array()[0].as_object();
  EXPECT_EQ(row.at("month").as_string(), "2024-01-01");
  EXPECT_EQ(row.at("series").to_number<int64_t>(), 11);  // from the extraction's params (from_param)
  EXPECT_DOUBLE_EQ(row.at("mean").to_number<double>(), expect.dbl(0, 0));
  EXPECT_DOUBLE_EQ(row.at("min").to_number<double>(), expect.dbl(1, 0));
  EXPECT_DOUBLE_EQ(row.at("max").to_number<double>(), expect.dbl(2, 0));
  EXPECT_EQ(row.at("observations").to_number<int64_t>(), expect.int64(3, 0));
  EXPECT_TRUE(row.at("mom_change").is_null());  // the first month has no previous one

  // CSV
  auto c = app.get("/v1/insights/bcb_sgs_monthly?format=csv");
  ASSERT_EQ(c.status, 200);
  EXPECT_EQ(c.header("content-type").value_or(""), "text/csv; charset=utf-8");
  EXPECT_EQ(c.body.substr(0, c.body.find("\r\n")), "series,month,mean,min,max,observations,mom_change,mom_change_pct");
  EXPECT_EQ(std::count(c.body.begin(), c.body.end(), '\n'), 2);

  // Parquet, read back by DuckDB
  auto p = app.get("/v1/insights/bcb_sgs_monthly?format=parquet");
  ASSERT_EQ(p.status, 200);
  fs::path pq = app.data_dir() / "readback.parquet";
  std::ofstream(pq, std::ios::binary) << p.body;
  auto back = con.query("SELECT count(*), max(observations) FROM read_parquet(" + duck::quote_literal(pq.string()) + ")");
  EXPECT_EQ(back.int64(0, 0), 1);
  EXPECT_EQ(back.int64(1, 0), expect.int64(3, 0));

  // Conditional GETs
  std::string etag = p.header("etag").value_or("");
  std::string last_modified = p.header("last-modified").value_or("");
  ASSERT_FALSE(etag.empty());
  ASSERT_FALSE(last_modified.empty());
  EXPECT_NE(etag, j.header("etag").value_or(""));  // one tag per representation
  auto again = app.call("GET", "/v1/insights/bcb_sgs_monthly?format=parquet", "", {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  auto other = app.call("GET", "/v1/insights/bcb_sgs_monthly?format=parquet", "", {{"If-None-Match", "\"other\""}});
  EXPECT_EQ(other.status, 200);
  auto since = app.call("GET", "/v1/insights/bcb_sgs_monthly?format=parquet", "", {{"If-Modified-Since", last_modified}});
  EXPECT_EQ(since.status, 304);
  auto old = app.call("GET", "/v1/insights/bcb_sgs_monthly?format=parquet", "",
                      {{"If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"}});
  EXPECT_EQ(old.status, 200);

  // The brewery insights after their extraction, counted independently.
  auto bid = start_extraction(app, R"({"source":"openbrewerydb","endpoint":"breweries","params":{"by_state":"ohio"}})");
  ASSERT_EQ(wait_extraction(app, bid).at("status").as_string(), "succeeded");
  auto bexp = con.query("SELECT count(DISTINCT id), count(DISTINCT brewery_type), "
                        "strftime(max(_ingested_at), '%Y-%m-%dT%H:%M:%S.%fZ') FROM read_parquet(" +
                        curated_glob(app.data_dir(), "openbrewerydb", "breweries") + ")");
  auto by_type = wait_insight(app, "openbrewerydb_by_type", *bexp.text(2, 0));
  auto t = json::parse(app.get("/v1/insights/openbrewerydb_by_type").body).as_object();
  int64_t total = 0;
  std::set<std::string> types;
  for (const auto& r : t.at("rows").as_array()) {
    total += r.at("breweries").to_number<int64_t>();
    types.insert(r.at("brewery_type").is_string() ? std::string(r.at("brewery_type").as_string()) : "");
  }
  EXPECT_EQ(total, bexp.int64(0, 0));
  EXPECT_EQ(static_cast<int64_t>(types.size()), bexp.int64(1, 0));
  for (const char* name : {"openbrewerydb_by_state", "openbrewerydb_by_city"}) {
    wait_insight(app, name, *bexp.text(2, 0));
    for (const char* f : {"json", "csv", "parquet"})
      EXPECT_EQ(app.get(std::string("/v1/insights/") + name + "?format=" + f).status, 200) << name << " " << f;
  }

  // /v1/datasets against the lake
  auto ds = json::parse(app.get("/v1/datasets").body).as_object();
  bool found = false;
  for (const auto& d : ds.at("datasets").as_array()) {
    if (d.at("name").as_string() != "bcb_sgs_series") continue;
    found = true;
    auto n = con.query("SELECT count(*) FROM read_parquet(" + curated_glob(app.data_dir(), "bcb_sgs", "series") + ")");
    EXPECT_EQ(d.at("rows").to_number<int64_t>(), n.int64(0, 0));
    int64_t files = 0, bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(app.data_dir() / "curated/bcb_sgs/series"))
      if (e.path().extension() == ".parquet") {
        ++files;
        bytes += static_cast<int64_t>(e.file_size());
      }
    EXPECT_EQ(d.at("files").to_number<int64_t>(), files);
    EXPECT_EQ(d.at("bytes").to_number<int64_t>(), bytes);
    EXPECT_GE(d.at("hours").as_array().size(), 1u);
    EXPECT_TRUE(d.at("last_update").is_string());
    EXPECT_EQ(d.at("schema").at("fields").as_array().size(), 3u);  // date, value, series (from_param)
    EXPECT_EQ(d.at("deadletters").to_number<int64_t>(), ex.at("deadlettered").to_number<int64_t>());
  }
  EXPECT_TRUE(found);

  // /metrics: well-formed exposition lines, and it counted the extraction.
  auto m = app.get("/metrics");
  ASSERT_EQ(m.status, 200);
  std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="[^"]*",?)*\})? -?[0-9.eE+-]+$)");
  std::map<std::string, double> values;
  std::istringstream lines(m.body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
    auto sp = line.rfind(' ');
    values[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  int64_t pages = ex.at("pages").to_number<int64_t>();
  EXPECT_GE(values["apilake_pages_published_total"], static_cast<double>(pages));
  EXPECT_GE(values["apilake_records_committed_total{consumer=\"curate\"}"], ex.at("curated").to_number<double>());
  EXPECT_GE(values["apilake_records_deadlettered_total{consumer=\"curate\"}"], ex.at("deadlettered").to_number<double>());
  EXPECT_TRUE(values.count("apilake_bus_backlog_messages{subscription=\"curate\"}"));
  EXPECT_GE(values["apilake_http_requests_total{route=\"/v1/extractions\",status=\"202\"}"], 2.0);
  EXPECT_TRUE(values.count("apilake_lake_curated_bytes{dataset=\"bcb_sgs_series\"}"));
  (void)by_type;
}

TEST(InsightsE2E, OpenApiValidatesAndEveryDocumentedPathAnswersAsDocumented) {
  ApilakeProcess app(temp_dir("openapi-e2e"));
  app.start();
  auto doc_r = app.get("/openapi.json");
  ASSERT_EQ(doc_r.status, 200);
  fs::path file = app.data_dir() / "openapi.json";
  std::ofstream(file) << doc_r.body;
  std::string out = run_command("node " + std::string(APILAKE_SOURCE_DIR) + "/tests/support/validate_openapi.mjs " +
                                file.string() + " 2>&1");
  EXPECT_NE(out.find("valid 3.1"), std::string::npos) << out;

  json::object doc = json::parse(doc_r.body).as_object();
  // Each source endpoint's params are a schema.
  const auto& schemas = doc.at("components").at("schemas").as_object();
  ASSERT_TRUE(schemas.contains("Extract_bcb_sgs_series"));
  const auto& series = schemas.at("Extract_bcb_sgs_series").at("properties").at("params").at("properties").at("series");
  EXPECT_EQ(series.at("type").as_string(), "integer");

  // Every path and method: a request with placeholder values gets a status the document lists.
  int checked = 0;
  for (const auto& [path, item] : doc.at("paths").as_object()) {
    for (const auto& [method, op] : item.as_object()) {
      std::string url(path);
      for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{{"{id}", "no-such-id"}, {"{name}", "bcb_sgs_monthly"}, {"{dataset}", "bcb_sgs_series"}, {"{file}", "app.js"}})
        if (auto pos = url.find(from); pos != std::string::npos) url.replace(pos, from.size(), to);
      std::string m(method);
      for (auto& ch : m) ch = static_cast<char>(std::toupper(ch));
      auto r = app.call(m, url, m == "POST" ? "{}" : "");
      const auto& responses = op.at("responses").as_object();
      EXPECT_TRUE(responses.contains(std::to_string(r.status))) << m << " " << url << " -> " << r.status << " " << r.body;
      if (r.status >= 400) {
        EXPECT_EQ(r.header("content-type").value_or(""), "application/problem+json") << m << " " << url;
      }
      ++checked;
      // And a method no route takes answers 405 as documented for every path.
      auto wrong = app.call("DELETE", url, "");
      EXPECT_TRUE(wrong.status == 405 || responses.contains(std::to_string(wrong.status))) << "DELETE " << url;
    }
  }
  EXPECT_GE(checked, 12);

  // Swagger UI, locally served: the page, and the JS/CSS it loads.
  auto page = app.get("/docs");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.header("content-type").value_or("").find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("/docs/swagger-ui-bundle.js"), std::string::npos);
  EXPECT_NE(page.body.find("\"/openapi.json\""), std::string::npos);
  EXPECT_EQ(page.body.find("http"), std::string::npos) << "no CDN: every asset is same-origin";
  auto js = app.get("/docs/swagger-ui-bundle.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_NE(js.header("content-type").value_or("").find("javascript"), std::string::npos);
  EXPECT_NE(js.body.find("SwaggerUIBundle"), std::string::npos);
  EXPECT_EQ(app.get("/docs/swagger-ui.css").status, 200);
  EXPECT_EQ(app.get("/docs/../package.json").status, 404);
  EXPECT_EQ(app.get("/docs/nope.js").status, 404);
}
