// The extraction store's group commit: rows queued by insert_async are committed together, each
// caller learns its own row's outcome, and nothing is lost at close.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/extraction_store.h"
#include "support/extraction_rows.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

using test::TempDir;

Extraction row(const std::string& id) { return test::queued_row(id); }

TEST(ExtractionStoreCommit, ConcurrentAsyncInsertsAreAllCommittedAndSurviveReopen) {
  TempDir dir;
  const fs::path db = dir / "state" / "extractions.db";
  constexpr int kThreads = 4, kPerThread = 250;
  std::atomic<int> ok{0}, failed{0};
  {
    ExtractionStore store(db);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i)
          store.insert_async(row("t" + std::to_string(t) + "-" + std::to_string(i)),
                             [&](const std::string& error) { (error.empty() ? ok : failed)++; });
      });
    for (auto& th : threads) th.join();
    // Closing answers (and commits) every queued row first.
  }
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  ExtractionStore reopened(db);
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i) {
      auto e = reopened.get("t" + std::to_string(t) + "-" + std::to_string(i));
      ASSERT_TRUE(e) << t << "-" << i;
      EXPECT_EQ(e->status, "queued");
      EXPECT_EQ(e->params_json, R"({"repo":"a"})");
      EXPECT_EQ(e->created_us, 1'700'000'000'000'000);
    }
  EXPECT_EQ(reopened.unfinished().size(), static_cast<std::size_t>(kThreads * kPerThread));
}

// A duplicate id fails only its own row; the rows around it in the same batch are stored.
TEST(ExtractionStoreCommit, DuplicateFailsOnlyItsOwnRow) {
  TempDir dir;
  ExtractionStore store(dir / "extractions.db");
  store.insert(row("first"));
  EXPECT_THROW(store.insert(row("first")), std::runtime_error);

  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> outcomes;
  std::atomic<int> answered{0};
  for (const char* id : {"a", "first", "b", "a"})
    store.insert_async(row(id), [&, id = std::string(id)](const std::string& error) {
      std::lock_guard lock(mu);
      outcomes.emplace_back(id, error);
      ++answered;
    });
  while (answered.load() < 4) std::this_thread::yield();
  ASSERT_EQ(outcomes.size(), 4u);
  // Callbacks come in submission order (one writer, batches in order).
  EXPECT_EQ(outcomes[0], std::make_pair(std::string("a"), std::string()));
  EXPECT_EQ(outcomes[1].first, "first");
  EXPECT_NE(outcomes[1].second.find("UNIQUE"), std::string::npos) << outcomes[1].second;
  EXPECT_EQ(outcomes[2], std::make_pair(std::string("b"), std::string()));
  EXPECT_EQ(outcomes[3].first, "a");
  EXPECT_FALSE(outcomes[3].second.empty());
  EXPECT_TRUE(store.get("a"));
  EXPECT_TRUE(store.get("b"));
  EXPECT_FALSE(store.get("c"));
}

// The fetch workers' progress updates share the group-commit writer with the inserts: many threads
// running extractions concurrently, each update committed when it returns (a fresh store on the
// same file sees it), every counter exact (no update lost or applied twice in a batch).
TEST(ExtractionStoreCommit, ConcurrentProgressUpdatesAreDurableWhenTheyReturn) {
  TempDir dir;
  const fs::path db = dir / "extractions.db";
  constexpr int kThreads = 8, kPages = 5;
  ExtractionStore store(db);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      const std::string id = "x" + std::to_string(t);
      store.insert(row(id));
      store.set_running(id);
      for (int p = 1; p <= kPages; ++p) {
        store.add_page(id, 10 + t, 100);
        // Another connection to the same file: only committed data is visible there.
        ExtractionStore other(db);
        auto seen = other.get(id);
        if (!seen || seen->pages != p || seen->status != "running") ++mismatches;
      }
      store.finish(id, t % 2 == 0, t % 2 == 0 ? "" : "upstream said 500");
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  ExtractionStore reopened(db);
  for (int t = 0; t < kThreads; ++t) {
    auto e = reopened.get("x" + std::to_string(t));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, t % 2 == 0 ? "succeeded" : "failed");
    EXPECT_EQ(e->error, t % 2 == 0 ? "" : "upstream said 500");
    EXPECT_EQ(e->pages, kPages);
    EXPECT_EQ(e->records, kPages * (10 + t));
    EXPECT_EQ(e->bytes, kPages * 100);
    EXPECT_GT(e->finished_us, 0);
  }
  EXPECT_TRUE(reopened.unfinished().empty());
}

// Checkpoints happen off the writer's path, but they happen: once the WAL passes the threshold the
// committed pages reach the database file itself while the store is open.
TEST(ExtractionStoreCommit, TheWalIsCheckpointedInTheBackground) {
  TempDir dir;
  const fs::path db = dir / "extractions.db";
  ExtractionStore store(db);
  const auto initial = fs::file_size(db);
  for (int i = 0; i < 1500; ++i) store.insert(row("w" + std::to_string(i)));  // ~1 WAL frame or more each
  bool grown = false;
  for (int i = 0; i < 500 && !grown; ++i) {
    grown = fs::file_size(db) > initial + 64 * 1024;
    if (!grown) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(grown) << "database file still " << fs::file_size(db) << " bytes";
  EXPECT_TRUE(store.get("w1499"));
}

// finish() with the last page's counts: one write adds the page and ends the extraction, durable
// when it returns; without them it changes no counter.
TEST(ExtractionStoreCommit, FinishWithTheLastPageAddsItInTheSameWrite) {
  TempDir dir;
  const fs::path db = dir / "extractions.db";
  ExtractionStore store(db);
  store.insert(row("p"));
  store.set_running("p");
  store.add_page("p", 7, 700);
  store.finish("p", true, "", ExtractionStore::PageCounts{3, 300});
  store.insert(row("q"));
  store.finish("q", false, "upstream said 500");
  ExtractionStore other(db);
  auto p = other.get("p");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, "succeeded");
  EXPECT_EQ(p->pages, 2);
  EXPECT_EQ(p->records, 10);
  EXPECT_EQ(p->bytes, 1000);
  auto q = other.get("q");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->status, "failed");
  EXPECT_EQ(q->error, "upstream said 500");
  EXPECT_EQ(q->pages, 0);
  EXPECT_EQ(q->records, 0);
}

}  // namespace
}  // namespace apilake
