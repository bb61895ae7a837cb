#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <stdexcept>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/test_routes.h"

// Designated initializers that leave defaulted members out are the point of these option structs;
// g++ 12 still flags them under -Wextra.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace apilake {
namespace {

using testing::RouteServer;

TEST(HttpServer, EphemeralPortAndStopIsIdempotent) {
  std::atomic<int> calls{0};
  HttpServer server({.host = "127.0.0.1", .port = 0}, [&](const ServerRequest&) {
    ++calls;
    return ServerResponse{.body = R"({"ok":true})"};
  });
  server.start();
  ASSERT_NE(server.port(), 0);
  HttpClient client;
  auto url = "http://127.0.0.1:" + std::to_string(server.port()) + "/";
  auto res = client.perform({.url = url});
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, R"({"ok":true})");
  EXPECT_EQ(res.header("content-type").value_or(""), "application/json");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_THROW(server.start(), std::runtime_error);
  server.stop();
  server.stop();
  // Stopped means closed: the kept-alive connection is gone and nothing accepts new ones.
  HttpClient fresh;
  try {
    fresh.perform({.url = url});
    ADD_FAILURE() << "server still answering after stop()";
  } catch (const NetError& e) {
    EXPECT_EQ(e.kind, NetError::Kind::Connect) << e.what();
  }
}

TEST(HttpServer, BindConflictThrows) {
  RouteServer first;
  HttpServer second({.host = "127.0.0.1", .port = first.port()}, [](const ServerRequest&) { return ServerResponse{}; });
  EXPECT_THROW(second.start(), std::runtime_error);
  second.stop();  // harmless after a failed start
}

TEST(HttpServer, StopWithoutStartIsHarmless) {
  HttpServer s({.port = 0}, [](const ServerRequest&) { return ServerResponse{}; });
  s.stop();
  s.stop();
}

TEST(HttpServer, OversizedBodyGets413Problem) {
  RouteServer srv({.max_body_bytes = 1024});
  HttpClient client;
  auto res = client.perform({.method = "POST", .url = srv.url("/echo"), .body = std::string(200000, 'a')});
  EXPECT_EQ(res.status, 413);
  EXPECT_EQ(res.header("content-type").value_or(""), "application/problem+json");
  EXPECT_NE(res.body.find(R"("title":"Payload Too Large")"), std::string::npos) << res.body;
  EXPECT_NE(res.body.find(R"("status":413)"), std::string::npos) << res.body;
  EXPECT_NE(res.body.find(R"("type":"about:blank")"), std::string::npos) << res.body;
  EXPECT_NE(res.body.find("1024"), std::string::npos) << res.body;
  EXPECT_EQ(srv.hits("/echo"), 0);
  // A body at the limit is fine (and the server goes on serving).
  auto ok = client.perform({.method = "POST", .url = srv.url("/echo"), .body = std::string(1024, 'b')});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(srv.hits("/echo"), 1);
}

TEST(HttpServer, ThrowingHandlerGives500AndServerSurvives) {
  RouteServer srv;
  HttpClient client;
  auto res = client.perform({.url = srv.url("/throw")});
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.header("content-type").value_or(""), "application/problem+json");
  EXPECT_NE(res.body.find(R"("status":500)"), std::string::npos) << res.body;
  EXPECT_EQ(res.body.find("handler bug"), std::string::npos) << "internal error text must not leak";
  EXPECT_EQ(client.perform({.url = srv.url("/ok")}).status, 200);
}

TEST(HttpServer, InvalidResponseHeaderFromHandlerGives500) {
  RouteServer srv;
  HttpClient client;
  auto res = client.perform({.url = srv.url("/bad-header")});
  EXPECT_EQ(res.status, 500);
  EXPECT_FALSE(res.header("injected").has_value());
}

TEST(HttpServer, HeadAnnouncesLengthWithoutBody) {
  RouteServer srv;
  HttpClient client;
  auto res = client.perform({.method = "HEAD", .url = srv.url("/big")});
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "");
  EXPECT_EQ(res.header("content-length").value_or(""), "4000");
  EXPECT_EQ(srv.hits("/big"), 1);
  // The connection is still in a sane state for the next request.
  EXPECT_EQ(client.perform({.url = srv.url("/ok")}).body, "hello");
}

TEST(HttpServer, RequestAccessors) {
  ServerRequest r;
  r.headers = {{"x-one", "1"}};
  r.query = {{"a", "1"}, {"a", "2"}};
  EXPECT_EQ(r.header("X-One"), "1");
  EXPECT_EQ(r.header("x-two"), "");
  EXPECT_EQ(r.query_param("a"), "1");
  EXPECT_EQ(r.query_param("b"), "");
}

TEST(HttpServer, ConcurrentClients) {
  RouteServer srv({.threads = 2});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      HttpClient client;
      for (int i = 0; i < 25; ++i)
        if (client.perform({.url = srv.url("/ok")}).body == "hello") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(srv.hits("/ok"), 100);
}

}  // namespace
}  // namespace apilake

