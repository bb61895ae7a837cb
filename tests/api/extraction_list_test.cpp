// ExtractionStore::recent (GET /v1/extractions): newest first across statuses, cut at the limit,
// ties on created_us in insertion order (newest inserted first), progress as stored.
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "api/extraction_store.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

using test::TempDir;

Extraction row(const std::string& id, int64_t created_us) {
  Extraction e;
  e.id = id;
  e.source = "bcb_sgs";
  e.endpoint = "series";
  e.params_json = R"({"series":"11"})";
  e.status = "queued";
  e.created_us = created_us;
  return e;
}

TEST(ExtractionList, NewestFirstAcrossStatusesCutAtTheLimit) {
  TempDir dir;
  ExtractionStore store(dir / "extractions.db");
  EXPECT_TRUE(store.recent(10).empty());
  store.insert(row("old", 1'000));
  store.insert(row("new", 3'000));
  store.insert(row("mid", 2'000));
  store.set_running("mid");
  store.add_page("mid", 20, 512);
  store.finish("old", false, "upstream said 500");
  auto all = store.recent(10);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, "new");
  EXPECT_EQ(all[1].id, "mid");
  EXPECT_EQ(all[2].id, "old");
  EXPECT_EQ(all[0].status, "queued");
  EXPECT_EQ(all[1].status, "running");
  EXPECT_EQ(all[1].pages, 1);
  EXPECT_EQ(all[1].records, 20);
  EXPECT_EQ(all[1].bytes, 512);
  EXPECT_EQ(all[2].status, "failed");
  EXPECT_EQ(all[2].error, "upstream said 500");
  auto two = store.recent(2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].id, "new");
  EXPECT_EQ(two[1].id, "mid");
}

TEST(ExtractionList, SameMicrosecondListsTheLaterInsertFirst) {
  TempDir dir;
  ExtractionStore store(dir / "extractions.db");
  store.insert(row("a", 5'000));
  store.insert(row("b", 5'000));
  auto r = store.recent(2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].id, "b");
  EXPECT_EQ(r[1].id, "a");
}

}  // namespace
}  // namespace apilake
