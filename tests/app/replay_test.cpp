// The replay server against the real bundled sources and fixtures (sources/), plus its own rules
// (matching, {{base}}, errors) on small fixtures written to a temp dir. Requests go over real HTTP
// with the project's HttpClient.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "app/replay.h"
#include "definition/definition.h"
#include "definition/records.h"
#include "net/http_client.h"
#include "net/retry.h"
#include "source/source.h"
#include "support/files.h"
#include "support/temp_dir.h"

namespace json = boost::json;
using namespace apilake;

namespace {

const std::filesystem::path kSources = std::filesystem::path(APILAKE_SOURCE_DIR) / "sources";

using test::slurp;
using test::TempDir;

void write(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << text;
}

HttpResponse get(const std::string& url, const std::string& method = "GET") {
  HttpClient client;
  HttpRequest req;
  req.method = method;
  req.url = url;
  return client.perform(req);
}

// yyyy-mm-dd rendered in a dd/MM/yyyy-style pattern: the test's own rendering, independent of source/.
std::string render(const std::string& iso, std::string pattern) {
  auto put = [&](const std::string& token, const std::string& value) {
    auto pos = pattern.find(token);
    if (pos != std::string::npos) pattern.replace(pos, token.size(), value);
  };
  if (pattern.empty()) return iso;
  put("yyyy", iso.substr(0, 4));
  put("MM", iso.substr(5, 2));
  put("dd", iso.substr(8, 2));
  return pattern;
}

// The URL of page `page` (0 = the first) of an endpoint for validated params, against `base`.
std::string page_url(const std::string& base, const Endpoint& e, const Params& params, int page = 0) {
  std::string path = e.path;
  std::vector<std::pair<std::string, std::string>> query(e.fixed_query.begin(), e.fixed_query.end());
  for (const auto& p : e.params) {
    auto v = params.find(p.name);
    if (v == params.end()) continue;
    std::string value = p.type == ParamType::Date ? render(v->second, p.format) : v->second;
    if (p.in == ParamLocation::Path) {
      auto pos = path.find("{" + p.api_name + "}");
      if (pos != std::string::npos) path.replace(pos, p.api_name.size() + 2, url_encode(value));
    } else {
      query.emplace_back(p.api_name, value);
    }
  }
  const auto& pg = e.pagination;
  if (pg.kind == Pagination::Kind::PageNumber) {
    query.emplace_back(pg.page_param, std::to_string(pg.start_page + page));
    if (!pg.size_param.empty()) query.emplace_back(pg.size_param, std::to_string(pg.page_size));
  } else if (pg.kind == Pagination::Kind::OffsetLimit) {
    query.emplace_back(pg.offset_param, std::to_string(page * pg.page_size));
    query.emplace_back(pg.limit_param, std::to_string(pg.page_size));
  }
  std::string url = base + path;
  for (std::size_t i = 0; i < query.size(); ++i)
    url += (i ? "&" : "?") + url_encode(query[i].first) + "=" + url_encode(query[i].second);
  return url;
}

std::vector<Source> bundled() { return load_sources(kSources); }

const Source& by_name(const std::vector<Source>& all, const std::string& name) {
  for (const auto& s : all)
    if (s.name == name) return s;
  throw std::runtime_error("no bundled source " + name);
}

// A source made by hand (no loader involved) whose fixtures live in dir.
Source hand_source(const std::filesystem::path& dir, const std::string& base_url = "https://example.org/api/v2") {
  Source s;
  s.name = "demo";
  s.base_url = base_url;
  s.dir = dir;
  s.file = dir / "source.yaml";
  return s;
}

std::string expect_error(const Source& s) {
  try {
    ReplayServer r({s}, 0);
  } catch (const std::exception& e) {
    return e.what();
  }
  ADD_FAILURE() << "ReplayServer accepted bad fixtures";
  return "";
}

}  // namespace

