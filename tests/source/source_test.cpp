#include "source/source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/url.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "net/http_server.h"

namespace apilake {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

ParamSpec param(std::string name, ParamType type, ParamLocation in, std::string api_name = "",
                std::string format = "") {
  ParamSpec p;
  p.name = name;
  p.type = type;
  p.in = in;
  p.api_name = api_name.empty() ? name : api_name;
  p.format = std::move(format);
  return p;
}

Source bcb() {
  Source s;
  s.name = "bcb_sgs";
  s.base_url = "https://api.bcb.gov.br";
  Endpoint e;
  e.name = "series";
  e.path = "/dados/serie/bcdata.sgs.{series}/dados";
  e.fixed_query = {{"formato", "json"}};
  e.params = {param("series", ParamType::Integer, ParamLocation::Path),
              param("start", ParamType::Date, ParamLocation::Query, "dataInicial", "dd/MM/yyyy"),
              param("end", ParamType::Date, ParamLocation::Query, "dataFinal", "dd/MM/yyyy")};
  s.endpoints.push_back(e);
  return s;
}

std::string fetch_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const FetchError& e) {
    return e.what();
  }
  return "<no FetchError>";
}

// --- first_page_url / render_date -------------------------------------------------------------

TEST(FirstPageUrl, BcbSeries) {
  auto s = bcb();
  // '/' in the rendered dates is percent-encoded: every query value goes through url_encode.
  EXPECT_EQ(first_page_url(s, s.endpoints[0], {{"series", "11"}, {"start", "2024-01-01"}, {"end", "2024-01-31"}}),
            "https://api.bcb.gov.br/dados/serie/bcdata.sgs.11/dados?formato=json&dataInicial=01%2F01%2F2024&"
            "dataFinal=31%2F01%2F2024");
  // Optional query params without a value are left out.
  EXPECT_EQ(first_page_url(s, s.endpoints[0], {{"series", "11"}}),
            "https://api.bcb.gov.br/dados/serie/bcdata.sgs.11/dados?formato=json");
}

TEST(FirstPageUrl, BasePathPrefixAndDefaultIsoDates) {
  Source s;
  s.base_url = "http://127.0.0.1:8080/bcb_sgs/v1/";
  Endpoint e;
  e.path = "/items";
  e.params = {param("day", ParamType::Date, ParamLocation::Query), param("q", ParamType::String, ParamLocation::Query)};
  EXPECT_EQ(first_page_url(s, e, {{"day", "2024-03-09"}, {"q", "a b&c=d"}}),
            "http://127.0.0.1:8080/bcb_sgs/v1/items?day=2024-03-09&q=a%20b%26c%3Dd");
}

TEST(FirstPageUrl, PathValuesNeverChangeStructureOrHost) {
  Source s;
  s.base_url = "https://api.example.org/v2";
  Endpoint e;
  e.path = "/items/{id}/detail";
  e.params = {param("id", ParamType::String, ParamLocation::Path)};
  for (std::string evil : {"../admin", "@evil.com/", "?x=1", "x#frag", "a/../../b", "%2e%2e", "//evil.com",
                           "\\evil.com", "...", "a b"}) {
    const auto url = first_page_url(s, e, {{"id", evil}});
    auto parsed = boost::urls::parse_uri(url);
    ASSERT_TRUE(parsed) << url;
    EXPECT_EQ(parsed->host(), "api.example.org") << url;
    EXPECT_FALSE(parsed->has_query()) << url;
    EXPECT_FALSE(parsed->has_fragment()) << url;
    // Exactly the template's segments, with the value decoded back intact in its own segment.
    auto segs = parsed->segments();
    ASSERT_EQ(segs.size(), 4u) << url;
    auto it = segs.begin();
    EXPECT_EQ(*it++, "v2");
    EXPECT_EQ(*it++, "items");
    EXPECT_EQ(*it++, evil) << url;
    EXPECT_EQ(*it, "detail");
    // No raw segment is a dot-segment, which a client or server would collapse (RFC 3986 5.2.4).
    for (auto seg : parsed->encoded_segments()) {
      EXPECT_NE(seg, ".") << url;
      EXPECT_NE(seg, "..") << url;
    }
  }
  // A whole segment of dots would be collapsed by the client or the server whatever its encoding.
  for (std::string dots : {".", ".."})
    EXPECT_THAT(fetch_error([&] { first_page_url(s, e, {{"id", dots}}); }), HasSubstr("cannot be")) << dots;
}

