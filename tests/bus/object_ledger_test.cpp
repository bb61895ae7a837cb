// The object ledger (manifests in the lake) with the Consumer over the real Pub/Sub emulator.
#include "bus/object_ledger.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "app/lake_object_store.h"
#include "bus/consumer.h"
#include "bus/pubsub_bus.h"
#include "lake/lake.h"
#include "pubsub_emulator.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace apilake {
namespace {

std::string unique_name(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "-ol-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

PubSubOptions emulator() { return test::PubSubEmulator::options(); }

// A real file-writing handler: one staged file per batch in the lake's staging dir ("<id>\t<data>"
// lines), final name from the first and last message id, one row per message for extraction_id.
class LinesHandler : public BatchHandler {
 public:
  explicit LinesHandler(Lake& lake) : lake_(lake) {}
  PreparedBatch stage(const std::vector<Message>& batch) override {
    PreparedBatch b;
    const std::string name = batch.front().id + "-" + batch.back().id;
    const fs::path staged = lake_.staging_dir() / (name + "." + std::to_string(++calls_) + ".txt");
    {
      std::ofstream out(staged, std::ios::binary);
      for (const auto& m : batch) {
        out << m.id << '\t' << m.data << '\n';
        b.counts[m.attributes.count("extraction_id") ? m.attributes.at("extraction_id") : ""].rows += 1;
        last_ack_ids.push_back(m.ack_id);
      }
    }
    fsync_file(staged);
    b.files.push_back({staged.string(), "out/" + name + ".txt"});
    return b;
  }
  std::vector<std::string> last_ack_ids;

 private:
  Lake& lake_;
  int calls_ = 0;
};

// message id -> how many times it is in the lake's out/ files
std::map<std::string, int> lines_in_lake(Lake& lake) {
  std::map<std::string, int> seen;
  for (const auto& path : lake.list("out/")) {
    std::istringstream in(*lake.get(path));
    std::string line;
    while (std::getline(in, line)) ++seen[line.substr(0, line.find('\t'))];
  }
  return seen;
}

class ObjectLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bus = std::make_unique<PubSubBus>(emulator());
    topic = unique_name("pages");
    sub = unique_name("curate");
    bus->create_topic(topic);
    bus->create_subscription(sub, topic);
  }
  std::vector<std::string> publish(int n, const std::string& extraction) {
    std::vector<OutMessage> batch;
    for (int i = 0; i < n; ++i) batch.push_back({"page-" + std::to_string(i), {{"extraction_id", extraction}}, ""});
    return bus->publish(topic, batch);
  }
  // Runs the consumer until `want` messages were committed or a generous bound passed.
  static std::size_t drain(Consumer& c, std::size_t want) {
    std::size_t done = 0;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (done < want && std::chrono::steady_clock::now() < until) {
      const auto n = c.run_once(true);
      done += n;
      if (n == 0) std::this_thread::sleep_for(50ms);
    }
    return done;
  }
  test::TempDir dir;
  LocalLake lake{dir / "lake"};
  LakeObjectStore store{lake};
  std::unique_ptr<PubSubBus> bus;
  std::string topic, sub;
  CommitFile commit = [this](const StagedFile& f) { lake.commit_staged(f.staged, f.final); };
};

