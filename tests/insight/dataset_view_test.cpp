// The dataset views (insight/dataset_view.h) over files of several column sets: the same rows and
// columns as read_parquet(glob, union_by_name=true), one read_parquet per column set (not per file), and
// a view that follows files added, removed and rewritten; through QueryService and an insight model.
#include "insight/dataset_view.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "insight/models.h"
#include "insight/query.h"
#include "support/curate_fixtures.h"
#include "support/duck_rows.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {

namespace fs = std::filesystem;

class DatasetViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = root_ / "curated/shop/orders";
    // Schema v1 (two files), v2 with `color` (two files, another hour), and an older file whose
    // columns come in another order with a column no later version has (`paid`).
    test::write_parquet(dir_ / "2026/11/26/08/000001-000002.parquet",
                        "SELECT range AS id, 'a' || range::VARCHAR AS name FROM range(1, 3)");
    test::write_parquet(dir_ / "2026/11/26/08/000003-000003.parquet", "SELECT 3::BIGINT AS id, 'a3' AS name");
    test::write_parquet(dir_ / "2026/11/26/09/000004-000004.parquet",
                        "SELECT 4::BIGINT AS id, 'a4' AS name, 'red' AS color");
    test::write_parquet(dir_ / "2026/11/26/09/000005-000005.parquet",
                        "SELECT 5::BIGINT AS id, 'a5' AS name, NULL::VARCHAR AS color");
    test::write_parquet(dir_ / "2026/11/26/07/000000-000000.parquet",
                        "SELECT true AS paid, 'a0' AS name, 0::BIGINT AS id");
  }
  std::string glob() const { return duck::quote_literal((dir_ / "**/*.parquet").string()); }
  // Rows in one and not the other, both ways (0 = the same multiset of rows).
  std::string differences(duck::Connection& con) {
    const std::string all = "SELECT * FROM read_parquet(" + glob() + ", union_by_name=true, hive_partitioning=false)";
    return test::rows_text(con, "SELECT count(*) FROM ((SELECT * FROM v EXCEPT ALL " + all + ") UNION ALL (" + all +
                               " EXCEPT ALL SELECT * FROM v))");
  }

  test::TempDir tmp_;
  fs::path root_ = tmp_.path();
  fs::path dir_;
  duck::Database db_;
};

TEST_F(DatasetViewTest, EveryColumnOfEveryFileOneReadPerColumnSet) {
  duck::Connection con(db_);
  DatasetView view("v", dir_.string());
  EXPECT_FALSE(view.exists());
  ASSERT_TRUE(view.sync(con));
  EXPECT_EQ(view.files(), 5u);
  EXPECT_EQ(test::rows_text(con, "SELECT id, name, color, paid FROM v ORDER BY id"),
            "0,a0,NULL,true;1,a1,NULL,NULL;2,a2,NULL,NULL;3,a3,NULL,NULL;4,a4,red,NULL;5,a5,NULL,NULL;");
  // The same columns (names, types, order) and rows as union_by_name over the glob.
  const std::string desc = "SELECT string_agg(column_name || ' ' || column_type, ', ') FROM (DESCRIBE ";
  EXPECT_EQ(test::rows_text(con, desc + "SELECT * FROM v)"),
            test::rows_text(con, desc + "SELECT * FROM read_parquet(" + glob() + ", union_by_name=true, hive_partitioning=false))"));
  EXPECT_EQ(differences(con), "0;");
  // Three column sets: three read_parquet calls, without union_by_name, whatever the file count.
  const std::string sql = test::rows_text(con, "SELECT sql FROM duckdb_views() WHERE view_name = 'v'");
  std::size_t reads = 0;
  for (auto at = sql.find("read_parquet("); at != std::string::npos; at = sql.find("read_parquet(", at + 1)) ++reads;
  EXPECT_EQ(reads, 3u) << sql;
  EXPECT_EQ(sql.find("union_by_name"), std::string::npos) << sql;
}

TEST_F(DatasetViewTest, FollowsFilesAddedRemovedAndRewritten) {
  duck::Connection con(db_);
  DatasetView view("v", dir_.string());
  ASSERT_TRUE(view.sync(con));
  // A new schema version: a column no file had.
  test::write_parquet(dir_ / "2026/11/26/10/000006-000006.parquet",
                "SELECT 6::BIGINT AS id, 'a6' AS name, 'blue' AS color, 2.5 AS size");
  view.sync(con);
  EXPECT_EQ(test::rows_text(con, "SELECT id, color, size FROM v WHERE id >= 4 ORDER BY id"), "4,red,NULL;5,NULL,NULL;6,blue,2.5;");
  EXPECT_EQ(differences(con), "0;");
  // A file removed (as compaction does with its inputs): without a sync the view fails, and the error
  // is one the readers retry after a sync.
  fs::remove(dir_ / "2026/11/26/08/000003-000003.parquet");
  try {
    test::rows_text(con, "SELECT count(*) FROM v");
    ADD_FAILURE() << "a view over a removed file still answered";
  } catch (const duck::Error& e) {
    EXPECT_TRUE(stale_view_error(e.what())) << e.what();
  }
  view.sync(con);
  EXPECT_EQ(test::rows_text(con, "SELECT count(*), sum(id) FROM v"), "6,18;");
  // The same name rewritten with other columns (a redelivered batch after a schema change).
  const fs::path rewritten = dir_ / "2026/11/26/09/000005-000005.parquet";
  test::write_parquet(rewritten, "SELECT 5::BIGINT AS id, 'b5' AS name, 'green' AS color, 'x' AS tag");
  fs::last_write_time(rewritten, fs::last_write_time(rewritten) + std::chrono::seconds(1));
  view.sync(con);
  EXPECT_EQ(test::rows_text(con, "SELECT id, name, color, tag FROM v WHERE id = 5"), "5,b5,green,x;");
  EXPECT_EQ(differences(con), "0;");
  EXPECT_FALSE(stale_view_error("Binder Error: Referenced column \"colour\" not found"));
}

