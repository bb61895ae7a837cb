// Incremental state in the extraction store: highest value wins, keyed by (source, endpoint,
// params key), and it survives a restart (a new store on the same SQLite file).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "api/extraction_store.h"
#include "source/source.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

TEST(IncrementalState, RoundTripHighestWinsAndSurvivesRestart) {
  test::TempDir dir;
  const fs::path db = dir / "state" / "extractions.db";
  {
    ExtractionStore store(db);
    EXPECT_EQ(store.incremental_state("gh", "issues", R"({"repo":"a"})"), std::nullopt);
    store.save_incremental_state("gh", "issues", R"({"repo":"a"})", "2024-03-01T00:00:00Z", cursor_less);
    store.save_incremental_state("gh", "issues", R"({"repo":"a"})", "2024-02-01T00:00:00Z", cursor_less);  // lower
    store.save_incremental_state("gh", "issues", R"({"repo":"b"})", "2023-01-01T00:00:00Z", cursor_less);
    store.save_incremental_state("gh", "ids", "{}", "9", cursor_less);
    store.save_incremental_state("gh", "ids", "{}", "10", cursor_less);  // numerically higher
    EXPECT_EQ(store.incremental_state("gh", "issues", R"({"repo":"a"})"), "2024-03-01T00:00:00Z");
  }
  ExtractionStore reopened(db);
  EXPECT_EQ(reopened.incremental_state("gh", "issues", R"({"repo":"a"})"), "2024-03-01T00:00:00Z");
  EXPECT_EQ(reopened.incremental_state("gh", "issues", R"({"repo":"b"})"), "2023-01-01T00:00:00Z");
  EXPECT_EQ(reopened.incremental_state("gh", "ids", "{}"), "10");
  EXPECT_EQ(reopened.incremental_state("gh", "pulls", R"({"repo":"a"})"), std::nullopt);
  reopened.save_incremental_state("gh", "issues", R"({"repo":"a"})", "2024-04-01T00:00:00Z", cursor_less);
  EXPECT_EQ(reopened.incremental_state("gh", "issues", R"({"repo":"a"})"), "2024-04-01T00:00:00Z");
}

}  // namespace
}  // namespace apilake