TEST_F(ObjectLedgerTest, CommitsManifestsAndAcksSoNothingComesBack) {
  ObjectLedger ledger(store, *bus, {"host-a", 0ms});
  LinesHandler handler(lake);
  Consumer consumer(*bus, ledger, handler, commit, {"curate", sub, 100, 0ms, 30s, 10ms});
  const auto ids = publish(10, "ex-1");
  EXPECT_EQ(drain(consumer, 10), 10u);
  const auto lines = lines_in_lake(lake);
  ASSERT_EQ(lines.size(), 10u);
  for (const auto& id : ids) EXPECT_EQ(lines.at(id), 1);
  EXPECT_EQ(ledger.counts("curate", "ex-1").rows, 10);
  // Manifests: committed ones only; the prepared objects are cleaned up.
  const auto objects = lake.list("_ledger/curate/");
  ASSERT_FALSE(objects.empty());
  for (const auto& o : objects) EXPECT_NE(o.find(".committed.json"), std::string::npos) << o;
  // Acked: a nack of the recorded ack ids cannot bring them back.
  bus->nack(sub, handler.last_ack_ids);
  EXPECT_TRUE(bus->pull(sub, 100, 30s).empty());
  // Another process (its own ledger object) learns the committed ids and counts from the lake.
  ObjectLedger other(store, *bus, {"host-b", 0ms});
  for (const auto& id : ids) EXPECT_TRUE(other.seen("curate", id));
  EXPECT_FALSE(other.seen("curate", "999999999"));
  EXPECT_EQ(other.counts("curate", "ex-1").rows, 10);
  EXPECT_EQ(other.counts("archive", "ex-1").rows, 0);
  EXPECT_TRUE(other.pending("curate").empty());
}

