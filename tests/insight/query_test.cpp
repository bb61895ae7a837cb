#include "insight/query.h"
#include "support/duck_rows.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace apilake {
namespace {

namespace fs = std::filesystem;

fs::path unique_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  fs::path p = fs::temp_directory_path() /
               ("apilake_insight_" + tag + "_" + std::to_string(::getpid()) + "_" +
                std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

Source make_source(const std::string& name, std::vector<std::string> endpoints) {
  Source s;
  s.name = name;
  for (auto& e : endpoints) {
    Endpoint ep;
    ep.name = e;
    s.endpoints.push_back(ep);
  }
  return s;
}

class InsightTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = unique_dir("lake");
    sources_ = {make_source("shop", {"orders", "refunds"}), make_source("weather", {"obs"})};
    auto orders = root_ / "curated/shop/orders/2026/11/26";
    test::write_parquet(orders / "08/000001-000003.parquet",
                  "SELECT range AS id, 'o' || range::VARCHAR AS name, range * 1.5 AS amount "
                  "FROM range(3)");
    // A later hour whose schema gained a column: union_by_name must still read both.
    test::write_parquet(orders / "09/000004-000005.parquet",
                  "SELECT range + 3 AS id, 'o' || range::VARCHAR AS name, 2.0 AS amount, "
                  "true AS paid FROM range(2)");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  QueryOptions opts(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000),
                    std::size_t max_rows = 10000) {
    QueryOptions o;
    o.timeout = timeout;
    o.max_rows = max_rows;
    return o;
  }

  static int status_of(QueryService& q, const std::string& sql, std::string* msg = nullptr) {
    try {
      q.run(sql);
    } catch (const QueryError& e) {
      if (msg) *msg = e.what();
      return e.status;
    }
    return 200;
  }

  fs::path root_;
  std::vector<Source> sources_;
};

TEST_F(InsightTest, ViewReadsEveryHourWithUnionByName) {
  QueryService q(root_.string(), sources_, opts());
  auto r = q.run("SELECT count(*) AS n, count(paid) AS paid, sum(id) AS ids FROM shop_orders");
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.columns, (std::vector<std::string>{"n", "paid", "ids"}));
  EXPECT_EQ(r.types[0], "BIGINT");
  EXPECT_EQ(r.rows[0][0], "5");
  EXPECT_EQ(r.rows[0][1], "2");
  EXPECT_EQ(r.rows[0][2], "10");  // 0+1+2+3+4
  EXPECT_FALSE(r.truncated);
}

TEST_F(InsightTest, ViewAppearsOnceItsFirstFileArrives) {
  QueryService q(root_.string(), sources_, opts());
  EXPECT_EQ(q.views(), (std::vector<std::string>{"shop_orders"}));
  std::string msg;
  EXPECT_EQ(status_of(q, "SELECT * FROM shop_refunds", &msg), 400);
  EXPECT_NE(msg.find("shop_refunds"), std::string::npos) << msg;

  // A folder without Parquet files is not enough.
  fs::create_directories(root_ / "curated/shop/refunds/2026/11/26/10");
  std::ofstream(root_ / "curated/shop/refunds/2026/11/26/10/notes.txt") << "x";
  EXPECT_EQ(status_of(q, "SELECT * FROM shop_refunds"), 400);

  test::write_parquet(root_ / "curated/shop/refunds/2026/11/26/10/000009-000009.parquet",
                "SELECT 42 AS refund_id");
  auto r = q.run("SELECT refund_id FROM shop_refunds");
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], "42");
  EXPECT_EQ(q.views(), (std::vector<std::string>{"shop_orders", "shop_refunds"}));

  // Files added later to an existing view are seen too (the glob is read at query time).
  test::write_parquet(root_ / "curated/shop/refunds/2026/11/26/11/000010-000010.parquet",
                "SELECT 43 AS refund_id");
  EXPECT_EQ(q.run("SELECT count(*) FROM shop_refunds").rows[0][0], "2");
}

TEST_F(InsightTest, RejectsEverythingButSelect) {
  QueryService q(root_.string(), sources_, opts());
  const std::string lake = root_.string();
  const std::vector<std::string> statements = {
      "INSERT INTO shop_orders VALUES (9, 'x', 1.0)",
      "CREATE TABLE t AS SELECT 1 AS a",
      "CREATE OR REPLACE VIEW shop_orders AS SELECT 1 AS a",
      "DROP VIEW shop_orders",
      "COPY (SELECT 1 AS a) TO '" + lake + "/out.csv'",
      "ATTACH '" + lake + "/other.db' AS other",
      "PRAGMA threads=1",
      "PRAGMA enable_profiling",
      "SET threads=1",
      "SET enable_external_access=true",
      "RESET lock_configuration",
      "CALL checkpoint()",
      "EXPLAIN SELECT 1",
      "UPDATE shop_orders SET id = 0",
      "SELECT * FROM query('ATTACH ''" + lake + "/other.db'' AS other')",
      "",
      "   ;  ",
  };
  for (const auto& sql : statements) {
    std::string msg;
    EXPECT_EQ(status_of(q, sql, &msg), 400) << sql;
    EXPECT_FALSE(msg.empty()) << sql;
  }
  EXPECT_FALSE(fs::exists(root_ / "out.csv"));
  EXPECT_FALSE(fs::exists(root_ / "other.db"));
  // The view is untouched and the configuration still locked.
  EXPECT_EQ(q.run("SELECT count(*) FROM shop_orders").rows[0][0], "5");
  EXPECT_EQ(q.run("SELECT current_setting('enable_external_access')").rows[0][0], "false");
  EXPECT_EQ(q.run("SELECT current_setting('lock_configuration')").rows[0][0], "true");
}

