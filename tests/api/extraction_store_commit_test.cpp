// The extraction store's group commit: rows queued by insert_async are committed together, each
// caller learns its own row's outcome, and nothing is lost at close.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/extraction_store.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tpl = (fs::temp_directory_path() / "apilake-commit-XXXXXX").string();
    if (!mkdtemp(tpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

Extraction row(const std::string& id) {
  Extraction e;
  e.id = id;
  e.source = "gh";
  e.endpoint = "issues";
  e.params_json = R"({"repo":"a"})";
  e.status = "queued";
  e.created_us = 1'700'000'000'000'000;
  return e;
}

TEST(ExtractionStoreCommit, ConcurrentAsyncInsertsAreAllCommittedAndSurviveReopen) {
  TempDir dir;
  const fs::path db = dir.path / "state" / "extractions.db";
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
  ExtractionStore store(dir.path / "extractions.db");
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

}  // namespace
}  // namespace apilake
