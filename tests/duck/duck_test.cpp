#include "duck/duck.h"

#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace apilake::duck {
namespace {

namespace fs = std::filesystem;

using apilake::test::TempDir;

TEST(Duck, VersionIsThePinnedOne) {
  EXPECT_EQ(library_version().substr(0, pinned_version().size()), pinned_version());
  EXPECT_NO_THROW(check_library_version());
  EXPECT_NO_THROW(check_library_version("v1.4.4 | 6ddac802ff"));
}

TEST(Duck, VersionMismatchIsAClearError) {
  try {
    check_library_version("v1.3.2");
    FAIL() << "a different version must be refused";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("v1.3.2"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string(pinned_version())), std::string::npos) << msg;
  }
  EXPECT_THROW(check_library_version("v1.4.40"), Error);
  EXPECT_THROW(check_library_version(""), Error);
}

TEST(Duck, OpensAndQueries) {
  Database db;
  Connection con(db);
  con.execute("CREATE TABLE t (a BIGINT, b VARCHAR, c DOUBLE, d BOOLEAN)");
  con.execute("INSERT INTO t VALUES (1, 'one', 1.5, true), (2, NULL, NULL, false), (NULL, 'it''s', -2.25, NULL)");
  Result r = con.query("SELECT a, b, c, d FROM t ORDER BY a NULLS LAST");
  ASSERT_EQ(r.column_count(), 4u);
  ASSERT_EQ(r.row_count(), 3u);
  EXPECT_EQ(r.column_name(0), "a");
  EXPECT_EQ(r.column_name(3), "d");
  EXPECT_EQ(r.column_type(0), DUCKDB_TYPE_BIGINT);
  EXPECT_EQ(r.column_type(1), DUCKDB_TYPE_VARCHAR);
  EXPECT_EQ(r.column_type(2), DUCKDB_TYPE_DOUBLE);
  EXPECT_EQ(r.column_type(3), DUCKDB_TYPE_BOOLEAN);

  EXPECT_EQ(r.int64(0, 0), 1);
  EXPECT_EQ(r.text(1, 0), "one");
  EXPECT_DOUBLE_EQ(r.dbl(2, 0), 1.5);
  EXPECT_TRUE(r.boolean(3, 0));
  EXPECT_EQ(r.text(0, 1), "2");
  EXPECT_FALSE(r.boolean(3, 1));
  EXPECT_EQ(r.text(1, 2), "it's");
  EXPECT_DOUBLE_EQ(r.dbl(2, 2), -2.25);
}

TEST(Duck, NullsAreNullopt) {
  Database db;
  Connection con(db);
  Result r = con.query("SELECT NULL::VARCHAR AS s, 7 AS n, NULL::BIGINT AS m");
  ASSERT_EQ(r.row_count(), 1u);
  EXPECT_TRUE(r.is_null(0, 0));
  EXPECT_FALSE(r.text(0, 0).has_value());
  EXPECT_FALSE(r.is_null(1, 0));
  EXPECT_EQ(r.text(1, 0), "7");
  EXPECT_TRUE(r.is_null(2, 0));
  EXPECT_FALSE(r.text(2, 0).has_value());
  // The empty string is a value, not NULL.
  Result e = con.query("SELECT ''");
  EXPECT_EQ(e.text(0, 0), "");
}

TEST(Duck, OutOfRangeCellsThrow) {
  Database db;
  Connection con(db);
  Result r = con.query("SELECT 1");
  EXPECT_THROW(r.text(1, 0), Error);
  EXPECT_THROW(r.int64(0, 1), Error);
  EXPECT_THROW(r.column_name(5), Error);
}

TEST(Duck, ResultMovesOwnership) {
  Database db;
  Connection con(db);
  Result a = con.query("SELECT 42 AS x");
  Result b(std::move(a));
  EXPECT_EQ(b.int64(0, 0), 42);
}

TEST(Duck, ErrorsCarryDuckDBsMessage) {
  Database db;
  Connection con(db);
  try {
    con.query("SELECT * FROM no_such_table");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_table"), std::string::npos) << e.what();
  }
  EXPECT_THROW(con.execute("THIS IS NOT SQL"), Error);
  // The connection stays usable after an error.
  EXPECT_EQ(con.query("SELECT 3").int64(0, 0), 3);
}

TEST(Duck, SelectOnlyRunsASelect) {
  Database db;
  Connection con(db);
  con.execute("CREATE TABLE t AS SELECT range AS i FROM range(5)");
  Result r = con.query_select_only("SELECT sum(i) FROM t;");
  EXPECT_EQ(r.int64(0, 0), 10);
  EXPECT_EQ(con.query_select_only("WITH x AS (SELECT 2 AS v) SELECT v * 3 FROM x").int64(0, 0), 6);
}