TEST(BundledSources, AllLoadAndEveryExampleValidates) {
  std::vector<Source> all;
  ASSERT_NO_THROW(all = bundled());
  std::set<std::string> names;
  for (const auto& s : all) {
    names.insert(s.name);
    EXPECT_EQ(validate_source_file(s.file), std::vector<std::string>{}) << s.file;
    ASSERT_FALSE(s.endpoints.empty()) << s.name;
    for (const auto& e : s.endpoints) {
      // Every endpoint with params shows users an example of them.
      if (!e.params.empty()) {
        EXPECT_FALSE(e.example.empty()) << s.name << "." << e.name << " has no example";
      }
      EXPECT_NO_THROW(validate_params(e, e.example)) << s.name << "." << e.name;
      EXPECT_FALSE(e.schema.fields.empty()) << s.name << "." << e.name;
    }
  }
  EXPECT_TRUE(names.count("bcb_sgs"));
  EXPECT_TRUE(names.count("openbrewerydb"));
}

TEST(BundledSources, EveryFixtureBodyIsJsonWithRecords) {
  auto all = bundled();
  int files = 0;
  for (const auto& s : all) {
    auto replay = s.dir / "fixtures" / "replay.yaml";
    if (!std::filesystem::exists(replay)) continue;
    YAML::Node root = YAML::LoadFile(replay.string());
    ASSERT_TRUE(root["responses"].IsSequence()) << replay;
    for (const auto& r : root["responses"]) {
      auto file = s.dir / "fixtures" / r["body_file"].as<std::string>();
      ++files;
      json::value body;
      ASSERT_NO_THROW(body = json::parse(slurp(file))) << file;
      // Recorded errors (e.g. a 500 forever) are not record pages.
      if (r["status"] && r["status"].as<int>() >= 400) continue;
      // The body must yield records for at least one endpoint's selector (records.h, the one the
      // fetcher and the curator use).
      std::size_t best = 0;
      for (const auto& e : s.endpoints) {
        try {
          best = std::max(best, count_selected_records(slurp(file), e));
        } catch (const RecordError&) {
        }
      }
      EXPECT_GT(best, 0u) << file << " yields no records for any endpoint";
    }
  }
  EXPECT_GE(files, 5);
}

// The e2e test and the demo rely on exactly one planted bad record per bundled source.
TEST(BundledSources, FixturesPlantExactlyOneBadRecord) {
  auto all = bundled();
  const auto& bcb = by_name(all, "bcb_sgs");
  auto sgs = json::parse(slurp(bcb.dir / "fixtures" / "sgs_11_2024-01.json")).as_array();
  EXPECT_EQ(sgs.size(), 22u);  // the business days of January 2024
  int bad = 0;
  for (const auto& rec : sgs) {
    const auto& o = rec.as_object();
    const auto& v = o.at("valor");
    char* end = nullptr;
    bool number = v.is_string() && !v.as_string().empty() &&
                  (std::strtod(v.as_string().c_str(), &end), *end == '\0');
    bad += !number;
  }
  EXPECT_EQ(bad, 1);

  const auto& obdb = by_name(all, "openbrewerydb");
  std::set<std::string> ids;
  std::vector<int> bad_per_page;
  for (int page = 1; page <= 3; ++page) {
    auto recs = json::parse(slurp(obdb.dir / "fixtures" / ("breweries_ohio_page" + std::to_string(page) + ".json")))
                    .as_array();
    int page_bad = 0;
    for (const auto& rec : recs) {
      const auto& o = rec.as_object();
      EXPECT_TRUE(ids.insert(std::string(o.at("id").as_string())).second) << "duplicate id";
      EXPECT_TRUE(o.contains("address_2") && o.at("address_2").is_null());  // the documented v1 shape
      EXPECT_EQ(o.at("state_province"), "Ohio");
      page_bad += !o.at("name").is_string();
    }
    bad_per_page.push_back(page_bad);
  }
  EXPECT_EQ(bad_per_page, (std::vector<int>{0, 1, 0}));
}

