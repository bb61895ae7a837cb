// schema.evolution: evolve seen by the readers of the lake: a dataset whose curated files span three
// schema versions (two in one hour) reads with every column, NULL where a file lacks it, through
// QueryService and an insight model (insight/dataset_view.h), before and after compaction merges the
// mixed hour. The files carry no tag the views depend on, so lakes written before the views changed
// read the same way.
#include <filesystem>

#include <gtest/gtest.h>

#include "curate/compact.h"
#include "curate/curator.h"
#include "insight/models.h"
#include "insight/query.h"
#include "lake/lake.h"
#include "support/curate_fixtures.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

using test::field;
using test::kT0;
constexpr int64_t kHour = 3600LL * 1000000;

class EvolutionViews : public ::testing::Test {
 protected:
  void SetUp() override {
    sources_ = test::shop_items({field("id", FieldType::Int64, true), field("price", FieldType::Double),
                                 field("name", FieldType::String)},
                                Evolution::Evolve);
    sources_[0].dir = root_ / "sources/shop";
    fs::create_directories(sources_[0].dir);
    Curator c(sources_, db_, lake_.staging_dir(), &lake_);
    curate(c, "1", R"({"items":[{"id":1,"price":1.5,"name":"a"}]})", kT0);                  // v1, hour 08
    curate(c, "2", R"({"items":[{"id":2,"name":"b","color":"red"}]})", kT0);                 // v2, hour 08
    curate(c, "3", R"({"items":[{"id":3,"name":"c","color":"blue","size":4}]})", kT0 + kHour);  // v3, hour 09
    curate(c, "4", R"({"items":[{"id":4,"price":2.5}]})", kT0);                              // v3, hour 08
  }

  void curate(Curator& c, const std::string& id, const std::string& body, int64_t t) {
    PreparedBatch b = c.stage({test::page_message(id, "shop", "items", body, "ex-" + id, "1", t)});
    for (const auto& f : b.files) lake_.commit_staged(f.staged, f.final);
  }

  std::size_t parquet_files() {
    std::size_t n = 0;
    for (const auto& p : lake_.list("curated/shop/items"))
      if (p.ends_with(".parquet")) ++n;
    return n;
  }

  test::TempDir tmp_;  // declared first: removed after the databases are gone
  fs::path root_ = tmp_.path();
  LocalLake lake_{root_ / "lake"};
  duck::Database db_;
  std::vector<Source> sources_;
};

const char* kAll = "1,1.5,a,NULL,NULL;2,NULL,b,red,NULL;3,NULL,c,blue,4;4,2.5,NULL,NULL,NULL;";

std::string text(const QueryResult& r) {
  std::string out;
  for (const auto& row : r.rows) {
    for (std::size_t c = 0; c < row.size(); ++c) out += (c ? "," : "") + row[c].value_or("NULL");
    out += ";";
  }
  return out;
}

TEST_F(EvolutionViews, EveryVersionThroughQueriesAndModelsBeforeAndAfterCompaction) {
  ASSERT_EQ(parquet_files(), 4u);
  const std::string lake_root = (root_ / "lake").string();
  QueryService q(lake_root, sources_);
  const std::string sql = "SELECT id, price, name, color, size FROM shop_items ORDER BY id";
  EXPECT_EQ(text(q.run(sql)), kAll);

  InsightModel m = parse_model(
      "-- name: items_all\n-- description: every item\n-- datasets: shop_items\n"
      "SELECT id, price, name, color, size FROM shop_items ORDER BY id\n",
      sources_[0].dir / "items_all.sql", {"shop_items"});
  InsightService svc(lake_root, sources_, {m});
  const std::string expected_csv = "id,price,name,color,size\r\n1,1.5,a,,\r\n2,,b,red,\r\n3,,c,blue,4\r\n4,2.5,,,\r\n";
  ASSERT_TRUE(svc.refresh("items_all"));
  EXPECT_EQ(svc.render("items_all", "csv").value().body, expected_csv);

  // Compaction merges hour 08's three files (v1, v2, v3) into one; the readers follow.
  CompactResult c = compact_hour(lake_, db_, sources_[0], sources_[0].endpoints[0], "2025-11-26T08");
  EXPECT_EQ(c.inputs, 3);
  EXPECT_EQ(c.rows, 3);
  EXPECT_EQ(parquet_files(), 2u);
  EXPECT_EQ(text(q.run(sql)), kAll);
  EXPECT_EQ(text(q.run("SELECT count(*), count(DISTINCT _message_id) FROM shop_items")), "4,4;");
  ASSERT_TRUE(svc.refresh("items_all"));  // other input files: a new materialisation, the same rows
  EXPECT_EQ(svc.render("items_all", "csv").value().body, expected_csv);
  const auto stats = svc.dataset_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].rows, 4);
  EXPECT_EQ(stats[0].files, 2);
}

}  // namespace
}  // namespace apilake
