// End to end against the real binary: `apilake up --demo` (replayed upstream), extractions through
// the API, then every zone of the lake checked with independent readers — DuckDB for Parquet,
// python3-avro for the archive, plain JSON parsing for dead letters — against the fixture files.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "duck/duck.h"
#include "harness.h"
#include "support/parquet_compare.h"

namespace json = boost::json;
using namespace apilake;
using namespace apilake::test;

namespace {

struct ArchivedMessage {
  std::string extraction_id, page, source, data, codec, file;
};

std::vector<ArchivedMessage> read_archive(const std::filesystem::path& data_dir) {
  std::vector<ArchivedMessage> out;
  if (!std::filesystem::exists(data_dir / "raw")) return out;
  std::string text = run_command("/usr/bin/python3 " + std::string(APILAKE_SOURCE_DIR) + "/tests/e2e/read_avro.py " +
                                 (data_dir / "raw").string());
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    auto v = json::parse(line).as_object();
    auto& attrs = v["attributes"].as_object();
    out.push_back({std::string(attrs["extraction_id"].as_string()), std::string(attrs["page"].as_string()),
                   std::string(attrs["source"].as_string()), b64decode(std::string(v["data"].as_string())),
                   std::string(v["codec"].as_string()), std::string(v["file"].as_string())});
  }
  return out;
}

std::vector<json::object> read_deadletters(const std::filesystem::path& data_dir) {
  std::vector<json::object> out;
  if (!std::filesystem::exists(data_dir / "deadletter")) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(data_dir / "deadletter")) {
    if (e.path().extension() != ".jsonl") continue;
    std::ifstream f(e.path());
    std::string line;
    while (std::getline(f, line))
      if (!line.empty()) out.push_back(json::parse(line).as_object());
  }
  return out;
}

// Like submit() (harness.h), also checking the 202: status "queued" and Location naming the extraction.
std::string submit_queued(ApilakeProcess& app, const std::string& source, const std::string& endpoint,
                          const json::object& params) {
  auto r = app.post("/v1/extractions", json::serialize(json::object{{"source", source}, {"endpoint", endpoint}, {"params", params}}));
  EXPECT_EQ(r.status, 202) << r.body;
  auto body = json::parse(r.body).as_object();
  EXPECT_EQ(body["status"].as_string(), "queued");
  EXPECT_EQ(r.header("location").value_or(""), "/v1/extractions/" + std::string(body["id"].as_string()));
  return std::string(body["id"].as_string());
}

// dd/MM/yyyy -> yyyy-MM-dd, the test's own coercion (independent of the curator's).
std::optional<std::string> br_date(const std::string& s) {
  int d, m, y;
  char tail;
  if (s.size() != 10 || std::sscanf(s.c_str(), "%2d/%2d/%4d%c", &d, &m, &y, &tail) != 3) return std::nullopt;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", y, m, d);
  return std::string(buf);
}
std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return v;
}

std::string query_count(ApilakeProcess& app, const std::string& sql) {
  auto r = app.post("/v1/query", json::serialize(json::object{{"sql", sql}}));
  if (r.status != 200) return "HTTP " + std::to_string(r.status) + " " + r.body;
  auto rows = json::parse(r.body).as_object()["rows"].as_array();
  return json::serialize(rows.at(0).as_array().at(0));
}

}  // namespace

