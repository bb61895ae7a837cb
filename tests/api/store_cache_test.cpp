// The extraction store's owner and row cache: get() answers from memory on the owner, and the answer
// is exactly what the database file holds after every kind of write — the owner's own, another
// store's on the same file in this process — while a store in another process is refused.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include "api/extraction_store.h"
#include "support/extraction_rows.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

using test::TempDir;

Extraction row(const std::string& id) { return test::queued_row(id); }

// The row as the file holds it, read by a plain SQLite connection (no store, no cache).
std::optional<Extraction> from_file(const fs::path& db, const std::string& id) {
  sqlite3* c = nullptr;
  if (sqlite3_open_v2(db.c_str(), &c, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(c);
    throw std::runtime_error("cannot open " + db.string());
  }
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(c,
                     "SELECT id, source, endpoint, params, status, pages, records, bytes, error, created_us,"
                     " finished_us FROM extractions WHERE id = ?",
                     -1, &s, nullptr);
  sqlite3_bind_text(s, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  std::optional<Extraction> out;
  if (sqlite3_step(s) == SQLITE_ROW) {
    auto text = [&](int i) { return std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, i))); };
    Extraction e;
    e.id = text(0);
    e.source = text(1);
    e.endpoint = text(2);
    e.params_json = text(3);
    e.status = text(4);
    e.pages = sqlite3_column_int64(s, 5);
    e.records = sqlite3_column_int64(s, 6);
    e.bytes = sqlite3_column_int64(s, 7);
    e.error = text(8);
    e.created_us = sqlite3_column_int64(s, 9);
    e.finished_us = sqlite3_column_int64(s, 10);
    out = e;
  }
  sqlite3_finalize(s);
  sqlite3_close(c);
  return out;
}

// Every column of what `store` answers equals the file's row.
void expect_as_in_file(ExtractionStore& store, const fs::path& db, const std::string& id, const char* step) {
  SCOPED_TRACE(step);
  const auto got = store.get(id);
  const auto want = from_file(db, id);
  ASSERT_EQ(got.has_value(), want.has_value());
  if (!got) return;
  EXPECT_EQ(got->id, want->id);
  EXPECT_EQ(got->source, want->source);
  EXPECT_EQ(got->endpoint, want->endpoint);
  EXPECT_EQ(got->params_json, want->params_json);
  EXPECT_EQ(got->status, want->status);
  EXPECT_EQ(got->pages, want->pages);
  EXPECT_EQ(got->records, want->records);
  EXPECT_EQ(got->bytes, want->bytes);
  EXPECT_EQ(got->error, want->error);
  EXPECT_EQ(got->created_us, want->created_us);
  EXPECT_EQ(got->finished_us, want->finished_us);
}

TEST(ExtractionStoreCache, TheOwnersAnswersMatchTheFileAfterEveryKindOfWrite) {
  TempDir dir;
  const fs::path db = dir / "extractions.db";
  ExtractionStore store(db);
  EXPECT_TRUE(store.cached());
  Extraction fresh = row("a");
  fresh.created_us = 0;  // the store stamps it: the cache must hold the stamped value
  store.insert(fresh);
  expect_as_in_file(store, db, "a", "insert");
  EXPECT_GT(store.get("a")->created_us, 0);
  store.set_running("a");
  expect_as_in_file(store, db, "a", "set_running");
  store.add_page("a", 7, 700);
  store.add_page("a", 5, 500);
  expect_as_in_file(store, db, "a", "add_page");
  store.reset_progress("a");
  expect_as_in_file(store, db, "a", "reset_progress");
  store.add_page("a", 2, 20);
  store.finish("a", false, "upstream said 500", ExtractionStore::PageCounts{3, 30});
  expect_as_in_file(store, db, "a", "finish with the last page");
  EXPECT_EQ(store.get("a")->pages, 2);
  // A duplicate insert fails and changes nothing, in the file or in memory.
  EXPECT_THROW(store.insert(row("a")), std::runtime_error);
  expect_as_in_file(store, db, "a", "duplicate insert");
  EXPECT_EQ(store.get("a")->status, "failed");
  EXPECT_FALSE(store.get("missing"));
}

// A row written before this store opened (not in memory yet) is read from the file once, then held;
// later writes keep it exact.
TEST(ExtractionStoreCache, RowsFromAnEarlierRunAreReadThenKeptExact) {
  TempDir dir;
  const fs::path db = dir / "extractions.db";
  {
    ExtractionStore first(db);
    first.insert(row("old"));
  }
  ExtractionStore store(db);
  expect_as_in_file(store, db, "old", "first read");
  store.set_running("old");
  store.finish("old", true, "", ExtractionStore::PageCounts{4, 40});
  expect_as_in_file(store, db, "old", "after finish");
  EXPECT_EQ(store.get("old")->status, "succeeded");
}

// Another store on the same file in this process is uncached; its commits reach the owner's answers
// before its writes return.
TEST(ExtractionStoreCache, ASecondStoreInTheProcessIsUncachedAndTheOwnerSeesItsWrites) {
  TempDir dir;
  const fs::path db = dir / "extractions.db";
  ExtractionStore owner(db);
  owner.insert(row("b"));
  ASSERT_EQ(owner.get("b")->status, "queued");  // held in memory now
  {
    ExtractionStore other(db);
    EXPECT_FALSE(other.cached());
    other.set_running("b");
    EXPECT_EQ(owner.get("b")->status, "running");
    other.add_page("b", 9, 90);
    expect_as_in_file(owner, db, "b", "other's add_page");
    other.reset_progress("b");
    expect_as_in_file(owner, db, "b", "other's reset_progress");
    other.finish("b", true, "", ExtractionStore::PageCounts{1, 10});
    expect_as_in_file(owner, db, "b", "other's finish");
    other.insert(row("c"));
    expect_as_in_file(owner, db, "c", "other's insert");
  }
  owner.add_page("b", 1, 1);  // the owner's own writes still land in memory exactly
  expect_as_in_file(owner, db, "b", "owner after other closed");
}

// Another process cannot open a file whose owner is alive (the owner's memory would miss its
// writes); once the owner is closed it can. The child is a fresh process (threadsafe death test:
// the test binary re-executed), the file's path reaches it through the environment.
TEST(ExtractionStoreCache, AnotherProcessIsRefusedWhileTheOwnerIsAlive) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  const char* inherited = std::getenv("APILAKE_STORE_CACHE_TEST_DB");
  const fs::path db = inherited ? fs::path(inherited) : dir / "extractions.db";
  auto open_in_child = [&db] {
    try {
      ExtractionStore s(db);
    } catch (const std::runtime_error& e) {
      std::fprintf(stderr, "refused: %s\n", e.what());
      std::_Exit(3);
    }
    std::_Exit(0);
  };
  if (inherited) {  // in the re-executed child: only the EXPECT_EXIT statements below matter
    ::setenv("APILAKE_STORE_CACHE_TEST_DB", inherited, 1);
  }
  {
    std::optional<ExtractionStore> owner;
    if (!inherited) {
      owner.emplace(db);
      ::setenv("APILAKE_STORE_CACHE_TEST_DB", db.c_str(), 1);
    }
    EXPECT_EXIT(open_in_child(), testing::ExitedWithCode(3), "in use by another process");
  }
  EXPECT_EXIT(open_in_child(), testing::ExitedWithCode(0), "");
  ::unsetenv("APILAKE_STORE_CACHE_TEST_DB");
}

}  // namespace
}  // namespace apilake
