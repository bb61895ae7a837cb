#include <gtest/gtest.h>

#include <ctime>
#include <vector>

#include "net/retry.h"
#include "net/test_routes.h"

// Designated initializers that leave defaulted members out are the point of these option structs;
// g++ 12 still flags them under -Wextra.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace apilake {
namespace {

using std::chrono::milliseconds;
using testing::RouteServer;

struct RecordingSleeper {
  std::vector<milliseconds> delays;
  Sleeper fn() {
    return [this](milliseconds d) { delays.push_back(d); };
  }
};

TEST(Retry, RetriesUntilSuccess) {
  RouteServer srv;
  HttpClient client;
  RetryPolicy policy{.max_attempts = 5, .base_delay = milliseconds(100), .max_delay = milliseconds(1000)};
  RecordingSleeper sleeper;
  int attempts = 0;
  auto res = perform_with_retry(client, {.url = srv.url("/fail-twice")}, policy, sleeper.fn(), &attempts);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "finally");
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(srv.hits("/fail-twice"), 3);
  ASSERT_EQ(sleeper.delays.size(), 2u);
  EXPECT_LE(sleeper.delays[0], milliseconds(100));
  EXPECT_LE(sleeper.delays[1], milliseconds(200));
  EXPECT_GE(sleeper.delays[0], milliseconds(0));
}

TEST(Retry, DoesNotRetryNonRetryableStatus) {
  RouteServer srv;
  HttpClient client;
  RecordingSleeper sleeper;
  int attempts = 0;
  auto res = perform_with_retry(client, {.url = srv.url("/missing")}, RetryPolicy{}, sleeper.fn(), &attempts);
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(attempts, 1);
  EXPECT_TRUE(sleeper.delays.empty());
  EXPECT_EQ(srv.hits("/missing"), 1);
}

TEST(Retry, ReturnsLastResponseWhenExhausted) {
  RouteServer srv;
  HttpClient client;
  RecordingSleeper sleeper;
  int attempts = 0;
  auto res = perform_with_retry(client, {.url = srv.url("/always-503")}, RetryPolicy{.max_attempts = 3},
                                sleeper.fn(), &attempts);
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(sleeper.delays.size(), 2u);
  EXPECT_EQ(srv.hits("/always-503"), 3);
}

TEST(Retry, HonoursRetryAfter) {
  RouteServer srv;
  HttpClient client;
  RecordingSleeper sleeper;
  int attempts = 0;
  auto res = perform_with_retry(client, {.url = srv.url("/retry-after")}, RetryPolicy{}, sleeper.fn(), &attempts);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(attempts, 2);
  ASSERT_EQ(sleeper.delays.size(), 1u);
  EXPECT_EQ(sleeper.delays[0], milliseconds(2000));
}

TEST(Retry, RetryAfterBeyondCapReturnsResponseWithoutWaiting) {
  RouteServer srv;
  HttpClient client;
  RecordingSleeper sleeper;
  int attempts = 0;
  auto res = perform_with_retry(client, {.url = srv.url("/retry-after-long")}, RetryPolicy{}, sleeper.fn(), &attempts);
  EXPECT_EQ(res.status, 429);
  EXPECT_EQ(res.header("retry-after").value_or(""), "3600");
  EXPECT_EQ(attempts, 1);
  EXPECT_TRUE(sleeper.delays.empty());
}

TEST(Retry, TransportErrorsAreRetriedThenRethrown) {
  HttpClient client;
  RecordingSleeper sleeper;
  int attempts = 0;
  auto url = "http://127.0.0.1:" + std::to_string(testing::closed_port()) + "/";
  try {
    perform_with_retry(client, {.url = url}, RetryPolicy{.max_attempts = 3}, sleeper.fn(), &attempts);
    ADD_FAILURE() << "expected NetError";
  } catch (const NetError& e) {
    EXPECT_EQ(e.kind, NetError::Kind::Connect);
  }
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(sleeper.delays.size(), 2u);
}

