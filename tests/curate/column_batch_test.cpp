// ColumnBatch (typed column buffers) and the paths built on it: the validator writing straight into a
// batch, and the Parquet sink reading a batch (whole, a run of rows, or a selection).
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "curate/column_batch.h"
#include "curate/parquet_sink.h"
#include "curate/schema.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

FieldSpec spec(std::string name, FieldType t) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = t;
  return f;
}

// A Value as text, to compare rows (Value has no operator==: DateDays/TimestampUs are plain structs).
std::string show(const Value& v) {
  switch (v.index()) {
    case 0: return "NULL";
    case 1: return "'" + std::get<std::string>(v) + "'";
    case 2: return std::to_string(std::get<int64_t>(v));
    case 3: return std::to_string(std::get<double>(v)) + "d";
    case 4: return std::get<bool>(v) ? "true" : "false";
    case 5: return "date " + std::to_string(std::get<DateDays>(v).days);
    case 6: return "ts " + std::to_string(std::get<TimestampUs>(v).micros);
    case 7: return "dec " + to_string(std::get<Decimal>(v));
    case 8: {
      std::string out = "{";
      for (const Value& x : std::get<StructValue>(v).fields) out += show(x) + ",";
      return out + "}";
    }
    case 9: {
      std::string out = "[";
      for (const Value& x : std::get<ListValue>(v).items) out += show(x) + ",";
      return out + "]";
    }
  }
  return "?";
}
std::string show(const Row& row) {
  std::string out;
  for (const Value& v : row) out += show(v) + " | ";
  return out;
}

std::vector<Column> columns_of(const Schema& schema) {
  std::vector<Column> out;
  for (const FieldSpec& f : schema.fields) out.push_back({f.name, f.type, f});
  return out;
}

TEST(ColumnBatch, UnsetColumnsAreNullAndRowsReadBack) {
  FieldSpec d = spec("d", FieldType::Decimal);
  d.precision = 9;
  d.scale = 2;
  ColumnBatch b({{"s", FieldType::String}, {"i", FieldType::Int64}, {"t", FieldType::Timestamp},
                 {"day", FieldType::Date}, {"x", FieldType::Double}, {"ok", FieldType::Bool}, {"d", FieldType::Decimal, d}});
  b.begin_row();
  b.set_string(0, "héllo");
  b.set_int64(1, -7);
  b.set_timestamp(2, TimestampUs{123});
  b.column(3).put_date(DateDays{19000});
  b.column(4).put_double(2.5);
  b.column(5).put_bool(true);
  b.column(6).put_decimal(1234);
  b.begin_row();
  b.set_int64(1, 1);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(show(b.row(0)), show(Row{std::string("héllo"), int64_t{-7}, TimestampUs{123}, DateDays{19000}, 2.5, true,
                                     Decimal{1234, 2}}));
  const Row second = b.row(1);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(second[0]));
  EXPECT_EQ(std::get<int64_t>(second[1]), 1);
  for (std::size_t k = 2; k < second.size(); ++k) EXPECT_TRUE(b.is_null(1, k)) << k;
  EXPECT_EQ(b.column(0).str(1), "");
}

// A list of structs {name string, n int64}, as the bench's labels.
FieldSpec labels_spec() {
  FieldSpec item = spec("item", FieldType::Struct);
  item.fields = {spec("name", FieldType::String), spec("n", FieldType::Int64)};
  FieldSpec l = spec("l", FieldType::List);
  l.items = {item};
  return l;
}

TEST(ColumnBatch, RollbackLeavesNothingOfTheRow) {
  ColumnBatch b({{"s", FieldType::String}, {"l", FieldType::List, labels_spec()}});
  b.begin_row();
  b.set_string(0, "kept");
  ASSERT_EQ(b.set_value(1, Value{ListValue{{Value{StructValue{{Value{std::string("a")}, Value{int64_t{1}}}}}}}}), "");
  b.begin_row();
  b.set_string(0, "a much longer text that must not survive");
  // Elements written as the validator does: append, fill the members, close the list.
  ColumnBatch::Data& l = b.column(1);
  l.begin_nested();
  for (int i = 0; i < 3; ++i) {
    l.children[0].push_null();
    l.children[0].begin_nested();
    l.children[0].children[0].put_string("gone");
  }
  l.end_list();
  b.rollback_row();
  EXPECT_EQ(b.size(), 1u);
  EXPECT_EQ(b.column(0).arena, "kept");
  EXPECT_EQ(l.children[0].size(), 1u);               // the first row's one element
  EXPECT_EQ(l.children[0].children[0].arena, "a");   // its name; nothing of the rolled-back row
  EXPECT_EQ(show(b.row(0)), show(Row{std::string("kept"), ListValue{{Value{StructValue{{Value{std::string("a")}, Value{int64_t{1}}}}}}}}));
  b.begin_row();
  b.set_string(0, "next");
  EXPECT_EQ(show(b.row(1)), show(Row{std::string("next"), Value{}}));
  // Setting a cell twice keeps only the second text; set_null drops it.
  b.set_string(0, "again");
  EXPECT_EQ(b.column(0).arena, "keptagain");
  b.set_null(0);
  EXPECT_EQ(b.column(0).arena, "kept");
  EXPECT_TRUE(b.is_null(1, 0));
  b.clear();
  EXPECT_EQ(b.size(), 0u);
  b.rollback_row();  // nothing to take back: a no-op
  EXPECT_EQ(b.size(), 0u);
}

