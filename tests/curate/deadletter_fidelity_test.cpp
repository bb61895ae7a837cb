// A dead letter keeps the record as it was fetched: numbers (23 significant digits, 1.50), escapes and
// key order survive the dead-letter line, its samples and its replay — no DOM round trip rewrites them.
#include <filesystem>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "curate/curator.h"
#include "curate/deadletter_json.h"
#include "curate/deadletters.h"
#include "lake/lake.h"
#include "support/curate_fixtures.h"
#include "support/duck_rows.h"
#include "support/files.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;

constexpr const char* kRecord =
    R"({"id":"A-1","amount":123.45678901234567890123,"price":1.50,"note":"caf\u00e9 \"x\"","tags":[1.0e2,-0.0]})";

std::vector<Source> shop(FieldType id) {
  FieldSpec amount = test::field("amount", FieldType::Decimal);
  amount.precision = 38;
  amount.scale = 20;
  return test::shop_items({test::field("id", id, true), amount, test::field("price", FieldType::Double),
                           test::field("note", FieldType::String)},
                          Evolution::Ignore);
}

TEST(DeadLetterJson, RecordTextIsKeptMinifiedAndReadBackRaw) {
  EXPECT_EQ(record_json("{ \"a\" : 1.50 ,\n \"b\": [ 12345678901234567890123 ] }"),
            R"({"a":1.50,"b":[12345678901234567890123]})");
  EXPECT_EQ(record_json("not json {"), R"("not json {")");  // kept, as a string
  EXPECT_EQ(record_json("7"), "7");
  boost::json::object rest{{"reason", "x"}};
  const std::string line = line_with_record(R"({"n":1.50})", rest);
  EXPECT_EQ(line, R"({"record":{"n":1.50},"reason":"x"})");
  EXPECT_EQ(raw_record(line).value_or("?"), R"({"n":1.50})");
  EXPECT_EQ(raw_record(R"({"reason":"x","record":  [1.50, 2]  })").value_or("?"), "[1.50,2]");
  EXPECT_EQ(raw_record(R"({"record":99999999999999999999999 })").value_or("?"), "99999999999999999999999");
  EXPECT_EQ(raw_record(R"({"record":"a\"b"})").value_or("?"), R"("a\"b")");
  EXPECT_FALSE(raw_record(R"({"reason":"x"})"));
  EXPECT_FALSE(raw_record("[1]"));
  EXPECT_FALSE(raw_record("{\"record\":"));
}

TEST(DeadLetterJson, LineSamplesAndReplayKeepTheRecordAsFetched) {
  test::TempDir tmp;
  LocalLake lake(tmp.path() / "lake");
  duck::Database db;
  // The id is declared int64 but the API sends text: the record is dead-lettered (bad_format).
  const auto buggy = shop(FieldType::Int64);
  {
    Curator c(buggy, db, tmp.path() / "staging", &lake);
    PreparedBatch b = c.stage({test::page_message("1", "shop", "items", std::string(R"({"items":[)") + kRecord + "]}")});
    ASSERT_EQ(b.counts["ex-1"].deadlettered, 1);
    for (const auto& f : b.files) lake.commit_staged(f.staged, f.final);
  }
  std::string line;
  for (const auto& p : lake.list("deadletter/shop/items"))
    if (p.size() > 6 && p.substr(p.size() - 6) == ".jsonl") line = *lake.get(p);
  ASSERT_FALSE(line.empty());
  EXPECT_NE(line.find(std::string("{\"record\":") + kRecord + ","), std::string::npos) << line;

  DeadLetters dl(buggy, lake, db);
  const auto samples = dl.samples("shop_items", "", 10);
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_NE(samples[0].find(std::string("{\"record\":") + kRecord + ","), std::string::npos) << samples[0];
  const auto parsed = boost::json::parse(samples[0]).as_object();  // still one valid JSON object
  EXPECT_TRUE(parsed.contains("file"));
  EXPECT_EQ(parsed.at("line").as_int64(), 0);

  // Fixed: the id is a string. The replayed amount has every digit (a DOM round trip re-prints it as
  // a double: 1.2345678901234568E2).
  const auto fixed_definition = shop(FieldType::String);
  DeadLetters fixed(fixed_definition, lake, db);
  const ReplayResult r = fixed.replay("shop_items");
  EXPECT_EQ(r.replayed, 1);
  ASSERT_EQ(r.written.size(), 1u);
  EXPECT_EQ(test::rows_text(db, "SELECT id, amount::VARCHAR, price, note FROM read_parquet(" +
                                    duck::quote_literal((tmp.path() / "lake" / r.written[0]).string()) + ")"),
            "A-1,123.45678901234567890123,1.5,café \"x\";");
}

TEST(DeadLetterJson, APageKeptWholeWithIntegersBeyond64BitsReplays) {
  test::TempDir tmp;
  LocalLake lake(tmp.path() / "lake");
  duck::Database db;
  // No definition for shop/items yet: the page is dead-lettered whole (unknown_dataset). Its amount
  // is an integer beyond 64 bits, which the decimal column takes with every digit.
  const std::string page = R"({"items":[{"id":"A-1","amount":123456789012345678901234,"price":1.5,"note":"n"}]})";
  {
    const std::vector<Source> none;  // the curator keeps a reference
    Curator c(none, db, tmp.path() / "staging", &lake);
    PreparedBatch b = c.stage({test::page_message("1", "shop", "items", page)});
    for (const auto& f : b.files) lake.commit_staged(f.staged, f.final);
  }
  FieldSpec amount = test::field("amount", FieldType::Decimal);
  amount.precision = 38;
  amount.scale = 2;
  const auto known = test::shop_items({test::field("id", FieldType::String, true), amount,
                                       test::field("price", FieldType::Double), test::field("note", FieldType::String)},
                                      Evolution::Ignore);
  DeadLetters dl(known, lake, db);
  ASSERT_EQ(dl.counts().size(), 1u);
  EXPECT_EQ(dl.counts().at(0).reason, "unknown_dataset");
  const ReplayResult r = dl.replay("shop_items");
  EXPECT_EQ(r.replayed, 1);
  EXPECT_EQ(r.still_failing, 0);
  ASSERT_EQ(r.written.size(), 1u);
  EXPECT_EQ(test::rows_text(db, "SELECT id, amount::VARCHAR FROM read_parquet(" +
                                    duck::quote_literal((tmp.path() / "lake" / r.written[0]).string()) + ")"),
            "A-1,123456789012345678901234.00;");
}

}  // namespace
}  // namespace apilake
