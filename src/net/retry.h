// Retry policy for outbound requests: exponential backoff with full jitter on 429, 5xx and transport
// errors (timeouts, connection failures), honouring Retry-After (seconds or HTTP date), capped.
#pragma once
#include <chrono>
#include <functional>
#include <optional>
#include <random>

#include "net/http_client.h"

namespace apilake {

struct RetryPolicy {
  int max_attempts = 5;                              // total tries, including the first
  std::chrono::milliseconds base_delay{200};
  std::chrono::milliseconds max_delay{10000};
  std::chrono::milliseconds max_retry_after{60000};  // a longer Retry-After fails instead of waiting

  static bool retryable_status(long status);         // 408, 425, 429, 500, 502, 503, 504
  // Delay before attempt number `attempt` (1 = first retry); retry_after wins when present.
  std::chrono::milliseconds delay(int attempt, std::optional<std::chrono::milliseconds> retry_after,
                                  std::mt19937_64& rng) const;
};

// Parses a Retry-After value: delta-seconds or an HTTP-date (relative to now).
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value);

using Sleeper = std::function<void(std::chrono::milliseconds)>;

// Performs the request with the policy. Returns the last response (which may be a non-retryable or
// exhausted 4xx/5xx — the caller decides what a status means); rethrows the last NetError if every
// attempt failed in transport. HostNotAllowed / BadUrl / TooLarge are never retried.
HttpResponse perform_with_retry(HttpClient& client, const HttpRequest& request, const RetryPolicy& policy,
                                const Sleeper& sleep = {}, int* attempts_made = nullptr);

}  // namespace apilake
