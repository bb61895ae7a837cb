// POST /v1/query's answer text: typed cells written from DuckDB's own text, checked against a real
// DuckDB result (the query service's output shape) and parsed back with Boost.JSON.
#include "api/query_json.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace apilake {
namespace {

namespace json = boost::json;

TEST(QueryJson, JsonNumberGrammar) {
  for (const char* ok : {"0", "-0", "12", "-12.5", "0.043739", "1e+20", "1E-7", "123456789012345678901234567890.1234567890"})
    EXPECT_TRUE(is_json_number(ok)) << ok;
  for (const char* bad : {"", "-", "01", "+1", ".5", "5.", "1e", "1e+", "inf", "-inf", "nan", "NaN", "1,5", " 1", "0x10"})
    EXPECT_FALSE(is_json_number(bad)) << bad;
}

TEST(QueryJson, CellsKeepDuckDbsExactDigits) {
  QueryResult r;
  r.columns = {"big", "dec", "dbl", "flag", "name", "nothing", "inf"};
  r.types = {"HUGEINT", "DECIMAL(38,10)", "DOUBLE", "BOOLEAN", "VARCHAR", "BIGINT", "DOUBLE"};
  r.rows.push_back({"170141183460469231731687303715884105727", "1234567890123456789012345678.0123456789", "0.043739",
                    "true", "a \"quoted\"\nline", std::nullopt, "inf"});
  r.truncated = true;
  const std::string text = query_answer_json(r);
  EXPECT_NE(text.find("170141183460469231731687303715884105727"), std::string::npos) << text;
  EXPECT_NE(text.find("1234567890123456789012345678.0123456789"), std::string::npos) << text;
  EXPECT_NE(text.find(",0.043739,"), std::string::npos) << text;  // not 4.3739E-2
  const json::object o = json::parse(text).as_object();
  EXPECT_EQ(o.at("columns").as_array().size(), 7u);
  EXPECT_EQ(o.at("types").as_array()[1].as_string(), "DECIMAL(38,10)");
  EXPECT_TRUE(o.at("truncated").as_bool());
  const json::array& row = o.at("rows").as_array()[0].as_array();
  EXPECT_TRUE(row[0].is_number());
  EXPECT_DOUBLE_EQ(row[2].as_double(), 0.043739);
  EXPECT_TRUE(row[3].as_bool());
  EXPECT_EQ(row[4].as_string(), "a \"quoted\"\nline");
  EXPECT_TRUE(row[5].is_null());
  EXPECT_EQ(row[6].as_string(), "inf");  // outside JSON's grammar: kept as text, not a made-up number
}

TEST(QueryJson, QueryServiceAnswersAreValidTypedJson) {
  test::TempDir lake;
  QueryService q(lake.path().string(), {});
  const QueryResult r = q.run(
      "SELECT 42::BIGINT AS i, -7::TINYINT AS t, 1.5::DOUBLE AS d, 1e300::DOUBLE AS huge, 'nan'::DOUBLE AS n, "
      "12.30::DECIMAL(10,2) AS m, 170141183460469231731687303715884105727::HUGEINT AS h, false AS b, "
      "DATE '2026-11-26' AS day, NULL::INTEGER AS z, 0.1::DOUBLE + 0.2::DOUBLE AS sum");
  const std::string text = query_answer_json(r);
  const json::object o = json::parse(text).as_object();
  const json::array& cells = o.at("rows").as_array()[0].as_array();
  EXPECT_EQ(cells[0].as_int64(), 42);
  EXPECT_EQ(cells[1].as_int64(), -7);
  EXPECT_DOUBLE_EQ(cells[2].as_double(), 1.5);
  EXPECT_DOUBLE_EQ(cells[3].as_double(), 1e300);
  EXPECT_TRUE(cells[4].is_string()) << text;  // nan
  EXPECT_DOUBLE_EQ(cells[5].as_double(), 12.3);
  EXPECT_NE(text.find("170141183460469231731687303715884105727"), std::string::npos) << text;  // every digit
  EXPECT_FALSE(cells[7].as_bool());
  EXPECT_EQ(cells[8].as_string(), "2026-11-26");
  EXPECT_TRUE(cells[9].is_null());
  EXPECT_DOUBLE_EQ(cells[10].as_double(), 0.1 + 0.2);  // DuckDB's round-trip text parses back to the same double
}

}  // namespace
}  // namespace apilake
