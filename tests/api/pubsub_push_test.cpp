// POST /v1/pubsub/push through the real HTTP server and Api: an envelope becomes a committed file
// (object ledger in a local lake) before the 2xx; a failing handler gives a 5xx; bad input a 4xx.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/api.h"
#include "app/lake_object_store.h"
#include "bus/consumer.h"
#include "bus/object_ledger.h"
#include "bus/push.h"
#include "bus/sqlite_bus.h"
#include "lake/lake.h"
#include "net/base64.h"
#include "net/http_client.h"
#include "net/http_server.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace apilake {
namespace {

class Dir {
 public:
  Dir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() / ("apilake-push-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path path;
};

// Writes "<id>\t<data>" to one staged file per batch; fails while `fail` is set.
class LinesHandler : public BatchHandler {
 public:
  explicit LinesHandler(Lake& lake) : lake_(lake) {}
  PreparedBatch stage(const std::vector<Message>& batch) override {
    if (fail) throw std::runtime_error("injected handler failure");
    ++calls;
    PreparedBatch b;
    const std::string name = batch.front().id + "-" + batch.back().id;
    const fs::path staged = lake_.staging_dir() / (name + ".txt");
    {
      std::ofstream out(staged, std::ios::binary);
      for (const auto& m : batch) {
        out << m.id << '\t' << m.data << '\t' << m.attributes.at("extraction_id") << '\n';
        b.counts[m.attributes.at("extraction_id")].rows += 1;
      }
    }
    fsync_file(staged);
    b.files.push_back({staged.string(), "out/" + name + ".txt"});
    return b;
  }
  std::atomic<bool> fail{false};
  std::atomic<int> calls{0};

 private:
  Lake& lake_;
};

std::string envelope(const std::string& id, const std::string& data, const std::string& sub = "curate-push") {
  return R"({"subscription":"projects/apilake-test/subscriptions/)" + sub + R"(","message":{"data":")" +
         base64_encode(data) + R"(","attributes":{"extraction_id":"ex-9"},"messageId":")" + id +
         R"(","message_id":")" + id + R"(","publishTime":"2026-11-25T10:47:45.692Z","publish_time":"2026-11-25T10:47:45.692Z"}})";
}

class PushRouteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ApiDeps deps{};  // only what the push route needs; API keys do not apply to it
    deps.sources = &sources;
    deps.ledger = &ledger;
    deps.api_keys = {"api-key"};
    deps.push = &receiver;
    api = std::make_unique<Api>(deps);
    receiver.add("curate-push", consumer);
    ServerOptions so;
    so.port = 0;
    server = std::make_unique<HttpServer>(so, [this](const ServerRequest& r) { return api->handle(r); });
    server->start();
  }
  HttpResponse post(const std::string& body, const std::string& query = "?token=s3cret") {
    return client.perform({"POST", "http://127.0.0.1:" + std::to_string(server->port()) + "/v1/pubsub/push" + query,
                           {{"Content-Type", "application/json"}}, body});
  }
  Dir dir;
  LocalLake lake{dir.path / "lake"};
  LakeObjectStore store{lake};
  SqliteBus bus{dir.path / "bus.db"};  // the ledger's acks: push messages carry no ack ids
  ObjectLedger ledger{store, bus, {"host-a", 0ms}};
  LinesHandler handler{lake};
  Consumer consumer{bus, ledger, handler, [this](const StagedFile& f) { lake.commit_staged(f.staged, f.final); },
                    {"curate", "curate-push", 100, 0ms, 30s, 10ms}};
  PushReceiver receiver{"s3cret"};
  std::vector<Source> sources;
  std::unique_ptr<Api> api;
  std::unique_ptr<HttpServer> server;
  HttpClient client;
};

TEST_F(PushRouteTest, CommitsTheMessageBeforeAnswering2xxAndSkipsRedeliveries) {
  const auto r = post(envelope("76", "{\"a\":1}"));
  EXPECT_EQ(r.status, 204) << r.body;
  // Committed before the answer: the file and the committed manifest exist now.
  ASSERT_EQ(*lake.get("out/76-76.txt"), "76\t{\"a\":1}\tex-9\n");
  EXPECT_TRUE(lake.exists(ObjectLedger::committed_path("curate", "curate-76-76")));
  EXPECT_EQ(ledger.counts("curate", "ex-9").rows, 1);
  // Pub/Sub redelivers (e.g. our 2xx was lost): acknowledged again, not written again.
  const auto again = client.perform({"POST", "http://127.0.0.1:" + std::to_string(server->port()) + "/v1/pubsub/push",
                                     {{"Authorization", "Bearer s3cret"}}, envelope("76", "{\"a\":1}")});
  EXPECT_EQ(again.status, 204) << again.body;
  EXPECT_EQ(handler.calls.load(), 1);
  EXPECT_EQ(lake.list("out/").size(), 1u);
}

TEST_F(PushRouteTest, AFailingHandlerGets5xxSoPubSubRedeliversThenSucceeds) {
  handler.fail = true;
  const auto r = post(envelope("80", "x"));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_TRUE(lake.list("out/").empty());
  EXPECT_TRUE(lake.list("_ledger/").empty());
  handler.fail = false;
  EXPECT_EQ(post(envelope("80", "x")).status, 204);
  EXPECT_TRUE(lake.exists("out/80-80.txt"));
}

TEST_F(PushRouteTest, RejectsBadTokensEnvelopesAndUnknownSubscriptions) {
  EXPECT_EQ(post(envelope("1", "x"), "").status, 401);
  EXPECT_EQ(post(envelope("1", "x"), "?token=wrong").status, 401);
  const auto bad = post("{not json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("not JSON"), std::string::npos) << bad.body;
  EXPECT_EQ(post(R"({"subscription":"projects/p/subscriptions/curate-push","message":{"data":"!!"}})").status, 400);
  // A well-formed envelope the handler cannot take (no extraction_id here): 5xx, Pub/Sub retries and
  // eventually dead-letters it.
  EXPECT_EQ(post(R"({"subscription":"projects/p/subscriptions/curate-push","message":{"data":"eA==","messageId":"5"}})")
                .status,
            503);
  EXPECT_EQ(post(envelope("2", "x", "other-sub")).status, 404);
  const auto get = client.perform({"GET", "http://127.0.0.1:" + std::to_string(server->port()) + "/v1/pubsub/push", {}, ""});
  EXPECT_EQ(get.status, 405);
  EXPECT_TRUE(lake.list("out/").empty());
}

TEST(PushEnvelope, ParsesTheFieldsPubSubSends) {
  std::string sub;
  const auto m = parse_push_envelope(envelope("76", std::string("\0bin", 4)), sub);
  EXPECT_EQ(sub, "curate-push");
  EXPECT_EQ(m.id, "76");
  EXPECT_EQ(m.data, std::string("\0bin", 4));
  EXPECT_EQ(m.attributes.at("extraction_id"), "ex-9");
  EXPECT_EQ(m.publish_time_us, 1795603665692000);
  EXPECT_EQ(m.delivery_attempt, 1);
  EXPECT_TRUE(m.ack_id.empty());
  EXPECT_THROW(parse_push_envelope(R"({"message":{}})", sub), std::invalid_argument);
  EXPECT_THROW(parse_push_envelope(R"({"subscription":"projects/p/subscriptions/s","message":{"data":"eA=="}})", sub),
               std::invalid_argument);
}

}  // namespace
}  // namespace apilake
