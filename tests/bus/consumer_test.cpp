#include "bus/consumer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "bus/sqlite_bus.h"
#include "support/files.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace apilake {
namespace {

using test::slurp;
using test::TempDir;

// Writes one real staged file per batch ("<id>\t<data>" lines) named after its first and last
// message, and counts one row per message for its "extraction_id" attribute.
class FileHandler : public BatchHandler {
 public:
  explicit FileHandler(fs::path staging) : staging_(std::move(staging)) { fs::create_directories(staging_); }

  PreparedBatch stage(const std::vector<Message>& batch) override {
    std::lock_guard lock(mu);
    ++calls;
    for (const auto& m : batch) {
      attempts_seen[m.id] = m.delivery_attempt;
      min_slack = std::min(min_slack, m.data.capacity() - m.data.size());
    }
    if (fail_next > 0) {
      --fail_next;
      throw std::runtime_error("injected staging failure");
    }
    PreparedBatch b;
    const std::string name = batch.front().id + "-" + batch.back().id + ".txt";
    const fs::path staged = staging_ / ("staged-" + std::to_string(calls) + "-" + name);
    std::ofstream out(staged, std::ios::binary);
    for (const auto& m : batch) {
      out << m.id << '\t' << m.data << '\n';
      auto ex = m.attributes.find("extraction_id");
      if (ex != m.attributes.end()) b.counts[ex->second].rows += 1;
    }
    out.close();
    if (!out) throw std::runtime_error("cannot write staged file");
    b.files.push_back({staged.string(), "out/" + name});
    return b;
  }

  std::mutex mu;
  int calls = 0;
  int fail_next = 0;
  std::map<std::string, int> attempts_seen;
  std::size_t min_slack = SIZE_MAX;  // smallest spare capacity after a body seen by stage()

 private:
  fs::path staging_;
};

// Renames a staged file into the "lake" directory; idempotent like Lake::commit_staged.
struct RenameCommit {
  fs::path lake;
  int* fail_next = nullptr;          // throw before doing anything
  int* fail_after_rename = nullptr;  // throw after the rename ("crash" between steps 3 and 4)

  void operator()(const StagedFile& f) const {
    if (fail_next && *fail_next > 0) {
      --*fail_next;
      throw std::runtime_error("injected commit failure");
    }
    const fs::path target = lake / f.final;
    if (!fs::exists(f.staged)) {
      if (fs::exists(target)) return;
      throw std::runtime_error("staged file missing: " + f.staged);
    }
    fs::create_directories(target.parent_path());
    fs::rename(f.staged, target);
    if (fail_after_rename && *fail_after_rename > 0) {
      --*fail_after_rename;
      throw std::runtime_error("injected failure after rename");
    }
  }
};

class ConsumerTest : public ::testing::Test {
 protected:
  ConsumerTest() { reopen(); }

  void reopen() {
    bus.reset();
    SqliteBusOptions o;
    o.max_delivery_attempts = max_attempts;
    bus = std::make_unique<SqliteBus>(dir / "bus.db", o);
    bus->create_topic("pages");
    bus->create_subscription("curate", "pages");
  }

  ConsumerOptions options(std::size_t max_messages = 10) {
    ConsumerOptions o;
    o.consumer = "curate";
    o.subscription = "curate";
    o.max_messages = max_messages;
    o.max_age = 10s;
    o.lease = 60s;
    o.idle_sleep = 5ms;
    return o;
  }

  std::vector<std::string> publish(int n, const std::string& extraction = "ex1") {
    std::vector<OutMessage> batch;
    for (int i = 0; i < n; ++i) batch.push_back({"payload " + std::to_string(i), {{"extraction_id", extraction}}, {}});
    return bus->publish("pages", batch);
  }

  // message id -> how many times it appears across all committed files in the lake
  std::map<std::string, int> lake_contents() {
    std::map<std::string, int> out;
    if (!fs::exists(dir / "lake")) return out;
    for (const auto& e : fs::recursive_directory_iterator(dir / "lake")) {
      if (!e.is_regular_file()) continue;
      std::istringstream lines(slurp(e.path()));
      for (std::string line; std::getline(lines, line);) out[line.substr(0, line.find('\t'))] += 1;
    }
    return out;
  }

  void expect_exactly_once(const std::vector<std::string>& ids) {
    auto lake = lake_contents();
    EXPECT_EQ(lake.size(), ids.size());
    for (const auto& id : ids) EXPECT_EQ(lake[id], 1) << "message " << id;
  }

  std::size_t staged_files() {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir / "staging")) n += e.is_regular_file();
    return n;
  }

  int max_attempts = 5;
  TempDir dir;
  std::unique_ptr<SqliteBus> bus;
  FileHandler handler{dir / "staging"};
};

