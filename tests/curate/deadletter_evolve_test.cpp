// schema.evolution: evolve meets the dead letters and failed batches (docs/schema.md "Evolution"):
// - a replay uses the dataset's latest registered schema, so replayed rows keep the evolved columns
//   (and a replayed record with a still-unknown key evolves the schema to a new registered version);
// - a batch that evolved the schema but never reached the lake (its staged files dropped, as when the
//   ledger's prepare fails and the batch is nacked) does not leave the curator's schema ahead of the
//   registry: the redelivered batch evolves again and stages v<N>.json with its files.

#include <filesystem>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "curate/curator.h"
#include "curate/deadletters.h"
#include "curate/schema.h"
#include "curate/schema_registry.h"
#include "lake/lake.h"
#include "support/curate_fixtures.h"
#include "support/duck_rows.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;

using test::field;

// shop/items, evolve; `price` is a double (the "bug"), or a string once the definition is fixed.
std::vector<Source> shop(FieldType price) {
  return test::shop_items({field("id", FieldType::Int64, true), field("price", price)}, Evolution::Evolve);
}

Message page(const std::string& id, const std::string& body) { return test::page_message(id, "shop", "items", body); }

bool has_schema_file(const PreparedBatch& b, int version) {
  for (const auto& f : b.files)
    if (f.final == schema_registry_path("shop", "items", version)) return true;
  return false;
}

class DeadLetterEvolve : public ::testing::Test {
 protected:
  void SetUp() override { lake_ = std::make_unique<LocalLake>(root_ / "lake"); }

  void commit(const PreparedBatch& b) {
    for (const auto& f : b.files) lake_->commit_staged(f.staged, f.final);
  }
  // What the consumer does when prepare fails: the staged files are removed, nothing reaches the lake.
  static void drop(const PreparedBatch& b) {
    for (const auto& f : b.files) {
      std::error_code ec;
      fs::remove(f.staged, ec);
    }
  }
  std::string query(const std::string& sql) { return test::rows_text(db_, sql); }
  std::string abs(const std::string& rel) const { return (root_ / "lake" / rel).string(); }

  test::TempDir tmp_;  // declared first: removed after the lake and the database are gone
  fs::path root_ = tmp_.path();
  std::unique_ptr<LocalLake> lake_;
  duck::Database db_;
};

TEST_F(DeadLetterEvolve, ReplayKeepsEvolvedColumnsAndEvolvesFurther) {
  const auto buggy = shop(FieldType::Double);
  {
    Curator c(buggy, db_, root_ / "staging", lake_.get());
    // 1 evolves v2 (color); 2 has color too but a price the buggy definition refuses; 3 also brings a
    // key nobody has seen (size).
    PreparedBatch b = c.stage({page("1", R"({"items":[
      {"id":1,"price":1.5,"color":"red"},
      {"id":2,"price":"2,50","color":"blue"},
      {"id":3,"price":"3,75","color":"green","size":"XL"}]})")});
    EXPECT_EQ(b.counts["ex-1"].rows, 1);
    EXPECT_EQ(b.counts["ex-1"].deadlettered, 2);
    commit(b);
  }
  ASSERT_TRUE(lake_->exists(schema_registry_path("shop", "items", 2)));
  ASSERT_FALSE(lake_->exists(schema_registry_path("shop", "items", 3)));

  const auto fixed = shop(FieldType::String);
  DeadLetters dl(fixed, *lake_, db_);
  const ReplayResult r = dl.replay("shop_items");
  EXPECT_EQ(r.replayed, 2);
  EXPECT_EQ(r.rows, 2);
  EXPECT_EQ(r.still_failing, 0);
  ASSERT_EQ(r.written.size(), 1u);

  // The replayed rows have the registered column (color) and the one the replay added (size).
  EXPECT_EQ(query("SELECT id, price, color, size FROM read_parquet(" + duck::quote_literal(abs(r.written[0])) +
                  ") ORDER BY id"),
            "2,2,50,blue,NULL;3,3,75,green,XL;");
  // ... and v3 is registered (declared fields, color, size), v2 untouched.
  const RegisteredSchema reg = latest_registered_schema(*lake_, "shop", "items");
  EXPECT_EQ(reg.latest_version, 3);
  ASSERT_TRUE(reg.schema);
  ASSERT_EQ(reg.schema->fields.size(), 4u);
  EXPECT_EQ(reg.schema->fields[2].name, "color");
  EXPECT_EQ(reg.schema->fields[3].name, "size");
  const Schema v2 = schema_from_json(*lake_->get(schema_registry_path("shop", "items", 2)));
  EXPECT_EQ(v2.fields.size(), 3u);
  EXPECT_EQ(query("SELECT decode(value) FROM parquet_kv_metadata(" + duck::quote_literal(abs(r.written[0])) +
                  ") WHERE decode(key) = 'apilake_schema_version'"),
            "3;");

  // Every curated row, old file and replayed one, reads by column name: nothing lost, none twice.
  EXPECT_EQ(query("SELECT id, color FROM read_parquet(" + duck::quote_literal(abs("curated/**/*.parquet")) +
                  ", union_by_name=true, hive_partitioning=false) ORDER BY id"),
            "1,red;2,blue;3,green;");
  // Replayed once: a second replay has nothing pending.
  EXPECT_EQ(dl.replay("shop_items").replayed, 0);
}