TEST(EndToEnd, DemoExtractionReachesEveryZoneExactlyAsFetched) {
  auto dir = temp_dir("e2e");
  ApilakeProcess app(dir / "data");
  app.start();

  // --- BCB SGS: numbers as strings, dd/MM/yyyy dates, one planted bad record ----------------
  auto example = example_of(app, "bcb_sgs", "series");
  std::string id = submit_queued(app, "bcb_sgs", "series", example);
  int64_t succeeded_ms = 0;
  auto status = wait_done(app, id, &succeeded_ms);
  ASSERT_EQ(status["status"].as_string(), "succeeded") << json::serialize(status);
  EXPECT_GT(status["records"].as_int64(), 0);
  EXPECT_GE(status["deadlettered"].as_int64(), 1);  // the planted record
  EXPECT_EQ(status["records"].as_int64(), status["curated"].as_int64() + status["deadlettered"].as_int64());

  // Queryable within 2 s of `succeeded`.
  std::string count_sql = "SELECT count(*) FROM bcb_sgs_series WHERE _extraction_id = '" + id + "'";
  std::string count;
  for (;;) {
    count = query_count(app, count_sql);
    if (count == std::to_string(status["curated"].as_int64())) break;
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch()).count();
    ASSERT_LT(now - succeeded_ms, 2000) << "rows not queryable within 2 s: " << count;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  // Archive: every page byte for byte, deflate, readable by python3-avro.
  auto archived = read_archive(app.data_dir());
  auto bodies = fixture_bodies("bcb_sgs");
  std::vector<std::string> pages;
  for (const auto& m : archived)
    if (m.extraction_id == id) {
      EXPECT_EQ(m.codec, "deflate");
      EXPECT_TRUE(bodies.count(m.data)) << "archived page is not byte-identical to a fixture: " << m.data.substr(0, 200);
      EXPECT_EQ(m.file.rfind("bcb_sgs/series/", 0), 0u) << m.file;
      pages.push_back(m.data);
    }
  ASSERT_EQ(static_cast<int64_t>(pages.size()), status["pages"].as_int64());

  // Expected rows from the archived (= fixture) pages with the test's own coercion.
  std::multiset<std::pair<std::string, double>> expected;
  std::vector<json::object> expected_bad;
  for (const auto& body : pages) {
    json::value page = json::parse(body);
    for (auto& rec : page.as_array()) {
      auto& o = rec.as_object();
      auto d = o["data"].is_string() ? br_date(std::string(o["data"].as_string())) : std::nullopt;
      auto v = o["valor"].is_string() ? number(std::string(o["valor"].as_string())) : std::nullopt;
      if (d && v)
        expected.insert({*d, *v});
      else
        expected_bad.push_back(o);
    }
  }
  ASSERT_FALSE(expected_bad.empty()) << "the fixture must plant a bad record";

  // Parquet read back with DuckDB directly (not through our API).
  duck::Database db;
  duck::Connection con(db);
  auto res = con.query("SELECT CAST(date AS VARCHAR), value, _message_id, _ingested_at FROM read_parquet(" +
                       duck::quote_literal((app.data_dir() / "curated/bcb_sgs/series/**/*.parquet").string()) +
                       ") WHERE _extraction_id = " + duck::quote_literal(id));
  std::multiset<std::pair<std::string, double>> actual;
  for (std::size_t r = 0; r < res.row_count(); ++r) {
    actual.insert({*res.text(0, r), res.dbl(1, r)});
    EXPECT_FALSE(res.is_null(2, r));
    EXPECT_FALSE(res.is_null(3, r));
  }
  EXPECT_EQ(actual, expected);
  // ... and every bcb_sgs file by an independent Parquet implementation (hyparquet), value by value.
  for (const auto& f : std::filesystem::recursive_directory_iterator(app.data_dir() / "curated/bcb_sgs"))
    if (f.path().extension() == ".parquet") {
      EXPECT_EQ(test::compare_parquet_readers(f.path().string()), "");
    }

  // Dead letters: the planted record, verbatim, with a reason naming the field.
  auto dls = read_deadletters(app.data_dir());
  std::size_t ours = 0;
  for (auto& dl : dls) {
    if (dl["extraction_id"].as_string() != id) continue;
    ++ours;
    EXPECT_FALSE(dl["reason"].as_string().empty());
    EXPECT_FALSE(dl["field"].as_string().empty());
    bool found = false;
    for (const auto& bad : expected_bad) found |= dl["record"] == json::value(bad);
    EXPECT_TRUE(found) << json::serialize(dl);
  }
  EXPECT_EQ(ours, expected_bad.size());

  // --- Open Brewery DB: page-number pagination over several pages -------------------------
  auto bexample = example_of(app, "openbrewerydb", "breweries");
  std::string bid = submit_queued(app, "openbrewerydb", "breweries", bexample);
  auto bstatus = wait_done(app, bid);
  ASSERT_EQ(bstatus["status"].as_string(), "succeeded") << json::serialize(bstatus);
  EXPECT_GT(bstatus["pages"].as_int64(), 1);
  auto barchived = read_archive(app.data_dir());
  auto bbodies = fixture_bodies("openbrewerydb");
  std::map<std::string, std::string> names;  // id -> name over all fetched records
  std::set<std::string> bpages;
  for (const auto& m : barchived)
    if (m.extraction_id == bid) {
      EXPECT_TRUE(bbodies.count(m.data));
      EXPECT_TRUE(bpages.insert(m.page).second) << "page archived twice: " << m.page;
      json::value page = json::parse(m.data);
      for (auto& rec : page.as_array()) {
        auto& o = rec.as_object();
        names[o["id"].is_string() ? std::string(o["id"].as_string()) : json::serialize(o["id"])] =
            o["name"].is_string() ? std::string(o["name"].as_string()) : "";
      }
    }
  EXPECT_EQ(static_cast<int64_t>(bpages.size()), bstatus["pages"].as_int64());
  auto bres = con.query("SELECT id, name FROM read_parquet(" +
                        duck::quote_literal((app.data_dir() / "curated/openbrewerydb/breweries/**/*.parquet").string()) +
                        ") WHERE _extraction_id = " + duck::quote_literal(bid));
  EXPECT_EQ(static_cast<int64_t>(bres.row_count()), bstatus["curated"].as_int64());
  for (std::size_t r = 0; r < bres.row_count(); ++r) EXPECT_EQ(names[*bres.text(0, r)], *bres.text(1, r));
  int64_t bdl = 0;
  for (auto& dl : read_deadletters(app.data_dir())) bdl += dl["extraction_id"].as_string() == bid;
  EXPECT_EQ(bdl, bstatus["deadlettered"].as_int64());
  EXPECT_EQ(static_cast<int64_t>(bres.row_count()) + bdl, static_cast<int64_t>(names.size()));

  // The query API sees both datasets.
  EXPECT_EQ(query_count(app, "SELECT count(*) FROM openbrewerydb_breweries"), std::to_string(bres.row_count()));
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  std::filesystem::remove_all(dir, cleanup_ec);
}

