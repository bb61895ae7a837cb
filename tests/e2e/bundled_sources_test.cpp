// The bundled sources (sources/*) against the real binary in --demo: every source's recorded example
// extracts fully (each paginator and record selector against its own fixture), its dataset is
// queryable, a source whose upstream answers 500 forever fails while others keep succeeding, and
// `apilake extract` does the same from the shell. Expected counts come from the fixture files, as
// documented in each fixtures/replay.yaml (the PLANTED records are the dead letters).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <boost/json.hpp>
#include <cstdlib>

#include "harness.h"

namespace json = boost::json;
using namespace apilake;
using namespace apilake::test;

namespace {

const std::string kSources = std::string(APILAKE_SOURCE_DIR) + "/sources";

json::array query_rows(ApilakeProcess& app, const std::string& sql) {
  auto r = app.post("/v1/query", json::serialize(json::object{{"sql", sql}}));
  EXPECT_EQ(r.status, 200) << sql << ": " << r.body;
  if (r.status != 200) return {};
  return json::parse(r.body).as_object()["rows"].as_array();
}

int64_t as_int(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64()) return static_cast<int64_t>(v.as_uint64());
  if (v.is_string()) return std::stoll(std::string(v.as_string()));
  ADD_FAILURE() << "not an integer: " << json::serialize(v);
  return -1;
}

double as_double(const json::value& v) {
  if (v.is_string()) return std::stod(std::string(v.as_string()));
  return v.to_number<double>();
}

struct Case {
  std::string source, endpoint;
  json::object params;  // empty: the endpoint's example
  int64_t pages, records, deadlettered;
  const char* what;     // paginator / selector exercised
};

// One `apilake up --demo` for the whole suite (start-up costs more than the extractions).
class BundledSources : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The demo replay does not check the token, but bearer auth needs the variable to exist.
    ::setenv("GITHUB_TOKEN", "demo-token-not-checked-by-the-replay", 1);
    dir_ = new std::filesystem::path(temp_dir("bundled"));
    app_ = new ApilakeProcess(*dir_ / "data");
    app_->start();
  }
  static void TearDownTestSuite() {
    delete app_;
    std::error_code ec;
    std::filesystem::remove_all(*dir_, ec);
    delete dir_;
  }
  static ApilakeProcess* app_;
  static std::filesystem::path* dir_;

  void check(const Case& c) {
    SCOPED_TRACE(c.source + "." + c.endpoint + " (" + c.what + ")");
    json::object params = c.params.empty() ? example_of(*app_, c.source, c.endpoint) : c.params;
    auto id = submit(*app_, c.source, c.endpoint, params);
    auto s = wait_done(*app_, id);
    ASSERT_EQ(s["status"].as_string(), "succeeded") << json::serialize(s);
    EXPECT_EQ(s["pages"].as_int64(), c.pages);
    EXPECT_EQ(s["records"].as_int64(), c.records);
    EXPECT_EQ(s["deadlettered"].as_int64(), c.deadlettered);
    EXPECT_EQ(s["curated"].as_int64() + s["deadlettered"].as_int64(), s["records"].as_int64());
    auto rows = query_rows(*app_, "SELECT count(*) FROM " + c.source + "_" + c.endpoint +
                                      " WHERE _extraction_id = '" + id + "'");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(as_int(rows[0].as_array()[0]), c.records - c.deadlettered);
  }
};
ApilakeProcess* BundledSources::app_ = nullptr;
std::filesystem::path* BundledSources::dir_ = nullptr;

}  // namespace

TEST_F(BundledSources, NoPaginationStringsCoerced_BcbSgs) {
  check({"bcb_sgs", "series", {}, 1, 22, 1, "none, body is the array"});
}

TEST_F(BundledSources, PageNumber_OpenBreweryDb) {
  check({"openbrewerydb", "breweries", {}, 3, 47, 1, "page_number, short page ends"});
}

