// The one outbound HTTP client (libcurl). Used by sources, and later by Pub/Sub and the S3 lake.
// Contract: perform() never follows a redirect to a host outside HttpOptions::allowed_hosts, caps
// bodies at max_body_bytes, applies connect and total timeouts, and throws NetError for anything
// that is not an HTTP response. Retrying is the caller's choice (see retry.h). Thread-compatible:
// one HttpClient per thread (it keeps its connection cache: keep-alive across perform() calls; a
// kept connection is only reused for the same scheme, host and port).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace apilake {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string body;
};

struct HttpResponse {
  long status = 0;
  Headers headers;          // names lower-cased
  std::string body;         // decoded (gzip/deflate accepted)
  std::string effective_url;
  // Case-insensitive header lookup; nullopt when absent.
  std::optional<std::string> header(std::string_view name) const;
};

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{30000};         // whole transfer
  std::size_t max_body_bytes = 64u << 20;
  std::vector<std::string> allowed_hosts;           // empty = any host (internal use only)
  int max_redirects = 5;
  std::string user_agent = "apilake/0.1";
};

struct NetError : std::runtime_error {
  enum class Kind { Timeout, Connect, TooLarge, HostNotAllowed, BadUrl, Transport };
  Kind kind;
  NetError(Kind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResponse perform(const HttpRequest& request);
  const HttpOptions& options() const { return options_; }
  // Replaces the allow-list for the following perform() calls (empty = any host), so one client and
  // its kept connections can serve runs against different hosts (the fetcher: one client per
  // worker thread, restricted to each run's source host).
  void set_allowed_hosts(std::vector<std::string> hosts);

 private:
  HttpOptions options_;
  void* curl_ = nullptr;  // CURL*, reused for keep-alive
};

// Host of an absolute http(s) URL, lower-cased, without port; nullopt if not parseable.
std::optional<std::string> url_host(std::string_view url);
// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view s);

}  // namespace apilake
