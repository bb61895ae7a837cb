#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "net/http_client.h"
#include "net/test_routes.h"

// Designated initializers that leave defaulted members out are the point of these option structs;
// g++ 12 still flags them under -Wextra.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace apilake {
namespace {

using testing::RouteServer;

std::string line_of(const std::string& body, const std::string& prefix) {
  auto pos = body.find("\n" + prefix);
  if (body.rfind(prefix, 0) == 0) pos = 0;
  else if (pos != std::string::npos) ++pos;
  if (pos == std::string::npos) return "<missing " + prefix + ">";
  auto end = body.find('\n', pos);
  return body.substr(pos + prefix.size(), end - pos - prefix.size());
}

NetError::Kind kind_of(HttpClient& client, const HttpRequest& req, std::string* message = nullptr) {
  try {
    client.perform(req);
  } catch (const NetError& e) {
    if (message) *message = e.what();
    return e.kind;
  }
  ADD_FAILURE() << "expected a NetError for " << req.url;
  return NetError::Kind::Transport;
}

TEST(HttpClient, StatusBodyAndLowerCasedHeaders) {
  RouteServer srv;
  HttpClient client;
  auto res = client.perform({.url = srv.url("/ok")});
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "hello");
  EXPECT_EQ(res.effective_url, srv.url("/ok"));
  EXPECT_EQ(res.header("X-TEST").value_or(""), "Value");
  EXPECT_EQ(res.header("x-test").value_or(""), "Value");
  EXPECT_EQ(res.header("Server").value_or(""), "apilake");
  EXPECT_EQ(res.header("content-type").value_or(""), "text/plain");
  EXPECT_FALSE(res.header("x-absent").has_value());
  for (const auto& [name, value] : res.headers)
    for (char c : name) EXPECT_FALSE(c >= 'A' && c <= 'Z') << name;
}

TEST(HttpClient, ServerDecodesPathQueryAndSeesMethodBodyHeaders) {
  RouteServer srv;
  HttpClient client;
  HttpRequest req;
  req.method = "POST";
  req.url = srv.url("/echo/a%20b?x=1&name=hello%20world&plus=a+b&enc=x%2By&flag&u=%E2%9C%93&x=2");
  req.headers = {{"X-Custom", "yes"}, {"Content-Type", "text/plain"}};
  req.body = "payload";
  auto res = client.perform(req);
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(line_of(res.body, "method="), "POST");
  EXPECT_EQ(line_of(res.body, "path="), "/echo/a b");
  EXPECT_EQ(line_of(res.body, "x-custom="), "yes");
  EXPECT_EQ(line_of(res.body, "body="), "payload");
  // Order kept, duplicates kept, '+' is a space, %2B a plus, a bare key has an empty value.
  auto q_start = res.body.find("q:");
  auto q_end = res.body.find("x-custom=");
  EXPECT_EQ(res.body.substr(q_start, q_end - q_start),
            "q:x=1\nq:name=hello world\nq:plus=a b\nq:enc=x+y\nq:flag=\nq:u=\xE2\x9C\x93\nq:x=2\n");
}

TEST(HttpClient, PutAndDeleteMethods) {
  RouteServer srv;
  HttpClient client;
  auto put = client.perform({.method = "PUT", .url = srv.url("/echo"), .body = "v"});
  EXPECT_EQ(line_of(put.body, "method="), "PUT");
  EXPECT_EQ(line_of(put.body, "body="), "v");
  auto del = client.perform({.method = "DELETE", .url = srv.url("/echo")});
  EXPECT_EQ(line_of(del.body, "method="), "DELETE");
  EXPECT_EQ(line_of(del.body, "body="), "");
}

