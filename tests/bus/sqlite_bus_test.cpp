#include "bus/sqlite_bus.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include "support/temp_dir.h"

using namespace std::chrono_literals;

namespace apilake {
namespace {

using test::TempDir;

OutMessage msg(std::string data, Attributes attributes = {}, std::string dedup_key = {}) {
  return OutMessage{std::move(data), std::move(attributes), std::move(dedup_key)};
}

std::vector<std::string> ack_ids(const std::vector<Message>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.ack_id);
  return out;
}

std::vector<std::string> ids(const std::vector<Message>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.id);
  return out;
}

class SqliteBusTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteBus> open(int max_attempts = 5) {
    SqliteBusOptions o;
    o.max_delivery_attempts = max_attempts;
    auto bus = std::make_unique<SqliteBus>(dir_ / "state/bus.db", o);
    bus->create_topic("pages");
    bus->create_subscription("archive", "pages");
    return bus;
  }
  TempDir dir_;
};

TEST_F(SqliteBusTest, PublishPullAckRoundTripsBytesAndAttributes) {
  auto bus = open();
  const std::string binary("a\0b:\n3:xyz", 10);
  const Attributes attrs{{"source", "bcb"}, {"odd:key", "5:val\nue"}, {"empty", ""}};
  const auto before = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auto published = bus->publish("pages", {msg(binary, attrs), msg("second"), msg("")});
  ASSERT_EQ(published.size(), 3u);
  EXPECT_EQ(std::set<std::string>(published.begin(), published.end()).size(), 3u);

  auto got = bus->pull("archive", 10, 60s);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(ids(got), published);
  EXPECT_EQ(got[0].data, binary);
  EXPECT_EQ(got[0].attributes, attrs);
  EXPECT_EQ(got[1].data, "second");
  EXPECT_TRUE(got[2].data.empty());
  for (const auto& m : got) {
    EXPECT_EQ(m.delivery_attempt, 1);
    EXPECT_GE(m.publish_time_us, before);
    EXPECT_FALSE(m.ack_id.empty());
  }
  EXPECT_EQ(bus->backlog("archive"), 3u);
  EXPECT_TRUE(bus->pull("archive", 10, 60s).empty()) << "leased messages are not handed out twice";

  bus->ack("archive", ack_ids(got));
  EXPECT_EQ(bus->backlog("archive"), 0u);
  EXPECT_TRUE(bus->pull("archive", 10, 0s).empty());
}

int64_t page_size_of(const std::filesystem::path& file) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_step(st), SQLITE_ROW);
  const int64_t size = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return size;
}

// New bus databases get 16 KB pages (a 21 KB page body in 2 WAL frames, not 6); one made with
// SQLite's default 4 KB pages (every bus before this) keeps them and works as before.
TEST_F(SqliteBusTest, NewDatabasesUseLargePagesOldOnesKeepTheirs) {
  const std::string body(21 * 1024, 'x');
  {
    auto bus = open();
    bus->publish("pages", {msg(body)});
  }
  EXPECT_EQ(page_size_of(dir_ / "state/bus.db"), 16384);

  const auto old_file = dir_ / "old/bus.db";
  std::filesystem::create_directories(old_file.parent_path());
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(old_file.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE t(x);", nullptr, nullptr,
                           nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  {
    SqliteBus bus(old_file);
    bus.create_topic("pages");
    bus.create_subscription("archive", "pages");
    bus.publish("pages", {msg(body), msg("small")});
    auto got = bus.pull("archive", 10, 60s);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].data, body);
    bus.ack("archive", ack_ids(got));
  }
  EXPECT_EQ(page_size_of(old_file), 4096);
}

TEST_F(SqliteBusTest, PullRespectsMaxAndOrder) {
  auto bus = open();
  std::vector<OutMessage> batch;
  for (int i = 0; i < 7; ++i) batch.push_back(msg("m" + std::to_string(i)));
  auto published = bus->publish("pages", batch);
  auto first = bus->pull("archive", 3, 60s);
  auto rest = bus->pull("archive", 10, 60s);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(rest.size(), 4u);
  EXPECT_EQ(first[0].data, "m0");
  EXPECT_EQ(rest[3].data, "m6");
  EXPECT_TRUE(bus->pull("archive", 0, 60s).empty());
}