TEST(EndToEnd, BadRequestsGetProblemBodiesAndTheServerKeepsServing) {
  auto dir = temp_dir("e2e-bad");
  ApilakeProcess app(dir / "data");
  app.start();
  struct Case {
    std::string method, path, body;
    long status;
    std::string detail_contains;
  };
  std::vector<Case> cases = {
      {"POST", "/v1/extractions", "{not json", 400, "not valid JSON"},
      {"POST", "/v1/extractions", "[1,2]", 400, "JSON object"},
      {"POST", "/v1/extractions", "{}", 400, "source"},
      {"POST", "/v1/extractions", R"({"source":"nope"})", 404, "unknown source"},
      {"POST", "/v1/extractions", R"({"source":"bcb_sgs","endpoint":"nope"})", 404, "no endpoint"},
      {"POST", "/v1/extractions", R"({"source":"bcb_sgs","endpoint":"series","params":{}})", 400, "series"},
      {"POST", "/v1/extractions",
       R"({"source":"bcb_sgs","endpoint":"series","params":{"series":"abc","start":"2024-01-01","end":"2024-01-31"}})", 400, "series"},
      {"POST", "/v1/extractions",
       R"({"source":"bcb_sgs","endpoint":"series","params":{"series":11,"start":"2024-02-30","end":"2024-01-31"}})", 400, "start"},
      {"POST", "/v1/extractions",
       R"({"source":"bcb_sgs","endpoint":"series","params":{"series":[11],"start":"2024-01-01","end":"2024-01-31"}})", 400, "series"},
      {"GET", "/v1/extractions/does-not-exist", "", 404, "no such extraction"},
      {"DELETE", "/v1/extractions", "", 405, "not allowed"},
      {"POST", "/v1/query", "{}", 400, "sql"},
      {"POST", "/v1/query", R"({"sql":"DROP TABLE x"})", 400, ""},
      {"POST", "/v1/query", R"({"sql":"SELECT 1; SELECT 2"})", 400, ""},
      {"POST", "/v1/query", R"j({"sql":"SELECT * FROM read_csv('/etc/passwd')"})j", 400, ""},
      {"POST", "/v1/query", R"({"sql":"SELEC oops"})", 400, ""},
      {"GET", "/v1/nothing-here", "", 404, "no route"},
  };
  for (const auto& c : cases) {
    auto r = app.call(c.method, c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.path << " " << c.body << " -> " << r.body;
    EXPECT_EQ(r.header("content-type").value_or(""), "application/problem+json") << c.path;
    auto body = json::parse(r.body).as_object();
    EXPECT_EQ(body["status"].as_int64(), c.status);
    EXPECT_FALSE(body["title"].as_string().empty());
    EXPECT_NE(std::string(body["detail"].as_string()).find(c.detail_contains), std::string::npos)
        << c.path << " " << c.body << " -> " << r.body;
  }
  // An oversized body is refused, and the server still answers afterwards.
  auto big = app.post("/v1/extractions", std::string(16u << 20, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(app.get("/healthz").status, 200);
  EXPECT_EQ(app.get("/v1/sources").status, 200);
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  std::filesystem::remove_all(dir, cleanup_ec);
}

TEST(EndToEnd, SigkillMidRunLosesNothingAndDuplicatesNothing) {
  auto dir = temp_dir("e2e-kill");
  std::vector<std::string> ids;
  // Several crash points: before the first batch flushes (the curator flushes after 1 s), around the
  // flush, and after it; each round submits more work and kills the process with SIGKILL.
  for (int delay_ms : {300, 1000, 1150, 1700}) {
    ApilakeProcess app(dir / "data");
    app.start();
    auto bex = example_of(app, "bcb_sgs", "series");
    auto oex = example_of(app, "openbrewerydb", "breweries");
    for (int i = 0; i < 4; ++i) {
      ids.push_back(submit_queued(app, "bcb_sgs", "series", bex));
      ids.push_back(submit_queued(app, "openbrewerydb", "breweries", oex));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    app.kill(SIGKILL);
  }
  ApilakeProcess again(dir / "data");
  again.start();
  std::map<std::string, json::object> statuses;
  for (const auto& id : ids) {
    statuses[id] = wait_done(again, id);
    ASSERT_EQ(statuses[id]["status"].as_string(), "succeeded") << json::serialize(statuses[id]);
  }
  // Archive: each (extraction, page) exactly once.
  std::map<std::string, std::set<std::string>> pages;
  std::map<std::string, int64_t> records;
  for (const auto& m : read_archive(again.data_dir())) {
    EXPECT_TRUE(pages[m.extraction_id].insert(m.page).second) << m.extraction_id << " page " << m.page << " archived twice";
    records[m.extraction_id] += static_cast<int64_t>(json::parse(m.data).as_array().size());
  }
  // Curated + dead letters: each record exactly once (rows + dead letters == records fetched).
  auto rows = curated_rows_by_extraction(again.data_dir(), {"bcb_sgs/series", "openbrewerydb/breweries"});
  std::map<std::string, int64_t> dls;
  for (auto& dl : read_deadletters(again.data_dir())) dls[std::string(dl["extraction_id"].as_string())]++;
  for (const auto& id : ids) {
    auto& s = statuses[id];
    EXPECT_EQ(static_cast<int64_t>(pages[id].size()), s["pages"].as_int64()) << id;
    EXPECT_EQ(records[id], s["records"].as_int64()) << id;
    EXPECT_EQ(rows[id] + dls[id], records[id]) << id << " rows " << rows[id] << " dead " << dls[id];
    EXPECT_EQ(rows[id], s["curated"].as_int64()) << id;
  }
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  std::filesystem::remove_all(dir, cleanup_ec);
}