TEST_F(ObjectLedgerTest, ExactlyOnceWhenAProcessDiesAfterPrepare) {
  const auto ids = publish(8, "ex-2");
  LinesHandler handler(lake);
  {
    // Process 1 stages and prepares, then "dies" before moving its file (the commit throws).
    ObjectLedger ledger(store, *bus, {"host-a", 0ms});
    bool crash = true;
    CommitFile dying = [&](const StagedFile& f) {
      if (crash) throw std::runtime_error("simulated crash before the move");
      commit(f);
    };
    Consumer consumer(*bus, ledger, handler, dying, {"curate", sub, 100, 0ms, 30s, 10ms});
    std::size_t pulled = 0;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (handler.last_ack_ids.size() < 8 && std::chrono::steady_clock::now() < until) {
      pulled += consumer.run_once(true);
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(pulled, 0u);
    ASSERT_EQ(handler.last_ack_ids.size(), 8u);
    ASSERT_FALSE(ledger.pending("curate").empty());
  }
  EXPECT_TRUE(lines_in_lake(lake).empty());
  // Its leases "expire": the messages are delivered again while the batch is still pending.
  bus->nack(sub, handler.last_ack_ids);

  // The process restarts (same instance id, fresh state): recovery rolls the batch forward, and the
  // redeliveries are recognised as committed and only acked.
  ObjectLedger ledger(store, *bus, {"host-a", 0ms});
  LinesHandler handler2(lake);
  Consumer consumer(*bus, ledger, handler2, commit, {"curate", sub, 100, 0ms, 30s, 10ms});
  consumer.recover();
  EXPECT_TRUE(ledger.pending("curate").empty());
  std::map<std::string, int> lines = lines_in_lake(lake);
  ASSERT_EQ(lines.size(), 8u);
  // Drain the redeliveries: none may reach the handler.
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < until) {
    EXPECT_EQ(consumer.run_once(true), 0u);
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(handler2.last_ack_ids.empty()) << "a committed message was handed to the handler again";
  lines = lines_in_lake(lake);
  for (const auto& id : ids) EXPECT_EQ(lines.at(id), 1) << id;
  EXPECT_EQ(ledger.counts("curate", "ex-2").rows, 8);
}

TEST_F(ObjectLedgerTest, PendingIsScopedToTheInstanceAndAbandonForgets) {
  ObjectLedger a(store, *bus, {"host-a", 0ms});
  ObjectLedger b(store, *bus, {"host-b", 0ms});
  PreparedBatch batch;
  batch.consumer = "curate";
  batch.batch_id = "curate-1-2";
  batch.message_ids = {"1", "2"};
  batch.ack_ids = {"", ""};
  a.prepare(batch);
  EXPECT_EQ(a.pending("curate").size(), 1u);
  EXPECT_TRUE(b.pending("curate").empty()) << "another process's staged files are not on this machine";
  EXPECT_TRUE(a.seen("curate", "1"));   // own open batch
  EXPECT_FALSE(b.seen("curate", "1"));  // not committed anywhere
  a.abandon(batch, sub);
  EXPECT_TRUE(a.pending("curate").empty());
  EXPECT_FALSE(a.seen("curate", "1"));
  PreparedBatch never;
  never.consumer = "curate";
  never.batch_id = "curate-7-7";
  EXPECT_THROW(a.commit(never, sub), std::logic_error);
}

TEST_F(ObjectLedgerTest, TheLoserOfARaceOnARedeliveredMessageRollsBackItsFiles) {
  ObjectLedger a(store, *bus, {"host-a", 0ms});
  ObjectLedger b(store, *bus, {"host-b", 0ms});
  auto stage = [&](const std::string& batch_id, std::vector<std::string> ids, const std::string& final) {
    PreparedBatch p;
    p.consumer = "curate";
    p.batch_id = batch_id;
    p.message_ids = std::move(ids);
    p.ack_ids.assign(p.message_ids.size(), "");
    p.counts["ex"].rows = static_cast<int64_t>(p.message_ids.size());
    const auto staged = lake.staging_dir() / (batch_id + ".txt");
    std::ofstream(staged) << batch_id;
    p.files.push_back({staged.string(), final});
    return p;
  };
  // Both processes hold message 5 (a redelivery after a lease ran out) in different batches.
  const auto pa = stage("curate-4-5", {"4", "5"}, "out/4-5.txt");
  const auto pb = stage("curate-5-6", {"5", "6"}, "out/5-6.txt");
  a.prepare(pa);
  b.prepare(pb);
  commit(pa.files[0]);
  commit(pb.files[0]);
  a.commit(pa, sub);
  b.commit(pb, sub);  // loses: 5 is already committed by a
  EXPECT_TRUE(lake.exists("out/4-5.txt"));
  EXPECT_FALSE(lake.exists("out/5-6.txt")) << "the loser's file must be removed";
  EXPECT_FALSE(lake.exists(ObjectLedger::committed_path("curate", "curate-5-6")));
  EXPECT_FALSE(lake.exists(ObjectLedger::prepared_path("curate", "curate-5-6")));
  EXPECT_TRUE(b.seen("curate", "5"));
  EXPECT_FALSE(b.seen("curate", "6")) << "6 was only in the rolled-back batch: it must be processed again";
  EXPECT_EQ(b.counts("curate", "ex").rows, 2);
}

// Gap: Pub/Sub cannot drop a republished page (a serve process that died mid-extraction runs it
// again: same extraction_id:page, new message ids). The dedup key is the identity the ledger uses.
class RepublishTest : public ObjectLedgerTest {
 protected:
  std::vector<std::string> publish_pages(const std::string& extraction, int first, int last) {
    std::vector<OutMessage> batch;
    for (int p = first; p <= last; ++p)
      batch.push_back({"page-" + std::to_string(p), {{"extraction_id", extraction}},
                       extraction + ":" + std::to_string(p)});
    return bus->publish(topic, batch);
  }
  // data ("page-N") -> how many times it is in the lake
  std::map<std::string, int> pages_in_lake() {
    std::map<std::string, int> out;
    for (const auto& path : lake.list("out/")) {
      std::istringstream in(*lake.get(path));
      std::string line;
      while (std::getline(in, line)) ++out[line.substr(line.find('\t') + 1)];
    }
    return out;
  }
  // Pulls until the subscription stays empty for a moment; all must be settled by then.
  void drain_all(Consumer& c) {
    int quiet = 0;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (quiet < 10 && std::chrono::steady_clock::now() < until) {
      quiet = c.run_once(true) == 0 ? quiet + 1 : 0;
      std::this_thread::sleep_for(30ms);
    }
  }
};

TEST_F(RepublishTest, ARepublishedPageInTheSameBatchIsWrittenOnceAndAcked) {
  ObjectLedger ledger(store, *bus, {"host-a", 0ms});
  LinesHandler handler(lake);
  Consumer consumer(*bus, ledger, handler, commit, {"curate", sub, 100, 0ms, 30s, 10ms});
  const auto first = publish_pages("ex-r1", 1, 3);
  const auto again = publish_pages("ex-r1", 1, 3);  // the dead serve's rerun
  ASSERT_NE(first, again) << "Pub/Sub gives the republished pages new ids";
  drain_all(consumer);
  const auto pages = pages_in_lake();
  ASSERT_EQ(pages.size(), 3u);
  for (const auto& [page, n] : pages) EXPECT_EQ(n, 1) << page;
  EXPECT_EQ(ledger.counts("curate", "ex-r1").rows, 3);
  EXPECT_EQ(handler.last_ack_ids.size(), 3u) << "the republished copies must not reach the handler";
  // Every copy was acked: nothing comes back even after a nack of all ack ids seen.
  EXPECT_TRUE(bus->pull(sub, 100, 30s).empty());
}

TEST_F(RepublishTest, ARepublishedPageAfterTheCommitIsAckedWithoutWritingByAnyProcess) {
  {
    ObjectLedger ledger(store, *bus, {"host-a", 0ms});
    LinesHandler handler(lake);
    Consumer consumer(*bus, ledger, handler, commit, {"curate", sub, 100, 0ms, 30s, 10ms});
    publish_pages("ex-r2", 1, 4);
    drain_all(consumer);
    ASSERT_EQ(pages_in_lake().size(), 4u);
  }
  // The rerun republishes pages 1..4 and adds 5; another process (its own ledger object) pulls them.
  publish_pages("ex-r2", 1, 5);
  ObjectLedger other(store, *bus, {"host-b", 0ms});
  LinesHandler handler(lake);
  Consumer consumer(*bus, other, handler, commit, {"curate", sub, 100, 0ms, 30s, 10ms});
  drain_all(consumer);
  const auto pages = pages_in_lake();
  ASSERT_EQ(pages.size(), 5u);
  for (const auto& [page, n] : pages) EXPECT_EQ(n, 1) << page;
  EXPECT_EQ(handler.last_ack_ids.size(), 1u) << "only the new page 5 may be written";
  EXPECT_EQ(other.counts("curate", "ex-r2").rows, 5);
  EXPECT_TRUE(other.seen_key("curate", "ex-r2:3"));
  EXPECT_FALSE(other.seen_key("curate", "ex-r2:6"));
  EXPECT_FALSE(other.seen_key("curate", ""));
  EXPECT_TRUE(bus->pull(sub, 100, 30s).empty());
}

TEST_F(RepublishTest, TwoProcessesWritingCopiesOfOnePageCommitItOnce) {
  ObjectLedger a(store, *bus, {"host-a", 0ms});
  ObjectLedger b(store, *bus, {"host-b", 0ms});
  auto stage = [&](const std::string& batch_id, std::vector<std::string> ids, std::vector<std::string> keys) {
    PreparedBatch p;
    p.consumer = "curate";
    p.batch_id = batch_id;
    p.message_ids = std::move(ids);
    p.keys = std::move(keys);
    p.ack_ids.assign(p.message_ids.size(), "");
    p.counts["ex"].rows = static_cast<int64_t>(p.message_ids.size());
    const auto staged = lake.staging_dir() / (batch_id + ".txt");
    std::ofstream(staged) << batch_id;
    p.files.push_back({staged.string(), "out/" + batch_id + ".txt"});
    return p;
  };
  // a holds the first copy of page 2, b the republished copy (other id, same key) and page 3.
  const auto pa = stage("curate-1-2", {"1", "2"}, {"ex:1", "ex:2"});
  const auto pb = stage("curate-7-8", {"7", "8"}, {"ex:2", "ex:3"});
  a.prepare(pa);
  b.prepare(pb);
  EXPECT_TRUE(a.seen_key("curate", "ex:2")) << "own open batch";
  EXPECT_FALSE(a.seen_key("curate", "ex:3"));
  commit(pa.files[0]);
  commit(pb.files[0]);
  a.commit(pa, sub);
  b.commit(pb, sub);  // loses on the key
  EXPECT_TRUE(lake.exists("out/curate-1-2.txt"));
  EXPECT_FALSE(lake.exists("out/curate-7-8.txt")) << "the loser's file must be removed";
  EXPECT_FALSE(lake.exists(ObjectLedger::committed_path("curate", "curate-7-8")));
  EXPECT_TRUE(b.seen_key("curate", "ex:2"));
  EXPECT_FALSE(b.seen_key("curate", "ex:3")) << "page 3 was only in the rolled-back batch";
  EXPECT_EQ(b.counts("curate", "ex").rows, 2);
}

// A sink slower than the lease: stage() sleeps before writing (as a big batch or a slow disk would).
class SlowHandler : public BatchHandler {
 public:
  SlowHandler(Lake& lake, std::chrono::milliseconds delay) : inner_(lake), delay_(delay) {}
  PreparedBatch stage(const std::vector<Message>& batch) override {
    started = true;
    std::this_thread::sleep_for(delay_);
    return inner_.stage(batch);
  }
  std::atomic<bool> started{false};

 private:
  LinesHandler inner_;
  std::chrono::milliseconds delay_;
};

TEST_F(ObjectLedgerTest, LeasesAreExtendedWhileASlowBatchIsWritten) {
  const auto ids = publish(3, "ex-slow");
  ObjectLedger ledger(store, *bus, {"host-a", 0ms});
  SlowHandler handler(lake, 8s);  // well past the 3 s lease below
  Consumer consumer(*bus, ledger, handler, commit, {"curate", sub, 100, 0ms, 3s, 10ms});
  // A second consumer process on the same subscription, pulling all the time the batch is written:
  // had the lease run out, Pub/Sub would hand it the messages.
  std::atomic<bool> writing{true};
  std::vector<std::string> stolen;
  std::thread other([&] {
    while (writing && !handler.started) std::this_thread::sleep_for(10ms);
    while (writing) {
      for (const auto& m : bus->pull(sub, 100, 30s)) stolen.push_back(m.id);
      std::this_thread::sleep_for(200ms);
    }
  });
  const auto done = drain(consumer, 3);
  writing = false;
  other.join();
  EXPECT_EQ(done, 3u);
  EXPECT_TRUE(stolen.empty()) << "a message was redelivered while its batch was being written (" << stolen.size()
                              << ")";
  const auto lines = lines_in_lake(lake);
  for (const auto& id : ids) EXPECT_EQ(lines.count(id) ? lines.at(id) : 0, 1) << id;
}

TEST(ObjectLedgerManifest, RoundTripsAndRejectsGarbage) {
  PreparedBatch p;
  p.consumer = "archive";
  p.batch_id = "archive-1-3";
  p.files = {{"/tmp/s", "raw/a.avro"}};
  p.message_ids = {"1", "3"};
  p.ack_ids = {"x", "y"};
  p.keys = {"ex:1", ""};
  p.counts["ex"] = {3, 1};
  std::string owner;
  const auto q = parse_manifest(manifest_json(p, "pod-7"), &owner);
  EXPECT_EQ(owner, "pod-7");
  EXPECT_EQ(q.batch_id, p.batch_id);
  EXPECT_EQ(q.files[0].final, "raw/a.avro");
  EXPECT_EQ(q.message_ids, p.message_ids);
  EXPECT_EQ(q.keys, p.keys);
  // A manifest written before keys were recorded still reads (no keys).
  EXPECT_TRUE(parse_manifest(R"({"consumer":"c","batch_id":"b","owner":"o","files":[],"message_ids":["1"],)"
                             R"("ack_ids":[""],"counts":{}})").keys.empty());
  EXPECT_EQ(q.counts.at("ex").deadlettered, 1);
  EXPECT_THROW(parse_manifest("{\"consumer\":1}"), std::runtime_error);
  EXPECT_THROW(parse_manifest("not json"), std::runtime_error);
}

}  // namespace
}  // namespace apilake