TEST(Retry, PermanentErrorsAreNotRetried) {
  RouteServer srv;
  RecordingSleeper sleeper;
  int attempts = 0;
  HttpClient restricted({.allowed_hosts = {"127.0.0.1"}});
  EXPECT_THROW(perform_with_retry(restricted, {.url = srv.url("/redirect-other-host")}, RetryPolicy{}, sleeper.fn(),
                                  &attempts),
               NetError);
  EXPECT_EQ(attempts, 1);
  HttpClient small({.max_body_bytes = 10});
  EXPECT_THROW(perform_with_retry(small, {.url = srv.url("/big")}, RetryPolicy{}, sleeper.fn(), &attempts), NetError);
  EXPECT_EQ(attempts, 1);
  EXPECT_THROW(perform_with_retry(small, {.url = "gopher://x/"}, RetryPolicy{}, sleeper.fn(), &attempts), NetError);
  EXPECT_EQ(attempts, 1);
  EXPECT_TRUE(sleeper.delays.empty());
}

TEST(Retry, DefaultSleeperReallySleeps) {
  RouteServer srv;
  HttpClient client;
  RetryPolicy policy{.max_attempts = 2, .base_delay = milliseconds(1), .max_delay = milliseconds(1)};
  int attempts = 0;
  auto res = perform_with_retry(client, {.url = srv.url("/always-503")}, policy, {}, &attempts);
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(attempts, 2);
}

TEST(RetryPolicy, RetryableStatuses) {
  for (long s : {408, 425, 429, 500, 502, 503, 504}) EXPECT_TRUE(RetryPolicy::retryable_status(s)) << s;
  for (long s : {200, 301, 400, 401, 403, 404, 501, 505}) EXPECT_FALSE(RetryPolicy::retryable_status(s)) << s;
}

TEST(RetryPolicy, FullJitterStaysInBoundsAndSpreads) {
  RetryPolicy p{.base_delay = milliseconds(100), .max_delay = milliseconds(1500)};
  std::mt19937_64 rng(42);
  for (int attempt = 1; attempt <= 8; ++attempt) {
    const long long cap = std::min<long long>(1500, 100LL << (attempt - 1));
    long long lo = cap, hi = 0;
    for (int i = 0; i < 2000; ++i) {
      const long long d = p.delay(attempt, std::nullopt, rng).count();
      ASSERT_GE(d, 0);
      ASSERT_LE(d, cap) << "attempt " << attempt;
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    // Full jitter covers the whole window, not just its top.
    EXPECT_LT(lo, cap / 10) << "attempt " << attempt;
    EXPECT_GT(hi, cap * 9 / 10) << "attempt " << attempt;
  }
  // Huge attempt numbers saturate instead of overflowing.
  for (int i = 0; i < 100; ++i) EXPECT_LE(p.delay(10000, std::nullopt, rng), milliseconds(1500));
  EXPECT_LE(p.delay(0, std::nullopt, rng), milliseconds(100));
}

TEST(RetryPolicy, RetryAfterWinsExactly) {
  RetryPolicy p;
  std::mt19937_64 rng(1);
  EXPECT_EQ(p.delay(1, milliseconds(2500), rng), milliseconds(2500));
  EXPECT_EQ(p.delay(3, milliseconds(30000), rng), milliseconds(30000));  // beyond max_delay: still exact
  EXPECT_EQ(p.delay(3, milliseconds(0), rng), milliseconds(0));
}

std::string http_date(std::time_t t) {
  char buf[64];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

TEST(ParseRetryAfter, DeltaSeconds) {
  EXPECT_EQ(parse_retry_after("120"), milliseconds(120000));
  EXPECT_EQ(parse_retry_after("0"), milliseconds(0));
  EXPECT_EQ(parse_retry_after("  7 "), milliseconds(7000));
  auto huge = parse_retry_after("99999999999999999999999999");
  ASSERT_TRUE(huge.has_value());
  EXPECT_GT(*huge, milliseconds(std::chrono::hours(24 * 365)));
}

TEST(ParseRetryAfter, HttpDate) {
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), milliseconds(0));  // in the past
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT"), milliseconds(0));
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994"), milliseconds(0));
  auto future = parse_retry_after(http_date(std::time(nullptr) + 90));
  ASSERT_TRUE(future.has_value());
  EXPECT_GT(*future, milliseconds(85000));
  EXPECT_LE(*future, milliseconds(90000));
}

TEST(ParseRetryAfter, Junk) {
  for (const char* junk : {"", "   ", "soon", "-5", "1.5", "5s", "Wed, 21 Oct 2015 07:28:00",
                           "Wed, 21 Oct 2015 07:28:00 GMT trailing", "Wed, 32 Oct 2015 07:28:00 GMT",
                           "Xyz, 21 Oct 2015 07:28:00 GMT"})
    EXPECT_FALSE(parse_retry_after(junk).has_value()) << "'" << junk << "'";
}

}  // namespace
}  // namespace apilake