TEST_F(ConsumerTest, BatchesBySizeAndCommitsEveryMessageOnce) {
  auto ids = publish(25);
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, options(10));
  EXPECT_EQ(c.run_once(false), 10u) << "a full batch flushes without being forced";
  EXPECT_EQ(c.run_once(false), 10u);
  EXPECT_EQ(c.run_once(false), 0u) << "5 held: neither full nor old";
  EXPECT_EQ(c.run_once(true), 5u);
  EXPECT_EQ(c.run_once(true), 0u);
  expect_exactly_once(ids);
  EXPECT_EQ(bus->backlog("curate"), 0u);
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 25);
  EXPECT_TRUE(bus->pending("curate").empty());
  EXPECT_EQ(staged_files(), 0u);
  EXPECT_TRUE(fs::exists(dir / "lake" / "out" / (ids[0] + "-" + ids[9] + ".txt")));
}

// The curator parses each body in place only when the bus left kMessageDataSlack spare bytes after it
// (bus.h); a body copied on the way (pull, hold, batch) would lose that capacity and be copied again.
TEST_F(ConsumerTest, HandlerGetsBodiesWithSpareCapacityForInPlaceParsing) {
  publish(3);
  const OutMessage big{std::string(5000, 'x'), {{"extraction_id", "ex1"}}, {}};
  const OutMessage empty{"", {{"extraction_id", "ex1"}}, {}};
  bus->publish("pages", {big, empty});
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, options(10));
  EXPECT_EQ(c.run_once(true), 5u);
  EXPECT_GE(handler.min_slack, kMessageDataSlack);
}

TEST_F(ConsumerTest, FlushesByAge) {
  auto ids = publish(3);
  auto o = options(100);
  o.max_age = 100ms;
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, o);
  EXPECT_EQ(c.run_once(false), 0u);
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(c.run_once(false), 3u);
  expect_exactly_once(ids);
}

TEST_F(ConsumerTest, ThreadedLoopCommitsWhatIsPublishedWhileRunning) {
  auto o = options(7);
  o.max_age = 30ms;
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, o);
  c.start();
  std::vector<std::string> ids;
  for (int round = 0; round < 5; ++round) {
    auto more = publish(6, "ex-threaded");
    ids.insert(ids.end(), more.begin(), more.end());
    std::this_thread::sleep_for(10ms);
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (bus->counts("curate", "ex-threaded").rows < 30 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  c.stop();
  EXPECT_EQ(bus->counts("curate", "ex-threaded").rows, 30);
  expect_exactly_once(ids);
  EXPECT_EQ(bus->backlog("curate"), 0u);
}

TEST_F(ConsumerTest, HandlerFailureNacksAndTheBatchIsRetried) {
  auto ids = publish(4);
  handler.fail_next = 1;
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, options());
  EXPECT_EQ(c.run_once(true), 0u);
  EXPECT_TRUE(lake_contents().empty());
  EXPECT_EQ(bus->backlog("curate"), 4u);
  EXPECT_EQ(c.run_once(true), 4u) << "nacked messages come back at once";
  EXPECT_EQ(handler.attempts_seen[ids[0]], 2);
  expect_exactly_once(ids);
}

TEST_F(ConsumerTest, HandlerThatAlwaysFailsDeadLettersTheBatch) {
  max_attempts = 2;
  reopen();
  auto ids = publish(2);
  handler.fail_next = 1000;
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, options());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(c.run_once(true), 0u);
  EXPECT_EQ(handler.calls, 2) << "two attempts, then no more deliveries";
  EXPECT_EQ(bus->dead_letters("curate").size(), 2u);
  EXPECT_EQ(bus->backlog("curate"), 0u);
}

TEST_F(ConsumerTest, HandlerExceptionDoesNotKillTheThread) {
  handler.fail_next = 2;
  auto o = options();
  o.max_age = 10ms;
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, o);
  c.start();
  auto ids = publish(3);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (bus->counts("curate", "ex1").rows < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  c.stop();
  EXPECT_GE(handler.calls, 3);
  expect_exactly_once(ids);
}

TEST_F(ConsumerTest, CrashAfterPrepareIsRolledForwardOnRestart) {
  auto ids = publish(5);
  int fail = 1;
  {
    Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake", &fail}, options());
    EXPECT_EQ(c.run_once(true), 0u) << "prepared, but the file was never moved into place";
  }
  ASSERT_EQ(bus->pending("curate").size(), 1u);
  EXPECT_TRUE(lake_contents().empty());
  EXPECT_EQ(staged_files(), 1u);

  reopen();  // the process dies and comes back
  ASSERT_EQ(bus->pending("curate").size(), 1u);
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, options());
  c.recover();
  EXPECT_TRUE(bus->pending("curate").empty());
  expect_exactly_once(ids);
  EXPECT_EQ(bus->backlog("curate"), 0u);
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 5);
  EXPECT_EQ(c.run_once(true), 0u);
  EXPECT_EQ(handler.calls, 1) << "nothing was redelivered";
  expect_exactly_once(ids);
}