TEST(ColumnBatch, InsertedColumnIsNullInRowsAlreadyThere) {
  ColumnBatch b({{"a", FieldType::Int64}, {"_lineage", FieldType::String}});
  for (int64_t i = 0; i < 3; ++i) {
    b.begin_row();
    b.set_int64(0, i);
    b.set_string(1, "m" + std::to_string(i));
  }
  b.insert_column(1, {"evolved", FieldType::String});
  ASSERT_EQ(b.width(), 3u);
  EXPECT_EQ(b.columns()[1].name, "evolved");
  for (std::size_t r = 0; r < 3; ++r) {
    EXPECT_TRUE(b.is_null(r, 1));
    EXPECT_EQ(std::get<std::string>(b.value(r, 2)), "m" + std::to_string(r));
  }
  b.begin_row();
  b.set_int64(0, 9);
  b.set_string(1, "new");
  EXPECT_EQ(show(b.row(3)), show(Row{int64_t{9}, std::string("new"), Value{}}));
}

TEST(ColumnBatch, SetValueChecksTheKindAndEstimatesBytes) {
  FieldSpec d = spec("d", FieldType::Decimal);
  d.precision = 9;
  d.scale = 2;
  ColumnBatch b({{"i", FieldType::Int64}, {"d", FieldType::Decimal, d}, {"s", FieldType::String}});
  b.begin_row();
  EXPECT_EQ(b.set_value(0, Value{std::string("oops")}), "holds a string value");
  EXPECT_TRUE(b.is_null(0, 0));
  EXPECT_EQ(b.set_value(1, Value{Decimal{1, 3}}), "decimal of scale 3 in a DECIMAL(9,2) column");
  EXPECT_EQ(b.set_value(1, Value{Decimal{5, 2}}), "");
  EXPECT_EQ(b.set_value(2, Value{std::string("abcd")}), "");
  EXPECT_EQ(b.set_value(0, Value{}), "");
  // 8 per row + 8 (NULL int) + 8 (decimal) + 4 + 4 (text)
  EXPECT_EQ(b.estimated_bytes(0), 32u);
  // Nested values are checked member by member; a bad one leaves the cell NULL.
  ColumnBatch n({{"l", FieldType::List, labels_spec()}});
  n.begin_row();
  EXPECT_EQ(n.set_value(0, Value{std::string("x")}), "holds a string value");
  EXPECT_NE(n.set_value(0, Value{ListValue{{Value{StructValue{{Value{int64_t{1}}, Value{int64_t{1}}}}}}}}), "");
  EXPECT_TRUE(n.is_null(0, 0));
  EXPECT_EQ(n.column(0).children[0].size(), 0u);
  EXPECT_NE(n.set_value(0, Value{ListValue{{Value{StructValue{{Value{}}}}}}}), "");  // one member for two fields
}

// A schema like the bench's: scalars of every kind, an enum, timestamps, a struct and a list of structs.
Schema bench_like_schema() {
  FieldSpec id = spec("id", FieldType::Int64);
  id.required = true;
  FieldSpec state = spec("state", FieldType::Enum);
  state.values = {"open", "closed"};
  FieldSpec created = spec("created_at", FieldType::Timestamp);
  FieldSpec user = spec("user", FieldType::Struct);
  user.fields = {spec("login", FieldType::String), spec("id", FieldType::Int64)};
  FieldSpec label = spec("item", FieldType::Struct);
  label.fields = {spec("name", FieldType::String), spec("color", FieldType::String)};
  FieldSpec labels = spec("labels", FieldType::List);
  labels.items = {label};
  FieldSpec score = spec("score", FieldType::Decimal);
  score.precision = 12;
  score.scale = 3;
  FieldSpec comments = spec("comments", FieldType::Int64);
  comments.default_value = "0";
  Schema schema;
  schema.fields = {id,    spec("title", FieldType::String), state, created, spec("ratio", FieldType::Double),
                   spec("locked", FieldType::Bool), spec("day", FieldType::Date), user, labels, score, comments};
  return schema;
}

