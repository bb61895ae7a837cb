// PubSubBus and the object ledger against the real Pub/Sub emulator (tests/bus/pubsub_emulator.h).
#include "bus/pubsub_bus.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <boost/json.hpp>

#include "app/lake_object_store.h"
#include "bus/consumer.h"
#include "bus/object_ledger.h"
#include "lake/lake.h"
#include "net/base64.h"
#include "pubsub_emulator.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace apilake {
namespace {

[[maybe_unused]] auto* const kEmulatorEnv = ::testing::AddGlobalTestEnvironment(new test::PubSubEmulatorEnvironment);

// Names unique within the binary's one emulator.
std::string unique(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

PubSubOptions emulator_options() {
  PubSubOptions o = test::PubSubEmulator::options();
  o.timeout = 20s;
  return o;
}

// Pulls until `want` messages arrived or a generous bound passes (the emulator may split them).
std::vector<Message> pull_n(PubSubBus& bus, const std::string& sub, std::size_t want,
                            std::chrono::seconds bound = 30s) {
  std::vector<Message> out;
  const auto until = std::chrono::steady_clock::now() + bound;
  while (out.size() < want && std::chrono::steady_clock::now() < until) {
    auto got = bus.pull(sub, want - out.size(), 60s);
    if (got.empty()) std::this_thread::sleep_for(50ms);
    for (auto& m : got) out.push_back(std::move(m));
  }
  return out;
}

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s + std::string("\0\0tail", 6);
}

TEST(Base64, RoundTripsAndRejectsGarbage) {
  for (std::size_t n = 0; n < 300; ++n) {
    const std::string s = all_bytes().substr(0, n);
    EXPECT_EQ(base64_decode(base64_encode(s)), s) << n;
    EXPECT_EQ(base64url_decode(base64url_encode(s)), s) << n;
    EXPECT_EQ(base64_encode(s).size(), base64_encoded_size(s.size()));
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_THROW(base64_decode("Zm9"), std::invalid_argument);
  EXPECT_THROW(base64_decode("Zm=v"), std::invalid_argument);
  EXPECT_THROW(base64_decode("Zm9v!mFy"), std::invalid_argument);
  EXPECT_THROW(base64url_decode("ab+c"), std::invalid_argument);
}

TEST(Rfc3339, ParsesFractionsAndOffsets) {
  EXPECT_EQ(parse_rfc3339_us("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339_us("2026-11-25T10:47:45.692Z"), 1795603665692000);
  EXPECT_EQ(parse_rfc3339_us("2026-11-25T10:47:45.692123456Z"), 1795603665692123);
  EXPECT_EQ(parse_rfc3339_us("2026-11-25T12:47:45.692+02:00"), 1795603665692000);
  EXPECT_THROW(parse_rfc3339_us("2026-11-25 10:47:45"), std::invalid_argument);
  EXPECT_THROW(parse_rfc3339_us("2026-13-25T10:47:45Z"), std::invalid_argument);
  EXPECT_THROW(parse_rfc3339_us("2026-11-25T10:47:45.Z"), std::invalid_argument);
}

TEST(PubSubBusOptions, RejectsLimitsThePubSubServerWouldRefuse) {
  PubSubOptions o;
  o.project = "apilake-test";
  o.max_batch_bytes = 10'000'000;
  EXPECT_THROW(PubSubBus{o}, std::invalid_argument);
  o.max_batch_bytes = 1'000'000;
  o.max_batch_messages = 1001;
  EXPECT_THROW(PubSubBus{o}, std::invalid_argument);
  o.max_batch_messages = 10;
  o.max_delivery_attempts = 4;
  EXPECT_THROW(PubSubBus{o}, std::invalid_argument);
}

TEST(PubSubBusEmulator, CreatesIdempotentlyAndRoundTripsBinaryDataAndAttributes) {
  PubSubBus bus(emulator_options());
  const auto topic = unique("pages"), sub = unique("curate");
  bus.create_topic(topic);
  bus.create_topic(topic);  // 409 ALREADY_EXISTS is fine
  bus.create_subscription(sub, topic);
  bus.create_subscription(sub, topic);

  const int64_t before_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  OutMessage m{all_bytes(), {{"extraction_id", "ex-1"}, {"page", "1"}, {"source", "bcb"}}, ""};
  OutMessage empty{"", {{"extraction_id", "ex-1"}, {"page", "2"}}, ""};
  const auto ids = bus.publish(topic, {m, empty});
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_NE(ids[0], ids[1]);

  auto got = pull_n(bus, sub, 2);
  ASSERT_EQ(got.size(), 2u);
  std::map<std::string, Message> by_id;
  for (auto& g : got) by_id[g.id] = g;
  ASSERT_TRUE(by_id.count(ids[0]) && by_id.count(ids[1]));
  EXPECT_EQ(by_id[ids[0]].data, all_bytes());
  EXPECT_EQ(by_id[ids[0]].attributes, m.attributes);
  EXPECT_EQ(by_id[ids[1]].data, "");
  EXPECT_EQ(by_id[ids[0]].delivery_attempt, 1);
  EXPECT_FALSE(by_id[ids[0]].ack_id.empty());
  // publishTime is the server's clock (same machine): not before our publish, minus clock slop.
  EXPECT_GE(by_id[ids[0]].publish_time_us, before_us - 2'000'000);

  bus.ack(sub, {got[0].ack_id, got[1].ack_id});
  // Acked: a nack of the old ack ids cannot bring them back.
  bus.nack(sub, {got[0].ack_id, got[1].ack_id});
  EXPECT_TRUE(bus.pull(sub, 10, 60s).empty());
}

TEST(PubSubBusEmulator, PublishesTheOrderingKeyFromTheExtractionId) {
  PubSubBus bus(emulator_options());
  const auto topic = unique("ordered"), sub = unique("sub");
  bus.create_topic(topic);
  bus.create_subscription(sub, topic);
  bus.publish(topic, {{"a", {{"extraction_id", "ex-42"}}, ""}, {"b", {}, ""}});
  // Message has no ordering key field: read the raw pull response.
  HttpClient client;
  std::string raw;
  const auto until = std::chrono::steady_clock::now() + 30s;
  std::size_t received = 0;
  while (received < 2 && std::chrono::steady_clock::now() < until) {
    auto r = client.perform({"POST",
                             "http://" + test::PubSubEmulator::host() + "/v1/projects/apilake-test/subscriptions/" +
                                 sub + ":pull",
                             {{"Content-Type", "application/json"}},
                             R"({"maxMessages":10,"returnImmediately":true})"});
    ASSERT_EQ(r.status, 200) << r.body;
    auto doc = boost::json::parse(r.body).as_object();
    if (auto* rm = doc.if_contains("receivedMessages")) {
      for (auto& x : rm->as_array()) {
        ++received;
        const auto& msg = x.at("message").as_object();
        const auto data = base64_decode(msg.at("data").as_string());
        if (data == "a") {
          ASSERT_TRUE(msg.contains("orderingKey"));
          EXPECT_EQ(msg.at("orderingKey").as_string(), "ex-42");
        } else {
          EXPECT_FALSE(msg.contains("orderingKey")) << "no extraction_id, no key";
        }
      }
    }
  }
  EXPECT_EQ(received, 2u);
}

TEST(PubSubBusEmulator, NackRedeliversAndExpiredLeaseRedelivers) {
  PubSubBus bus(emulator_options());
  const auto topic = unique("t"), sub = unique("s");
  bus.create_topic(topic);
  bus.create_subscription(sub, topic);
  const auto id = bus.publish(topic, {{"x", {}, ""}}).at(0);
  auto first = pull_n(bus, sub, 1);
  ASSERT_EQ(first.size(), 1u);
  bus.nack(sub, {first[0].ack_id});
  auto second = pull_n(bus, sub, 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, id);
  EXPECT_EQ(second[0].data, "x");
  // Lease expiry: shorten the lease to 1 s with extend() and do not ack; it must come back.
  bus.extend(sub, {second[0].ack_id}, 1s);
  auto third = pull_n(bus, sub, 1);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].id, id);
  bus.ack(sub, {third[0].ack_id});
}

TEST(PubSubBusEmulator, PullHonoursTheLeaseAskedFor) {
  PubSubBus bus(emulator_options());  // subscription ack deadline 10 s
  const auto topic = unique("t"), sub = unique("s");
  bus.create_topic(topic);
  bus.create_subscription(sub, topic);
  const auto id = bus.publish(topic, {{"y", {}, ""}}).at(0);
  std::vector<Message> first;
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (first.empty() && std::chrono::steady_clock::now() < until) first = bus.pull(sub, 1, 1s);
  ASSERT_EQ(first.size(), 1u);
  // Not acked and leased for 1 s (not 10 s): it is delivered again.
  auto again = pull_n(bus, sub, 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, id);
  bus.ack(sub, {again[0].ack_id});
}

TEST(PubSubBusEmulator, DeadLettersAfterFiveDeliveryAttempts) {
  auto o = emulator_options();
  o.ordering = false;  // dead letters + ordering crash the emulator (shared/notes/pubsub.md)
  o.dead_letter_topic = unique("dead");
  PubSubBus bus(o);
  const auto topic = unique("t"), sub = unique("s");
  bus.create_topic(topic);
  bus.create_subscription(sub, topic);
  const auto id = bus.publish(topic, {{"poison", {{"k", "v"}}, ""}}).at(0);
  for (int attempt = 1; attempt <= 5; ++attempt) {
    auto got = pull_n(bus, sub, 1);
    ASSERT_EQ(got.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(got[0].delivery_attempt, attempt);
    bus.nack(sub, {got[0].ack_id});
  }
  // The emulator forwards a message to the dead-letter topic when its next delivery is due, so keep
  // pulling the source (nothing must come: it would be a 6th attempt) until the dead letter shows up.
  std::vector<Message> dead;
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (dead.empty() && std::chrono::steady_clock::now() < until) {
    auto again = bus.pull(sub, 10, 60s);
    for (const auto& m : again) ADD_FAILURE() << "delivered again after 5 attempts: attempt " << m.delivery_attempt;
    dead = bus.pull(o.dead_letter_topic, 1, 60s);
    if (dead.empty()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].data, "poison");
  EXPECT_EQ(dead[0].attributes.at("k"), "v");
  EXPECT_TRUE(dead[0].attributes.count("CloudPubSubDeadLetterSourceDeliveryCount"));
  bus.ack(o.dead_letter_topic, {dead[0].ack_id});
  // Gone from the source subscription.
  EXPECT_TRUE(bus.pull(sub, 10, 60s).empty());
  (void)id;
}

TEST(PubSubBusEmulator, SplitsPublishRequestsByBytesAndCount) {
  PubSubBus bus(emulator_options());
  const auto topic = unique("big"), sub = unique("s");
  bus.create_topic(topic);
  bus.create_subscription(sub, topic);
  // 12 × 1 MB = 16 MB once base64-encoded: cannot be one request under 10 MB.
  std::vector<OutMessage> big;
  for (int i = 0; i < 12; ++i) big.push_back({std::string(1'000'000, static_cast<char>('a' + i)), {{"i", std::to_string(i)}}, ""});
  const auto before = bus.publish_requests();
  const auto ids = bus.publish(topic, big);
  const auto requests = bus.publish_requests() - before;
  EXPECT_GE(requests, 2u);
  EXPECT_LE(requests, 12u);
  ASSERT_EQ(ids.size(), 12u);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 12u);
  auto got = pull_n(bus, sub, 12);
  ASSERT_EQ(got.size(), 12u);
  std::vector<std::string> acks;
  for (const auto& m : got) {
    const int i = std::stoi(m.attributes.at("i"));
    EXPECT_EQ(m.data, big[static_cast<std::size_t>(i)].data);
    acks.push_back(m.ack_id);
  }
  bus.ack(sub, acks);

  // By count: 2500 small messages need at least 3 requests of ≤ 1000.
  std::vector<OutMessage> many(2500, OutMessage{"m", {}, ""});
  const auto before2 = bus.publish_requests();
  EXPECT_EQ(bus.publish(topic, many).size(), 2500u);
  EXPECT_GE(bus.publish_requests() - before2, 3u);
}

TEST(PubSubBusEmulator, ConcurrentPublishersAllGetTheirOwnIds) {
  PubSubBus bus(emulator_options());
  const auto topic = unique("conc"), sub = unique("s");
  bus.create_topic(topic);
  bus.create_subscription(sub, topic);
  std::vector<std::vector<std::string>> ids(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      std::vector<OutMessage> b;
      for (int i = 0; i < 25; ++i) b.push_back({std::to_string(t) + ":" + std::to_string(i), {}, ""});
      ids[static_cast<std::size_t>(t)] = bus.publish(topic, b);
    });
  for (auto& th : threads) th.join();
  std::map<std::string, std::string> expected;  // id -> data
  for (int t = 0; t < 8; ++t)
    for (int i = 0; i < 25; ++i) expected[ids[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)]] = std::to_string(t) + ":" + std::to_string(i);
  ASSERT_EQ(expected.size(), 200u);
  auto got = pull_n(bus, sub, 200);  // 200 > 100: parallel pulls
  ASSERT_EQ(got.size(), 200u);
  for (const auto& m : got) EXPECT_EQ(m.data, expected.at(m.id));
}

TEST(PubSubBusEmulator, ReportsServerErrorsClearly) {
  PubSubBus bus(emulator_options());
  try {
    bus.pull("no-such-subscription-x", 1, 60s);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("404"), std::string::npos) << e.what();
  }
}

// Pulled bodies keep kMessageDataSlack spare bytes (bus.h) so the curator parses them in place.
TEST(PubSubBusEmulator, PulledBodiesHaveSpareCapacityForInPlaceParsing) {
  PubSubBus bus(emulator_options());
  const auto topic = unique("pages"), sub = unique("curate");
  bus.create_topic(topic);
  bus.create_subscription(sub, topic);
  bus.publish(topic, {{std::string(3001, 'p'), {{"extraction_id", "ex-1"}}, ""}, {"{}", {{"extraction_id", "ex-1"}}, ""}});
  auto got = pull_n(bus, sub, 2);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& m : got) EXPECT_GE(m.data.capacity() - m.data.size(), kMessageDataSlack) << m.data.size();
  bus.ack(sub, {got[0].ack_id, got[1].ack_id});
}

}  // namespace
}  // namespace apilake

