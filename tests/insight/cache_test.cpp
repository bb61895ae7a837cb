// SQL over an object-store lake: Parquet objects written through S3Lake (real s3rver, see
// tests/lake/s3_server.h) are queried through the QueryService's local cache.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>

#include "insight/lake_cache.h"
#include "insight/query.h"
#include "lake/s3_lake.h"
#include "support/curate_fixtures.h"
#include "lake/s3_server.h"

namespace apilake {
namespace {

namespace fs = std::filesystem;
using test::S3Server;

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> n{0};
    tag_ = "c" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    base_ = fs::temp_directory_path() / ("apilake-cachetest-" + tag_);
    fs::create_directories(base_);
    try {
      server_ = &S3Server::shared();
    } catch (const std::exception& e) {
      FAIL() << "cannot run the query cache tests: " << e.what();
    }
    lake_ = std::make_unique<S3Lake>(server_->config(tag_, base_ / "staging"));
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  // Writes a Parquet file with DuckDB (a database of its own) and commits it to the object lake.
  void commit_parquet(const std::string& final_path, const std::string& select) {
    static duck::Database writer;
    duck::Connection con(writer);
    const fs::path staged = lake_->staging_dir() / "w.parquet";
    con.execute("COPY (" + select + ") TO " + duck::quote_literal(staged.string()) + " (FORMAT parquet)");
    lake_->commit_staged(staged, final_path);
  }

  QueryOptions opts(std::chrono::milliseconds refresh) {
    QueryOptions o;
    o.cache_refresh = refresh;
    return o;
  }

  static std::string scalar(QueryService& q, const std::string& sql) {
    auto r = q.run(sql);
    EXPECT_EQ(r.rows.size(), 1u);
    return r.rows.empty() || !r.rows[0][0] ? "" : *r.rows[0][0];
  }