TEST(FirstPageUrl, PaginationAndApiKeyQuery) {
  Source s;
  s.base_url = "https://x.org";
  s.auth = {AuthKind::ApiKeyQuery, "api_key", "APILAKE_TEST_QKEY"};
  Endpoint e;
  e.path = "/list";
  e.fixed_query = {{"b", "2"}, {"a", "1"}};
  e.pagination.kind = Pagination::Kind::PageNumber;
  e.pagination.page_size = 25;
  e.pagination.start_page = 0;
  unsetenv("APILAKE_TEST_QKEY");
  EXPECT_THAT(fetch_error([&] { first_page_url(s, e, {}); }), HasSubstr("APILAKE_TEST_QKEY"));
  setenv("APILAKE_TEST_QKEY", "k/y?", 1);
  EXPECT_EQ(first_page_url(s, e, {}), "https://x.org/list?a=1&b=2&page=0&per_page=25&api_key=k%2Fy%3F");
  e.pagination.size_param = "";
  s.auth = {};
  EXPECT_EQ(first_page_url(s, e, {}), "https://x.org/list?a=1&b=2&page=0");
  e.pagination.kind = Pagination::Kind::OffsetLimit;
  e.pagination.offset_param = "skip";
  e.pagination.limit_param = "take";
  EXPECT_EQ(first_page_url(s, e, {}), "https://x.org/list?a=1&b=2&skip=0&take=25");
  unsetenv("APILAKE_TEST_QKEY");
}

TEST(FirstPageUrl, UnusableTemplates) {
  Source s;
  s.base_url = "https://x.org";
  Endpoint e;
  e.path = "/a/{id}";
  EXPECT_THAT(fetch_error([&] { first_page_url(s, e, {}); }), HasSubstr("{id}"));
  e.params = {param("id", ParamType::String, ParamLocation::Path)};
  EXPECT_THAT(fetch_error([&] { first_page_url(s, e, {}); }), HasSubstr("'id' has no value"));
  e.path = "/a/{id";
  EXPECT_THAT(fetch_error([&] { first_page_url(s, e, {{"id", "1"}}); }), HasSubstr("unclosed"));
  e.path = "/a";
  s.base_url = "not a url";
  EXPECT_THAT(fetch_error([&] { first_page_url(s, e, {}); }), HasSubstr("base_url"));
}

TEST(RenderDate, Patterns) {
  EXPECT_EQ(render_date("2024-01-31", "dd/MM/yyyy"), "31/01/2024");
  EXPECT_EQ(render_date("2024-01-31", "yyyy-MM-dd"), "2024-01-31");
  EXPECT_EQ(render_date("2024-01-31", "yyyyMMdd"), "20240131");
  EXPECT_EQ(render_date("2024-01-31", "MM.yyyy"), "01.2024");
  EXPECT_THROW(render_date("2024-01-31", "dd/MMM/yy"), FetchError);
  EXPECT_THROW(render_date("31/01/2024", "dd/MM/yyyy"), FetchError);
}

// --- next_page_url -----------------------------------------------------------------------------

TEST(NextPageUrl, NoneNeverContinues) {
  Endpoint e;
  EXPECT_EQ(next_page_url(e, "https://x.org/a", 1, 100, "[]"), std::nullopt);
}

TEST(NextPageUrl, PageNumber) {
  Endpoint e;
  e.pagination.kind = Pagination::Kind::PageNumber;
  e.pagination.page_size = 2;
  const std::string u1 = "https://x.org/a?q=1&page=1&per_page=2&z=9";
  EXPECT_EQ(next_page_url(e, u1, 1, 2, ""), "https://x.org/a?q=1&page=2&per_page=2&z=9");
  EXPECT_EQ(next_page_url(e, "https://x.org/a?q=1&page=2&per_page=2&z=9", 2, 2, ""),
            "https://x.org/a?q=1&page=3&per_page=2&z=9");
  EXPECT_EQ(next_page_url(e, u1, 1, 1, ""), std::nullopt);  // short page ends
  EXPECT_EQ(next_page_url(e, u1, 1, 0, ""), std::nullopt);  // empty page ends
  e.pagination.start_page = 0;
  e.pagination.page_param = "p";
  EXPECT_EQ(next_page_url(e, "https://x.org/a?p=0", 1, 2, ""), "https://x.org/a?p=1");
}

