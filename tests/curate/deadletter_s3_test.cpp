// Dead letters on an object-store lake (a real S3 server, s3rver; tests/lake/s3_server.h): the curator
// writes them through the Lake seam, and counts and replay read, mark and write through it too (no
// local path anywhere), with the schema registry read from the bucket for an evolve dataset.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "curate/curator.h"
#include "curate/deadletters.h"
#include "curate/schema_registry.h"
#include "lake/s3_lake.h"
#include "lake/s3_server.h"
#include "support/curate_fixtures.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

using test::field;

std::vector<Source> shop(FieldType price) {
  return test::shop_items({field("id", FieldType::Int64, true), field("price", price)}, Evolution::Evolve);
}

TEST(DeadLetterObjectStore, CountsAndReplayGoThroughTheLake) {
  static std::atomic<int> n{0};
  const std::string tag = "dl" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  const fs::path staging = fs::temp_directory_path() / ("apilake-dls3-" + tag);
  test::S3Server* server = nullptr;
  try {
    server = &test::S3Server::shared();
  } catch (const std::exception& e) {
    FAIL() << "cannot run the object-store dead-letter test: " << e.what();
  }
  S3Lake lake(server->config(tag + "/lake", staging));
  ASSERT_EQ(lake.local_root(), "");  // nothing below may take a local path
  duck::Database db;

  const auto buggy = shop(FieldType::Double);
  {
    Curator c(buggy, db, lake.staging_dir() / "curate", &lake);
    const PreparedBatch b = c.stage({test::page_message(
        "1", "shop", "items", R"({"items":[{"id":1,"price":1,"color":"red"},{"id":2,"price":"2,5","color":"blue"}]})")});
    for (const auto& f : b.files) lake.commit_staged(f.staged, f.final);
  }
  ASSERT_TRUE(lake.exists(schema_registry_path("shop", "items", 2)));

  const auto fixed = shop(FieldType::String);
  DeadLetters dl(fixed, lake, db);
  auto counts = dl.counts();
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].reason, "bad_format");
  EXPECT_EQ(counts[0].pending, 1);

  const ReplayResult r = dl.replay("shop_items");
  EXPECT_EQ(r.replayed, 1);
  EXPECT_EQ(r.still_failing, 0);
  ASSERT_EQ(r.written.size(), 1u);
  ASSERT_TRUE(lake.exists(r.written[0]));
  counts = dl.counts();
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].replayed, 1);  // marked in the bucket, not deleted
  EXPECT_EQ(counts[0].pending, 0);
  EXPECT_EQ(dl.replay("shop_items").replayed, 0);

  // The replayed file, fetched from the bucket: the evolved column from the bucket's registry.
  const fs::path local = staging / "replayed.parquet";
  {
    const auto bytes = lake.get(r.written[0]);
    ASSERT_TRUE(bytes);
    std::ofstream(local, std::ios::binary) << *bytes;
  }
  duck::Connection con(db);
  auto q = con.query("SELECT id, price, color FROM read_parquet(" + duck::quote_literal(local.string()) + ")");
  ASSERT_EQ(q.row_count(), 1u);
  EXPECT_EQ(q.text(0, 0).value_or("NULL"), "2");
  EXPECT_EQ(q.text(1, 0).value_or("NULL"), "2,5");
  EXPECT_EQ(q.text(2, 0).value_or("NULL"), "blue");

  std::error_code ec;
  fs::remove_all(staging, ec);
}

}  // namespace
}  // namespace apilake