TEST(HttpClient, KeepAliveReusesOneConnectionPerClient) {
  RouteServer srv;
  HttpClient a;
  std::set<std::string> remotes;
  for (int i = 0; i < 4; ++i) {
    auto res = a.perform({.url = srv.url("/echo")});
    ASSERT_EQ(res.status, 200);
    remotes.insert(line_of(res.body, "remote="));
  }
  EXPECT_EQ(remotes.size(), 1u);
  EXPECT_NE(remotes.begin()->find("127.0.0.1:"), std::string::npos);
  HttpClient b;
  auto other = line_of(b.perform({.url = srv.url("/echo")}).body, "remote=");
  EXPECT_NE(other, *remotes.begin());
}

TEST(HttpClient, FollowsRedirectsOnTheSameHost) {
  RouteServer srv;
  HttpClient client({.allowed_hosts = {"127.0.0.1"}});
  auto res = client.perform({.url = srv.url("/redirect-same-host")});
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "hello");
  EXPECT_EQ(res.effective_url, srv.url("/ok"));
  EXPECT_FALSE(res.header("location").has_value()) << "headers must be the final response's";
  auto abs = client.perform({.url = srv.url("/redirect-absolute")});
  EXPECT_EQ(abs.status, 200);
  EXPECT_EQ(abs.body, "hello");
}

TEST(HttpClient, SeeOtherTurnsPostIntoGet) {
  RouteServer srv;
  HttpClient client;
  auto res = client.perform({.method = "POST", .url = srv.url("/see-other"), .body = "data"});
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(line_of(res.body, "method="), "GET");
  EXPECT_EQ(line_of(res.body, "path="), "/echo/after-303");
  EXPECT_EQ(line_of(res.body, "body="), "");
}

TEST(HttpClient, RefusesRedirectToAnotherHost) {
  RouteServer srv;
  HttpClient client({.allowed_hosts = {"127.0.0.1"}});
  std::string msg;
  EXPECT_EQ(kind_of(client, {.url = srv.url("/redirect-other-host")}, &msg), NetError::Kind::HostNotAllowed);
  EXPECT_NE(msg.find("example.invalid"), std::string::npos) << msg;
  EXPECT_NE(msg.find("redirect"), std::string::npos) << msg;
}

TEST(HttpClient, ChecksTheInitialHostBeforeSending) {
  RouteServer srv;
  HttpClient client({.allowed_hosts = {"API.Example.com"}});
  std::string msg;
  EXPECT_EQ(kind_of(client, {.url = srv.url("/ok")}, &msg), NetError::Kind::HostNotAllowed);
  EXPECT_NE(msg.find("127.0.0.1"), std::string::npos) << msg;
  EXPECT_EQ(srv.hits("/ok"), 0);
}

// A client reused across runs (the fetcher's per-thread client) takes each run's allow-list: the
// kept connection serves the allowed host again, and a host no longer allowed is refused before
// anything is sent, kept connection or not.
TEST(HttpClient, SetAllowedHostsAppliesToAReusedClient) {
  RouteServer srv;
  HttpClient client({.allowed_hosts = {"127.0.0.1"}});
  auto first = line_of(client.perform({.url = srv.url("/echo")}).body, "remote=");
  client.set_allowed_hosts({"API.Example.com"});
  std::string msg;
  EXPECT_EQ(kind_of(client, {.url = srv.url("/echo")}, &msg), NetError::Kind::HostNotAllowed);
  EXPECT_NE(msg.find("127.0.0.1"), std::string::npos) << msg;
  client.set_allowed_hosts({"127.0.0.1"});
  EXPECT_EQ(line_of(client.perform({.url = srv.url("/echo")}).body, "remote="), first);
  EXPECT_EQ(kind_of(client, {.url = srv.url("/redirect-other-host")}), NetError::Kind::HostNotAllowed);
}

TEST(HttpClient, StopsAfterMaxRedirects) {
  RouteServer srv;
  HttpClient client({.max_redirects = 3});
  std::string msg;
  EXPECT_EQ(kind_of(client, {.url = srv.url("/redirect-loop")}, &msg), NetError::Kind::Transport);
  EXPECT_NE(msg.find("redirects"), std::string::npos) << msg;
  EXPECT_EQ(srv.hits("/redirect-loop"), 4);  // the first request and three redirects
}