TEST(NextPageUrl, OffsetLimit) {
  Endpoint e;
  e.pagination.kind = Pagination::Kind::OffsetLimit;
  e.pagination.page_size = 50;
  EXPECT_EQ(next_page_url(e, "https://x.org/a?offset=0&limit=50", 1, 50, ""), "https://x.org/a?offset=50&limit=50");
  EXPECT_EQ(next_page_url(e, "https://x.org/a?offset=50&limit=50", 2, 50, ""),
            "https://x.org/a?offset=100&limit=50");
  EXPECT_EQ(next_page_url(e, "https://x.org/a?offset=50&limit=50", 2, 49, ""), std::nullopt);
}

TEST(NextPageUrl, NextUrl) {
  Endpoint e;
  e.pagination.kind = Pagination::Kind::NextUrl;
  e.pagination.next_pointer = "/links/next";
  const std::string cur = "https://x.org/v1/items?page=1";
  EXPECT_EQ(next_page_url(e, cur, 1, 3, R"({"links":{"next":"https://x.org/v1/items?cursor=abc"}})"),
            "https://x.org/v1/items?cursor=abc");
  EXPECT_EQ(next_page_url(e, cur, 1, 3, R"({"links":{"next":"items?cursor=d"}})"), "https://x.org/v1/items?cursor=d");
  EXPECT_EQ(next_page_url(e, cur, 1, 3, R"({"links":{"next":"/v2/all?c=1"}})"), "https://x.org/v2/all?c=1");
  EXPECT_EQ(next_page_url(e, cur, 1, 3, R"({"links":{"next":null}})"), std::nullopt);
  EXPECT_EQ(next_page_url(e, cur, 1, 3, R"({"links":{"next":""}})"), std::nullopt);
  EXPECT_EQ(next_page_url(e, cur, 1, 3, R"({"links":{}})"), std::nullopt);
  EXPECT_EQ(next_page_url(e, cur, 1, 3, R"({"data":[]})"), std::nullopt);
  EXPECT_THAT(fetch_error([&] { next_page_url(e, cur, 1, 3, R"({"links":{"next":42}})"); }),
              HasSubstr("not a URL string"));
  EXPECT_THAT(fetch_error([&] { next_page_url(e, cur, 1, 3, R"({"links":)"); }), HasSubstr("not JSON"));
}

TEST(NextPageUrl, PagesHoldingIntegersBeyond64BitsArePaged) {
  // The records take such integers (double and decimal fields), so the pagination reads those pages
  // too; a cursor that is one goes out with its own digits.
  Endpoint e;
  e.pagination.kind = Pagination::Kind::Cursor;
  e.pagination.cursor_pointer = "/next";
  e.pagination.cursor_param = "after";
  e.pagination.has_more_pointer = "/more";
  e.pagination.total_pointer = "/total";
  const std::string cur = "https://x.org/a";
  EXPECT_EQ(next_page_url(e, cur, 1, 1, R"({"data":[{"id":123456789012345678901234}],"more":true,"next":"c2"})"),
            "https://x.org/a?after=c2");
  EXPECT_EQ(next_page_url(e, cur, 1, 1, R"({"data":[{"id":1}],"more":true,"next":123456789012345678901234})"),
            "https://x.org/a?after=123456789012345678901234");
  EXPECT_EQ(next_page_url(e, cur, 1, 1, R"({"data":[{"id":-99999999999999999999}],"more":false,"next":"c2"})"),
            std::nullopt);
  EXPECT_EQ(next_page_url(e, cur, 1, 1, R"({"data":[{"id":1e2}],"more":true,"next":"c3","total":99999999999999999999999})"),
            "https://x.org/a?after=c3");
  // Still refused when the page is wrong in another way too.
  EXPECT_THAT(fetch_error([&] { next_page_url(e, cur, 1, 1, R"({"data":[{"id":123456789012345678901234}],"more":)"); }),
              HasSubstr("not JSON"));
}

// --- count_records -----------------------------------------------------------------------------

TEST(CountRecords, ArraysObjectsAndErrors) {
  EXPECT_EQ(count_records("[1,2,3]", ""), 3u);
  EXPECT_EQ(count_records("[]", ""), 0u);
  EXPECT_EQ(count_records(R"({"data":{"items":[{},{}]}})", "/data/items"), 2u);
  EXPECT_EQ(count_records(R"({"id":7,"name":"x"})", ""), 1u);  // one object = one record
  EXPECT_EQ(count_records(R"({"data":{"id":7}})", "/data"), 1u);
  EXPECT_THAT(fetch_error([] { count_records("<html>oops</html>", ""); }), HasSubstr("not JSON"));
  EXPECT_THAT(fetch_error([] { count_records(R"([{"a":1},{"a":)", ""); }), HasSubstr("not JSON"));
  EXPECT_THAT(fetch_error([] { count_records("", ""); }), HasSubstr("not JSON"));
  EXPECT_THAT(fetch_error([] { count_records(R"({"data":"text"})", "/data"); }), HasSubstr("reaches a string"));
  EXPECT_THAT(fetch_error([] { count_records(R"({"data":[]})", "/items"); }), HasSubstr("'/items'"));
  EXPECT_THAT(fetch_error([] { count_records("42", ""); }), HasSubstr("number"));
}

// --- Fetcher against a real local server ------------------------------------------------------

struct Recorded {
  std::string target;
  std::string authorization;
};

class Upstream {
 public:
  explicit Upstream(Handler h) {
    server_ = std::make_unique<HttpServer>(ServerOptions{"127.0.0.1", 0, 2, 1 << 20}, [this, h](const ServerRequest& r) {
      {
        std::lock_guard lock(mu_);
        requests_.push_back({r.target, r.header("authorization")});
      }
      return h(r);
    });
    server_->start();
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  std::vector<Recorded> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  std::mutex mu_;
  std::vector<Recorded> requests_;
  std::unique_ptr<HttpServer> server_;
};

ServerResponse json(std::string body, int status = 200) {
  ServerResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// A JSON array of n records, each tagged with the page it came from.
std::string records(int n, int page) {
  std::string s = "[";
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::string("{\"page\":") + std::to_string(page) + "}";
  return s + "]";
}

struct NoSleep {
  std::vector<std::chrono::milliseconds> delays;
  Sleeper fn() {
    return [this](std::chrono::milliseconds d) { delays.push_back(d); };
  }
};

Source local_source(const std::string& base, Pagination pg = {}) {
  Source s;
  s.name = "local";
  s.base_url = base;
  Endpoint e;
  e.name = "items";
  e.path = "/items";
  e.fixed_query = {{"format", "json"}};
  e.pagination = pg;
  s.endpoints.push_back(e);
  return s;
}

HttpOptions fast_http() {
  HttpOptions o;
  o.connect_timeout = std::chrono::milliseconds(2000);
  o.timeout = std::chrono::milliseconds(5000);
  return o;
}

TEST(Fetcher, PageNumberOverThreePagesShortLastPage) {
  Upstream up([](const ServerRequest& r) {
    const int page = std::stoi(r.query_param("page"));
    if (r.query_param("per_page") != "2" || r.query_param("format") != "json") return json("{}", 400);
    return json(records(page < 3 ? 2 : 1, page));
  });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  auto s = local_source(up.base(), pg);
  std::vector<Page> pages;
  Fetcher f(fast_http(), RetryPolicy{});
  const auto before = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int n = f.run(s, s.endpoints[0], {}, [&](Page&& p) { pages.push_back(std::move(p)); });
  EXPECT_EQ(n, 3);
  ASSERT_EQ(pages.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(pages[i].number, i + 1);
    EXPECT_EQ(pages[i].url, up.base() + "/items?format=json&page=" + std::to_string(i + 1) + "&per_page=2");
    EXPECT_EQ(pages[i].body, records(i < 2 ? 2 : 1, i + 1));
    EXPECT_EQ(pages[i].records, i < 2 ? 2u : 1u);
    EXPECT_EQ(pages[i].content_type, "application/json");
    EXPECT_GE(pages[i].fetched_at_us, before);
  }
  EXPECT_LE(pages[0].fetched_at_us, pages[2].fetched_at_us);
  EXPECT_EQ(up.requests().size(), 3u);
}

TEST(Fetcher, ExactMultipleEndsOnEmptyPage) {
  Upstream up([](const ServerRequest& r) {
    const int offset = std::stoi(r.query_param("offset"));
    return json(offset < 6 ? records(3, offset) : "[]");
  });
  Pagination pg;
  pg.kind = Pagination::Kind::OffsetLimit;
  pg.page_size = 3;
  auto s = local_source(up.base(), pg);
  std::vector<std::size_t> counts;
  Fetcher f(fast_http(), RetryPolicy{});
  EXPECT_EQ(f.run(s, s.endpoints[0], {}, [&](Page&& p) { counts.push_back(p.records); }), 3);
  EXPECT_EQ(counts, (std::vector<std::size_t>{3, 3, 0}));
}

TEST(Fetcher, NextUrlPagination) {
  Upstream up([](const ServerRequest& r) {
    if (r.path == "/items") return json(R"({"data":[1,2],"next":"/items/more?cursor=b"})");
    if (r.query_param("cursor") == "b") return json(R"({"data":[3],"next":"more?cursor=c"})");
    if (r.query_param("cursor") == "c") return json(R"({"data":[],"next":null})");
    return json("{}", 404);
  });
  Pagination pg;
  pg.kind = Pagination::Kind::NextUrl;
  pg.next_pointer = "/next";
  auto s = local_source(up.base(), pg);
  s.endpoints[0].records_pointer = "/data";
  std::vector<Page> pages;
  Fetcher f(fast_http(), RetryPolicy{});
  EXPECT_EQ(f.run(s, s.endpoints[0], {}, [&](Page&& p) { pages.push_back(std::move(p)); }), 3);
  ASSERT_EQ(pages.size(), 3u);
  EXPECT_EQ(pages[1].url, up.base() + "/items/more?cursor=b");
  EXPECT_EQ(pages[2].url, up.base() + "/items/more?cursor=c");
  EXPECT_EQ(pages[0].records + pages[1].records + pages[2].records, 3u);
}

// A Fetcher keeps its HTTP client between runs (one per fetch worker): the second extraction reuses
// the first one's connection (keep-alive), and each run is still restricted to its own source's
// host — a next link to the host of an earlier run is refused although a connection to it is open.
TEST(Fetcher, KeepsItsConnectionAcrossRunsButNotTheHostAllowList) {
  std::mutex mu;
  std::vector<std::string> remotes;
  std::atomic<int> port{0};
  HttpServer server(ServerOptions{"127.0.0.1", 0, 2, 1 << 20}, [&](const ServerRequest& r) {
    {
      std::lock_guard lock(mu);
      remotes.push_back(r.remote);
    }
    if (r.path == "/elsewhere")
      return json(R"({"next":"http://127.0.0.1:)" + std::to_string(port.load()) + R"(/items"})");
    return json("[1,2]");
  });
  server.start();
  port = server.port();
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  auto s = local_source(base);
  Fetcher f(fast_http(), RetryPolicy{.max_attempts = 1});
  for (int run = 0; run < 3; ++run) EXPECT_EQ(f.run(s, s.endpoints[0], {}, [](Page&&) {}), 1);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(remotes.size(), 3u);
    EXPECT_EQ(remotes[0], remotes[1]);
    EXPECT_EQ(remotes[1], remotes[2]);
  }
  // Another source, on "localhost": its next link back to 127.0.0.1 is another host for this run.
  Pagination pg;
  pg.kind = Pagination::Kind::NextUrl;
  pg.next_pointer = "/next";
  auto other = local_source("http://localhost:" + std::to_string(server.port()), pg);
  other.name = "other";
  other.endpoints[0].path = "/elsewhere";
  other.endpoints[0].records_pointer = "";
  const auto msg = fetch_error([&] { f.run(other, other.endpoints[0], {}, [](Page&&) {}); });
  EXPECT_THAT(msg, ::testing::HasSubstr("127.0.0.1"));
  server.stop();
}

TEST(Fetcher, RepeatedNextUrlFailsInsteadOfLooping) {
  Upstream up([](const ServerRequest& r) {
    if (r.path == "/items") return json(R"({"next":"/items/a"})");
    return json(R"({"next":"/items"})");  // back to the first page
  });
  Pagination pg;
  pg.kind = Pagination::Kind::NextUrl;
  pg.next_pointer = "/next";
  auto s = local_source(up.base(), pg);
  s.endpoints[0].records_pointer = "";
  s.endpoints[0].fixed_query.clear();
  int pages = 0;
  Fetcher f(fast_http(), RetryPolicy{});
  auto msg = fetch_error([&] { f.run(s, s.endpoints[0], {}, [&](Page&&) { ++pages; }); });
  EXPECT_THAT(msg, HasSubstr("page 3"));
  EXPECT_THAT(msg, HasSubstr("already fetched"));
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(up.requests().size(), 2u);
}

TEST(Fetcher, PageCap) {
  Upstream up([](const ServerRequest& r) { return json(records(2, std::stoi(r.query_param("page")))); });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  pg.max_pages = 4;
  auto s = local_source(up.base(), pg);
  int pages = 0;
  Fetcher f(fast_http(), RetryPolicy{});
  auto msg = fetch_error([&] { f.run(s, s.endpoints[0], {}, [&](Page&&) { ++pages; }); });
  EXPECT_THAT(msg, HasSubstr("page cap of 4 reached"));
  EXPECT_EQ(pages, 4);
  EXPECT_EQ(up.requests().size(), 4u);
}

TEST(Fetcher, ServiceUnavailableRetriedThenOk) {
  std::atomic<int> calls{0};
  Upstream up([&](const ServerRequest&) {
    if (calls++ == 0) return json(R"({"error":"busy"})", 503);
    return json("[1,2,3]");
  });
  auto s = local_source(up.base());
  NoSleep sleeper;
  std::vector<Page> pages;
  Fetcher f(fast_http(), RetryPolicy{});
  EXPECT_EQ(f.run(s, s.endpoints[0], {}, [&](Page&& p) { pages.push_back(std::move(p)); }, sleeper.fn()), 1);
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_EQ(pages[0].records, 3u);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(sleeper.delays.size(), 1u);
}

TEST(Fetcher, NotFoundFailsWithClearMessage) {
  Upstream up([](const ServerRequest&) { return json(R"({"detail":"no such series"})" + std::string(500, ' '), 404); });
  auto s = local_source(up.base());
  NoSleep sleeper;
  Fetcher f(fast_http(), RetryPolicy{});
  auto msg = fetch_error([&] { f.run(s, s.endpoints[0], {}, [](Page&&) {}, sleeper.fn()); });
  EXPECT_THAT(msg, HasSubstr("page 1: HTTP 404 from " + up.base() + "/items?format=json"));
  EXPECT_THAT(msg, HasSubstr("no such series"));
  EXPECT_LT(msg.size(), 400u);  // the body is cut to 200 characters
  EXPECT_TRUE(sleeper.delays.empty());
  EXPECT_EQ(up.requests().size(), 1u);
}

TEST(Fetcher, BadBodyFailsNamingThePage) {
  Upstream up([](const ServerRequest&) { return json(R"([{"a":1},{"a")"); });
  auto s = local_source(up.base());
  Fetcher f(fast_http(), RetryPolicy{});
  int pages = 0;
  auto msg = fetch_error([&] { f.run(s, s.endpoints[0], {}, [&](Page&&) { ++pages; }); });
  EXPECT_THAT(msg, HasSubstr("page 1: not JSON"));
  EXPECT_EQ(pages, 0);
}

TEST(Fetcher, RedirectToAnotherHostRefused) {
  Upstream up([](const ServerRequest& r) {
    ServerResponse res = json("", 302);
    // Same server, other host name: the client must refuse before connecting.
    res.headers.emplace_back("Location", "http://localhost:" + r.header("host").substr(r.header("host").rfind(':') + 1) +
                                             "/stolen");
    return res;
  });
  auto s = local_source(up.base());
  NoSleep sleeper;
  Fetcher f(fast_http(), RetryPolicy{});
  auto msg = fetch_error([&] { f.run(s, s.endpoints[0], {}, [](Page&&) {}, sleeper.fn()); });
  EXPECT_THAT(msg, HasSubstr("page 1"));
  EXPECT_THAT(msg, HasSubstr("localhost"));
  for (const auto& r : up.requests()) EXPECT_THAT(r.target, Not(HasSubstr("stolen")));
}

TEST(Fetcher, BearerFromEnvironmentNeverLeaks) {
  const std::string secret = "s3cr3t-T0ken";
  Upstream up([&](const ServerRequest& r) {
    if (r.header("authorization") != "Bearer " + secret) return json(R"({"error":"unauthorized"})", 401);
    if (r.query_param("page") == "1") return json(R"([1,2])");
    return json(R"({"error":"echo Bearer )" + secret + "\"}", 500);
  });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  auto s = local_source(up.base(), pg);
  s.auth = {AuthKind::Bearer, "", "APILAKE_TEST_BEARER"};
  Fetcher f(fast_http(), RetryPolicy{.max_attempts = 1});

  unsetenv("APILAKE_TEST_BEARER");
  auto missing = fetch_error([&] { f.run(s, s.endpoints[0], {}, [](Page&&) {}); });
  EXPECT_THAT(missing, HasSubstr("APILAKE_TEST_BEARER"));
  EXPECT_TRUE(up.requests().empty());

  setenv("APILAKE_TEST_BEARER", secret.c_str(), 1);
  std::vector<Page> pages;
  auto msg = fetch_error([&] { f.run(s, s.endpoints[0], {}, [&](Page&& p) { pages.push_back(std::move(p)); }); });
  unsetenv("APILAKE_TEST_BEARER");
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_THAT(pages[0].url, Not(HasSubstr(secret)));
  EXPECT_THAT(msg, HasSubstr("page 2: HTTP 500"));
  EXPECT_THAT(msg, Not(HasSubstr(secret)));  // even when the server echoes it back
  auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].authorization, "Bearer " + secret);
}