TEST_F(BundledSources, LinkHeader_GitHub) {
  check({"github", "issues", {}, 3, 25, 1, "link_header rel=next, bearer auth, rate-limit headers"});
  // Nested pointers and types: a pull request, a bot, labels by index, timestamps in UTC.
  auto rows = query_rows(*app_,
                         "SELECT count(*) FILTER (WHERE pull_request_url IS NOT NULL), "
                         "count(*) FILTER (WHERE user_type = 'Bot'), count(*) FILTER (WHERE first_label = 'bug'), "
                         "count(*) FILTER (WHERE state = 'closed' AND closed_at IS NOT NULL) FROM github_issues");
  ASSERT_EQ(rows.size(), 1u);
  auto r = rows[0].as_array();
  EXPECT_EQ(as_int(r[0]), 3);  // the three "Bump ..." pull requests
  EXPECT_EQ(as_int(r[1]), 3);  // opened by dependabot[bot]
  EXPECT_GT(as_int(r[2]), 0);
  EXPECT_GT(as_int(r[3]), 0);
}

TEST_F(BundledSources, ParallelArraysWithContext_OpenMeteo) {
  check({"open_meteo", "forecast", {}, 1, 48, 0, "parallel_arrays + record_context (Berlin)"});
  check({"open_meteo", "forecast",
         json::object{{"latitude", "-23.55"}, {"longitude", "-46.63"}, {"start_date", "2024-01-01"},
                      {"end_date", "2024-01-02"}},
         1, 48, 1, "parallel_arrays, a null temperature (São Paulo)"});
  // Zipped rows keep their hour and carry the page-level grid coordinates.
  auto rows = query_rows(*app_,
                         "SELECT latitude, count(*), min(time)::VARCHAR, max(time)::VARCHAR FROM open_meteo_forecast "
                         "GROUP BY latitude ORDER BY latitude");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_DOUBLE_EQ(as_double(rows[0].as_array()[0]), -23.5);
  EXPECT_EQ(as_int(rows[0].as_array()[1]), 47);
  EXPECT_DOUBLE_EQ(as_double(rows[1].as_array()[0]), 52.52);
  EXPECT_EQ(as_int(rows[1].as_array()[1]), 48);
  EXPECT_EQ(std::string(rows[1].as_array()[2].as_string()).substr(0, 19), "2024-01-01 00:00:00");
  EXPECT_EQ(std::string(rows[1].as_array()[3].as_string()).substr(0, 19), "2024-01-02 23:00:00");
}

TEST_F(BundledSources, NextUrl_PokeApi) { check({"pokeapi", "pokemon", {}, 3, 45, 1, "next_url, records /results"}); }

TEST_F(BundledSources, OffsetLimitStopsAtTotal_PokeApi) {
  // count = 40 = 2 full pages: only total_pointer can end it (no page 3 is recorded; asking is a 404).
  check({"pokeapi", "abilities", {}, 2, 40, 1, "offset_limit + total_pointer"});
}

TEST_F(BundledSources, SingleObjectIsOneRecord_PokeApi) {
  check({"pokeapi", "pokemon_detail", {}, 1, 1, 0, "records \"\" on an object"});
  auto rows = query_rows(*app_, "SELECT id, first_type, hp FROM pokeapi_pokemon_detail");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(as_int(rows[0].as_array()[0]), 25);
  EXPECT_EQ(rows[0].as_array()[1].as_string(), "electric");
  EXPECT_EQ(as_int(rows[0].as_array()[2]), 35);
}

TEST_F(BundledSources, Cursor_Bluesky) {
  check({"bluesky", "followers", {}, 3, 24, 1, "cursor, records /followers, record_context"});
  auto rows = query_rows(*app_, "SELECT DISTINCT subject_handle FROM bluesky_followers");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].as_array()[0].as_string(), "lakehouse.bsky.social");
}