namespace apilake {
namespace {

// Speaks raw bytes to the server, for requests HttpClient would never send; returns all it answers.
std::string raw_exchange(uint16_t port, const std::string& bytes) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ip::tcp::socket sock(ioc);
  sock.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(sock, asio::buffer(bytes));
  sock.shutdown(asio::ip::tcp::socket::shutdown_send);
  std::string out;
  boost::system::error_code ec;
  char buf[4096];
  for (;;) {
    std::size_t n = sock.read_some(asio::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

TEST(HttpServer, MalformedRequestGets400) {
  RouteServer srv;
  auto out = raw_exchange(srv.port(), "THIS IS NOT HTTP\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
  EXPECT_NE(out.find("application/problem+json"), std::string::npos) << out;
}

TEST(HttpServer, OversizedChunkedBodyGets413) {
  RouteServer srv({.max_body_bytes = 100});
  std::string req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 10; ++i) req += "20\r\n" + std::string(32, 'z') + "\r\n";
  req += "0\r\n\r\n";
  auto out = raw_exchange(srv.port(), req);
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
  EXPECT_EQ(srv.hits("/echo"), 0);
}

TEST(HttpServer, PipelinedKeepAliveRequestsAndHttp10Close) {
  RouteServer srv;
  auto out = raw_exchange(srv.port(),
                          "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?k=v HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(out.find("hello"), std::string::npos) << out;
  EXPECT_NE(out.find("q:k=v"), std::string::npos) << out;
  // HTTP/1.0 without keep-alive: one answer, then the server closes (raw_exchange returns at EOF).
  auto once = raw_exchange(srv.port(), "GET /ok HTTP/1.0\r\n\r\n");
  EXPECT_EQ(once.rfind("HTTP/1.0 200", 0), 0u) << once;
}

// A connection reuses its request storage: the second request must see none of the first's header
// fields or body; header lookup ignores case; escapes in the path are decoded.
TEST(HttpServer, KeptAliveConnectionStartsEachRequestClean) {
  RouteServer srv;
  auto out = raw_exchange(srv.port(),
                          "POST /echo/a HTTP/1.1\r\nHost: x\r\nx-CuStOm: one\r\nContent-Length: 5\r\n\r\nhello"
                          "POST /echo/b%20c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                          "GET /echo/d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const auto first = out.find("path=/echo/a\n");
  const auto second = out.find("path=/echo/b c\n");
  const auto third = out.find("path=/echo/d\n");
  ASSERT_NE(first, std::string::npos) << out;
  ASSERT_NE(second, std::string::npos) << out;
  ASSERT_NE(third, std::string::npos) << out;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  EXPECT_NE(out.find("x-custom=one\nbody=hello\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x-custom=\nbody=abcde\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x-custom=\nbody=\n", third), std::string::npos) << out;
  // Three answers, each framed by its Content-Length; the last one announces the close.
  std::size_t answers = 0;
  for (auto at = out.find("HTTP/1.1 200 OK\r\n"); at != std::string::npos; at = out.find("HTTP/1.1 200 OK\r\n", at + 1))
    ++answers;
  EXPECT_EQ(answers, 3u) << out;
  const auto close = out.find("Connection: close\r\n");
  EXPECT_GT(close, second) << out;
  EXPECT_LT(close, third) << out;
}

// The response head is the server's: the status line with its reason, Server, the handler's
// Content-Type and fields, Content-Length — and no body nor length for the statuses that have none.
TEST(HttpServer, ResponseFramingPerStatus) {
  HttpServer server({.host = "127.0.0.1", .port = 0}, [](const ServerRequest& r) {
    ServerResponse out{.status = std::stoi(r.path.substr(1)), .content_type = "text/plain", .body = "body"};
    out.headers = {{"X-One", "1"}, {"Content-Length", "999"}, {"connection", "upgrade"}};
    return out;
  });
  server.start();
  auto ok = raw_exchange(server.port(), "GET /201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ok, "HTTP/1.1 201 Created\r\nServer: apilake\r\nContent-Type: text/plain\r\nX-One: 1\r\n"
                "Connection: close\r\nContent-Length: 4\r\n\r\nbody");
  auto none = raw_exchange(server.port(), "GET /204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(none, "HTTP/1.1 204 No Content\r\nServer: apilake\r\nContent-Type: text/plain\r\nX-One: 1\r\n"
                  "Connection: close\r\n\r\n");
  auto http10 = raw_exchange(server.port(), "GET /200 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(http10.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << http10;
  EXPECT_NE(http10.find("Connection: keep-alive\r\n"), std::string::npos) << http10;
  server.stop();
}

TEST(HttpServer, AbsoluteFormTarget) {
  RouteServer srv;
  auto out = raw_exchange(srv.port(), "GET http://127.0.0.1/echo/p?a=%41 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(out.find("path=/echo/p"), std::string::npos) << out;
  EXPECT_NE(out.find("q:a=A"), std::string::npos) << out;
}

}  // namespace
}  // namespace apilake
