#include "net/test_routes.h"

#include <boost/asio.hpp>
#include <boost/crc.hpp>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace apilake::testing {

namespace {

// A real gzip stream made of "stored" (uncompressed) deflate blocks: enough for the client to have
// to decode it, without a compression library in the test.
std::string gzip_stored(const std::string& data) {
  std::string out = {'\x1f', '\x8b', '\x08', '\x00', '\0', '\0', '\0', '\0', '\x00', '\xff'};
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(data.size() - pos, 65535);
    const bool last = pos + n == data.size();
    out += static_cast<char>(last ? 1 : 0);
    const auto len = static_cast<uint16_t>(n), nlen = static_cast<uint16_t>(~len);
    out += static_cast<char>(len & 0xff);
    out += static_cast<char>(len >> 8);
    out += static_cast<char>(nlen & 0xff);
    out += static_cast<char>(nlen >> 8);
    out.append(data, pos, n);
    pos += n;
  } while (pos < data.size());
  boost::crc_32_type crc;
  crc.process_bytes(data.data(), data.size());
  auto le32 = [&out](uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  le32(crc.checksum());
  le32(static_cast<uint32_t>(data.size()));
  return out;
}

ServerResponse text(int status, std::string body) {
  ServerResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

ServerResponse redirect(int status, std::string location) {
  ServerResponse r = text(status, "moved");
  r.headers.emplace_back("Location", std::move(location));
  return r;
}

}  // namespace

RouteServer::RouteServer(ServerOptions options)
    : server_([&] {
        options.host = "127.0.0.1";
        options.port = 0;
        return options;
      }(),
              [this](const ServerRequest& req) { return handle(req); }) {
  server_.start();
}

std::string RouteServer::url(const std::string& path_and_query) const {
  return "http://127.0.0.1:" + std::to_string(server_.port()) + path_and_query;
}

int RouteServer::hits(const std::string& path) const {
  std::lock_guard lock(mu_);
  auto it = hits_.find(path);
  return it == hits_.end() ? 0 : it->second;
}

int RouteServer::count(const std::string& path) {
  std::lock_guard lock(mu_);
  return ++hits_[path];
}

ServerResponse RouteServer::handle(const ServerRequest& req) {
  const int n = count(req.path);
  const auto& p = req.path;
  if (p == "/ok") {
    auto r = text(200, "hello");
    r.headers.emplace_back("X-Test", "Value");
    return r;
  }
  if (p.rfind("/echo", 0) == 0) {
    std::string out = "method=" + req.method + "\npath=" + req.path + "\n";
    for (const auto& [k, v] : req.query) out += "q:" + k + "=" + v + "\n";
    out += "x-custom=" + req.header("X-CUSTOM") + "\n";
    out += "body=" + req.body + "\n";
    out += "remote=" + req.remote + "\n";
    return text(200, out);
  }
  if (p == "/fail-twice") return n <= 2 ? text(503, "busy") : text(200, "finally");
  if (p == "/always-503") return text(503, "busy");
  if (p == "/missing") return text(404, "no such thing");
  if (p == "/retry-after") {
    if (n > 1) return text(200, "after");
    auto r = text(503, "later");
    r.headers.emplace_back("Retry-After", "2");
    return r;
  }
  if (p == "/retry-after-long") {
    auto r = text(429, "much later");
    r.headers.emplace_back("Retry-After", "3600");
    return r;
  }
  if (p == "/redirect-same-host") return redirect(302, "/ok");
  if (p == "/redirect-absolute") return redirect(301, url("/ok"));
  if (p == "/redirect-other-host") return redirect(302, "http://example.invalid/elsewhere");
  if (p == "/redirect-loop") return redirect(302, "/redirect-loop");
  if (p == "/see-other") return redirect(303, "/echo/after-303");
  if (p == "/big") return text(200, std::string(4000, 'x'));
  if (p == "/slow") {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    return text(200, "slow");
  }
  if (p == "/gzip") {
    std::string plain;
    for (int i = 0; i < 2000; ++i) plain += "line " + std::to_string(i) + "\n";
    auto r = text(200, gzip_stored(plain));
    r.headers.emplace_back("Content-Encoding", "gzip");
    return r;
  }
  if (p == "/throw") throw std::runtime_error("handler bug");
  if (p == "/bad-header") {
    auto r = text(200, "x");
    r.headers.emplace_back("X-Evil", "a\r\nInjected: yes");
    return r;
  }
  return text(404, "unknown route " + p);
}

uint16_t closed_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acc(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return acc.local_endpoint().port();
}

}  // namespace apilake::testing
