#include "net/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <boost/url.hpp>
#include <cctype>
#include <mutex>

#include <fmt/format.h>

namespace apilake {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

void global_init() {
  // curl_global_init is not thread-safe and must run once before any easy handle exists.
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw NetError(NetError::Kind::Transport, "curl_global_init failed");
  });
}

// Per-transfer state shared with the curl callbacks.
struct Transfer {
  std::size_t max_body = 0;
  bool keep_body = true;      // redirect hops: count the bytes (cap) but drop them
  bool too_large = false;
  std::size_t received = 0;
  std::string body;
  Headers headers;
};

size_t on_body(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  if (t->received + n > t->max_body) {
    t->too_large = true;
    return 0;  // makes curl abort with CURLE_WRITE_ERROR
  }
  t->received += n;
  if (t->keep_body) t->body.append(data, n);
  return n;
}

size_t on_header(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  std::string_view line(data, n);
  // A status line starts a new response (interim 1xx responses come before the final one): only
  // the final response's headers are reported.
  if (line.substr(0, 5) == "HTTP/") {
    t->headers.clear();
    return n;
  }
  if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
    // Obsolete line folding: continuation of the previous header's value.
    if (!t->headers.empty()) {
      auto more = trim(line);
      if (!more.empty()) {
        t->headers.back().second += ' ';
        t->headers.back().second.append(more);
      }
    }
    return n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return n;  // blank line ending the block, or junk
  t->headers.emplace_back(lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  return n;
}

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

bool has_crlf(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

NetError::Kind kind_of(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return NetError::Kind::Timeout;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return NetError::Kind::Connect;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return NetError::Kind::BadUrl;
    case CURLE_FILESIZE_EXCEEDED:
      return NetError::Kind::TooLarge;
    default:
      return NetError::Kind::Transport;
  }
}

bool is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return std::nullopt;
}

std::optional<std::string> url_host(std::string_view url) {
  auto r = boost::urls::parse_absolute_uri(url);
  if (!r) return std::nullopt;
  auto scheme = r->scheme_id();
  if (scheme != boost::urls::scheme::http && scheme != boost::urls::scheme::https) return std::nullopt;
  if (!r->has_authority()) return std::nullopt;
  // host_address() drops the brackets of an IPv6 literal and percent-decodes a reg-name.
  std::string host = r->host_address();
  if (host.empty()) return std::nullopt;
  return lower(host);
}

std::string url_encode(std::string_view s) {
  return boost::urls::encode(s, boost::urls::unreserved_chars);
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
  global_init();
  for (auto& h : options_.allowed_hosts) h = lower(h);
  curl_ = curl_easy_init();
  if (!curl_) throw NetError(NetError::Kind::Transport, "curl_easy_init failed");
}

void HttpClient::set_allowed_hosts(std::vector<std::string> hosts) {
  for (auto& h : hosts) h = lower(h);
  options_.allowed_hosts = std::move(hosts);
}

HttpClient::~HttpClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResponse HttpClient::perform(const HttpRequest& request) {
  using Kind = NetError::Kind;
  CURL* curl = static_cast<CURL*>(curl_);

  auto check_host = [&](const std::string& url, bool redirected) {
    auto host = url_host(url);
    if (!host)
      throw NetError(Kind::BadUrl, fmt::format("{}not an absolute http(s) URL: '{}'",
                                               redirected ? "redirect target is " : "", url));
    if (!options_.allowed_hosts.empty() &&
        std::find(options_.allowed_hosts.begin(), options_.allowed_hosts.end(), *host) ==
            options_.allowed_hosts.end())
      throw NetError(Kind::HostNotAllowed,
                     fmt::format("{}host '{}' is not in the allowed hosts (url '{}')",
                                 redirected ? "redirect to " : "", *host, url));
    return *host;
  };

  for (const auto& [k, v] : request.headers)
    if (k.empty() || has_crlf(k) || has_crlf(v) || k.find(':') != std::string::npos)
      throw NetError(Kind::Transport, fmt::format("invalid request header '{}' for {}", k, request.url));

  std::string url = request.url;
  std::string method = request.method.empty() ? "GET" : request.method;
  std::string body = request.body;
  Headers headers = request.headers;
  std::string host = check_host(url, false);

  // The timeout covers the whole exchange, redirects included.
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;

  for (int hop = 0;; ++hop) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0)
      throw NetError(Kind::Timeout, fmt::format("{} {}: timed out after {} ms (redirects)", method, url,
                                                options_.timeout.count()));

    // Reset clears options but keeps the connection cache: that is the keep-alive.
    curl_easy_reset(curl);
    Transfer t;
    t.max_body = options_.max_body_bytes;
    char errbuf[CURL_ERROR_SIZE] = {0};

    Slist list;
    auto append = [&](const std::string& line) {
      curl_slist* head = curl_slist_append(list.get(), line.c_str());
      if (!head) throw NetError(Kind::Transport, "out of memory building request headers");
      (void)list.release();  // head is the same list, now one longer (or a new one if it was empty)
      list.reset(head);
    };
    bool has_expect = false;
    for (const auto& [k, v] : headers) {
      if (iequals(k, "expect")) has_expect = true;
      // "Name;" is curl's way to send a header with an empty value.
      append(v.empty() ? k + ";" : k + ": " + v);
    }
    // Servers rarely answer "100 Continue"; curl would otherwise stall a second on large bodies.
    if (!has_expect) append("Expect:");

    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min(options_.connect_timeout, remaining).count()));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
    // Lets curl refuse early when Content-Length already announces too much.
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_body_bytes));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list.get());

    if (method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
      if (method != "POST") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    } else {
      curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
      if (method != "GET") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    }

    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
      Kind kind = t.too_large ? Kind::TooLarge : kind_of(rc);
      std::string detail = kind == Kind::TooLarge
                               ? fmt::format("response body exceeds {} bytes", options_.max_body_bytes)
                               : std::string(errbuf[0] ? errbuf : curl_easy_strerror(rc));
      throw NetError(kind, fmt::format("{} {}: {}", method, url, detail));
    }

    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    char* next_url = nullptr;
    curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &next_url);

    if (!is_redirect(status) || !next_url) {
      HttpResponse res;
      res.status = status;
      res.headers = std::move(t.headers);
      res.body = std::move(t.body);
      res.effective_url = url;
      return res;
    }

    if (hop >= options_.max_redirects)
      throw NetError(Kind::Transport, fmt::format("{} {}: more than {} redirects", request.method,
                                                  request.url, options_.max_redirects));
    std::string target = next_url;  // curl resolved a relative Location against url
    std::string next_host = check_host(target, true);
    if (next_host != host) {
      // Credentials were meant for the original host only.
      std::erase_if(headers, [](const auto& h) {
        return iequals(h.first, "authorization") || iequals(h.first, "cookie") ||
               iequals(h.first, "proxy-authorization");
      });
    }
    // 303 always, and 301/302 after a POST, turn into a GET without a body (what browsers and curl
    // do); 307/308 repeat the request as it was.
    if (status == 303 || ((status == 301 || status == 302) && method == "POST")) {
      if (method != "HEAD") method = "GET";
      body.clear();
      std::erase_if(headers, [](const auto& h) {
        return iequals(h.first, "content-type") || iequals(h.first, "content-length");
      });
    }
    url = std::move(target);
    host = std::move(next_host);
  }
}

}  // namespace apilake