TEST_F(DeadLetterEvolve, ReplayWithoutRegistryUsesTheDeclaration) {
  // No registered version (nothing evolved before the dead letter): the declared columns, version 1.
  const auto buggy = shop(FieldType::Double);
  {
    Curator c(buggy, db_, root_ / "staging", lake_.get());
    commit(c.stage({page("1", R"({"items":[{"id":1,"price":"x"}]})")}));
  }
  EXPECT_EQ(lake_->list("_schemas").size(), 0u);
  const auto fixed = shop(FieldType::String);  // DeadLetters keeps a reference
  DeadLetters dl(fixed, *lake_, db_);
  const ReplayResult r = dl.replay("shop_items");
  ASSERT_EQ(r.written.size(), 1u);
  EXPECT_EQ(query("SELECT id, price FROM read_parquet(" + duck::quote_literal(abs(r.written[0])) + ")"), "1,x;");
  EXPECT_EQ(lake_->list("_schemas").size(), 0u);
}

TEST_F(DeadLetterEvolve, BatchThatNeverReachedTheLakeEvolvesAgainWhenRedelivered) {
  const auto sources = shop(FieldType::Double);
  Curator c(sources, db_, root_ / "staging", lake_.get());
  const Message m = page("1", R"({"items":[{"id":1,"price":1.5,"color":"red"}]})");

  PreparedBatch failed = c.stage({m});
  ASSERT_TRUE(has_schema_file(failed, 2));
  drop(failed);  // prepare failed: nacked, nothing in the lake

  // The redelivery evolves again and carries v2.json with its Parquet file.
  PreparedBatch again = c.stage({m});
  EXPECT_TRUE(has_schema_file(again, 2));
  commit(again);
  ASSERT_TRUE(lake_->exists(schema_registry_path("shop", "items", 2)));
  EXPECT_EQ(latest_registered_schema(*lake_, "shop", "items").schema->fields.size(), 3u);

  // Committed: the next batch with the same key is curated under v2 without registering anything.
  PreparedBatch next = c.stage({page("2", R"({"items":[{"id":2,"price":2,"color":"blue"}]})")});
  EXPECT_FALSE(has_schema_file(next, 2));
  EXPECT_FALSE(has_schema_file(next, 3));
  for (const auto& f : next.files) EXPECT_EQ(f.final.rfind("_schemas/", 0), std::string::npos) << f.final;
  commit(next);
  EXPECT_EQ(query("SELECT id, color FROM read_parquet(" + duck::quote_literal(abs("curated/**/*.parquet")) +
                  ", union_by_name=true, hive_partitioning=false) ORDER BY id"),
            "1,red;2,blue;");
}

TEST_F(DeadLetterEvolve, FailedBatchRollsBackOnlyToTheRegisteredVersion) {
  // v2 (color) committed; v3 (size) staged and dropped: the redelivery registers v3 again, on top of v2.
  const auto sources = shop(FieldType::Double);
  Curator c(sources, db_, root_ / "staging", lake_.get());
  commit(c.stage({page("1", R"({"items":[{"id":1,"color":"red"}]})")}));
  const Message m = page("2", R"({"items":[{"id":2,"color":"blue","size":"L"}]})");
  PreparedBatch failed = c.stage({m});
  ASSERT_TRUE(has_schema_file(failed, 3));
  drop(failed);
  PreparedBatch again = c.stage({m});
  EXPECT_TRUE(has_schema_file(again, 3));
  EXPECT_FALSE(has_schema_file(again, 2));
  commit(again);
  const RegisteredSchema reg = latest_registered_schema(*lake_, "shop", "items");
  EXPECT_EQ(reg.latest_version, 3);
  ASSERT_EQ(reg.schema->fields.size(), 4u);
  EXPECT_EQ(reg.schema->fields[3].name, "size");
}

}  // namespace
}  // namespace apilake
