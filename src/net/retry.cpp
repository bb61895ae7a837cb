#include "net/retry.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <limits>
#include <thread>

namespace apilake {

bool RetryPolicy::retryable_status(long status) {
  switch (status) {
    case 408: case 425: case 429: case 500: case 502: case 503: case 504:
      return true;
    default:
      return false;
  }
}

std::chrono::milliseconds RetryPolicy::delay(int attempt, std::optional<std::chrono::milliseconds> retry_after,
                                             std::mt19937_64& rng) const {
  if (retry_after) return std::max(*retry_after, std::chrono::milliseconds{0});
  attempt = std::max(attempt, 1);
  const long long base = std::max<long long>(base_delay.count(), 0);
  const long long cap = std::max<long long>(max_delay.count(), 0);
  // base * 2^(attempt-1), saturating at cap without overflowing.
  long long ceiling = base;
  for (int i = 1; i < attempt && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  // Full jitter: spreads clients that failed together over the whole window.
  std::uniform_int_distribution<long long> dist(0, ceiling);
  return std::chrono::milliseconds{dist(rng)};
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.remove_prefix(1);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;

  if (std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); })) {
    // Saturate absurd values instead of overflowing; the caller compares against max_retry_after.
    constexpr long long kMaxSeconds = std::numeric_limits<long long>::max() / 1000;
    long long secs = 0;
    for (char c : value) {
      secs = secs * 10 + (c - '0');
      if (secs >= kMaxSeconds) {
        secs = kMaxSeconds;
        break;
      }
    }
    return std::chrono::milliseconds{secs * 1000};
  }

  // HTTP-date: IMF-fixdate, plus the two obsolete forms RFC 9110 says recipients must accept.
  const std::string s(value);
  static constexpr const char* kFormats[] = {
      "%a, %d %b %Y %H:%M:%S GMT",  // Sun, 06 Nov 1994 08:49:37 GMT
      "%A, %d-%b-%y %H:%M:%S GMT",  // Sunday, 06-Nov-94 08:49:37 GMT
      "%a %b %e %H:%M:%S %Y",       // Sun Nov  6 08:49:37 1994
  };
  for (const char* fmt : kFormats) {
    std::tm tm{};
    const char* end = strptime(s.c_str(), fmt, &tm);
    if (!end || *end != '\0') continue;
    const std::time_t when = timegm(&tm);
    if (when == static_cast<std::time_t>(-1)) continue;
    const auto target = std::chrono::system_clock::from_time_t(when);
    const auto now = std::chrono::system_clock::now();
    if (target <= now) return std::chrono::milliseconds{0};
    return std::chrono::duration_cast<std::chrono::milliseconds>(target - now);
  }
  return std::nullopt;
}

HttpResponse perform_with_retry(HttpClient& client, const HttpRequest& request, const RetryPolicy& policy,
                                const Sleeper& sleep, int* attempts_made) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const Sleeper real_sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  const Sleeper& do_sleep = sleep ? sleep : real_sleep;
  const int max_attempts = std::max(policy.max_attempts, 1);

  for (int attempt = 1;; ++attempt) {
    if (attempts_made) *attempts_made = attempt;
    HttpResponse res;
    try {
      res = client.perform(request);
    } catch (const NetError& e) {
      const bool permanent = e.kind == NetError::Kind::HostNotAllowed || e.kind == NetError::Kind::BadUrl ||
                             e.kind == NetError::Kind::TooLarge;
      if (permanent || attempt >= max_attempts) throw;
      do_sleep(policy.delay(attempt, std::nullopt, rng));
      continue;
    }
    if (!RetryPolicy::retryable_status(res.status) || attempt >= max_attempts) return res;
    std::optional<std::chrono::milliseconds> retry_after;
    if (auto h = res.header("retry-after")) retry_after = parse_retry_after(*h);
    // The server asks for a longer pause than we accept: hand its answer back rather than block.
    if (retry_after && *retry_after > policy.max_retry_after) return res;
    do_sleep(policy.delay(attempt, retry_after, rng));
  }
}

}  // namespace apilake