TEST_F(DatasetViewTest, NoViewUntilAFileArrivesAndAnUnreadableFileIsAnError) {
  duck::Connection con(db_);
  DatasetView empty("e", (root_ / "curated/shop/refunds").string());
  EXPECT_FALSE(empty.sync(con));
  fs::create_directories(root_ / "curated/shop/refunds/2026/11/26/08");
  std::ofstream(root_ / "curated/shop/refunds/2026/11/26/08/notes.txt") << "x";
  EXPECT_FALSE(empty.sync(con));
  EXPECT_FALSE(empty.exists());
  std::ofstream(root_ / "curated/shop/refunds/2026/11/26/08/broken.parquet") << "not parquet";
  EXPECT_THROW(empty.sync(con), duck::Error);
  EXPECT_FALSE(empty.exists());
  fs::remove(root_ / "curated/shop/refunds/2026/11/26/08/broken.parquet");
  test::write_parquet(root_ / "curated/shop/refunds/2026/11/26/08/000001-000001.parquet", "SELECT 42 AS refund_id");
  EXPECT_TRUE(empty.sync(con));
  EXPECT_EQ(test::rows_text(con, "SELECT refund_id FROM e"), "42;");
}

TEST_F(DatasetViewTest, QueryServiceShowsEveryColumnNullWhereAbsent) {
  QueryService q(root_.string(), {test::source_with("shop", "orders")});
  auto r = q.run("SELECT id, color, paid FROM shop_orders WHERE id IN (0, 4, 5) ORDER BY id");
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0], (std::vector<std::optional<std::string>>{"0", std::nullopt, "true"}));
  EXPECT_EQ(r.rows[1], (std::vector<std::optional<std::string>>{"4", "red", std::nullopt}));
  EXPECT_EQ(r.rows[2], (std::vector<std::optional<std::string>>{"5", std::nullopt, std::nullopt}));
  // A later version with one more column is there for the next query.
  test::write_parquet(dir_ / "2026/11/26/10/000006-000006.parquet",
                "SELECT 6::BIGINT AS id, 'a6' AS name, 'blue' AS color, 2.5 AS size");
  r = q.run("SELECT count(*), count(color), count(size), count(paid) FROM shop_orders");
  EXPECT_EQ(r.rows.at(0), (std::vector<std::optional<std::string>>{"7", "2", "1", "1"}));
}

TEST_F(DatasetViewTest, AModelSeesEveryVersionAndTheNextOne) {
  const fs::path src_dir = root_ / "sources/shop";
  fs::create_directories(src_dir);
  Source s = test::source_with("shop", "orders");
  s.dir = src_dir;
  InsightModel m = parse_model(
      "-- name: orders_all\n-- description: every order\n-- datasets: shop_orders\n"
      "SELECT * FROM shop_orders ORDER BY id\n",
      src_dir / "orders_all.sql", {"shop_orders"});
  InsightService svc(root_.string(), {s}, {m});
  auto csv = [&] {
    EXPECT_TRUE(svc.refresh("orders_all"));
    return svc.render("orders_all", "csv").value().body;
  };
  EXPECT_EQ(csv(),
            "paid,name,id,color\r\ntrue,a0,0,\r\n,a1,1,\r\n,a2,2,\r\n,a3,3,\r\n,a4,4,red\r\n,a5,5,\r\n");
  // A new column after the model's first refresh: the next refresh has it (the view is rebuilt; a view
  // created once over union_by_name failed with "Contents of view were altered" from here on).
  test::write_parquet(dir_ / "2026/11/26/10/000006-000006.parquet",
                "SELECT 6::BIGINT AS id, 'a6' AS name, 'blue' AS color, 2.5 AS size");
  const std::string after = csv();
  EXPECT_EQ(after.substr(0, after.find("\r\n")), "paid,name,id,color,size");
  EXPECT_NE(after.find("\r\n,a6,6,blue,2.5\r\n"), std::string::npos) << after;
  EXPECT_NE(after.find("\r\n,a4,4,red,\r\n"), std::string::npos) << after;
}

}  // namespace
}  // namespace apilake