TEST_F(SqliteBusTest, EverySubscriptionGetsEveryMessage) {
  auto bus = open();
  bus->create_subscription("curate", "pages");
  bus->publish("pages", {msg("one"), msg("two")});
  auto a = bus->pull("archive", 10, 60s);
  auto c = bus->pull("curate", 10, 60s);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(ids(a), ids(c));
  bus->ack("archive", ack_ids(a));
  EXPECT_EQ(bus->backlog("archive"), 0u);
  EXPECT_EQ(bus->backlog("curate"), 2u) << "acking on one subscription leaves the other alone";
  // The curate copy is still complete although archive is done with it.
  bus->nack("curate", ack_ids(c));
  auto again = bus->pull("curate", 10, 60s);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[1].data, "two");
}

TEST_F(SqliteBusTest, SetupIsIdempotentAndBadNamesAreRefused) {
  auto bus = open();
  EXPECT_NO_THROW(bus->create_topic("pages"));
  EXPECT_NO_THROW(bus->create_subscription("archive", "pages"));
  bus->create_topic("other");
  EXPECT_THROW(bus->create_subscription("archive", "other"), std::invalid_argument);
  EXPECT_THROW(bus->create_subscription("x", "no-such-topic"), std::invalid_argument);
  EXPECT_THROW(bus->publish("no-such-topic", {msg("x")}), std::invalid_argument);
  EXPECT_THROW(bus->pull("no-such-sub", 1, 1s), std::invalid_argument);
  EXPECT_THROW(bus->create_topic(""), std::invalid_argument);
  EXPECT_THROW(SqliteBus(dir_ / "x.db", SqliteBusOptions{0}), std::invalid_argument);
  // Acks that are not ack ids of this bus match nothing and do no harm.
  bus->publish("pages", {msg("x")});
  EXPECT_NO_THROW(bus->ack("archive", {"garbage", ":", "1:", "-5:1"}));
  EXPECT_EQ(bus->backlog("archive"), 1u);
}

TEST_F(SqliteBusTest, UnackedLeaseExpiresAndExtendKeepsIt) {
  auto bus = open();
  bus->publish("pages", {msg("kept"), msg("expires")});
  auto got = bus->pull("archive", 10, 1s);
  ASSERT_EQ(got.size(), 2u);
  bus->extend("archive", {got[0].ack_id}, 60s);
  EXPECT_TRUE(bus->pull("archive", 10, 60s).empty());
  std::this_thread::sleep_for(1100ms);
  auto again = bus->pull("archive", 10, 60s);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, got[1].id);
  EXPECT_EQ(again[0].delivery_attempt, 2);
  EXPECT_NE(again[0].ack_id, got[1].ack_id);
}

TEST_F(SqliteBusTest, NackRedeliversAtOnceWithNextAttempt) {
  auto bus = open();
  bus->publish("pages", {msg("a")});
  auto got = bus->pull("archive", 1, 60s);
  ASSERT_EQ(got.size(), 1u);
  bus->nack("archive", ack_ids(got));
  auto again = bus->pull("archive", 1, 60s);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, got[0].id);
  EXPECT_EQ(again[0].delivery_attempt, 2);
}

TEST_F(SqliteBusTest, StaleAckAfterRedeliveryIsIgnored) {
  auto bus = open();
  bus->publish("pages", {msg("a")});
  auto first = bus->pull("archive", 1, 0s);  // expires at once
  auto second = bus->pull("archive", 1, 60s);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(second.size(), 1u);
  bus->ack("archive", ack_ids(first));
  bus->nack("archive", ack_ids(first));
  EXPECT_EQ(bus->backlog("archive"), 1u) << "the first delivery's ack id no longer settles anything";
  EXPECT_TRUE(bus->pull("archive", 1, 60s).empty()) << "a stale nack does not end the current lease";
  bus->ack("archive", ack_ids(second));
  EXPECT_EQ(bus->backlog("archive"), 0u);
}

