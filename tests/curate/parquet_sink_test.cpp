#include "curate/parquet_sink.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include <gtest/gtest.h>

#include "support/parquet_compare.h"

namespace apilake {
namespace {

namespace fs = std::filesystem;

class ParquetSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("apilake-sink-") + info->name() + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  duck::Database db_;
};

const std::vector<Column> kAllTypes = {
    {"s", FieldType::String}, {"i", FieldType::Int64}, {"d", FieldType::Double},
    {"b", FieldType::Bool},   {"day", FieldType::Date}, {"ts", FieldType::Timestamp},
};

TEST_F(ParquetSinkTest, EveryTypeAndNullsRoundTrip) {
  const int64_t ts1 = 1764144000123456;  // 2025-11-26 08:00:00.123456 UTC
  std::vector<Row> rows = {
      {std::string("plain"), int64_t{42}, 1.25, true, DateDays{0}, TimestampUs{ts1}},
      {std::monostate{}, std::monostate{}, std::monostate{}, std::monostate{}, std::monostate{}, std::monostate{}},
      {std::string("a longer string that is not inlined, with 'quotes' and \"dq\" and ünïcødé"),
       std::numeric_limits<int64_t>::min(), -0.1, false, DateDays{-1}, TimestampUs{-1}},
      {std::string(""), std::numeric_limits<int64_t>::max(), 1e300, std::monostate{}, DateDays{20418},
       TimestampUs{0}},
  };
  const fs::path file = dir_ / "all.parquet";
  ParquetSink sink(db_);
  sink.write(file, kAllTypes, rows);
  EXPECT_EQ(test::compare_parquet_readers(file.string()), "");  // hyparquet reads the same values
  ASSERT_TRUE(fs::exists(file));

  duck::Connection con(db_);
  duck::Result r = con.query(
      "SELECT s, i, d, b, day, epoch_us(ts) AS ts_us, strftime(day, '%Y-%m-%d') AS day_text FROM read_parquet(" +
      duck::quote_literal(file.string()) + ")");
  ASSERT_EQ(r.row_count(), rows.size());
  ASSERT_EQ(r.column_type(0), DUCKDB_TYPE_VARCHAR);
  ASSERT_EQ(r.column_type(1), DUCKDB_TYPE_BIGINT);
  ASSERT_EQ(r.column_type(2), DUCKDB_TYPE_DOUBLE);
  ASSERT_EQ(r.column_type(3), DUCKDB_TYPE_BOOLEAN);
  ASSERT_EQ(r.column_type(4), DUCKDB_TYPE_DATE);
  for (std::size_t row = 0; row < rows.size(); ++row) {
    const Row& want = rows[row];
    SCOPED_TRACE(row);
    for (std::size_t c = 0; c < 6; ++c) {
      EXPECT_EQ(r.is_null(c, row), std::holds_alternative<std::monostate>(want[c])) << "column " << c;
    }
    if (auto* s = std::get_if<std::string>(&want[0])) { EXPECT_EQ(r.text(0, row), *s); }
    if (auto* i = std::get_if<int64_t>(&want[1])) { EXPECT_EQ(r.int64(1, row), *i); }
    if (auto* d = std::get_if<double>(&want[2])) { EXPECT_EQ(r.dbl(2, row), *d); }
    if (auto* b = std::get_if<bool>(&want[3])) { EXPECT_EQ(r.boolean(3, row), *b); }
    if (auto* ts = std::get_if<TimestampUs>(&want[5])) { EXPECT_EQ(r.int64(5, row), ts->micros); }
  }
  EXPECT_EQ(r.text(6, 0), "1970-01-01");
  EXPECT_EQ(r.text(6, 2), "1969-12-31");
  EXPECT_EQ(r.text(6, 3), "2025-11-26");
}

// Strings of up to 12 bytes are written into DuckDB's cells directly (inlined), longer ones through
// the C API: around the boundary, the file holds each string exactly, equal strings compare equal
// (dictionary, DISTINCT, GROUP BY) and the order is byte order, whichever way each was written.
TEST_F(ParquetSinkTest, ShortAndLongStringsAroundTheInlineLimit) {
  std::vector<Row> rows;
  std::vector<std::string> expected;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t len = 0; len <= 20; ++len) {
      std::string s(len, 'x');
      for (std::size_t k = 0; k < len; ++k) s[k] = static_cast<char>('a' + (k * 7 + len) % 26);
      if (len == 5) s = "\xc3\xa9t\xc3\xa9";  // UTF-8, 5 bytes
      rows.push_back({s});
      expected.push_back(s);
    }
    rows.push_back({std::monostate{}});  // a NULL between runs leaves its cell unwritten
  }
  const fs::path file = dir_ / "strings.parquet";
  ParquetSink sink(db_);
  sink.write(file, {{"s", FieldType::String}}, rows);
  EXPECT_EQ(test::compare_parquet_readers(file.string()), "");
  duck::Connection con(db_);
  const std::string from = " FROM read_parquet(" + duck::quote_literal(file.string()) + ")";
  duck::Result all = con.query("SELECT s" + from);
  ASSERT_EQ(all.row_count(), rows.size());
  std::size_t e = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (std::holds_alternative<std::monostate>(rows[i][0])) {
      EXPECT_FALSE(all.text(0, i).has_value()) << i;
    } else {
      EXPECT_EQ(all.text(0, i), expected[e++]) << i;
    }
  }
  // Each distinct string three times: equal strings are equal however they were written.
  duck::Result groups = con.query("SELECT count(DISTINCT s), min(c), max(c) FROM (SELECT s, count(*) AS c" + from +
                                  " WHERE s IS NOT NULL GROUP BY s)");
  EXPECT_EQ(groups.int64(0, 0), 21);
  EXPECT_EQ(groups.int64(1, 0), 3);
  EXPECT_EQ(groups.int64(2, 0), 3);
  duck::Result eq = con.query("SELECT count(*)" + from + " WHERE s = 'abcdefghijkl'::VARCHAR OR s = " +
                              duck::quote_literal(expected[12]) + " OR s = " + duck::quote_literal(expected[13]));
  EXPECT_EQ(eq.int64(0, 0), 6);
}

