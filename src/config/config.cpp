#include "config/config.h"

#include <charconv>
#include <cstdlib>
#include <stdexcept>

namespace apilake {
namespace {

template <class T>
void number_from_env(const char* name, T& out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return;
  std::string_view s(v);
  T parsed{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), parsed);
  if (ec != std::errc() || p != s.data() + s.size())
    throw std::invalid_argument(std::string(name) + ": not a number: '" + v + "'");
  out = parsed;
}

void string_from_env(const char* name, std::string& out) {
  if (const char* v = std::getenv(name); v && *v) out = v;
}

}  // namespace

void apply_env(Config& c) {
  string_from_env("APILAKE_DATA_DIR", c.data_dir);
  string_from_env("APILAKE_SOURCES", c.sources_dir);
  string_from_env("APILAKE_HOST", c.host);
  number_from_env("APILAKE_PORT", c.port);
  if (const char* v = std::getenv("APILAKE_DEMO"); v && *v) c.demo = std::string(v) == "1" || std::string(v) == "true";
  if (const char* v = std::getenv("APILAKE_API_KEYS"); v && *v) {
    c.api_keys.clear();
    std::string s(v);
    for (std::size_t start = 0; start <= s.size();) {
      auto end = s.find(',', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) c.api_keys.push_back(s.substr(start, end - start));
      start = end + 1;
    }
  }
  number_from_env("APILAKE_HTTP_THREADS", c.http_threads);
  number_from_env("APILAKE_FETCH_WORKERS", c.fetch_workers);
  number_from_env("APILAKE_BATCH_MAX_MESSAGES", c.batch_max_messages);
  number_from_env("APILAKE_BATCH_MAX_AGE_MS", c.batch_max_age_ms);
  number_from_env("APILAKE_ACK_DEADLINE_S", c.ack_deadline_s);
  number_from_env("APILAKE_MAX_DELIVERY_ATTEMPTS", c.max_delivery_attempts);
  number_from_env("APILAKE_QUERY_TIMEOUT_MS", c.query_timeout_ms);
  string_from_env("APILAKE_LOG_LEVEL", c.log_level);
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

}  // namespace apilake