TEST_F(SqliteBusTest, DeadLetteredAfterMaxAttempts) {
  auto bus = open(3);
  auto published = bus->publish("pages", {msg("nacked", {{"k", "v"}}), msg("expired")});
  // "nacked" is nacked three times: the third nack dead-letters it.
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto got = bus->pull("archive", 1, 60s);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].id, published[0]);
    EXPECT_EQ(got[0].delivery_attempt, attempt);
    bus->nack("archive", ack_ids(got));
  }
  // "expired" is never acked: its leases run out, and the pull after the third delivery dead-letters it.
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto got = bus->pull("archive", 5, 0s);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].id, published[1]);
    EXPECT_EQ(got[0].delivery_attempt, attempt);
  }
  EXPECT_TRUE(bus->pull("archive", 5, 60s).empty());
  auto dead = bus->dead_letters("archive");
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0].id, published[0]);
  EXPECT_EQ(dead[0].data, "nacked");
  EXPECT_EQ(dead[0].attributes.at("k"), "v");
  EXPECT_EQ(dead[0].delivery_attempt, 3);
  EXPECT_EQ(dead[1].data, "expired");
  EXPECT_EQ(bus->backlog("archive"), 0u);
}

TEST_F(SqliteBusTest, ReopenKeepsUnackedMessagesAndForgetsAcked) {
  std::vector<std::string> published;
  {
    auto bus = open();
    published = bus->publish("pages", {msg("acked"), msg("leased"), msg("waiting")});
    auto got = bus->pull("archive", 2, 0s);  // the lease of a "dead" process, already expired
    ASSERT_EQ(got.size(), 2u);
    bus->ack("archive", {got[0].ack_id});
  }
  auto bus = open();
  EXPECT_EQ(bus->backlog("archive"), 2u);
  auto got = bus->pull("archive", 10, 60s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, published[1]);
  EXPECT_EQ(got[0].data, "leased");
  EXPECT_EQ(got[0].delivery_attempt, 2);
  EXPECT_EQ(got[1].id, published[2]);
  EXPECT_EQ(got[1].delivery_attempt, 1);
}

TEST_F(SqliteBusTest, ReleaseLeasesAfterACrashRedeliversAtOnce) {
  {
    auto bus = open();
    bus->publish("pages", {msg("a"), msg("b")});
    ASSERT_EQ(bus->pull("archive", 10, 600s).size(), 2u);  // leased by a process that then dies
  }
  auto bus = open();
  EXPECT_TRUE(bus->pull("archive", 10, 60s).empty());  // still leased for 10 minutes
  EXPECT_EQ(bus->release_leases(), 2u);
  auto again = bus->pull("archive", 10, 60s);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].delivery_attempt, 2);
  EXPECT_EQ(bus->release_leases(), 2u);
  bus->ack("archive", ack_ids(bus->pull("archive", 10, 60s)));
  EXPECT_EQ(bus->release_leases(), 0u);
  EXPECT_TRUE(bus->pull("archive", 10, 60s).empty());
}

TEST_F(SqliteBusTest, MessageIdsAreNeverReused) {
  auto bus = open();
  auto first = bus->publish("pages", {msg("a")});
  bus->ack("archive", ack_ids(bus->pull("archive", 1, 60s)));  // the message is deleted now
  bus.reset();
  bus = open();
  auto second = bus->publish("pages", {msg("b")});
  ASSERT_EQ(second.size(), 1u);
  EXPECT_NE(second[0], first[0]);
  // A topic without subscriptions keeps nothing but still hands out ids.
  bus->create_topic("lonely");
  auto lonely = bus->publish("lonely", {msg("x")});
  ASSERT_EQ(lonely.size(), 1u);
  EXPECT_FALSE(lonely[0].empty());
}

