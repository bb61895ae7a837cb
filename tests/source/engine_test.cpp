// The connector engine against a fault-injecting upstream (a real local HTTP server on port 0):
// retries, timeouts, broken bodies, foreign redirects, looping paginators, rate-limit headers,
// every paginator kind and stop condition, the shared per-source rate limiter, incremental cursors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/http_server.h"
#include "source/rate_limit.h"
#include "source/source.h"

namespace apilake {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class Upstream {
 public:
  explicit Upstream(Handler h, int threads = 4) {
    server_ = std::make_unique<HttpServer>(ServerOptions{"127.0.0.1", 0, threads, 1 << 20},
                                           [this, h](const ServerRequest& r) {
                                             {
                                               std::lock_guard lock(mu_);
                                               targets_.push_back(r.target);
                                             }
                                             return h(r);
                                           });
    server_->start();
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  uint16_t port() const { return server_->port(); }
  std::vector<std::string> targets() {
    std::lock_guard lock(mu_);
    return targets_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> targets_;
  std::unique_ptr<HttpServer> server_;
};

ServerResponse reply(std::string body, int status = 200, std::vector<std::pair<std::string, std::string>> h = {}) {
  ServerResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(h);
  return r;
}

struct RecordingSleeper {
  std::mutex mu;
  std::vector<std::chrono::milliseconds> delays;
  Sleeper fn() {
    return [this](std::chrono::milliseconds d) {
      std::lock_guard lock(mu);
      delays.push_back(d);
    };
  }
};

// A unique source name per test: the rate-limit registry is process-wide and keyed by name.
Source make_source(const std::string& name, const std::string& base, Pagination pg = {},
                   std::string records = "") {
  Source s;
  s.name = name;
  s.base_url = base;
  Endpoint e;
  e.name = "items";
  e.path = "/items";
  e.pagination = std::move(pg);
  e.records_pointer = std::move(records);
  s.endpoints.push_back(e);
  return s;
}

HttpOptions fast_http(std::chrono::milliseconds timeout = 5000ms) {
  HttpOptions o;
  o.connect_timeout = 2000ms;
  o.timeout = timeout;
  return o;
}

std::string fetch_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const FetchError& e) {
    return e.what();
  }
  return "<no FetchError>";
}

// Items [from, to) of a dataset as a JSON array of {"id": n}.
std::string items(int from, int to) {
  std::string s = "[";
  for (int i = from; i < to; ++i) s += (i > from ? "," : "") + std::string("{\"id\":") + std::to_string(i) + "}";
  return s + "]";
}

int query_int(const ServerRequest& r, const char* k, int fallback) {
  const std::string v = r.query_param(k);
  return v.empty() ? fallback : std::stoi(v);
}

struct Run {
  std::vector<Page> pages;
  std::size_t records() const {
    std::size_t n = 0;
    for (const auto& p : pages) n += p.records;
    return n;
  }
};

Run run(const Source& s, RecordingSleeper* sleeper = nullptr, RetryPolicy retry = {},
        HttpOptions http = fast_http()) {
  Run out;
  RecordingSleeper local;
  Fetcher f(http, retry);
  f.run(s, s.endpoints[0], {}, [&](Page&& p) { out.pages.push_back(std::move(p)); },
        (sleeper ? sleeper : &local)->fn());
  return out;
}

// --- faults --------------------------------------------------------------------------------------

TEST(Faults, TooManyRequestsWithRetryAfterIsRetriedAndWaited) {
  std::atomic<int> calls{0};
  Upstream up([&](const ServerRequest&) {
    if (calls++ == 0) return reply(R"({"error":"slow down"})", 429, {{"Retry-After", "3"}});
    return reply(items(0, 2));
  });
  RecordingSleeper sleeper;
  auto r = run(make_source("f429", up.base()), &sleeper);
  ASSERT_EQ(r.pages.size(), 1u);
  EXPECT_EQ(r.records(), 2u);
  EXPECT_EQ(calls.load(), 2);
  ASSERT_EQ(sleeper.delays.size(), 1u);
  EXPECT_EQ(sleeper.delays[0], 3000ms);
}

TEST(Faults, ServerErrorThenOk) {
  std::atomic<int> calls{0};
  Upstream up([&](const ServerRequest&) { return calls++ == 0 ? reply("oops", 500) : reply(items(0, 3)); });
  RecordingSleeper sleeper;
  auto r = run(make_source("f500", up.base()), &sleeper);
  ASSERT_EQ(r.pages.size(), 1u);
  EXPECT_EQ(r.records(), 3u);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(sleeper.delays.size(), 1u);
}

TEST(Faults, ServerErrorEveryTimeFailsAfterTheRetries) {
  std::atomic<int> calls{0};
  Upstream up([&](const ServerRequest&) {
    ++calls;
    return reply("down", 503);
  });
  auto msg = fetch_error([&] { run(make_source("f503", up.base()), nullptr, RetryPolicy{.max_attempts = 3}); });
  EXPECT_THAT(msg, HasSubstr("page 1: HTTP 503"));
  EXPECT_EQ(calls.load(), 3);
}

TEST(Faults, StallPastTheTimeoutFailsWithTimeoutAfterRetries) {
  std::atomic<int> calls{0};
  Upstream up([&](const ServerRequest&) {
    ++calls;
    std::this_thread::sleep_for(1500ms);  // far past the 200 ms timeout below
    return reply(items(0, 1));
  });
  RecordingSleeper sleeper;
  auto msg = fetch_error(
      [&] { run(make_source("fstall", up.base()), &sleeper, RetryPolicy{.max_attempts = 2}, fast_http(200ms)); });
  EXPECT_THAT(msg, HasSubstr("page 1"));
  EXPECT_THAT(msg, HasSubstr("timed out"));
  EXPECT_EQ(sleeper.delays.size(), 1u);  // one retry, then the error
}

// A raw TCP server that announces 1000 bytes and sends 12, then closes: a truncated transfer.
class TruncatingServer {
 public:
  TruncatingServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 8) != 0)
      throw std::runtime_error("cannot listen");
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        ++accepted;
        char buf[4096];
        (void)::recv(c, buf, sizeof buf, 0);
        const std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{\"id\":1},{\"";
        (void)::send(c, head.data(), head.size(), MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~TruncatingServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::atomic<int> accepted{0};

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

TEST(Faults, TruncatedTransferFailsAfterRetries) {
  TruncatingServer srv;
  RecordingSleeper sleeper;
  auto msg = fetch_error([&] { run(make_source("ftrunc", srv.base()), &sleeper, RetryPolicy{.max_attempts = 2}); });
  EXPECT_THAT(msg, HasSubstr("page 1"));
  EXPECT_EQ(srv.accepted.load(), 2);  // retried once (a transport error), then failed
}

TEST(Faults, TruncatedJsonBodyNamesTheByte) {
  Upstream up([](const ServerRequest&) { return reply(R"([{"id":1},{"id":)"); });
  auto msg = fetch_error([&] { run(make_source("ftruncjson", up.base())); });
  EXPECT_THAT(msg, HasSubstr("page 1: not JSON: truncated"));
  EXPECT_THAT(msg, HasSubstr("at byte 16"));
}

TEST(Faults, InvalidJsonNamesTheByte) {
  Upstream up([](const ServerRequest&) { return reply(R"([{"id":1}, oops])"); });
  auto msg = fetch_error([&] { run(make_source("finvalid", up.base())); });
  EXPECT_THAT(msg, HasSubstr("page 1: not JSON"));
  EXPECT_THAT(msg, HasSubstr("at byte 11"));
}

TEST(Faults, InvalidJsonOnALaterPageNamesThatPage) {
  Upstream up([](const ServerRequest& r) {
    const int p = query_int(r, "page", 1);
    return p == 3 ? reply("<html>gateway</html>") : reply(items(p * 10, p * 10 + 2));
  });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  pg.size_param = "";
  int pages = 0;
  Fetcher f(fast_http(), RetryPolicy{});
  auto s = make_source("flater", up.base(), pg);
  auto msg = fetch_error([&] { f.run(s, s.endpoints[0], {}, [&](Page&&) { ++pages; }); });
  EXPECT_THAT(msg, HasSubstr("page 3: not JSON"));
  EXPECT_THAT(msg, HasSubstr("at byte 0"));
  EXPECT_EQ(pages, 2);
}

TEST(Faults, RedirectToAnotherHostIsNeverFollowed) {
  Upstream other([](const ServerRequest&) { return reply(items(0, 1)); });
  Upstream up([&](const ServerRequest&) {
    return reply("", 302, {{"Location", "http://localhost:" + std::to_string(other.port()) + "/items"}});
  });
  auto msg = fetch_error([&] { run(make_source("fredirect", up.base())); });
  EXPECT_THAT(msg, HasSubstr("page 1"));
  EXPECT_THAT(msg, HasSubstr("localhost"));
  EXPECT_TRUE(other.targets().empty());
}

TEST(Faults, NextLinkToAnotherHostIsRefused) {
  Upstream other([](const ServerRequest&) { return reply(R"({"data":[{"id":9}],"next":null})"); });
  Upstream up([&](const ServerRequest&) {
    return reply(R"({"data":[{"id":1}],"next":"http://localhost:)" + std::to_string(other.port()) + R"(/items"})");
  });
  Pagination pg;
  pg.kind = Pagination::Kind::NextUrl;
  pg.next_pointer = "/next";
  int pages = 0;
  auto s = make_source("fnexthost", up.base(), pg, "/data");
  Fetcher f(fast_http(), RetryPolicy{});
  auto msg = fetch_error([&] { f.run(s, s.endpoints[0], {}, [&](Page&&) { ++pages; }); });
  EXPECT_THAT(msg, HasSubstr("page 1: the next page URL points to localhost instead of 127.0.0.1; refused"));
  EXPECT_EQ(pages, 0);
  EXPECT_TRUE(other.targets().empty());
}

TEST(Faults, SamePageForeverStopsWithTheRepeatError) {
  // An API that ignores the page parameter: the same body for every page.
  Upstream same([&](const ServerRequest&) { return reply(R"({"data":[{"id":1},{"id":2}]})"); });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  auto msg = fetch_error([&] { run(make_source("frepeat", same.base(), pg, "/data")); });
  EXPECT_THAT(msg, HasSubstr("page 2: the page is identical to the previous one"));
  EXPECT_EQ(same.targets().size(), 2u);

  // The same records forever, with a next link that always looks new.
  std::atomic<int> calls{0};
  Upstream fresh([&](const ServerRequest&) {
    const int n = ++calls;
    return reply(R"({"data":[{"id":1}],"next":"?n=)" + std::to_string(n) + R"("})");
  });
  Pagination next;
  next.kind = Pagination::Kind::NextUrl;
  next.next_pointer = "/next";
  msg = fetch_error([&] { run(make_source("frepeat2", fresh.base(), next, "/data")); });
  EXPECT_THAT(msg, HasSubstr("page 2: the records are identical to the previous page's"));
  EXPECT_EQ(calls.load(), 2);
}

TEST(Faults, RepeatedCursorStops) {
  std::atomic<int> calls{0};
  Upstream up([&](const ServerRequest&) {
    const int n = ++calls;
    return reply(R"({"data":[{"id":)" + std::to_string(n) + R"(}],"next_cursor":"abc"})");
  });
  Pagination pg;
  pg.kind = Pagination::Kind::Cursor;
  pg.cursor_pointer = "/next_cursor";
  pg.cursor_param = "cursor";
  auto msg = fetch_error([&] { run(make_source("fcursor", up.base(), pg, "/data")); });
  EXPECT_THAT(msg, HasSubstr("page 2: the API returned cursor 'abc' again"));
  EXPECT_EQ(calls.load(), 2);
}

TEST(Faults, RateLimitHeadersMakeTheNextRequestWait) {
  Upstream up([](const ServerRequest& r) {
    const int page = query_int(r, "page", 1);
    if (page == 1)
      return reply(items(0, 2), 200, {{"X-RateLimit-Remaining", "0"}, {"RateLimit-Reset", "7"}});
    return reply(items(100, 101));
  });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  RecordingSleeper sleeper;
  auto r = run(make_source("fquota", up.base(), pg), &sleeper);
  EXPECT_EQ(r.pages.size(), 2u);
  ASSERT_EQ(sleeper.delays.size(), 1u);
  EXPECT_GT(sleeper.delays[0], 6000ms);
  EXPECT_LE(sleeper.delays[0], 7000ms);
}

TEST(Faults, RateLimitResetBeyondTheCapFails) {
  const auto reset = std::chrono::duration_cast<std::chrono::seconds>(
                         (std::chrono::system_clock::now() + 1h).time_since_epoch())
                         .count();
  Upstream up([&](const ServerRequest&) {
    return reply(items(0, 2), 200, {{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", std::to_string(reset)}});
  });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  RecordingSleeper sleeper;
  auto msg = fetch_error([&] { run(make_source("fquotacap", up.base(), pg), &sleeper); });
  EXPECT_THAT(msg, HasSubstr("page 1: the API's rate limit is exhausted and resets in"));
  EXPECT_THAT(msg, HasSubstr("longer than the 60 s we wait"));
  EXPECT_TRUE(sleeper.delays.empty());
  EXPECT_EQ(up.targets().size(), 1u);
}

TEST(Faults, PageLargerThanTheLimitIsRefused) {
  Upstream up([](const ServerRequest&) { return reply(items(0, 100)); });
  auto s = make_source("fbig", up.base());
  s.max_page_bytes = 200;
  auto msg = fetch_error([&] { run(s); });
  EXPECT_THAT(msg, HasSubstr("page 1: the page is " + std::to_string(items(0, 100).size()) +
                             " bytes, larger than the limit of 200 bytes"));
}

TEST(Faults, GzipBodyIsDecoded) {
  // The client asks for gzip/deflate; a server that ignores it still works, and the page holds the
  // decoded body either way.
  Upstream up([](const ServerRequest&) { return reply(items(0, 4)); });
  auto r = run(make_source("fgzip", up.base()));
  ASSERT_EQ(r.pages.size(), 1u);
  EXPECT_EQ(r.pages[0].body, items(0, 4));
}

// --- paginators and stop conditions ------------------------------------------------------------

constexpr int kTotal = 7;  // the upstream's dataset: ids 0..6

TEST(Paginators, OffsetLimitWithTotalPointerStopsWithoutAnExtraRequest) {
  Upstream up([](const ServerRequest& r) {
    const int off = query_int(r, "offset", 0), lim = query_int(r, "limit", 3);
    return reply(R"({"count":7,"results":)" + items(off, std::min(kTotal, off + lim)) + "}");
  });
  Pagination pg;
  pg.kind = Pagination::Kind::OffsetLimit;
  pg.page_size = 3;
  pg.stop_on_short = false;  // only the total may stop it
  pg.total_pointer = "/count";
  auto r = run(make_source("poffset", up.base(), pg, "/results"));
  EXPECT_EQ(r.pages.size(), 3u);
  EXPECT_EQ(r.records(), 7u);
  EXPECT_EQ(r.pages[0].total_records, 7);
  EXPECT_EQ(up.targets().size(), 3u);
  EXPECT_THAT(up.targets()[2], HasSubstr("offset=6"));
}

TEST(Paginators, CursorUntilNull) {
  Upstream up([](const ServerRequest& r) {
    const int at = r.query_param("after").empty() ? 0 : std::stoi(r.query_param("after"));
    const int end = std::min(kTotal, at + 3);
    const std::string next = end < kTotal ? "\"" + std::to_string(end) + "\"" : "null";
    return reply(R"({"items":)" + items(at, end) + R"(,"meta":{"next":)" + next + "}}");
  });
  Pagination pg;
  pg.kind = Pagination::Kind::Cursor;
  pg.cursor_pointer = "/meta/next";
  pg.cursor_param = "after";
  auto r = run(make_source("pcursor", up.base(), pg, "/items"));
  EXPECT_EQ(r.pages.size(), 3u);
  EXPECT_EQ(r.records(), 7u);
  EXPECT_THAT(up.targets()[1], HasSubstr("after=3"));
}

TEST(Paginators, CursorEmptyStringAndNumberCursor) {
  Upstream up([](const ServerRequest& r) {
    if (r.query_param("c").empty()) return reply(R"({"items":[{"id":1}],"c":42})");
    return reply(R"({"items":[{"id":2}],"c":""})");
  });
  Pagination pg;
  pg.kind = Pagination::Kind::Cursor;
  pg.cursor_pointer = "/c";
  pg.cursor_param = "c";
  auto r = run(make_source("pcursor2", up.base(), pg, "/items"));
  EXPECT_EQ(r.pages.size(), 2u);
  EXPECT_THAT(up.targets()[1], HasSubstr("c=42"));
}

TEST(Paginators, LinkHeaderFollowsRelNext) {
  Upstream up([](const ServerRequest& r) {
    const int page = query_int(r, "page", 1);
    std::vector<std::pair<std::string, std::string>> h;
    if (page < 3)
      h.emplace_back("Link", "</items?page=" + std::to_string(page + 1) + "&per_page=3>; rel=\"next\", "
                             "</items?page=3&per_page=3>; rel=\"last\"");
    return reply(items((page - 1) * 3, std::min(kTotal, page * 3)), 200, h);
  });
  Pagination pg;
  pg.kind = Pagination::Kind::LinkHeader;
  auto r = run(make_source("plink", up.base(), pg));
  EXPECT_EQ(r.pages.size(), 3u);
  EXPECT_EQ(r.records(), 7u);
}

TEST(Paginators, HasMoreFlag) {
  Upstream up([](const ServerRequest& r) {
    const int page = query_int(r, "page", 1);
    return reply(R"({"data":)" + items(page * 10, page * 10 + 2) + R"(,"has_more":)" +
                 (page < 2 ? "true" : "false") + "}");
  });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  pg.has_more_pointer = "/has_more";
  auto r = run(make_source("phasmore", up.base(), pg, "/data"));
  EXPECT_EQ(r.pages.size(), 2u);  // full pages, yet has_more:false ends it
}

TEST(Paginators, StopOnEmptyDisabledUsesTheNextLink) {
  // An API whose first page is empty but says where to go next.
  Upstream up([](const ServerRequest& r) {
    if (r.query_param("n").empty()) return reply(R"({"data":[],"next":"/items?n=2"})");
    return reply(R"({"data":[{"id":1}],"next":null})");
  });
  Pagination pg;
  pg.kind = Pagination::Kind::NextUrl;
  pg.next_pointer = "/next";
  auto s = make_source("pempty", up.base(), pg, "/data");
  EXPECT_EQ(run(s).pages.size(), 1u);  // default: the empty page ends it
  s.name = "pempty2";
  s.endpoints[0].pagination.stop_on_empty = false;
  EXPECT_EQ(run(s).records(), 1u);
}

TEST(Paginators, PageCapFails) {
  Upstream up([](const ServerRequest& r) {
    const int page = query_int(r, "page", 1);
    return reply(items(page * 10, page * 10 + 2));
  });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  pg.max_pages = 3;
  auto msg = fetch_error([&] { run(make_source("pcap", up.base(), pg)); });
  EXPECT_THAT(msg, HasSubstr("page 3: page cap of 3 reached"));
  EXPECT_EQ(up.targets().size(), 3u);
}

TEST(Paginators, LinkNextParsing) {
  EXPECT_EQ(link_next(R"(<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last")"),
            "https://a/x?page=2");
  EXPECT_EQ(link_next(R"(<https://a/x?page=9>; rel="last", <https://a/x?page=2>; rel=next)"), "https://a/x?page=2");
  EXPECT_EQ(link_next(R"(<https://a/x?a=1,2>; rel="prev next")"), "https://a/x?a=1,2");
  EXPECT_EQ(link_next(R"(<https://a/x>; rel="last")"), std::nullopt);
  EXPECT_EQ(link_next(""), std::nullopt);
  EXPECT_EQ(link_next("<broken"), std::nullopt);
}

TEST(Paginators, WrongTypesFailClearly) {
  Endpoint e;
  e.pagination.kind = Pagination::Kind::Cursor;
  e.pagination.cursor_pointer = "/c";
  e.pagination.cursor_param = "c";
  PageInfo info;
  info.url = "http://h/x";
  info.records = 1;
  info.records_so_far = 1;
  info.body = R"({"c":{"x":1}})";
  EXPECT_THAT(fetch_error([&] { next_page_url(e, info); }), HasSubstr("cursor_pointer '/c' holds an object"));
  e.pagination.has_more_pointer = "/more";
  info.body = R"({"c":"x","more":"yes"})";
  EXPECT_THAT(fetch_error([&] { next_page_url(e, info); }), HasSubstr("has_more_pointer '/more' holds a string"));
  e.pagination.has_more_pointer.clear();
  e.pagination.total_pointer = "/total";
  info.body = R"({"c":"x","total":"many"})";
  EXPECT_THAT(fetch_error([&] { next_page_url(e, info); }), HasSubstr("total_pointer '/total' holds a string"));
}

// --- rate limits ---------------------------------------------------------------------------------

TEST(RateLimits, MaxConcurrentIsSharedAcrossExtractionsOfTheSource) {
  std::atomic<int> in_flight{0}, max_seen{0};
  Upstream up(
      [&](const ServerRequest& r) {
        const int now = ++in_flight;
        int prev = max_seen.load();
        while (now > prev && !max_seen.compare_exchange_weak(prev, now)) {
        }
        std::this_thread::sleep_for(20ms);  // let requests overlap if the limiter allowed it
        --in_flight;
        const int page = query_int(r, "page", 1);
        return reply(items(page * 10, page * 10 + (page < 4 ? 2 : 1)));
      },
      8);
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  auto s = make_source("rl_shared", up.base(), pg);
  s.rate_limit.max_concurrent = 1;
  std::vector<std::thread> threads;
  std::atomic<int> pages{0};
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&] {
      Fetcher f(fast_http(), RetryPolicy{});
      pages += f.run(s, s.endpoints[0], {}, [](Page&&) {});
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(pages.load(), 12);
  EXPECT_EQ(max_seen.load(), 1);

  // The same load on a source without the limit does overlap (so the check above can fail).
  max_seen = 0;
  auto open = s;
  open.name = "rl_open";
  open.rate_limit = {};
  threads.clear();
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&] {
      Fetcher f(fast_http(), RetryPolicy{});
      f.run(open, open.endpoints[0], {}, [](Page&&) {});
    });
  for (auto& t : threads) t.join();
  EXPECT_GT(max_seen.load(), 1);
}

TEST(RateLimits, RequestsPerSecondSpacesRequests) {
  Upstream up([](const ServerRequest& r) {
    const int page = query_int(r, "page", 1);
    return reply(items(page * 10, page * 10 + (page < 4 ? 2 : 0)));
  });
  Pagination pg;
  pg.kind = Pagination::Kind::PageNumber;
  pg.page_size = 2;
  auto s = make_source("rl_rps", up.base(), pg);
  s.rate_limit.requests_per_second = 5;  // one request per 200 ms
  RecordingSleeper sleeper;
  auto r = run(s, &sleeper);
  EXPECT_EQ(r.pages.size(), 4u);
  // The recording sleeper does not sleep, so each request books the slot 200 ms after the last.
  ASSERT_EQ(sleeper.delays.size(), 3u);
  EXPECT_GT(sleeper.delays[0], 100ms);
  EXPECT_LE(sleeper.delays[0], 200ms);
  EXPECT_GT(sleeper.delays[1], sleeper.delays[0] + 100ms);
  EXPECT_GT(sleeper.delays[2], sleeper.delays[1] + 100ms);
}

TEST(RateLimits, RegistryIsPerSourceName) {
  RateLimit a{2, 1};
  auto x = rate_limiter_for("reg_a", a);
  EXPECT_EQ(x, rate_limiter_for("reg_a", a));
  EXPECT_NE(x, rate_limiter_for("reg_b", a));
  EXPECT_NE(x, rate_limiter_for("reg_a", RateLimit{3, 1}));  // a changed declaration: a new limiter
}

TEST(RateLimits, HeaderParsing) {
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  HttpResponse r;
  EXPECT_EQ(rate_limit_wait(r, now), std::nullopt);
  r.headers = {{"x-ratelimit-remaining", "5"}, {"x-ratelimit-reset", "1700000100"}};
  EXPECT_EQ(rate_limit_wait(r, now), std::nullopt);
  r.headers = {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", "1700000100"}};
  EXPECT_EQ(rate_limit_wait(r, now), 100000ms);
  r.headers = {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", "1699999999"}};  // already past
  EXPECT_EQ(rate_limit_wait(r, now), 0ms);
  r.headers = {{"ratelimit-remaining", "0"}, {"ratelimit-reset", "12"}};
  EXPECT_EQ(rate_limit_wait(r, now), 12000ms);
  r.headers = {{"x-ratelimit-remaining", "0"}};
  EXPECT_EQ(rate_limit_wait(r, now), std::nullopt);
  r.headers = {{"x-ratelimit-remaining", "zero"}, {"x-ratelimit-reset", "10"}};
  EXPECT_EQ(rate_limit_wait(r, now), std::nullopt);
}

// --- params rendering ----------------------------------------------------------------------------

TEST(Params, ListsEnumsAndDatesRenderIntoTheUrl) {
  Source s = make_source("render", "https://api.example.org");
  Endpoint& e = s.endpoints[0];
  e.path = "/repos/{owner}/issues";
  ParamSpec owner;
  owner.name = owner.api_name = "owner";
  owner.in = ParamLocation::Path;
  owner.required = true;
  ParamSpec labels;
  labels.name = labels.api_name = "labels";
  labels.type = ParamType::List;
  ParamSpec vars;
  vars.name = vars.api_name = "vars";
  vars.type = ParamType::List;
  vars.explode = true;
  ParamSpec days;
  days.name = days.api_name = "days";
  days.type = ParamType::List;
  days.item_type = ParamType::Date;
  days.format = "dd/MM/yyyy";
  days.separator = "|";
  ParamSpec state;
  state.name = state.api_name = "state";
  state.type = ParamType::Enum;
  state.values = {"open", "closed"};
  e.params = {owner, labels, vars, days, state};
  auto params = validate_params(e, {{"owner", "a/../b"}, {"labels", "bug,help wanted"}, {"vars", "t,rain"},
                                    {"days", "2024-01-02,2024-02-03"}, {"state", "open"}});
  EXPECT_EQ(first_page_url(s, e, params),
            "https://api.example.org/repos/a%2F..%2Fb/issues?labels=bug%2Chelp%20wanted&vars=t&vars=rain"
            "&days=02%2F01%2F2024%7C03%2F02%2F2024&state=open");
}

// --- incremental -----------------------------------------------------------------------------------

Endpoint incremental_endpoint(ParamType type) {
  Endpoint e;
  e.name = "events";
  ParamSpec since;
  since.name = "since";
  since.api_name = "since";
  since.type = type;
  ParamSpec repo;
  repo.name = "repo";
  repo.api_name = "repo";
  e.params = {since, repo};
  e.incremental = Incremental{"/updated", "since"};
  return e;
}

TEST(Incremental, FetcherReportsTheHighestCursorPerPage) {
  Upstream up([](const ServerRequest&) {
    return reply(R"([{"id":1,"updated":"2024-03-01"},{"id":2,"updated":"2024-03-09"},{"id":3,"updated":null},)"
                 R"({"id":4,"updated":"2024-02-28"},{"id":5}])");
  });
  auto s = make_source("inc", up.base());
  s.endpoints[0].incremental = Incremental{"/updated", "since"};
  auto r = run(s);
  ASSERT_EQ(r.pages.size(), 1u);
  EXPECT_EQ(r.pages[0].records, 5u);
  EXPECT_EQ(r.pages[0].max_cursor, "2024-03-09");
}

TEST(Incremental, Helpers) {
  EXPECT_TRUE(cursor_less("9", "10"));  // numbers compare as numbers
  EXPECT_FALSE(cursor_less("10", "9"));
  EXPECT_TRUE(cursor_less("2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"));
  EXPECT_EQ(max_cursor({R"({"n":9})", R"({"n":10})", R"({"n":"x"})", R"({"m":1})"}, "/n"), "x");
  EXPECT_EQ(max_cursor({R"({"n":9})", R"({"n":10})"}, "/n"), "10");
  EXPECT_EQ(max_cursor({R"({"m":1})"}, "/n"), std::nullopt);
  // A record holding an integer beyond 64 bits still has a cursor; one that is such an integer keeps its digits.
  EXPECT_EQ(max_cursor({R"({"n":"2024-01-02","big":123456789012345678901234})", R"({"n":"2024-01-01"})"}, "/n"),
            "2024-01-02");
  EXPECT_EQ(max_cursor({R"({"n":123456789012345678901234})"}, "/n"), "123456789012345678901234");

  auto e = incremental_endpoint(ParamType::Date);
  EXPECT_EQ(incremental_key(e, {{"since", "2024-01-01"}, {"repo", "x"}}), R"({"repo":"x"})");
  EXPECT_EQ(incremental_key(e, {{"repo", "x"}}), R"({"repo":"x"})");
  EXPECT_EQ(incremental_param_value(e, "2024-03-09T10:11:12Z"), "2024-03-09");  // the boundary day again
  EXPECT_EQ(incremental_param_value(e, "2024-03-09"), "2024-03-09");
  EXPECT_EQ(incremental_param_value(e, "yesterday"), std::nullopt);
  auto n = incremental_endpoint(ParamType::Integer);
  EXPECT_EQ(incremental_param_value(n, "1234"), "1234");
  EXPECT_EQ(incremental_param_value(n, "12.5"), std::nullopt);
}

}  // namespace
}  // namespace apilake