TEST_F(ParquetSinkTest, TimestampsAreUtcMicrosZstd) {
  const fs::path file = dir_ / "ts.parquet";
  ParquetSink sink(db_);
  sink.write(file, kAllTypes, {{std::string("x"), int64_t{1}, 1.0, true, DateDays{1}, TimestampUs{1}}});

  duck::Connection con(db_);
  duck::Result schema = con.query("SELECT type, logical_type, converted_type FROM parquet_schema(" +
                                  duck::quote_literal(file.string()) + ") WHERE name = 'ts'");
  ASSERT_EQ(schema.row_count(), 1u);
  EXPECT_EQ(schema.text(0, 0), "INT64");
  const auto logical = schema.text(1, 0).value_or("");
  EXPECT_NE(logical.find("isAdjustedToUTC=1"), std::string::npos) << logical;
  EXPECT_NE(logical.find("MICROS=MicroSeconds()"), std::string::npos) << logical;
  EXPECT_NE(logical.find("NANOS=<null>"), std::string::npos) << logical;
  EXPECT_EQ(schema.text(2, 0), "TIMESTAMP_MICROS");

  duck::Result meta = con.query("SELECT DISTINCT compression FROM parquet_metadata(" +
                                duck::quote_literal(file.string()) + ")");
  ASSERT_EQ(meta.row_count(), 1u);
  EXPECT_EQ(meta.text(0, 0), "ZSTD");

  // Read back as TIMESTAMPTZ: 1 µs after the epoch.
  duck::Result v = con.query("SELECT epoch_us(ts), typeof(ts) FROM read_parquet(" +
                             duck::quote_literal(file.string()) + ")");
  EXPECT_EQ(v.int64(0, 0), 1);
  EXPECT_EQ(v.text(1, 0), "TIMESTAMP WITH TIME ZONE");
}

TEST_F(ParquetSinkTest, ManyRowsSpanSeveralChunks) {
  const std::size_t n = duckdb_vector_size() * 3 + 17;
  std::vector<Column> cols = {{"n", FieldType::Int64}, {"label", FieldType::String}};
  std::vector<Row> rows;
  rows.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    Value label = (i % 5 == 0) ? Value{} : Value{std::string("label number ") + std::to_string(i)};
    rows.push_back({static_cast<int64_t>(i), label});
  }
  const fs::path file = dir_ / "many.parquet";
  ParquetSink sink(db_);
  sink.write(file, cols, rows);
  EXPECT_EQ(test::compare_parquet_readers(file.string()), "");

  duck::Connection con(db_);
  const std::string src = "read_parquet(" + duck::quote_literal(file.string()) + ")";
  duck::Result r = con.query("SELECT count(*), sum(n), count(label), min(n), max(n) FROM " + src);
  EXPECT_EQ(static_cast<std::size_t>(r.int64(0, 0)), n);
  EXPECT_EQ(r.int64(1, 0), static_cast<int64_t>(n * (n - 1) / 2));
  EXPECT_EQ(static_cast<std::size_t>(r.int64(2, 0)), n - (n + 4) / 5);
  // Every label matches its row: nothing shifted across chunk boundaries.
  duck::Result bad = con.query("SELECT count(*) FROM " + src +
                               " WHERE (n % 5 = 0) != (label IS NULL) OR label != 'label number ' || n");
  EXPECT_EQ(bad.int64(0, 0), 0);
}

