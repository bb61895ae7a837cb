// A real HttpServer on an ephemeral port serving the routes the net tests exercise.
#pragma once
#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "net/http_server.h"

namespace apilake::testing {

class RouteServer {
 public:
  explicit RouteServer(ServerOptions options = {});
  ~RouteServer() { server_.stop(); }

  std::string url(const std::string& path_and_query) const;
  uint16_t port() const { return server_.port(); }
  // How many requests reached the handler for this path.
  int hits(const std::string& path) const;
  HttpServer& server() { return server_; }

 private:
  ServerResponse handle(const ServerRequest& req);
  int count(const std::string& path);

  mutable std::mutex mu_;
  std::map<std::string, int> hits_;
  HttpServer server_;
};

// A local port with nothing listening on it (bound once, then released).
uint16_t closed_port();

}  // namespace apilake::testing