TEST_F(SqliteBusTest, DedupKeyDropsTheDuplicateEvenAfterTheOriginalIsConsumed) {
  auto bus = open();
  auto r = bus->publish("pages", {msg("p1", {}, "ex1:1"), msg("p1 again", {}, "ex1:1"), msg("p2", {}, "ex1:2")});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_FALSE(r[0].empty());
  EXPECT_EQ(r[1], "");
  EXPECT_FALSE(r[2].empty());
  auto got = bus->pull("archive", 10, 60s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].data, "p1");
  bus->ack("archive", ack_ids(got));
  auto later = bus->publish("pages", {msg("p1 resumed", {}, "ex1:1"), msg("no key"), msg("no key")});
  EXPECT_EQ(later[0], "");
  EXPECT_FALSE(later[1].empty());
  EXPECT_FALSE(later[2].empty()) << "messages without a key are never deduplicated";
  EXPECT_EQ(bus->backlog("archive"), 2u);
  bus->create_topic("other");
  bus->create_subscription("other-sub", "other");
  EXPECT_FALSE(bus->publish("other", {msg("same key, other topic", {}, "ex1:1")})[0].empty());
}

// --- ledger ------------------------------------------------------------------------------------

PreparedBatch batch_of(const std::string& consumer, const std::string& id, const std::vector<Message>& ms,
                       std::map<std::string, ExtractionCounts> counts = {}) {
  PreparedBatch b;
  b.consumer = consumer;
  b.batch_id = id;
  b.files = {{"/tmp/staged/" + id + ".0", "curated/x/" + id + ".parquet"},
             {"/tmp/staged/" + id + ".1", "deadletter/x/" + id + ".jsonl"}};
  b.message_ids = ids(ms);
  b.ack_ids = ack_ids(ms);
  b.counts = std::move(counts);
  return b;
}

// Publishes one message, pulls it on "archive" and commits it as a "curate" batch with `counts`;
// returns how many messages the pull gave (1 when nothing else was waiting).
std::size_t commit_one(SqliteBus& bus, const std::string& text, const std::string& batch_id,
                       std::map<std::string, ExtractionCounts> counts) {
  bus.publish("pages", {msg(text)});
  auto got = bus.pull("archive", 10, 60s);
  auto b = batch_of("curate", batch_id, got, std::move(counts));
  bus.prepare(b);
  bus.commit(b, "archive");
  return got.size();
}

TEST_F(SqliteBusTest, LedgerCommitAcksTheBatchAndAddsCounts) {
  auto bus = open();
  bus->publish("pages", {msg("a"), msg("b"), msg("c")});
  auto got = bus->pull("archive", 3, 60s);
  ASSERT_EQ(got.size(), 3u);
  auto b = batch_of("curate", "b1", {got[0], got[1]}, {{"ex1", {5, 1}}, {"ex2", {2, 0}}});

  EXPECT_FALSE(bus->seen("curate", got[0].id));
  bus->prepare(b);
  EXPECT_TRUE(bus->seen("curate", got[0].id));
  EXPECT_TRUE(bus->seen("curate", got[1].id));
  EXPECT_FALSE(bus->seen("curate", got[2].id));
  EXPECT_FALSE(bus->seen("archive", got[0].id)) << "the ledger is per consumer";
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 0) << "prepared batches do not count yet";
  EXPECT_EQ(bus->backlog("archive"), 3u);
  ASSERT_EQ(bus->pending("curate").size(), 1u);

  bus->commit(b, "archive");
  EXPECT_EQ(bus->backlog("archive"), 1u) << "commit acked exactly the batch's messages";
  EXPECT_TRUE(bus->pending("curate").empty());
  EXPECT_TRUE(bus->seen("curate", got[0].id));
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 5);
  EXPECT_EQ(bus->counts("curate", "ex1").deadlettered, 1);
  EXPECT_EQ(bus->counts("curate", "ex2").rows, 2);
  EXPECT_EQ(bus->counts("curate", "nope").rows, 0);

  bus->commit(b, "archive");  // a retried commit must not count twice
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 5);
}