TEST_F(ConsumerTest, CrashBetweenRenameAndCommitIsRolledForward) {
  auto ids = publish(3);
  int fail_after = 1;
  {
    Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake", nullptr, &fail_after}, options());
    EXPECT_EQ(c.run_once(true), 0u);
  }
  expect_exactly_once(ids);  // the file is in place, the ledger does not know yet
  EXPECT_EQ(bus->backlog("curate"), 3u);
  reopen();
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, options());
  c.start();  // start() recovers before its first pull
  c.stop();
  EXPECT_TRUE(bus->pending("curate").empty());
  EXPECT_EQ(bus->backlog("curate"), 0u);
  EXPECT_EQ(handler.calls, 1);
  expect_exactly_once(ids);
}

TEST_F(ConsumerTest, FailedCommitIsRetriedByTheNextStepWithoutRestart) {
  auto ids = publish(4);
  int fail = 1;
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake", &fail}, options());
  EXPECT_EQ(c.run_once(true), 0u);
  EXPECT_EQ(bus->pending("curate").size(), 1u);
  EXPECT_EQ(c.run_once(true), 0u);
  EXPECT_TRUE(bus->pending("curate").empty());
  EXPECT_EQ(bus->backlog("curate"), 0u);
  expect_exactly_once(ids);
}

TEST_F(ConsumerTest, LostStagedFileAbandonsTheBatchAndMessagesAreRedone) {
  auto ids = publish(3);
  int fail = 1;
  {
    Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake", &fail}, options());
    EXPECT_EQ(c.run_once(true), 0u);
  }
  auto pending = bus->pending("curate");
  ASSERT_EQ(pending.size(), 1u);
  fs::remove(pending[0].files[0].staged);
  reopen();
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, options());
  c.recover();
  EXPECT_TRUE(bus->pending("curate").empty());
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 0);
  EXPECT_EQ(c.run_once(true), 3u);
  EXPECT_EQ(handler.calls, 2);
  expect_exactly_once(ids);
  EXPECT_EQ(bus->counts("curate", "ex1").rows, 3);
}

TEST_F(ConsumerTest, RedeliveredMessageAlreadyInTheLedgerIsAckedAndSkipped) {
  auto ids = publish(3);
  // Message 1 is already in a batch of this consumer, but its delivery was never acked (its lease
  // has run out), as after a crash between prepare and commit.
  auto first = bus->pull("curate", 1, 0s);
  ASSERT_EQ(first.size(), 1u);
  PreparedBatch done;
  done.consumer = "curate";
  done.batch_id = "earlier";
  done.message_ids = {first[0].id};
  done.ack_ids = {first[0].ack_id};
  bus->prepare(done);

  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, options());
  EXPECT_EQ(c.run_once(true), 2u);
  EXPECT_EQ(handler.attempts_seen.count(ids[0]), 0u) << "the duplicate never reached the handler";
  EXPECT_EQ(handler.attempts_seen.count(ids[1]), 1u);
  EXPECT_EQ(bus->backlog("curate"), 0u) << "the duplicate was acked";
  auto lake = lake_contents();
  EXPECT_EQ(lake.count(ids[0]), 0u);
  EXPECT_EQ(lake[ids[1]], 1);
}

TEST_F(ConsumerTest, StopHandsHeldMessagesBack) {
  auto ids = publish(2);
  {
    Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, options());
    EXPECT_EQ(c.run_once(false), 0u);  // held, not flushed
    EXPECT_TRUE(bus->pull("curate", 10, 60s).empty());
  }
  auto back = bus->pull("curate", 10, 60s);
  EXPECT_EQ(back.size(), 2u) << "available again without waiting for the lease";
}

TEST_F(ConsumerTest, HeldMessagesHaveTheirLeaseExtended) {
  publish(2);
  auto o = options();
  o.lease = 1s;
  Consumer c(*bus, *bus, handler, RenameCommit{dir / "lake"}, o);
  EXPECT_EQ(c.run_once(false), 0u);
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(c.run_once(false), 0u);  // past lease/2: extends
  std::this_thread::sleep_for(600ms);  // past the original lease
  EXPECT_TRUE(bus->pull("curate", 10, 60s).empty()) << "the extended lease still holds";
  EXPECT_EQ(c.run_once(true), 2u);
  EXPECT_EQ(bus->backlog("curate"), 0u);
}

TEST_F(ConsumerTest, BadOptionsAreRefused) {
  auto o = options();
  o.subscription.clear();
  EXPECT_THROW(Consumer(*bus, *bus, handler, RenameCommit{dir / "lake"}, o), std::invalid_argument);
  o = options();
  o.max_messages = 0;
  EXPECT_THROW(Consumer(*bus, *bus, handler, RenameCommit{dir / "lake"}, o), std::invalid_argument);
  EXPECT_THROW(Consumer(*bus, *bus, handler, CommitFile{}, options()), std::invalid_argument);
}

}  // namespace
}  // namespace apilake