TEST(Replay, ServesEveryBundledExampleAtTheRewrittenBaseUrl) {
  auto all = bundled();
  ReplayServer replay(all, 0);
  replay.start();
  ASSERT_NE(replay.port(), 0);
  int served = 0;
  for (const auto& s : all) {
    if (!std::filesystem::exists(s.dir / "fixtures" / "replay.yaml")) continue;
    auto base = replay.base_url_for(s);
    EXPECT_EQ(base.rfind("http://127.0.0.1:" + std::to_string(replay.port()) + "/" + s.name, 0), 0u) << base;
    for (const auto& e : s.endpoints) {
      auto url = page_url(base, e, validate_params(e, e.example));
      auto r = get(url);
      ASSERT_EQ(r.status, 200) << url << ": " << r.body;
      EXPECT_EQ(r.header("content-type").value_or(""), "application/json");
      EXPECT_GT(count_selected_records(r.body, e), 0u) << url;
      ++served;
    }
  }
  EXPECT_GE(served, 2);
}

TEST(Replay, BreweriesPagesEndWithAShortThirdPage) {
  auto all = bundled();
  ReplayServer replay(all, 0);
  replay.start();
  const auto& s = by_name(all, "openbrewerydb");
  const auto& e = s.endpoints.at(0);
  auto base = replay.base_url_for(s);
  EXPECT_EQ(base, "http://127.0.0.1:" + std::to_string(replay.port()) + "/openbrewerydb/v1");
  auto params = validate_params(e, e.example);
  std::vector<std::size_t> sizes;
  std::set<std::string> bodies;
  for (int page = 0; page < 10; ++page) {
    auto r = get(page_url(base, e, params, page));
    ASSERT_EQ(r.status, 200) << r.body;
    bodies.insert(r.body);
    sizes.push_back(json::parse(r.body).as_array().size());
    if (sizes.back() < static_cast<std::size_t>(e.pagination.page_size)) break;
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{20, 20, 7}));
  EXPECT_EQ(bodies.size(), 3u);
  // Byte for byte the fixture file.
  EXPECT_TRUE(bodies.count(slurp(s.dir / "fixtures" / "breweries_ohio_page3.json")));
  // Nothing recorded past the end, nor for another state.
  EXPECT_EQ(get(page_url(base, e, params, 3)).status, 404);
  EXPECT_EQ(get(page_url(base, e, validate_params(e, {{"by_state", "texas"}}))).status, 404);
}

TEST(Replay, BcbSeriesAreMatchedOnTheirQuery) {
  auto all = bundled();
  ReplayServer replay(all, 0);
  replay.start();
  const auto& s = by_name(all, "bcb_sgs");
  const auto& e = *std::find_if(s.endpoints.begin(), s.endpoints.end(), [](auto& x) { return x.name == "series"; });
  auto base = replay.base_url_for(s);
  auto ipca = get(page_url(base, e, validate_params(e, {{"series", "433"}, {"start", "2023-01-01"}, {"end", "2023-12-31"}})));
  ASSERT_EQ(ipca.status, 200) << ipca.body;
  auto months = json::parse(ipca.body).as_array();
  ASSERT_EQ(months.size(), 12u);
  EXPECT_EQ(months.front().at("data"), "01/01/2023");
  EXPECT_EQ(months.back().at("data"), "01/12/2023");
  // Percent-encoded slashes are decoded before matching.
  auto selic = get(base + "/dados/serie/bcdata.sgs.11/dados?formato=json&dataInicial=01%2F01%2F2024&dataFinal=31/01/2024");
  ASSERT_EQ(selic.status, 200);
  EXPECT_EQ(json::parse(selic.body).as_array().size(), 22u);
  // A different range is not recorded.
  auto other = get(base + "/dados/serie/bcdata.sgs.11/dados?formato=json&dataInicial=01/02/2024&dataFinal=29/02/2024");
  EXPECT_EQ(other.status, 404);
}