TEST_F(SqliteBusTest, LedgerCountsAggregateOverBatchesPerConsumer) {
  auto bus = open();
  bus->publish("pages", {msg("a"), msg("b"), msg("c")});
  auto got = bus->pull("archive", 3, 60s);
  auto b1 = batch_of("curate", "b1", {got[0]}, {{"ex1", {10, 2}}});
  auto b2 = batch_of("curate", "b2", {got[1]}, {{"ex1", {7, 3}}, {"ex2", {1, 0}}});
  auto b3 = batch_of("archive", "b3", {got[2]}, {{"ex1", {1, 0}}});
  for (auto* b : {&b1, &b2, &b3}) {
    bus->prepare(*b);
    bus->commit(*b, "archive");
  }
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 17);
  EXPECT_EQ(bus->counts("curate", "ex1").deadlettered, 5);
  EXPECT_EQ(bus->counts("curate", "ex2").rows, 1);
  EXPECT_EQ(bus->counts("archive", "ex1").rows, 1);
}

// counts() answers from memory after the first read (GET /v1/extractions/{id} asks per request); a
// commit by another bus object or another process on the same file must show at once.
TEST_F(SqliteBusTest, LedgerCountsCacheFollowsCommitsFromAnotherBusOnTheFile) {
  auto bus = open();
  auto other = open();  // another connection on the same file (as a curator in the same process)
  other->publish("pages", {msg("a"), msg("b")});
  auto got = other->pull("archive", 2, 60s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 0);  // cached as "none yet"
  auto b1 = batch_of("curate", "b1", {got[0]}, {{"ex1", {4, 1}}});
  other->prepare(b1);
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 0) << "a prepared batch does not count";
  other->commit(b1, "archive");
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 4);
  EXPECT_EQ(bus->counts("curate", "ex1").deadlettered, 1);
  auto b2 = batch_of("curate", "b2", {got[1]}, {{"ex1", {3, 0}}});
  other->prepare(b2);
  other->commit(b2, "archive");
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 7);
  EXPECT_EQ(other->counts("curate", "ex1").rows, 7);
  EXPECT_EQ(bus->counts("archive", "ex1").rows, 0) << "per consumer";
}

// Shows that the answer is cached (a figure changed behind the ledger's back is not seen) and that a
// commit() from another process drops it.
TEST_F(SqliteBusTest, LedgerCountsCacheFollowsACommitFromAnotherProcess) {
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  // Forked before this process opens any SQLite connection, so the child shares no SQLite state.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(go[1]);
    char c;
    int code = 1;
    if (read(go[0], &c, 1) == 1) {
      try {
        auto bus = open();
        code = commit_one(*bus, "from the child", "child", {{"ex1", {10, 2}}}) == 1 ? 0 : 2;
      } catch (...) {
        code = 3;
      }
    }
    _exit(code);
  }
  close(go[0]);
  auto bus = open();
  ASSERT_EQ(commit_one(*bus, "a", "parent", {{"ex1", {5, 0}}}), 1u);
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 5);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "state/bus.db").c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    EXPECT_EQ(sqlite3_exec(db, "UPDATE batch_counts SET rows = 1000", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 5) << "answered from the cache";
  ASSERT_EQ(write(go[1], "x", 1), 1);
  close(go[1]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 1010) << "the child's commit dropped the cached figure";
  EXPECT_EQ(bus->counts("curate", "ex1").deadlettered, 2);
}

TEST_F(SqliteBusTest, LedgerRefusesBadBatches) {
  auto bus = open();
  bus->publish("pages", {msg("a"), msg("b")});
  auto got = bus->pull("archive", 2, 60s);
  auto b1 = batch_of("curate", "b1", {got[0]});
  bus->prepare(b1);
  EXPECT_THROW(bus->prepare(b1), std::invalid_argument) << "same batch id twice";
  auto overlapping = batch_of("curate", "b2", {got[0], got[1]});
  EXPECT_THROW(bus->prepare(overlapping), std::invalid_argument) << "a message in two batches";
  EXPECT_FALSE(bus->seen("curate", got[1].id)) << "the refused prepare left nothing behind";
  auto mismatched = batch_of("curate", "b3", {got[1]});
  mismatched.ack_ids.clear();
  EXPECT_THROW(bus->prepare(mismatched), std::invalid_argument);
  auto nameless = batch_of("", "b4", {got[1]});
  EXPECT_THROW(bus->prepare(nameless), std::invalid_argument);
  auto never = batch_of("curate", "never", {got[1]});
  EXPECT_THROW(bus->commit(never, "archive"), std::invalid_argument);
  EXPECT_THROW(bus->commit(b1, "no-such-sub"), std::invalid_argument);
  EXPECT_EQ(bus->backlog("archive"), 2u) << "failed commits acked nothing";
}

