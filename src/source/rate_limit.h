// Per-source request pacing shared by every extraction of that source in the process: a token
// bucket (requests_per_second, reservation style: each request books the next free slot) plus a
// counting semaphore (max_concurrent requests in flight), plus a "paused until" instant set when the
// upstream says its quota is spent (X-RateLimit-Remaining: 0 + reset headers). Waits for a slot or a
// pause go through the caller's Sleeper (tests record them instead of sleeping); waiting for a
// concurrency permit blocks on a condition variable (it ends when another request finishes).
#pragma once
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "definition/definition.h"
#include "net/http_client.h"
#include "net/retry.h"

namespace apilake {

class RateLimiter {
 public:
  explicit RateLimiter(RateLimit limit) : limit_(limit) {}
  const RateLimit& limit() const { return limit_; }

  // Holds one concurrency permit for its lifetime.
  class Permit {
   public:
    explicit Permit(RateLimiter* l) : l_(l) {}
    Permit(Permit&& o) noexcept : l_(o.l_) { o.l_ = nullptr; }
    Permit& operator=(Permit&&) = delete;
    ~Permit();

   private:
    RateLimiter* l_;
  };

  // Waits (via sleep) for the source's pause and the next request slot, then for a concurrency
  // permit. The permit is released when the returned object dies.
  Permit acquire(const Sleeper& sleep);

  // The upstream asked for quiet until `until`: every request of this source waits for it.
  void pause_until(std::chrono::steady_clock::time_point until);

  int in_flight() const;

 private:
  RateLimit limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  std::chrono::steady_clock::time_point next_slot_{};
  std::chrono::steady_clock::time_point paused_until_{};
};

// The process-wide limiter of a source (created on first use). A changed declaration (a reloaded
// definition) gets a fresh limiter; extractions already running keep the one they hold.
std::shared_ptr<RateLimiter> rate_limiter_for(const std::string& source_name, const RateLimit& limit);

// How long the upstream asks us to wait before the next request, from rate-limit headers:
// X-RateLimit-Remaining: 0 with X-RateLimit-Reset (epoch seconds, GitHub style) or RateLimit-Reset
// (delta seconds, IETF draft style); also RateLimit-Remaining: 0. nullopt when nothing asks to wait.
std::optional<std::chrono::milliseconds> rate_limit_wait(const HttpResponse& response,
                                                         std::chrono::system_clock::time_point now);

}  // namespace apilake