TEST(Replay, UnmatchedRequestsGetAProblemBody) {
  auto all = bundled();
  ReplayServer replay(all, 0);
  replay.start();
  const std::string root = "http://127.0.0.1:" + std::to_string(replay.port());
  for (const std::string target : {"/openbrewerydb/v1/breweries?by_state=ohio&per_page=20&page=9",
                                   "/openbrewerydb/breweries?by_state=ohio&per_page=20&page=1",  // no /v1
                                   "/nosuchsource/v1/breweries", "/", "/bcb_sgs"}) {
    auto r = get(root + target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(r.header("content-type").value_or(""), "application/problem+json") << target;
    auto body = json::parse(r.body).as_object();
    EXPECT_EQ(body.at("type"), "about:blank");
    EXPECT_EQ(body.at("title"), "Not Found");
    EXPECT_EQ(body.at("status"), 404);
    EXPECT_EQ(std::string(body.at("detail").as_string()), "no recorded response for " + target);
  }
  auto post = get(root + "/openbrewerydb/v1/breweries?by_state=ohio&per_page=20&page=1", "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(json::parse(post.body).as_object().at("status"), 405);
}

TEST(Replay, StatusHeadersFirstMatchAndBasePlaceholder) {
  TempDir tmp;
  write(tmp / "fixtures" / "replay.yaml", R"(responses:
  - path: /items
    query: {cursor: "a b/c"}
    status: 200
    headers: {Content-Type: application/vnd.demo+json, X-Demo: yes}
    body_file: page2.json
  - path: /items
    body_file: page1.json
  - path: /items
    body_file: never.json
  - path: /gone
    status: 503
    headers: {Retry-After: "7"}
    body_file: err.json
)");
  write(tmp / "fixtures" / "page1.json", R"({"items":[1,2],"next":"{{base}}/items?cursor=a%20b%2Fc"})");
  write(tmp / "fixtures" / "page2.json", R"({"items":[3],"next":null,"self":"{{base}}"})");
  write(tmp / "fixtures" / "never.json", R"([])");
  write(tmp / "fixtures" / "err.json", R"({"error":"down"})");
  auto source = hand_source(tmp.path());
  ReplayServer replay({source}, 0);
  replay.start();
  auto base = replay.base_url_for(source);
  EXPECT_EQ(base, "http://127.0.0.1:" + std::to_string(replay.port()) + "/demo/api/v2");

  auto first = get(base + "/items?other=1");
  ASSERT_EQ(first.status, 200) << first.body;
  auto next = json::parse(first.body).as_object().at("next").as_string();
  EXPECT_EQ(std::string(next), base + "/items?cursor=a%20b%2Fc");
  EXPECT_EQ(first.body.find("{{base}}"), std::string::npos);

  auto second = get(std::string(next));
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(second.header("content-type").value_or(""), "application/vnd.demo+json");
  EXPECT_EQ(second.header("x-demo").value_or(""), "yes");
  EXPECT_EQ(json::parse(second.body).as_object().at("self"), base.c_str());

  auto gone = get(base + "/gone");
  EXPECT_EQ(gone.status, 503);
  EXPECT_EQ(gone.header("retry-after").value_or(""), "7");
  EXPECT_EQ(gone.header("content-type").value_or(""), "application/json");
  EXPECT_EQ(gone.body, R"({"error":"down"})");

  // The answer does not change once the caller points the source's base_url at the replay.
  auto rewritten = source;
  rewritten.base_url = base;
  EXPECT_EQ(replay.base_url_for(rewritten), base);
  // A source without fixtures still gets a URL (everything under it is a 404).
  auto other = hand_source(tmp / "none", "https://other.example/x/");
  other.name = "other";
  EXPECT_EQ(replay.base_url_for(other), "http://127.0.0.1:" + std::to_string(replay.port()) + "/other/x");
  EXPECT_EQ(get(replay.base_url_for(other) + "/items").status, 404);
}

TEST(Replay, ConcurrentRequestsGetTheirOwnResponses) {
  auto all = bundled();
  ReplayServer replay(all, 0);
  replay.start();
  const auto& s = by_name(all, "openbrewerydb");
  const auto& e = s.endpoints.at(0);
  auto base = replay.base_url_for(s);
  auto params = validate_params(e, e.example);
  std::vector<std::string> expected;
  for (int p = 1; p <= 3; ++p)
    expected.push_back(slurp(s.dir / "fixtures" / ("breweries_ohio_page" + std::to_string(p) + ".json")));
  std::atomic<int> ok{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; ++i) {
        int page = (t + i) % 3;
        auto r = get(page_url(base, e, params, page));
        (r.status == 200 && r.body == expected[page] ? ok : wrong)++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 60);
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Replay, BadFixturesAreRefusedWithFileAndLine) {
  TempDir tmp;
  auto source = hand_source(tmp.path());
  const auto yaml = tmp / "fixtures" / "replay.yaml";
  write(tmp / "fixtures" / "ok.json", "[]");

  write(yaml, "responses:\n  - path: /a\n    body_file: ok.json\n  - path: /b\n    body_file: missing.json\n");
  auto msg = expect_error(source);
  EXPECT_NE(msg.find(yaml.string() + ":5:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing.json"), std::string::npos) << msg;

  write(yaml, "responses:\n  - path: /a\n    body_file: [ok.json\n");
  msg = expect_error(source);
  EXPECT_NE(msg.find(yaml.string() + ":"), std::string::npos) << msg;

  write(yaml, "responses:\n  - path: /a\n    body_fil: ok.json\n");
  msg = expect_error(source);
  EXPECT_NE(msg.find(yaml.string() + ":3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("body_fil"), std::string::npos) << msg;

  write(yaml, "responses:\n  - path: /a\n    status: 42\n    body_file: ok.json\n");
  msg = expect_error(source);
  EXPECT_NE(msg.find(yaml.string() + ":3:"), std::string::npos) << msg;

  write(tmp / "secret.json", "{}");
  write(yaml, "responses:\n  - path: /a\n    body_file: ../secret.json\n");
  msg = expect_error(source);
  EXPECT_NE(msg.find("inside"), std::string::npos) << msg;

  write(yaml, "responses:\n  - path: a\n    body_file: ok.json\n");
  msg = expect_error(source);
  EXPECT_NE(msg.find("start with '/'"), std::string::npos) << msg;

  write(yaml, "responses: {path: /a}\n");
  msg = expect_error(source);
  EXPECT_NE(msg.find("must be a list"), std::string::npos) << msg;
}

// The real fetcher (source/) walks each bundled example through the replay: the fixtures record
// exactly the requests the source sends, pagination included, and every page is a fixture verbatim.
TEST(Replay, TheSourceFetcherWalksEveryBundledExample) {
  auto all = bundled();
  ReplayServer replay(all, 0);
  replay.start();
  RetryPolicy no_retry;
  no_retry.max_attempts = 1;
  ::setenv("GITHUB_TOKEN", "replay-does-not-check-it", 0);  // the github source declares bearer auth
  for (auto s : all) {
    if (!std::filesystem::exists(s.dir / "fixtures" / "replay.yaml")) continue;
    std::set<std::string> fixtures;
    s.base_url = replay.base_url_for(s);
    for (const auto& f : std::filesystem::directory_iterator(s.dir / "fixtures"))
      if (f.path().extension() == ".json") {
        // Served bodies have "{{base}}" replaced by the replay's base URL (next-URL APIs).
        std::string body = slurp(f.path());
        for (auto at = body.find("{{base}}"); at != std::string::npos; at = body.find("{{base}}", at))
          body.replace(at, 8, s.base_url);
        fixtures.insert(body);
      }
    for (const auto& e : s.endpoints) {
      Fetcher fetcher(HttpOptions{}, no_retry);
      std::vector<Page> pages;
      int n = 0;
      ASSERT_NO_THROW(n = fetcher.run(s, e, validate_params(e, e.example), [&](Page&& p) { pages.push_back(std::move(p)); }))
          << s.name << "." << e.name;
      ASSERT_EQ(n, static_cast<int>(pages.size()));
      for (const auto& p : pages) {
        EXPECT_TRUE(fixtures.count(p.body)) << p.url;
        EXPECT_EQ(p.records, select_records(p.body, e).size()) << p.url;
      }
      if (e.pagination.kind == Pagination::Kind::PageNumber) {
        ASSERT_EQ(pages.size(), 3u) << s.name << "." << e.name;
        EXPECT_EQ(pages.back().records, 7u);
      }
    }
  }
}