TEST_F(SqliteBusTest, PendingBatchSurvivesReopenAndCommitsLater) {
  PreparedBatch b;
  {
    auto bus = open();
    bus->publish("pages", {msg("a"), msg("b")});
    auto got = bus->pull("archive", 2, 60s);
    b = batch_of("curate", "curate-1-2", got, {{"ex1", {3, 1}}});
    bus->prepare(b);
  }  // "crash": no commit
  auto bus = open();
  auto pending = bus->pending("curate");
  ASSERT_EQ(pending.size(), 1u);
  const auto& p = pending[0];
  EXPECT_EQ(p.consumer, "curate");
  EXPECT_EQ(p.batch_id, b.batch_id);
  ASSERT_EQ(p.files.size(), 2u);
  EXPECT_EQ(p.files[0].staged, b.files[0].staged);
  EXPECT_EQ(p.files[1].final, b.files[1].final);
  EXPECT_EQ(p.message_ids, b.message_ids);
  EXPECT_EQ(p.ack_ids, b.ack_ids);
  ASSERT_EQ(p.counts.count("ex1"), 1u);
  EXPECT_EQ(p.counts.at("ex1").rows, 3);
  EXPECT_EQ(p.counts.at("ex1").deadlettered, 1);
  EXPECT_TRUE(bus->seen("curate", b.message_ids[0]));
  EXPECT_TRUE(bus->pending("archive").empty());

  bus->commit(p, "archive");
  EXPECT_TRUE(bus->pending("curate").empty());
  EXPECT_EQ(bus->backlog("archive"), 0u);
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 3);
}

TEST_F(SqliteBusTest, CommitAcksMessagesWhoseRecordedAckIdsWentStale) {
  auto bus = open();
  bus->publish("pages", {msg("a"), msg("b")});
  auto got = bus->pull("archive", 2, 0s);  // leases expire while the batch is pending
  auto b = batch_of("curate", "b1", got);
  bus->prepare(b);
  auto redelivered = bus->pull("archive", 2, 60s);
  ASSERT_EQ(redelivered.size(), 2u);
  bus->commit(b, "archive");
  EXPECT_EQ(bus->backlog("archive"), 0u);
  EXPECT_TRUE(bus->pull("archive", 2, 0s).empty());
}

TEST_F(SqliteBusTest, AbandonBringsMessagesBackEvenIfTheirDuplicatesWereAcked) {
  auto bus = open();
  bus->publish("pages", {msg("a"), msg("b")});
  auto got = bus->pull("archive", 2, 0s);
  auto b = batch_of("curate", "b1", got);
  bus->prepare(b);
  // What a consumer does with redeliveries of a pending batch: ack them as duplicates.
  bus->ack("archive", ack_ids(bus->pull("archive", 2, 60s)));
  EXPECT_EQ(bus->backlog("archive"), 0u);

  bus->abandon(b, "archive");
  EXPECT_TRUE(bus->pending("curate").empty());
  EXPECT_FALSE(bus->seen("curate", got[0].id));
  auto back = bus->pull("archive", 10, 60s);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].data, "a") << "a message in a prepared batch is kept although every subscription acked it";
  EXPECT_EQ(back[1].data, "b");

  EXPECT_NO_THROW(bus->abandon(b, "archive")) << "unknown batch: nothing to do";
  auto c = batch_of("curate", "b2", back);
  bus->prepare(c);
  bus->commit(c, "archive");
  EXPECT_THROW(bus->abandon(c, "archive"), std::invalid_argument);
}

}  // namespace
}  // namespace apilake
