// HttpServer's AsyncHandler: answers given later from other threads, dropped responders, and stop()
// waiting for answers still owed.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/http_server.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace apilake {
namespace {

std::string url_of(const HttpServer& s, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(s.port()) + path;
}

// Answers every request from a worker thread, after the handler returned, in batches (like the
// extraction store's group commit): the io threads are free meanwhile.
TEST(HttpServerAsync, AnswersFromAnotherThreadAfterTheHandlerReturned) {
  std::mutex mu;
  std::vector<std::pair<std::string, Responder>> owed;
  std::atomic<bool> done{false};
  std::atomic<int> max_batch{0};
  std::thread answerer([&] {
    while (!done) {
      std::vector<std::pair<std::string, Responder>> batch;
      {
        std::lock_guard lock(mu);
        batch.swap(owed);
      }
      max_batch = std::max<int>(max_batch, static_cast<int>(batch.size()));
      for (auto& [path, reply] : batch) reply(ServerResponse{.status = 202, .body = path});
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  {
    HttpServer server({.host = "127.0.0.1", .port = 0, .threads = 1}, [&](const ServerRequest& r, Responder reply) {
      std::lock_guard lock(mu);
      owed.emplace_back(r.path, std::move(reply));
    });
    server.start();
    // 8 clients at once on ONE io thread: a synchronous handler would serve them one by one; here
    // the io thread takes every request while the answers wait, so batches of several form.
    std::vector<std::future<void>> clients;
    for (int c = 0; c < 8; ++c)
      clients.push_back(std::async(std::launch::async, [&, c] {
        HttpClient client;
        for (int i = 0; i < 20; ++i) {
          auto path = "/c" + std::to_string(c) + "/" + std::to_string(i);
          auto res = client.perform({.url = url_of(server, path)});
          EXPECT_EQ(res.status, 202);
          EXPECT_EQ(res.body, path);  // each answer reaches its own request
        }
      }));
    for (auto& f : clients) f.get();
    server.stop();
  }
  done = true;
  answerer.join();
  EXPECT_GT(max_batch.load(), 1);
}

TEST(HttpServerAsync, DroppedResponderAnswers500) {
  HttpServer server({.host = "127.0.0.1", .port = 0}, [](const ServerRequest&, Responder) {});
  server.start();
  HttpClient client;
  auto res = client.perform({.url = url_of(server, "/x")});
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.header("content-type").value_or(""), "application/problem+json");
  // The connection is still usable.
  EXPECT_EQ(client.perform({.url = url_of(server, "/y")}).status, 500);
}

TEST(HttpServerAsync, SecondAnswerIsIgnoredAndInvalidAnswerGives500) {
  HttpServer server({.host = "127.0.0.1", .port = 0}, [](const ServerRequest& r, Responder reply) {
    if (r.path == "/bad") return reply(ServerResponse{.status = 7});
    reply(ServerResponse{.body = "first"});
    reply(ServerResponse{.body = "second"});
  });
  server.start();
  HttpClient client;
  auto res = client.perform({.url = url_of(server, "/twice")});
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "first");
  EXPECT_EQ(client.perform({.url = url_of(server, "/bad")}).status, 500);
}

// stop() sends the answers still owed before tearing the connections down.
TEST(HttpServerAsync, StopWaitsForOwedAnswers) {
  std::promise<Responder> handed;
  auto got = handed.get_future();
  HttpServer server({.host = "127.0.0.1", .port = 0}, [&](const ServerRequest&, Responder reply) {
    handed.set_value(std::move(reply));
  });
  server.start();
  auto request = std::async(std::launch::async, [&] {
    HttpClient client;
    return client.perform({.url = url_of(server, "/slow")});
  });
  Responder reply = got.get();
  std::atomic<bool> answered{false};
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    answered = true;
    reply(ServerResponse{.status = 202, .body = "late"});
  });
  server.stop();  // returns only after the late answer was handed over
  EXPECT_TRUE(answered.load());
  late.join();
  auto res = request.get();
  EXPECT_EQ(res.status, 202);
  EXPECT_EQ(res.body, "late");
}

}  // namespace
}  // namespace apilake