TEST_F(ParquetSinkTest, SeveralWritesOnOneSink) {
  ParquetSink sink(db_);
  std::vector<Column> cols = {{"v", FieldType::Double}};
  sink.write(dir_ / "a.parquet", cols, {{1.5}});
  sink.write(dir_ / "b.parquet", cols, {{2.5}, {3.5}});
  duck::Connection con(db_);
  EXPECT_DOUBLE_EQ(con.query("SELECT sum(v) FROM read_parquet(" + duck::quote_literal((dir_ / "a.parquet").string()) +
                             ")")
                       .dbl(0, 0),
                   1.5);
  EXPECT_DOUBLE_EQ(con.query("SELECT sum(v) FROM read_parquet(" + duck::quote_literal((dir_ / "b.parquet").string()) +
                             ")")
                       .dbl(0, 0),
                   6.0);
  // The temporary tables are gone.
  EXPECT_EQ(con.query("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'apilake_sink_%'").int64(0, 0), 0);
}

// Each sink streams its rows through its own table function: sinks on one database (one destroyed
// before the others write) do not see each other's rows, and a file keeps the rows' order across
// DuckDB's vector boundaries.
TEST_F(ParquetSinkTest, SinksOnOneDatabaseAreIndependentAndKeepOrder) {
  std::vector<Column> cols = {{"i", FieldType::Int64}, {"s", FieldType::String}};
  { ParquetSink gone(db_); gone.write(dir_ / "gone.parquet", cols, {{int64_t{7}, std::string("x")}}); }
  ParquetSink a(db_);
  ParquetSink b(db_);
  std::vector<Row> rows_a, rows_b;
  for (int64_t i = 0; i < 5000; ++i) rows_a.push_back({i, std::string("a-" + std::to_string(i) + "-long-enough-not-inlined")});
  rows_b.push_back({int64_t{-1}, Value{}});
  a.write(dir_ / "a.parquet", cols, rows_a);
  b.write(dir_ / "b.parquet", cols, rows_b);
  duck::Connection con(db_);
  auto file = [&](const char* name) {
    return "read_parquet(" + duck::quote_literal((dir_ / name).string()) + ", file_row_number = true)";
  };
  EXPECT_EQ(con.query("SELECT count(*) FROM " + file("a.parquet") +
                      " WHERE i = file_row_number AND s = 'a-' || i || '-long-enough-not-inlined'")
                .int64(0, 0),
            5000);
  auto r = con.query("SELECT i, s FROM " + file("b.parquet"));
  ASSERT_EQ(r.row_count(), 1u);
  EXPECT_EQ(r.int64(0, 0), -1);
  EXPECT_TRUE(r.is_null(1, 0));
}

TEST_F(ParquetSinkTest, ColumnNamesAreQuoted) {
  ParquetSink sink(db_);
  std::vector<Column> cols = {{"select", FieldType::String}, {"we\"ird name", FieldType::Int64}};
  const fs::path file = dir_ / "names.parquet";
  sink.write(file, cols, {{std::string("x"), int64_t{5}}});
  duck::Connection con(db_);
  duck::Result r = con.query("SELECT * FROM read_parquet(" + duck::quote_literal(file.string()) + ")");
  EXPECT_EQ(r.column_name(0), "select");
  EXPECT_EQ(r.column_name(1), "we\"ird name");
  EXPECT_EQ(r.int64(1, 0), 5);
}

TEST_F(ParquetSinkTest, BadInputIsAClearError) {
  ParquetSink sink(db_);
  std::vector<Column> cols = {{"i", FieldType::Int64}, {"s", FieldType::String}};
  try {
    sink.write(dir_ / "x.parquet", cols, {{int64_t{1}, std::string("ok")}, {std::string("oops"), std::string("s")}});
    FAIL();
  } catch (const duck::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("row 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'i'"), std::string::npos) << msg;
  }
  EXPECT_THROW(sink.write(dir_ / "y.parquet", cols, {{int64_t{1}}}), duck::Error);
  EXPECT_THROW(sink.write(dir_ / "z.parquet", {}, {}), duck::Error);
  EXPECT_THROW(sink.write(dir_ / "no" / "such" / "dir.parquet", cols, {{int64_t{1}, std::string("s")}}), duck::Error);
  EXPECT_FALSE(fs::exists(dir_ / "x.parquet"));
  // The sink is still usable afterwards.
  sink.write(dir_ / "ok.parquet", cols, {{int64_t{1}, std::string("s")}});
  EXPECT_TRUE(fs::exists(dir_ / "ok.parquet"));
}

}  // namespace
}  // namespace apilake
