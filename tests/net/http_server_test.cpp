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

TEST(HttpServer, AbsoluteFormTarget) {
  RouteServer srv;
  auto out = raw_exchange(srv.port(), "GET http://127.0.0.1/echo/p?a=%41 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(out.find("path=/echo/p"), std::string::npos) << out;
  EXPECT_NE(out.find("q:a=A"), std::string::npos) << out;
}

}  // namespace
}  // namespace apilake