TEST(Fetcher, ApiKeyQueryAndBasicAuth) {
  const std::string key = "k3y/with?chars";
  Upstream up([&](const ServerRequest& r) {
    if (r.path == "/items" && r.query_param("api_key") == key) return json(R"({"next":"/items/2"})");
    if (r.path == "/items/2" && r.query_param("api_key") == key) return json(R"({"next":null})");
    if (r.path == "/basic") return json(r.header("authorization") == "Basic dXNlcjpwQHNz" ? "[]" : "{}", 200);
    return json("{}", 403);
  });
  Pagination pg;
  pg.kind = Pagination::Kind::NextUrl;
  pg.next_pointer = "/next";
  auto s = local_source(up.base(), pg);
  s.auth = {AuthKind::ApiKeyQuery, "api_key", "APILAKE_TEST_QKEY2"};
  setenv("APILAKE_TEST_QKEY2", key.c_str(), 1);
  std::vector<std::string> urls;
  Fetcher f(fast_http(), RetryPolicy{.max_attempts = 1});
  EXPECT_EQ(f.run(s, s.endpoints[0], {}, [&](Page&& p) { urls.push_back(p.url); }), 2);
  // The key rides along on the API's own next link, and every reported URL has it redacted.
  ASSERT_EQ(urls.size(), 2u);
  EXPECT_EQ(urls[0], up.base() + "/items?format=json&api_key=REDACTED");
  EXPECT_EQ(urls[1], up.base() + "/items/2?api_key=REDACTED");
  unsetenv("APILAKE_TEST_QKEY2");

  s.endpoints[0].path = "/basic";
  s.endpoints[0].pagination = {};
  s.auth = {AuthKind::Basic, "", "APILAKE_TEST_BASIC"};
  setenv("APILAKE_TEST_BASIC", "user:p@ss", 1);
  std::size_t recs = 99;
  EXPECT_EQ(f.run(s, s.endpoints[0], {}, [&](Page&& p) { recs = p.records; }), 1);
  EXPECT_EQ(recs, 0u);  // "[]" only when the header was right
  setenv("APILAKE_TEST_BASIC", "no-colon", 1);
  auto msg = fetch_error([&] { f.run(s, s.endpoints[0], {}, [](Page&&) {}); });
  EXPECT_THAT(msg, HasSubstr("user:password"));
  EXPECT_THAT(msg, Not(HasSubstr("no-colon")));
  unsetenv("APILAKE_TEST_BASIC");
}

}  // namespace
}  // namespace apilake