TEST_F(BundledSources, UpstreamDownFailsThatExtractionOnlyAndOthersKeepSucceeding) {
  // github's "outage" repository answers 500 forever (fixtures/replay.yaml).
  auto bad = submit(*app_, "github", "issues", json::object{{"owner", "apilake-demo"}, {"repo", "outage"}});
  auto good = submit(*app_, "pokeapi", "pokemon", example_of(*app_, "pokeapi", "pokemon"));
  auto g = wait_done(*app_, good);
  EXPECT_EQ(g["status"].as_string(), "succeeded") << json::serialize(g);
  EXPECT_EQ(g["records"].as_int64(), 45);
  auto b = wait_done(*app_, bad);
  ASSERT_EQ(b["status"].as_string(), "failed") << json::serialize(b);
  std::string error(b["error"].as_string());
  EXPECT_NE(error.find("HTTP 500"), std::string::npos) << error;
  EXPECT_NE(error.find("Server Error"), std::string::npos) << error;
  EXPECT_EQ(b["pages"].as_int64(), 0);
  EXPECT_EQ(app_->get("/healthz").status, 200);
}

// ---- `apilake extract` ---------------------------------------------------------------------------

namespace {

struct Run {
  int code;
  std::string out;  // stdout + stderr
};

Run run(const std::string& args) {
  std::string cmd = std::string(APILAKE_BINARY) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST(ExtractCommand, ExtractsCuratesAndSummarises) {
  auto dir = temp_dir("extract");
  const std::string common = " --demo --sources " + kSources + " --data-dir " + (dir / "data").string();
  auto r = run("extract pokeapi.pokemon --example" + common);
  ASSERT_EQ(r.code, 0) << r.out;
  // Not a terminal: one plain line per page, then the summary.
  EXPECT_NE(r.out.find("pokeapi.pokemon: page 1: 20 records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pokeapi.pokemon: page 3: 5 records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pokeapi.pokemon: succeeded: 3 pages, 45 records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("curated 44, dead-lettered 1"), std::string::npos) << r.out;

  // The rows are in the lake when extract returns.
  auto q = run("query \"SELECT count(*) FROM pokeapi_pokemon\" --sources " + kSources + " --data-dir " +
               (dir / "data").string());
  ASSERT_EQ(q.code, 0) << q.out;
  EXPECT_NE(q.out.find("\n44\n"), std::string::npos) << q.out;

  // --param overrides the example; a parameter the endpoint rejects is exit 2 with the reason.
  auto bad = run("extract pokeapi.pokemon --param limit=0" + common);
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("limit"), std::string::npos) << bad.out;
  auto unknown = run("extract nosuch" + common);
  EXPECT_EQ(unknown.code, 2) << unknown.out;
  EXPECT_NE(unknown.out.find("unknown source 'nosuch'"), std::string::npos) << unknown.out;
  auto several = run("extract pokeapi" + common);
  EXPECT_EQ(several.code, 2) << several.out;
  EXPECT_NE(several.out.find("pokemon, abilities, pokemon_detail"), std::string::npos) << several.out;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(ExtractCommand, FailedExtractionExitsOneWithTheError) {
  auto dir = temp_dir("extract-fail");
  ::setenv("GITHUB_TOKEN", "demo-token-not-checked-by-the-replay", 1);
  auto r = run("extract github.issues --param owner=apilake-demo --param repo=outage --demo --sources " + kSources +
               " --data-dir " + (dir / "data").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("github.issues: failed after 0 pages"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("HTTP 500"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("demo-token-not-checked"), std::string::npos) << "secret leaked: " << r.out;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// Written from docs/sources.md alone (the walkthrough's example): no pagination, nested pointers.
TEST_F(BundledSources, WalkthroughDefinition_RestCountries) {
  check({"restcountries", "by_region", {}, 1, 12, 1, "none, /name/common, /capital/0"});
  auto rows = query_rows(*app_, "SELECT capital, independent FROM restcountries_by_region WHERE cca2 = 'PT'");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].as_array()[0].as_string(), "Lisbon");
}