TEST_F(InsightTest, RejectsMultipleStatements) {
  QueryService q(root_.string(), sources_, opts());
  std::string msg;
  EXPECT_EQ(status_of(q, "SELECT 1; SELECT 2", &msg), 400);
  EXPECT_NE(msg.find("single SELECT"), std::string::npos) << msg;
  EXPECT_EQ(status_of(q, "SELECT 1; DROP VIEW shop_orders"), 400);
  EXPECT_EQ(q.views(), (std::vector<std::string>{"shop_orders"}));
  EXPECT_EQ(q.run("SELECT count(*) FROM shop_orders").rows[0][0], "5");
  // A single statement with a trailing semicolon is fine.
  EXPECT_EQ(q.run("SELECT 42 AS x;").rows[0][0], "42");
}

TEST_F(InsightTest, CannotReadOutsideTheLake) {
  // A real Parquet file outside the lake, so a refusal is about access, not a missing file.
  fs::path elsewhere = unique_dir("elsewhere");
  test::write_parquet(elsewhere / "secret.parquet", "SELECT 'TOP-SECRET-VALUE' AS s");
  // A sibling whose name starts with the lake's name must not count as inside it.
  fs::path sibling = root_.string() + "x";
  test::write_parquet(sibling / "secret.parquet", "SELECT 'TOP-SECRET-VALUE' AS s");

  QueryService q(root_.string(), sources_, opts());
  const std::vector<std::string> attempts = {
      "SELECT * FROM read_csv('/etc/passwd')",
      "SELECT * FROM read_text('/etc/hostname')",
      "SELECT * FROM read_parquet('" + elsewhere.string() + "/*.parquet')",
      "SELECT * FROM read_parquet('" + elsewhere.string() + "/secret.parquet')",
      "SELECT * FROM read_parquet('" + root_.string() + "/../" + elsewhere.filename().string() +
          "/secret.parquet')",
      "SELECT * FROM read_parquet('" + sibling.string() + "/secret.parquet')",
  };
  for (const auto& sql : attempts) {
    std::string msg;
    EXPECT_EQ(status_of(q, sql, &msg), 400) << sql;
    EXPECT_NE(msg.find("Permission Error"), std::string::npos) << sql << ": " << msg;
    EXPECT_EQ(msg.find("TOP-SECRET-VALUE"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("root:"), std::string::npos) << msg;
  }
  // The lake itself stays readable through file functions.
  auto r = q.run("SELECT count(*) FROM read_parquet('" + root_.string() +
                 "/curated/shop/orders/**/*.parquet', union_by_name=true)");
  EXPECT_EQ(r.rows[0][0], "5");

  fs::remove_all(elsewhere);
  fs::remove_all(sibling);
}

TEST_F(InsightTest, LongQueryTimesOutAndServiceRecovers) {
  QueryService q(root_.string(), sources_, opts(std::chrono::milliseconds(200)));
  auto start = std::chrono::steady_clock::now();
  std::string msg;
  EXPECT_EQ(status_of(q, "SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b", &msg),
            408);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(msg, "query timed out after 200 ms");
  EXPECT_LT(elapsed, std::chrono::seconds(3));
  // The next query on the same service runs normally.
  EXPECT_EQ(q.run("SELECT count(*) FROM shop_orders").rows[0][0], "5");
}

TEST_F(InsightTest, TypesNullsAndText) {
  test::write_parquet(root_ / "curated/weather/obs/2026/11/26/08/000001-000002.parquet",
                "SELECT * FROM (VALUES "
                "(1::BIGINT, 20.5::DOUBLE, 'sunny', DATE '2026-11-26', "
                " TIMESTAMPTZ '2026-11-26 10:00:00+02:00', true, [1, 2]), "
                "(2::BIGINT, NULL::DOUBLE, NULL, NULL, NULL, NULL, NULL)) "
                "t(id, temp, sky, day, seen_at, ok, tags)");
  QueryService q(root_.string(), sources_, opts());
  auto r = q.run("SELECT id, temp, sky, day, seen_at, ok, tags, 1.25::DECIMAL(10,2) AS price, "
                 "1 AS id FROM weather_obs ORDER BY id");
  EXPECT_EQ(r.columns,
            (std::vector<std::string>{"id", "temp", "sky", "day", "seen_at", "ok", "tags", "price", "id"}));
  EXPECT_EQ(r.types, (std::vector<std::string>{"BIGINT", "DOUBLE", "VARCHAR", "DATE",
                                               "TIMESTAMP WITH TIME ZONE", "BOOLEAN", "INTEGER[]",
                                               "DECIMAL(10,2)", "INTEGER"}));
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0][0], "1");
  EXPECT_EQ(r.rows[0][1], "20.5");
  EXPECT_EQ(r.rows[0][2], "sunny");
  EXPECT_EQ(r.rows[0][3], "2026-11-26");
  EXPECT_EQ(r.rows[0][4], "2026-11-26 08:00:00+00");  // stored as an instant, shown in UTC
  EXPECT_EQ(r.rows[0][5], "true");
  EXPECT_EQ(r.rows[0][6], "[1, 2]");
  EXPECT_EQ(r.rows[0][7], "1.25");
  EXPECT_EQ(r.rows[1][0], "2");
  for (int c = 1; c <= 6; ++c) EXPECT_EQ(r.rows[1][c], std::nullopt) << c;
}