const std::vector<std::string>& bench_like_records() {
  static const std::vector<std::string> records = {
      R"({"id":1,"title":"esc \"q\" \u00e9","state":"open","created_at":"2024-01-02T03:04:05Z","ratio":0.5,
          "locked":false,"day":"2024-02-29","user":{"login":"ana","id":7},
          "labels":[{"name":"bug","color":"f00"},{"name":null}],"score":"12.5","comments":3})",
      R"({"id":"2","title":null,"state":"closed","user":null,"labels":[],"score":1})",
      R"({"id":3,"state":"merged"})",                    // out_of_range: refused
      R"({"title":"no id"})",                            // missing_required: refused
      R"({"id":4,"created_at":"yesterday"})",            // bad_format: refused
      R"({"id":5,"labels":"nope"})",                     // type_mismatch: refused
      R"([1,2])",                                        // not an object: refused
      R"({"id":6,"ratio":"1e3","locked":"1","labels":null,"user":{"login":"ö"}})",
  };
  return records;
}

TEST(ValidatorIntoBatch, SameRowsAsTheRowPathAndRefusedRecordsLeaveNothing) {
  const Schema schema = bench_like_schema();
  RecordValidator by_row(schema), by_batch(schema);
  ColumnBatch batch(columns_of(schema));
  batch.insert_column(batch.width(), {"_lineage", FieldType::String});  // a caller's extra column stays NULL
  std::size_t valid = 0;
  for (const std::string& rec : bench_like_records()) {
    const Outcome a = by_row.apply(rec);
    const Outcome b = by_batch.apply(rec, batch);
    ASSERT_EQ(a.valid(), b.valid()) << rec;
    EXPECT_FALSE(b.row);
    if (!a.valid()) {
      EXPECT_EQ(a.reason->code, b.reason->code);
      EXPECT_EQ(a.reason->field, b.reason->field);
      EXPECT_EQ(batch.size(), valid) << "a refused record left a row: " << rec;
      continue;
    }
    ++valid;
    ASSERT_EQ(batch.size(), valid);
    Row got = batch.row(valid - 1);
    EXPECT_TRUE(std::holds_alternative<std::monostate>(got.back()));
    got.pop_back();
    EXPECT_EQ(show(got), show(*a.row)) << rec;
  }
  EXPECT_EQ(valid, 3u);
  // The default of an absent field, a coerced string, a nested value:
  EXPECT_EQ(std::get<int64_t>(batch.value(1, 10)), 0);
  EXPECT_EQ(std::get<int64_t>(batch.value(1, 0)), 2);
  EXPECT_EQ(show(std::get<StructValue>(batch.value(2, 7)).fields[0]), "'ö'");
}

// Structs and lists are read in place from the record (one pass, record order); the verdict still follows
// the schema's order and at_pointer's rules.
TEST(ValidatorIntoBatch, NestedValuesReadInPlaceKeepTheRules) {
  FieldSpec b = spec("b", FieldType::Int64);
  b.path = "/b";
  FieldSpec item = spec("item", FieldType::Int64);
  FieldSpec a = spec("a", FieldType::List);
  a.path = "/a";
  a.items = {item};
  FieldSpec login = spec("login", FieldType::String);
  login.path = "/login";
  FieldSpec id = spec("id", FieldType::Int64);
  id.path = "/id";
  FieldSpec u = spec("u", FieldType::Struct);
  u.path = "/u";
  u.fields = {login, id};
  Schema schema;
  schema.fields = {b, a, u};
  RecordValidator v(schema);
  ColumnBatch batch(columns_of(schema));
  auto reason = [&](const std::string& json) {
    const std::size_t before = batch.size();
    const Outcome o = v.apply(json, batch);
    EXPECT_EQ(batch.size(), before + (o.valid() ? 1 : 0)) << json;
    return o.valid() ? std::string("accepted") : o.reason->code + " " + o.reason->field;
  };
  // A list abandoned at its first bad element: the fields after it are still read, and the first
  // failing field in schema order (b) names the reason.
  EXPECT_EQ(reason(R"({"a":[1,"y",3,[4]],"u":{"id":"x"},"b":"zz"})"), "bad_format b");
  EXPECT_EQ(reason(R"({"a":[1,"y",3],"u":{"id":"x"},"b":2})"), "bad_format a[1]");
  // Members are read in record order, judged in the struct's order.
  EXPECT_EQ(reason(R"({"u":{"id":"x","login":[1]}})"), "type_mismatch u.login");
  EXPECT_EQ(reason(R"({"u":{"id":"x","login":"ok"}})"), "bad_format u.id");
  // A repeated member key: the first counts (a later bad value is not read).
  EXPECT_EQ(reason(R"({"u":{"login":"first","id":1,"login":2,"id":"x"},"a":[],"b":1})"), "accepted");
  const Row row = batch.row(batch.size() - 1);
  EXPECT_EQ(show(row), show(Row{int64_t{1}, ListValue{}, StructValue{{Value{std::string("first")}, Value{int64_t{1}}}}}));
  // Unknown members, nested deeper, are skipped; absent members are NULL.
  EXPECT_EQ(reason(R"({"u":{"x":{"y":[1,{"z":2}]},"id":7},"a":[5,null]})"), "accepted");
  EXPECT_EQ(show(batch.row(batch.size() - 1)),
            show(Row{Value{}, ListValue{{Value{int64_t{5}}, Value{}}}, StructValue{{Value{}, Value{int64_t{7}}}}}));
}