  std::string tag_;
  fs::path base_;
  S3Server* server_ = nullptr;
  std::unique_ptr<S3Lake> lake_;
};

TEST_F(CacheTest, QueriesSeeAddedObjectsAndForgetRemovedOnes) {
  const std::string h8 = "curated/shop/orders/2026/11/26/08/1-3.parquet";
  const std::string h9 = "curated/shop/orders/2026/11/26/09/4-5.parquet";
  commit_parquet(h8, "SELECT range AS id, range * 1.5 AS amount FROM range(3)");
  const fs::path cache = base_ / "cache";
  QueryService q(*lake_, cache.string(), {test::source_with("shop", "orders")}, opts(std::chrono::milliseconds(0)));
  EXPECT_EQ(q.views(), std::vector<std::string>{"shop_orders"});
  EXPECT_EQ(scalar(q, "SELECT count(*) FROM shop_orders"), "3");
  EXPECT_TRUE(fs::is_regular_file(cache / h8));

  commit_parquet(h9, "SELECT range + 3 AS id, 2.0 AS amount, true AS paid FROM range(2)");
  EXPECT_EQ(scalar(q, "SELECT count(*) FROM shop_orders"), "5");
  EXPECT_EQ(scalar(q, "SELECT max(id) FROM shop_orders"), "4");

  // Compaction-like: the old name goes away, a new name holds the rows.
  lake_->remove(h8);
  EXPECT_EQ(scalar(q, "SELECT count(*) FROM shop_orders"), "2");
  EXPECT_FALSE(fs::exists(cache / h8));

  // SQL still reads nothing outside the cache.
  try {
    q.run("SELECT * FROM read_parquet('" + (base_ / "staging" / "*.parquet").string() + "')");
    ADD_FAILURE() << "read outside the cache succeeded";
  } catch (const QueryError& e) {
    EXPECT_EQ(e.status, 400);
  }
}

TEST_F(CacheTest, RefreshIsThrottledAndMirrorsOnlyCuratedParquet) {
  commit_parquet("curated/shop/orders/2026/11/26/08/a.parquet", "SELECT 1 AS id");
  lake_->put("raw/shop/orders/2026/11/26/08/a.avro", "avro");
  lake_->put("curated/shop/orders/notes.txt", "not parquet");
  LakeCache cache(*lake_, base_ / "cache", std::chrono::hours(1));
  auto s = cache.refresh();
  EXPECT_FALSE(s.skipped);
  EXPECT_EQ(s.downloaded, 1u);
  EXPECT_EQ(s.files, 1u);
  EXPECT_FALSE(fs::exists(base_ / "cache" / "raw"));
  EXPECT_FALSE(fs::exists(base_ / "cache" / "curated/shop/orders/notes.txt"));

  commit_parquet("curated/shop/orders/2026/11/26/09/b.parquet", "SELECT 2 AS id");
  EXPECT_TRUE(cache.refresh().skipped);  // within the interval: no lake traffic
  EXPECT_FALSE(fs::exists(base_ / "cache" / "curated/shop/orders/2026/11/26/09/b.parquet"));
  s = cache.refresh(true);
  EXPECT_EQ(s.downloaded, 1u);
  EXPECT_EQ(s.removed, 0u);
  EXPECT_EQ(s.files, 2u);
  s = cache.refresh(true);  // nothing new: immutable names are not fetched again
  EXPECT_EQ(s.downloaded, 0u);
  EXPECT_TRUE(fs::is_empty(base_ / "cache" / "_staging"));  // no download left behind
}

TEST_F(CacheTest, UnreachableLakeIsAClearErrorBeforeTheFirstSync) {
  S3Config c = server_->config(tag_, base_ / "staging2");
  c.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  c.retry.max_attempts = 1;
  S3Lake dead(c);
  QueryService q(dead, (base_ / "cache2").string(), {test::source_with("shop", "orders")}, opts(std::chrono::milliseconds(0)));
  try {
    q.run("SELECT 1");
    ADD_FAILURE() << "expected an error";
  } catch (const QueryError& e) {
    EXPECT_EQ(e.status, 500);
    EXPECT_NE(std::string(e.what()).find("cannot read the lake"), std::string::npos) << e.what();
  }
}

TEST_F(CacheTest, ALocalLakeIsQueriedInPlace) {
  LocalLake local(base_ / "local");
  QueryService q(local, "", {test::source_with("shop", "orders")}, opts(std::chrono::milliseconds(0)));
  EXPECT_EQ(scalar(q, "SELECT 42"), "42");
  EXPECT_FALSE(fs::exists(base_ / "local" / "curated"));  // nothing mirrored
  S3Lake& object_lake = *lake_;
  EXPECT_THROW(QueryService(object_lake, "", {test::source_with("shop", "orders")}), QueryError);  // an object lake needs a cache dir
}

// Independent of the cache: a view bound before a file with a new column arrived is rebound.
TEST_F(CacheTest, AColumnAddedAfterTheViewWasBoundIsQueryable) {
  LocalLake local(base_ / "local");
  static duck::Database writer;
  duck::Connection con(writer);
  const fs::path dir = base_ / "local/curated/shop/orders/2026/11/26";
  fs::create_directories(dir / "08");
  fs::create_directories(dir / "09");
  con.execute("COPY (SELECT 1 AS id) TO " + duck::quote_literal((dir / "08/a.parquet").string()) + " (FORMAT parquet)");
  QueryService q(local, "", {test::source_with("shop", "orders")}, opts(std::chrono::milliseconds(0)));
  EXPECT_EQ(scalar(q, "SELECT count(*) FROM shop_orders"), "1");
  con.execute("COPY (SELECT 2 AS id, true AS paid) TO " + duck::quote_literal((dir / "09/b.parquet").string()) +
              " (FORMAT parquet)");
  EXPECT_EQ(scalar(q, "SELECT count(*) FROM shop_orders WHERE paid"), "1");
  EXPECT_EQ(scalar(q, "SELECT count(*) FROM shop_orders"), "2");
}

}  // namespace
}  // namespace apilake