TEST_F(InsightTest, MaxRowsTruncatesKeepingOrder) {
  QueryService q(root_.string(), sources_, opts(std::chrono::milliseconds(10000), 3));
  auto r = q.run("SELECT range AS x FROM range(100) ORDER BY x DESC");
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.rows[0][0], "99");
  EXPECT_EQ(r.rows[2][0], "97");

  auto exact = q.run("SELECT id FROM shop_orders WHERE id < 3 ORDER BY id");
  EXPECT_EQ(exact.rows.size(), 3u);
  EXPECT_FALSE(exact.truncated);

  // Statements that cannot be wrapped in a subquery still obey the cap.
  auto pragma = q.run("PRAGMA table_info('shop_orders')");
  EXPECT_EQ(pragma.rows.size(), 3u);
  EXPECT_TRUE(pragma.truncated);
  EXPECT_EQ(pragma.rows[0][1], "id");
}

TEST_F(InsightTest, SqlErrorsAre400WithDuckDBsMessage) {
  QueryService q(root_.string(), sources_, opts());
  std::string msg;
  EXPECT_EQ(status_of(q, "SELEC 1", &msg), 400);
  EXPECT_NE(msg.find("syntax error"), std::string::npos) << msg;
  EXPECT_EQ(status_of(q, "SELECT nope FROM shop_orders", &msg), 400);
  EXPECT_NE(msg.find("nope"), std::string::npos) << msg;
  EXPECT_EQ(status_of(q, "SELECT 'x'::INTEGER", &msg), 400);
  EXPECT_NE(msg.find("Conversion"), std::string::npos) << msg;
  const char nul_sql[] = "SELECT 1\0; DROP VIEW shop_orders";
  EXPECT_EQ(status_of(q, std::string(nul_sql, sizeof nul_sql - 1)), 400);
}

TEST_F(InsightTest, ConcurrentCallersAreSerialised) {
  QueryService q(root_.string(), sources_, opts());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        if (q.run("SELECT count(*) FROM shop_orders").rows[0][0] == "5") ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST_F(InsightTest, SettingsArePinned) {
  QueryOptions o = opts();
  o.memory_limit = "256MB";
  QueryService q(root_.string(), sources_, o);
  auto r = q.run(
      "SELECT current_setting('temp_directory'), current_setting('threads'), "
      "current_setting('autoload_known_extensions'), current_setting('autoinstall_known_extensions'), "
      "current_setting('TimeZone')");
  // Spill files stay inside the lake, under _staging (outside every dataset glob).
  EXPECT_EQ(r.rows[0][0], (root_ / "_staging/duckdb_tmp").string());
  EXPECT_TRUE(fs::is_directory(root_ / "_staging/duckdb_tmp"));
  EXPECT_EQ(r.rows[0][1], "2");
  EXPECT_EQ(r.rows[0][2], "false");
  EXPECT_EQ(r.rows[0][3], "false");
  EXPECT_EQ(r.rows[0][4], "UTC");
}

TEST_F(InsightTest, BadSetupIsAClearError) {
  try {
    QueryService q("/", sources_, opts());
    FAIL() << "a service over / must be refused";
  } catch (const QueryError& e) {
    EXPECT_EQ(e.status, 500);
  }
  std::vector<Source> clash = {make_source("a_b", {"c"}), make_source("a", {"b_c"})};
  try {
    QueryService q(root_.string(), clash, opts());
    FAIL() << "two datasets mapping to one view must be refused";
  } catch (const QueryError& e) {
    EXPECT_EQ(e.status, 500);
    EXPECT_NE(std::string(e.what()).find("a_b_c"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace apilake
