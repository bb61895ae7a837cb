#include "source/rate_limit.h"

#include <charconv>
#include <cmath>
#include <thread>

namespace apilake {
namespace {

std::optional<long long> header_int(const HttpResponse& r, std::string_view name) {
  auto v = r.header(name);
  if (!v) return std::nullopt;
  std::string_view s = *v;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  long long x = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return x;
}

}  // namespace

RateLimiter::Permit::~Permit() {
  if (!l_) return;
  {
    std::lock_guard lock(l_->mu_);
    --l_->in_flight_;
  }
  l_->cv_.notify_one();
}

RateLimiter::Permit RateLimiter::acquire(const Sleeper& sleep) {
  using clock = std::chrono::steady_clock;
  std::chrono::milliseconds wait{0};
  {
    std::lock_guard lock(mu_);
    const auto now = clock::now();
    auto slot = std::max(now, paused_until_);
    if (limit_.requests_per_second > 0) {
      slot = std::max(slot, next_slot_);
      // Book this slot; the next request may go one interval later.
      next_slot_ = slot + std::chrono::duration_cast<clock::duration>(
                              std::chrono::duration<double>(1.0 / limit_.requests_per_second));
    }
    wait = std::chrono::ceil<std::chrono::milliseconds>(slot - now);
  }
  if (wait.count() > 0) {
    if (sleep) sleep(wait);
    else std::this_thread::sleep_for(wait);
  }
  std::unique_lock lock(mu_);
  if (limit_.max_concurrent > 0) cv_.wait(lock, [&] { return in_flight_ < limit_.max_concurrent; });
  ++in_flight_;
  return Permit(this);
}

void RateLimiter::pause_until(std::chrono::steady_clock::time_point until) {
  std::lock_guard lock(mu_);
  paused_until_ = std::max(paused_until_, until);
}

int RateLimiter::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

std::shared_ptr<RateLimiter> rate_limiter_for(const std::string& source_name, const RateLimit& limit) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<RateLimiter>> registry;
  std::lock_guard lock(mu);
  auto& slot = registry[source_name];
  if (!slot || slot->limit().requests_per_second != limit.requests_per_second ||
      slot->limit().max_concurrent != limit.max_concurrent)
    slot = std::make_shared<RateLimiter>(limit);
  return slot;
}

std::optional<std::chrono::milliseconds> rate_limit_wait(const HttpResponse& response,
                                                         std::chrono::system_clock::time_point now) {
  auto remaining = header_int(response, "x-ratelimit-remaining");
  if (!remaining) remaining = header_int(response, "ratelimit-remaining");
  if (!remaining || *remaining > 0) return std::nullopt;
  if (auto reset = header_int(response, "x-ratelimit-reset")) {
    // GitHub sends epoch seconds; a few APIs send a delta under the same name. Values below
    // 10^9 (2001) cannot be an epoch, so they are read as seconds from now.
    if (*reset < 1000000000LL) return std::chrono::milliseconds(std::max(0LL, *reset) * 1000);
    const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(*reset));
    auto d = std::chrono::ceil<std::chrono::milliseconds>(at - now);
    return std::max(d, std::chrono::milliseconds(0));
  }
  if (auto reset = header_int(response, "ratelimit-reset"))
    return std::chrono::milliseconds(std::max(0LL, *reset) * 1000);
  return std::nullopt;  // quota spent, but no hint when it returns: the retry policy handles a 429
}

}  // namespace apilake