class BatchSink : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("apilake-batch-sink-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Rows of `a` not in `b` plus rows of `b` not in `a` (as multisets), and both counts.
  std::string diff(const fs::path& a, const fs::path& b) {
    duck::Connection con(db_);
    const std::string ra = "read_parquet(" + duck::quote_literal(a.string()) + ")";
    const std::string rb = "read_parquet(" + duck::quote_literal(b.string()) + ")";
    auto r = con.query("SELECT (SELECT count(*) FROM (FROM " + ra + " EXCEPT ALL FROM " + rb + ")) + (SELECT count(*) FROM (FROM " +
                       rb + " EXCEPT ALL FROM " + ra + ")), (SELECT count(*) FROM " + ra + "), (SELECT count(*) FROM " +
                       rb + ")");
    return std::to_string(r.int64(0, 0)) + " " + std::to_string(r.int64(1, 0)) + " " + std::to_string(r.int64(2, 0));
  }
  fs::path dir_;
  duck::Database db_;
};

TEST_F(BatchSink, BatchPathWritesWhatTheRowPathWrites) {
  const Schema schema = bench_like_schema();
  const std::vector<Column> columns = columns_of(schema);
  RecordValidator v(schema);
  ColumnBatch batch(columns);
  std::vector<Row> rows;
  // Enough rows for several DuckDB chunks (2048), so list offsets restart per chunk.
  for (int copy = 0; copy < 700; ++copy)
    for (const std::string& rec : bench_like_records()) {
      if (const Outcome o = v.apply(rec); o.row) rows.push_back(*o.row);
      v.apply(rec, batch);
    }
  ASSERT_EQ(rows.size(), batch.size());
  ASSERT_EQ(rows.size(), 2100u);
  ParquetSink sink(db_);
  sink.write(dir_ / "rows.parquet", columns, rows);
  sink.write(dir_ / "batch.parquet", batch, nullptr, batch.size());
  EXPECT_EQ(diff(dir_ / "rows.parquet", dir_ / "batch.parquet"), "0 2100 2100");

  // A selection: every other row (gathered), and a run of rows (read as a range).
  std::vector<uint32_t> odd, run;
  std::vector<Row> odd_rows, run_rows;
  for (uint32_t r = 1; r < batch.size(); r += 2) {
    odd.push_back(r);
    odd_rows.push_back(rows[r]);
  }
  for (uint32_t r = 5; r < 2090; ++r) {
    run.push_back(r);
    run_rows.push_back(rows[r]);
  }
  sink.write(dir_ / "odd_rows.parquet", columns, odd_rows);
  sink.write(dir_ / "odd_batch.parquet", batch, odd.data(), odd.size());
  EXPECT_EQ(diff(dir_ / "odd_rows.parquet", dir_ / "odd_batch.parquet"), "0 1050 1050");
  sink.write(dir_ / "run_rows.parquet", columns, run_rows);
  sink.write(dir_ / "run_batch.parquet", batch, run.data(), run.size());
  EXPECT_EQ(diff(dir_ / "run_rows.parquet", dir_ / "run_batch.parquet"), "0 2085 2085");
  // Order is kept: the selection's first row is the file's first row.
  duck::Connection con(db_);
  auto first = con.query("SELECT id FROM read_parquet(" + duck::quote_literal((dir_ / "odd_batch.parquet").string()) +
                         ") LIMIT 1");
  EXPECT_EQ(first.int64(0, 0), std::get<int64_t>(rows[1][0]));

  const uint32_t beyond = static_cast<uint32_t>(batch.size());
  EXPECT_THROW(sink.write(dir_ / "bad.parquet", batch, &beyond, 1), duck::Error);
  EXPECT_FALSE(fs::exists(dir_ / "bad.parquet"));
}

}  // namespace
}  // namespace apilake
