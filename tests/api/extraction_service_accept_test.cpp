// ExtractionService's asynchronous accept path: an accept-only instance (workers = 0) records every
// extraction durably with no in-memory queue limit; with workers, the queue limit refuses (503).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/extraction_service.h"
#include "api/extraction_store.h"
#include "bus/sqlite_bus.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

using test::TempDir;

Extraction row(int i) {
  Extraction e;
  e.id = "x" + std::to_string(i);
  e.source = "gone";  // no such source: a worker would fail it at once, never fetch
  e.endpoint = "e";
  e.params_json = "{}";
  e.status = "queued";
  return e;
}

// Submits n rows asynchronously and waits for every answer; returns how many were accepted.
int submit_all(ExtractionService& svc, int n) {
  std::atomic<int> accepted{0}, answered{0};
  for (int i = 0; i < n; ++i)
    svc.submit_async(row(i), [&](bool ok, const std::string& error) {
      EXPECT_TRUE(error.empty()) << error;
      if (ok) ++accepted;
      ++answered;
    });
  while (answered.load() < n) std::this_thread::yield();
  return accepted.load();
}

// The store and the bus of one test, in a fresh directory; each test builds its service on them.
class ExtractionServiceAccept : public ::testing::Test {
 protected:
  TempDir dir;
  std::vector<Source> sources;
  ExtractionStore store{dir / "extractions.db"};
  SqliteBus bus{dir / "bus.db"};
};

TEST_F(ExtractionServiceAccept, AcceptOnlyInstanceRecordsBeyondTheQueueLimitAndRunsNothing) {
  ExtractionServiceOptions options;
  options.workers = 0;
  options.max_queue = 2;
  ExtractionService svc(sources, store, bus, options);
  svc.start();
  EXPECT_EQ(submit_all(svc, 5), 5);
  svc.stop();
  // All five wait, queued, for a process with workers.
  auto waiting = store.unfinished();
  ASSERT_EQ(waiting.size(), 5u);
  for (const auto& e : waiting) EXPECT_EQ(e.status, "queued");
}

// prepare(): 32 lowercase hex digits, the first 12 the creation time in milliseconds (so the ids of
// consecutive extractions increase), the rest random (no two alike); the params as compact JSON.
TEST_F(ExtractionServiceAccept, PreparedIdsAreHexTimeOrderedAndDistinct) {
  ExtractionServiceOptions options;
  options.workers = 0;
  ExtractionService svc(sources, store, bus, options);
  Source source;
  source.name = "gh";
  Endpoint endpoint;
  endpoint.name = "issues";
  std::set<std::string> ids;
  std::string previous;
  for (int i = 0; i < 500; ++i) {
    auto prepared = svc.prepare(source, endpoint, {{"repo", "a\"b"}, {"state", "open"}}, false);
    const std::string& id = prepared.record.id;
    ASSERT_EQ(id.size(), 32u) << id;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    EXPECT_EQ(std::stoull(id.substr(0, 12), nullptr, 16), static_cast<uint64_t>(prepared.record.created_us / 1000));
    EXPECT_GE(id.substr(0, 12), previous.substr(0, std::min<std::size_t>(12, previous.size())));
    EXPECT_EQ(prepared.record.params_json, R"({"repo":"a\"b","state":"open"})");
    previous = id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 500u);
}

TEST_F(ExtractionServiceAccept, WithWorkersTheQueueLimitRefusesAndTheRowsRun) {
  ExtractionServiceOptions options;
  options.workers = 1;
  options.max_queue = 0;  // always full: every submission is refused before anything is stored
  {
    ExtractionService svc(sources, store, bus, options);
    svc.start();
    EXPECT_EQ(submit_all(svc, 3), 0);
  }
  EXPECT_TRUE(store.unfinished().empty());
  EXPECT_FALSE(store.get("x0"));

  options.max_queue = 100;
  ExtractionService svc(sources, store, bus, options);
  svc.start();
  EXPECT_EQ(submit_all(svc, 3), 3);
  // The worker takes them from the queue and fails them (their source is not defined).
  for (int i = 0; i < 3; ++i) {
    for (int tries = 0; tries < 2000; ++tries) {
      if (auto e = store.get("x" + std::to_string(i)); e && e->status == "failed") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto e = store.get("x" + std::to_string(i));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, "failed");
    EXPECT_NE(e->error.find("no longer defined"), std::string::npos) << e->error;
  }
}

}  // namespace
}  // namespace apilake
