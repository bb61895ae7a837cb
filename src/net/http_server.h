// A small HTTP/1.1 server on Boost.Beast/Asio: keep-alive, a body size cap, one io thread per
// `threads`, each running its own io_context (a connection stays on one thread: no strands, no
// shared epoll). Knows nothing of routes: every request goes to the Handler. Used by the API and by
// the demo/test replay of recorded upstream responses.
// Per request it allocates next to nothing: the request is parsed into the connection's reused
// buffers, and the answer goes out as one preformatted head plus the body in one write (TCP_NODELAY).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace apilake {

// One request, valid for the handler call only (the connection reuses its storage for the next
// request): an asynchronous handler copies what its later answer needs.
struct ServerRequest {
  std::string method;                                      // "GET", "POST", ...
  std::string target;                                      // path + query, as sent
  std::string path;                                        // decoded path, no query
  std::vector<std::pair<std::string, std::string>> query;  // decoded query parameters, in order
  // The header fields as received (names as sent: look them up with header(), which ignores case).
  // Views into the connection's buffer, valid like the request itself.
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string body;
  std::string remote;                                      // peer "address:port" (one per connection)
  std::string header(std::string_view name) const;         // "" when absent; name in any case
  std::string query_param(std::string_view name) const;    // "" when absent
};

struct ServerResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

using Handler = std::function<ServerResponse(const ServerRequest&)>;
// Asynchronous handling: the handler returns at once and the answer is given later, from any thread,
// through the Responder — e.g. after a group commit — so the io threads never wait. Call it once;
// a Responder dropped without being called answers 500. HttpServer::stop() waits (up to 10 s) for
// the answers still owed before it tears the connections down.
using Responder = std::function<void(ServerResponse)>;
using AsyncHandler = std::function<void(const ServerRequest&, Responder)>;

// An RFC 9457 problem response (application/problem+json, type about:blank): the one error shape of
// every HTTP answer apilake makes — the server's own, the API's and the demo replay's.
ServerResponse problem(int status, std::string_view title, std::string_view detail);

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;          // 0 = pick a free port (see HttpServer::port())
  int threads = 2;
  std::size_t max_body_bytes = 8u << 20;  // larger request bodies get 413
};

class HttpServer {
 public:
  HttpServer(ServerOptions options, Handler handler);
  HttpServer(ServerOptions options, AsyncHandler handler);
  ~HttpServer();  // stops and joins
  void start();   // binds, listens, runs the threads; throws std::runtime_error if bind fails or
                  // if called twice
  void stop();    // idempotent; closes the listener and every open connection, joins the threads
  uint16_t port() const;  // the bound port

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace apilake