TEST(HttpClient, CapsTheBody) {
  RouteServer srv;
  HttpClient client({.max_body_bytes = 1000});
  std::string msg;
  EXPECT_EQ(kind_of(client, {.url = srv.url("/big")}, &msg), NetError::Kind::TooLarge);
  EXPECT_NE(msg.find("1000"), std::string::npos) << msg;
  // The same client is still usable afterwards.
  EXPECT_EQ(client.perform({.url = srv.url("/ok")}).body, "hello");
  HttpClient roomy({.max_body_bytes = 4000});
  EXPECT_EQ(roomy.perform({.url = srv.url("/big")}).body.size(), 4000u);
}

TEST(HttpClient, TimesOut) {
  RouteServer srv({.threads = 4});
  HttpClient client({.timeout = std::chrono::milliseconds(200)});
  auto t0 = std::chrono::steady_clock::now();
  std::string msg;
  EXPECT_EQ(kind_of(client, {.url = srv.url("/slow")}, &msg), NetError::Kind::Timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(650));
  EXPECT_NE(msg.find("/slow"), std::string::npos) << msg;
}

TEST(HttpClient, ConnectionRefusedIsConnect) {
  HttpClient client;
  std::string msg;
  auto url = "http://127.0.0.1:" + std::to_string(testing::closed_port()) + "/x";
  EXPECT_EQ(kind_of(client, {.url = url}, &msg), NetError::Kind::Connect);
  EXPECT_NE(msg.find(url), std::string::npos) << msg;
}

TEST(HttpClient, RejectsBadUrls) {
  HttpClient client;
  for (std::string url : {"", "not a url", "ftp://example.com/file", "http://", "/relative/path", "file:///etc/passwd"})
    EXPECT_EQ(kind_of(client, {.url = url}), NetError::Kind::BadUrl) << url;
}

TEST(HttpClient, RejectsHeaderInjection) {
  RouteServer srv;
  HttpClient client;
  EXPECT_THROW(client.perform({.url = srv.url("/ok"), .headers = {{"X-A", "v\r\nX-B: w"}}}), NetError);
  EXPECT_EQ(srv.hits("/ok"), 0);
}

TEST(HttpClient, DecodesGzip) {
  RouteServer srv;
  HttpClient client;
  auto res = client.perform({.url = srv.url("/gzip")});
  ASSERT_EQ(res.status, 200);
  std::string expected;
  for (int i = 0; i < 2000; ++i) expected += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(res.body, expected);
  EXPECT_EQ(res.header("content-encoding").value_or(""), "gzip");
}

TEST(HttpClient, Non2xxIsAResponseNotAnError) {
  RouteServer srv;
  HttpClient client;
  auto res = client.perform({.url = srv.url("/missing")});
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(res.body, "no such thing");
}

TEST(UrlHelpers, Host) {
  EXPECT_EQ(url_host("https://API.Example.com:8443/v1?q=1").value_or(""), "api.example.com");
  EXPECT_EQ(url_host("http://user:pw@example.org/").value_or(""), "example.org");
  EXPECT_EQ(url_host("http://127.0.0.1:9/x").value_or(""), "127.0.0.1");
  EXPECT_EQ(url_host("http://[::1]:8080/").value_or(""), "::1");
  EXPECT_FALSE(url_host("ftp://example.com/").has_value());
  EXPECT_FALSE(url_host("/just/a/path").has_value());
  EXPECT_FALSE(url_host("http://").has_value());
  EXPECT_FALSE(url_host("not a url").has_value());
}

TEST(UrlHelpers, Encode) {
  EXPECT_EQ(url_encode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(url_encode("a b&c=d/e?f+g"), "a%20b%26c%3Dd%2Fe%3Ff%2Bg");
  EXPECT_EQ(url_encode("\xE2\x9C\x93"), "%E2%9C%93");
  EXPECT_EQ(url_encode(""), "");
}

}  // namespace
}  // namespace apilake