TEST(Duck, SelectOnlyRefusesEverythingElse) {
  TempDir dir;
  Database db;
  Connection con(db);
  con.execute("CREATE TABLE t (i INTEGER)");
  const std::string other = (dir.path() / "other.duckdb").string();
  const std::vector<std::string> refused = {
      "INSERT INTO t VALUES (1)",
      "CREATE TABLE u (i INTEGER)",
      "DROP TABLE t",
      "UPDATE t SET i = 2",
      "SELECT 1; SELECT 2",
      "SELECT 1; DROP TABLE t",
      "ATTACH " + quote_literal(other) + " AS other",
      "COPY t TO " + quote_literal((dir.path() / "x.csv").string()),
      "SET threads = 2",
      "INSTALL httpfs",
      "CHECKPOINT",
  };
  for (const auto& sql : refused) {
    EXPECT_THROW(con.query_select_only(sql), Error) << sql;
  }
  // Nothing refused had an effect.
  EXPECT_EQ(con.query("SELECT count(*) FROM t").int64(0, 0), 0);
  EXPECT_EQ(con.query("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'u'").int64(0, 0), 0);
  EXPECT_FALSE(fs::exists(other));
  EXPECT_FALSE(fs::exists(dir.path() / "x.csv"));
  try {
    con.query_select_only("INSERT INTO t VALUES (1)");
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "only a single SELECT statement is allowed");
  }
  EXPECT_THROW(con.query_select_only(""), Error);
  EXPECT_THROW(con.query_select_only("SELEC 1"), Error);
}

TEST(Duck, OptionsAreApplied) {
  TempDir dir;
  Options o;
  o.path = (dir.path() / "db.duckdb").string();
  o.threads = 2;
  o.memory_limit = "256MB";
  o.temp_directory = (dir.path() / "tmp").string();
  {
    Database db(o);
    Connection con(db);
    EXPECT_EQ(con.query("SELECT current_setting('threads')").int64(0, 0), 2);
    EXPECT_EQ(con.query("SELECT current_setting('temp_directory')").text(0, 0), o.temp_directory);
    EXPECT_EQ(con.query("SELECT current_setting('autoinstall_known_extensions')").boolean(0, 0), false);
    EXPECT_EQ(con.query("SELECT current_setting('autoload_known_extensions')").boolean(0, 0), false);
    const auto limit = con.query("SELECT current_setting('memory_limit')").text(0, 0);
    ASSERT_TRUE(limit.has_value());
    EXPECT_NE(limit->find("MiB"), std::string::npos) << *limit;  // 256MB shown as 244.1 MiB
    con.execute("CREATE TABLE kept AS SELECT 9 AS v");
  }
  // A file database persists across opens.
  Database again(o);
  Connection con(again);
  EXPECT_EQ(con.query("SELECT v FROM kept").int64(0, 0), 9);
}

TEST(Duck, BadOptionsAreClearErrors) {
  Options bad_limit;
  bad_limit.memory_limit = "lots";
  EXPECT_THROW(Database{bad_limit}, Error);
  Options bad_threads;
  bad_threads.threads = 0;
  EXPECT_THROW(Database{bad_threads}, Error);
  Options bad_path;
  bad_path.path = "/nonexistent-dir-apilake/x/y.duckdb";
  try {
    Database db(bad_path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir-apilake"), std::string::npos) << e.what();
  }
}

TEST(Duck, InterruptCancelsARunningQuery) {
  Options o;
  o.threads = 1;
  Database db(o);
  Connection con(db);
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    con.interrupt();
  });
  const auto start = std::chrono::steady_clock::now();
  // Minutes of work if not interrupted.
  EXPECT_THROW(con.query("SELECT count(*) FROM range(1000000000000) a WHERE hash(a.range) % 7 = 3"), Error);
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(Duck, Quoting) {
  EXPECT_EQ(quote_literal("a"), "'a'");
  EXPECT_EQ(quote_literal("it's"), "'it''s'");
  EXPECT_EQ(quote_ident("col"), "\"col\"");
  EXPECT_EQ(quote_ident("we\"ird"), "\"we\"\"ird\"");
  EXPECT_THROW(quote_literal(std::string("a\0b", 3)), Error);
  // Round trip through DuckDB itself.
  Database db;
  Connection con(db);
  const std::string nasty = "x'); DROP TABLE t; --\"";
  Result r = con.query("SELECT " + quote_literal(nasty) + " AS " + quote_ident(nasty));
  EXPECT_EQ(r.text(0, 0), nasty);
  EXPECT_EQ(r.column_name(0), nasty);
}

}  // namespace
}  // namespace apilake::duck
