#include "curate/curator.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "curate/schema.h"
#include "support/curate_fixtures.h"
#include "support/parquet_compare.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

using test::field_at;

// 2025-11-26 08:15:00 UTC and the next hour.
using test::kT0;
constexpr int64_t kHour = 3600LL * 1000000;
const std::string kHour0 = "2025/11/26/08";
const std::string kHour1 = "2025/11/26/09";

// BCB SGS-like: the body is the records array; dates dd/MM/yyyy; values as strings.
Endpoint bcb_series() {
  Endpoint e;
  e.name = "series";
  e.records_pointer = "";
  e.schema.fields = test::bcb_series_fields();
  return e;
}

// A paged API with the records under /items.
Endpoint items_endpoint() {
  Endpoint e;
  e.name = "items";
  e.records_pointer = "/items";
  e.schema.fields = {field_at("id", FieldType::Int64, "/id", true),
                     field_at("name", FieldType::String, "/name", false)};
  return e;
}

// Amounts that may be integers beyond 64 bits: a double, an exact decimal(38,0) and an int64.
Endpoint amounts_endpoint() {
  Endpoint e;
  e.name = "amounts";
  e.records_pointer = "/data";
  FieldSpec exact = field_at("exact", FieldType::Decimal, "/exact", false);
  exact.precision = 38;
  exact.scale = 0;
  e.schema.fields = {field_at("id", FieldType::Int64, "/id", true), field_at("amount", FieldType::Double, "/amount", false),
                     exact, field_at("count", FieldType::Int64, "/count", false)};
  return e;
}

std::vector<Source> sources() {
  Source bcb;
  bcb.name = "bcb";
  bcb.endpoints = {bcb_series()};
  Source shop;
  shop.name = "shop";
  shop.endpoints = {items_endpoint()};
  Source ledger;
  ledger.name = "ledger";
  ledger.endpoints = {amounts_endpoint()};
  return {bcb, shop, ledger};
}

// One page of `source`/`endpoint` (test::page_message: extraction "ex-1", page "1", kT0 by default).
template <class... Args>
Message msg(Args&&... args) {
  return test::page_message(std::forward<Args>(args)...);
}

class CuratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root_ / "staging");
    fs::create_directories(root_ / "lake");
    curator_ = std::make_unique<Curator>(sources_, db_, root_ / "staging");
  }

  // Moves the staged files to their final names under the test lake, as the consumer would.
  PreparedBatch stage_and_commit(const std::vector<Message>& batch) {
    PreparedBatch b = curator_->stage(batch);
    for (const auto& f : b.files) {
      EXPECT_TRUE(fs::path(f.staged).parent_path() == root_ / "staging") << f.staged;
      const fs::path dest = root_ / "lake" / f.final;
      fs::create_directories(dest.parent_path());
      fs::rename(f.staged, dest);
      // Every file is also read by an independent implementation (hyparquet) and compared.
      if (f.final.size() > 8 && f.final.substr(f.final.size() - 8) == ".parquet") {
        EXPECT_EQ(test::compare_parquet_readers(dest.string()), "");
      }
    }
    return b;
  }

  std::string lake(const std::string& p) const { return (root_ / "lake" / p).string(); }

  std::vector<json::object> read_jsonl(const std::string& p) {
    std::ifstream in(lake(p));
    EXPECT_TRUE(in.good()) << p;
    std::vector<json::object> out;
    std::string line;
    while (std::getline(in, line)) out.push_back(json::parse(line).as_object());
    return out;
  }

  duck::Result query(const std::string& sql) { return con_.query(sql); }
  std::string parquet(const std::string& p) const { return "read_parquet(" + duck::quote_literal(lake(p)) + ")"; }

  std::vector<std::string> finals(const PreparedBatch& b) {
    std::vector<std::string> out;
    for (const auto& f : b.files) out.push_back(f.final);
    std::sort(out.begin(), out.end());
    return out;
  }

  test::TempDir tmp_;  // declared first: removed after the curator and the database are gone
  fs::path root_ = tmp_.path();
  std::vector<Source> sources_ = sources();
  duck::Database db_;
  duck::Connection con_{db_};
  std::unique_ptr<Curator> curator_;
};

TEST_F(CuratorTest, CuratesRowsWithLineageAndDeadLettersTheRest) {
  const std::string page1 =
      R"([{"data":"01/01/2024","valor":"11.65"},{"data":"02/01/2024"},{"data":"03/01/2024","valor":"11.70"}])";
  const std::string page2 = R"([
    {"data": "04/01/2024", "valor": "11.75"},
    {"data": "05/01/2024", "valor": 12}
  ])";
  PreparedBatch b = stage_and_commit({msg("1", "bcb", "series", page1, "ex-1", "1", kT0),
                                      msg("2", "bcb", "series", page2, "ex-1", "2", kT0 + 1)});

  const std::string name = "000000000001-000000000002";
  EXPECT_EQ(finals(b), (std::vector<std::string>{"curated/bcb/series/" + kHour0 + "/" + name + ".parquet",
                                                  "deadletter/bcb/series/" + kHour0 + "/" + name + ".jsonl"}));
  EXPECT_EQ(b.batch_id, name);
  EXPECT_EQ(b.consumer, "curate");
  EXPECT_EQ(b.message_ids, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(b.ack_ids, (std::vector<std::string>{"ack-1", "ack-2"}));
  ASSERT_EQ(b.counts.size(), 1u);
  EXPECT_EQ(b.counts["ex-1"].rows, 4);
  EXPECT_EQ(b.counts["ex-1"].deadlettered, 1);

  const std::string file = parquet("curated/bcb/series/" + kHour0 + "/" + name + ".parquet");
  duck::Result cols = query("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM " + file + ")");
  ASSERT_EQ(cols.row_count(), 6u);
  const std::vector<std::pair<std::string, std::string>> want_cols = {{"date", "DATE"},
                                                                      {"value", "DOUBLE"},
                                                                      {"_extraction_id", "VARCHAR"},
                                                                      {"_message_id", "VARCHAR"},
                                                                      {"_ingested_at", "TIMESTAMP WITH TIME ZONE"},
                                                                      {"_replayed_at", "TIMESTAMP WITH TIME ZONE"}};
  for (std::size_t i = 0; i < want_cols.size(); ++i) {
    EXPECT_EQ(cols.text(0, i), want_cols[i].first);
    EXPECT_EQ(cols.text(1, i), want_cols[i].second);
  }

  duck::Result r = query("SELECT strftime(date, '%Y-%m-%d'), value, _extraction_id, _message_id, "
                         "epoch_us(_ingested_at) FROM " + file + " ORDER BY date");
  ASSERT_EQ(r.row_count(), 4u);
  const std::vector<std::tuple<std::string, double, std::string, int64_t>> want = {
      {"2024-01-01", 11.65, "1", kT0},
      {"2024-01-03", 11.70, "1", kT0},
      {"2024-01-04", 11.75, "2", kT0 + 1},
      {"2024-01-05", 12.0, "2", kT0 + 1},
  };
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(r.text(0, i), std::get<0>(want[i]));
    EXPECT_DOUBLE_EQ(r.dbl(1, i), std::get<1>(want[i]));
    EXPECT_EQ(r.text(2, i), "ex-1");
    EXPECT_EQ(r.text(3, i), std::get<2>(want[i]));
    EXPECT_EQ(r.int64(4, i), std::get<3>(want[i]));
  }

  auto lines = read_jsonl("deadletter/bcb/series/" + kHour0 + "/" + name + ".jsonl");
  ASSERT_EQ(lines.size(), 1u);
  const json::object& dl = lines[0];
  // The record is embedded as JSON, not as an escaped string.
  EXPECT_EQ(dl.at("record"), json::parse(R"({"data":"02/01/2024"})"));
  EXPECT_EQ(dl.at("reason"), "missing_required");
  EXPECT_EQ(dl.at("field"), "value");
  EXPECT_TRUE(dl.at("detail").is_string());
  EXPECT_EQ(dl.at("message_id"), "1");
  EXPECT_EQ(dl.at("extraction_id"), "ex-1");
  EXPECT_EQ(dl.at("page"), 1);
  EXPECT_EQ(dl.at("source"), "bcb");
  EXPECT_EQ(dl.at("endpoint"), "series");
  EXPECT_EQ(dl.at("level"), "record");
  EXPECT_EQ(dl.at("ingested_at_us"), kT0);
  // Nothing is left behind in staging.
  EXPECT_TRUE(fs::is_empty(root_ / "staging"));
}

TEST_F(CuratorTest, ReasonsAreTheValidatorsOwn) {
  const std::vector<std::string> bad = {R"({"data":"2024-01-01","valor":"1"})", R"({"data":"01/01/2024","valor":"abc"})",
                                        R"({"data":"01/01/2024","valor":[1]})"};
  PreparedBatch b = stage_and_commit({msg("7", "bcb", "series", "[" + bad[0] + "," + bad[1] + "," + bad[2] + "]")});
  auto lines = read_jsonl("deadletter/bcb/series/" + kHour0 + "/000000000007-000000000007.jsonl");
  ASSERT_EQ(lines.size(), bad.size());
  RecordValidator v(bcb_series().schema);
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const Outcome o = v.apply(bad[i]);
    ASSERT_TRUE(o.reason.has_value()) << bad[i];
    EXPECT_EQ(lines[i].at("record"), json::parse(bad[i]));
    EXPECT_EQ(lines[i].at("reason"), o.reason->code.c_str());
    EXPECT_EQ(lines[i].at("field"), o.reason->field.c_str());
    EXPECT_EQ(lines[i].at("detail"), o.reason->detail.c_str());
  }
  EXPECT_EQ(b.counts["ex-1"].rows, 0);
  EXPECT_EQ(b.counts["ex-1"].deadlettered, 3);
  ASSERT_EQ(b.files.size(), 1u);  // no Parquet file without rows
}

TEST_F(CuratorTest, NonJsonPageIsOneParseErrorLine) {
  const std::string body = "<html>503 Service Unavailable</html>";
  std::string huge(1536 * 1024, 'x');  // not JSON either, larger than the 1 MiB kept
  PreparedBatch b = stage_and_commit({msg("3", "bcb", "series", body, "ex-9", "4"),
                                      msg("4", "bcb", "series", huge, "ex-9", "5"),
                                      msg("5", "bcb", "series", R"([{"data":"01/01/2024","valor":"1"}])", "ex-9")});
  auto lines = read_jsonl("deadletter/bcb/series/" + kHour0 + "/000000000003-000000000005.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("reason"), "parse_error");
  EXPECT_EQ(lines[0].at("record"), body.c_str());
  EXPECT_EQ(lines[0].at("page"), 4);
  EXPECT_EQ(lines[0].at("message_id"), "3");
  EXPECT_EQ(lines[1].at("reason"), "parse_error");
  EXPECT_EQ(lines[1].at("record").as_string().size(), 1024u * 1024u);
  EXPECT_EQ(b.counts["ex-9"].rows, 1);
  EXPECT_EQ(b.counts["ex-9"].deadlettered, 2);
  // The valid page of the same batch is curated.
  EXPECT_EQ(query("SELECT count(*) FROM " +
                  parquet("curated/bcb/series/" + kHour0 + "/000000000003-000000000005.parquet"))
                .int64(0, 0),
            1);
}

// A body with simdjson's padding in its spare capacity is read in place (no copy); whatever those
// spare bytes hold, every page comes out as the same rows and the same dead letters (reason, detail,
// record) as the same body without spare capacity, which is copied first.
TEST_F(CuratorTest, BodiesReadInPlaceGiveTheSameRowsAndRefusals) {
  const std::vector<std::string> bodies = {
      R"({"items":[{"id":1,"name":"a"},{"id":"x"},{"id":3,"name":"c\u00e9"}]})",  // two rows, one refusal
      R"({"items":[{"id":1,"name":"a"},{"id":2)",                                  // truncated
      R"({"items":[{"id":1}]}\)",                                                 // a backslash at the end
      R"({"items":[{"id":1,"name":"\u00e)",                                       // truncated in an escape
      R"({"items":[{"id":tru}]})",                                                // a broken atom
      R"({"items":[{"id":12)"};                                                   // ends in a number
  auto batch = [&](int first_id, bool padded) {
    std::vector<Message> out;
    for (std::size_t i = 0; i < bodies.size(); ++i) {
      Message m = msg(std::to_string(first_id + static_cast<int>(i)), "shop", "items", bodies[i], "ex-p");
      if (padded) {  // spare capacity holding bytes that would continue the page's last token
        m.data.append(simdjson::SIMDJSON_PADDING, '1');
        m.data.resize(bodies[i].size());
        EXPECT_GE(m.data.capacity() - m.data.size(), simdjson::SIMDJSON_PADDING);
      } else {
        m.data.shrink_to_fit();
        EXPECT_LT(m.data.capacity() - m.data.size(), simdjson::SIMDJSON_PADDING);
      }
      out.push_back(std::move(m));
    }
    return out;
  };
  const PreparedBatch copied = stage_and_commit(batch(40, false));
  const PreparedBatch in_place = stage_and_commit(batch(50, true));
  EXPECT_EQ(copied.counts.at("ex-p").rows, 2);
  EXPECT_EQ(copied.counts.at("ex-p").deadlettered, 6);  // one record and five pages
  EXPECT_EQ(in_place.counts.at("ex-p").rows, copied.counts.at("ex-p").rows);
  EXPECT_EQ(in_place.counts.at("ex-p").deadlettered, copied.counts.at("ex-p").deadlettered);
  const auto a = read_jsonl("deadletter/shop/items/" + kHour0 + "/000000000040-000000000045.jsonl");
  const auto b = read_jsonl("deadletter/shop/items/" + kHour0 + "/000000000050-000000000055.jsonl");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    for (const char* key : {"reason", "field", "detail", "record"}) EXPECT_EQ(b[i].at(key), a[i].at(key)) << key;
  }
  for (const std::string id : {"40-000000000045", "50-000000000055"})
    EXPECT_EQ(query("SELECT count(*) FROM " + parquet("curated/shop/items/" + kHour0 + "/0000000000" + id + ".parquet"))
                  .int64(0, 0),
              2);
}

TEST_F(CuratorTest, NestedRecordsPointer) {
  const std::string page = R"({"total": 3, "items": [{"id": 1, "name": "a"}, {"id": "2"}, {"id": 3, "name": "c"}]})";
  const std::string one = R"({"items": {"id": 4, "name": "single"}})";
  const std::string missing = R"({"error": "rate limited"})";
  const std::string scalar = R"({"items": 5})";
  PreparedBatch b = stage_and_commit({msg("10", "shop", "items", page, "ex-2"), msg("11", "shop", "items", one, "ex-2"),
                                      msg("12", "shop", "items", missing, "ex-2"),
                                      msg("13", "shop", "items", scalar, "ex-2")});
  const std::string name = "000000000010-000000000013";
  duck::Result r = query("SELECT id, name, _message_id FROM " +
                         parquet("curated/shop/items/" + kHour0 + "/" + name + ".parquet") + " ORDER BY id");
  ASSERT_EQ(r.row_count(), 4u);
  EXPECT_EQ(r.int64(0, 0), 1);
  EXPECT_EQ(r.text(1, 0), "a");
  EXPECT_EQ(r.int64(0, 1), 2);  // "2" coerced
  EXPECT_FALSE(r.text(1, 1).has_value());
  EXPECT_EQ(r.text(1, 2), "c");
  EXPECT_EQ(r.int64(0, 3), 4);
  EXPECT_EQ(r.text(1, 3), "single");
  EXPECT_EQ(r.text(2, 3), "11");

  auto lines = read_jsonl("deadletter/shop/items/" + kHour0 + "/" + name + ".jsonl");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("reason"), "parse_error");
  EXPECT_EQ(lines[0].at("message_id"), "12");
  EXPECT_EQ(lines[0].at("record"), missing.c_str());
  EXPECT_NE(std::string(lines[0].at("detail").as_string()).find("/items"), std::string::npos);
  EXPECT_EQ(lines[1].at("message_id"), "13");
  EXPECT_EQ(b.counts["ex-2"].rows, 4);
  EXPECT_EQ(b.counts["ex-2"].deadlettered, 2);
}

// An integer beyond 64 bits is valid JSON (simdjson's DOM alone refuses it): the page is curated, a
// double or decimal field takes the integer, an int64 field dead-letters only its record.
TEST_F(CuratorTest, IntegersBeyond64BitsReachTheValidator) {
  const std::string big = "123456789012345678901234";
  const std::string refused = R"({"id":2,"amount":1.5,"exact":7,"count":)" + big + "}";
  const std::string page = R"({"data":[{"id":1,"amount":)" + big + R"(,"exact":)" + big + R"(,"count":5}, )" +
                           refused + R"(, {"id":3,"amount":-)" + big + R"(,"exact":-)" + big + "}]}";
  PreparedBatch b = stage_and_commit({msg("20", "ledger", "amounts", page, "ex-3")});
  EXPECT_EQ(b.counts["ex-3"].rows, 2);
  EXPECT_EQ(b.counts["ex-3"].deadlettered, 1);
  const std::string name = "000000000020-000000000020";
  duck::Result r = query("SELECT id, amount, exact::VARCHAR, count FROM " +
                         parquet("curated/ledger/amounts/" + kHour0 + "/" + name + ".parquet") + " ORDER BY id");
  ASSERT_EQ(r.row_count(), 2u);
  EXPECT_EQ(r.int64(0, 0), 1);
  EXPECT_DOUBLE_EQ(r.dbl(1, 0), 1.2345678901234568e23);
  EXPECT_EQ(r.text(2, 0), big);  // exact: never through a double
  EXPECT_EQ(r.int64(3, 0), 5);
  EXPECT_EQ(r.int64(0, 1), 3);
  EXPECT_DOUBLE_EQ(r.dbl(1, 1), -1.2345678901234568e23);
  EXPECT_EQ(r.text(2, 1), "-" + big);
  EXPECT_TRUE(r.is_null(3, 1));

  const std::string dl_file = "deadletter/ledger/amounts/" + kHour0 + "/" + name + ".jsonl";
  auto lines = read_jsonl(dl_file);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("reason"), "out_of_range");
  EXPECT_EQ(lines[0].at("field"), "count");
  EXPECT_EQ(lines[0].at("level"), "record");
  // The record as the API sent it: the integer's digits kept (the file's text, not a double).
  std::ifstream in(lake(dl_file));
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find(R"("record":)" + refused), std::string::npos) << text.str();
}

TEST_F(CuratorTest, TwoDatasetsAndTwoHoursMakeSeparateFiles) {
  PreparedBatch b = stage_and_commit({
      msg("21", "bcb", "series", R"([{"data":"01/01/2024","valor":"1.5"}])", "ex-a"),
      msg("22", "shop", "items", R"({"items":[{"id":7}]})", "ex-b"),
      msg("23", "bcb", "series", R"([{"data":"02/01/2024","valor":"2.5"}])", "ex-a"),
      msg("24", "bcb", "series", R"([{"data":"03/01/2024","valor":"3.5"}])", "ex-c", "1", kT0 + kHour),
  });
  EXPECT_EQ(finals(b), (std::vector<std::string>{
                           "curated/bcb/series/" + kHour0 + "/000000000021-000000000023.parquet",
                           "curated/bcb/series/" + kHour1 + "/000000000024-000000000024.parquet",
                           "curated/shop/items/" + kHour0 + "/000000000022-000000000022.parquet",
                       }));
  EXPECT_EQ(b.batch_id, "000000000021-000000000024");
  EXPECT_DOUBLE_EQ(
      query("SELECT sum(value) FROM " + parquet("curated/bcb/series/" + kHour0 + "/000000000021-000000000023.parquet"))
          .dbl(0, 0),
      4.0);
  EXPECT_EQ(query("SELECT id FROM " + parquet("curated/shop/items/" + kHour0 + "/000000000022-000000000022.parquet"))
                .int64(0, 0),
            7);
  duck::Result late = query("SELECT value, _extraction_id FROM " +
                            parquet("curated/bcb/series/" + kHour1 + "/000000000024-000000000024.parquet"));
  EXPECT_DOUBLE_EQ(late.dbl(0, 0), 3.5);
  EXPECT_EQ(late.text(1, 0), "ex-c");
  ASSERT_EQ(b.counts.size(), 3u);
  EXPECT_EQ(b.counts["ex-a"].rows, 2);
  EXPECT_EQ(b.counts["ex-b"].rows, 1);
  EXPECT_EQ(b.counts["ex-c"].rows, 1);
  for (const auto& [ex, c] : b.counts) EXPECT_EQ(c.deadlettered, 0) << ex;
}

TEST_F(CuratorTest, UnknownDatasetDeadLettersThePage) {
  PreparedBatch b = stage_and_commit({
      msg("30", "nosuch", "thing", R"([{"a":1}])", "ex-u"),
      msg("31", "../../etc", "x/y", "[]", "ex-u"),
      msg("32", "bcb", "series", R"([{"data":"01/01/2024","valor":"1"}])", "ex-k"),
  });
  EXPECT_EQ(finals(b), (std::vector<std::string>{
                           "curated/bcb/series/" + kHour0 + "/000000000032-000000000032.parquet",
                           "deadletter/_unknown/_unknown/" + kHour0 + "/000000000031-000000000031.jsonl",
                           "deadletter/nosuch/thing/" + kHour0 + "/000000000030-000000000030.jsonl",
                       }));
  auto lines = read_jsonl("deadletter/nosuch/thing/" + kHour0 + "/000000000030-000000000030.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("reason"), "unknown_dataset");
  EXPECT_EQ(lines[0].at("record"), R"([{"a":1}])");
  EXPECT_EQ(lines[0].at("source"), "nosuch");
  auto odd = read_jsonl("deadletter/_unknown/_unknown/" + kHour0 + "/000000000031-000000000031.jsonl");
  ASSERT_EQ(odd.size(), 1u);
  EXPECT_EQ(odd[0].at("source"), "../../etc");
  EXPECT_EQ(b.counts["ex-u"].deadlettered, 2);
  EXPECT_EQ(b.counts["ex-k"].rows, 1);
}

TEST_F(CuratorTest, EmptyPagesAndDuplicatesWriteNothingExtra) {
  PreparedBatch b = stage_and_commit({msg("40", "bcb", "series", "[]", "ex-e")});
  EXPECT_TRUE(b.files.empty());
  EXPECT_EQ(b.counts["ex-e"].rows, 0);
  EXPECT_EQ(b.message_ids, std::vector<std::string>{"40"});

  const Message m = msg("41", "bcb", "series", R"([{"data":"01/01/2024","valor":"1"}])", "ex-d");
  PreparedBatch d = stage_and_commit({m, m});
  EXPECT_EQ(d.counts["ex-d"].rows, 1);
  EXPECT_EQ(d.message_ids, std::vector<std::string>{"41"});
  EXPECT_EQ(query("SELECT count(*) FROM " + parquet("curated/bcb/series/" + kHour0 + "/000000000041-000000000041.parquet"))
                .int64(0, 0),
            1);
}

TEST_F(CuratorTest, NamesSortByMessageId) {
  PreparedBatch b = stage_and_commit({msg("9", "bcb", "series", R"([{"data":"01/01/2024","valor":"1"}])"),
                                      msg("10", "bcb", "series", R"([{"data":"01/01/2024","valor":"2"}])")});
  ASSERT_EQ(b.files.size(), 1u);
  EXPECT_EQ(b.files[0].final, "curated/bcb/series/" + kHour0 + "/000000000009-000000000010.parquet");
  // Each stage() uses fresh staged names, so batches never overwrite each other's staged files.
  PreparedBatch c = curator_->stage({msg("11", "bcb", "series", R"([{"data":"01/01/2024","valor":"1"}])")});
  PreparedBatch d = curator_->stage({msg("11", "bcb", "series", R"([{"data":"01/01/2024","valor":"1"}])")});
  ASSERT_EQ(c.files.size(), 1u);
  ASSERT_EQ(d.files.size(), 1u);
  EXPECT_NE(c.files[0].staged, d.files[0].staged);
  EXPECT_EQ(c.files[0].final, d.files[0].final);
}

}  // namespace
}  // namespace apilake

namespace apilake {
namespace {

TEST_F(CuratorTest, SchemaTheValidatorRefusesDeadLettersItsPagesOnly) {
  Endpoint broken = bcb_series();
  broken.name = "broken";
  broken.schema.fields[0].format = "dd/MM/yy";  // not a pattern the validator knows
  ASSERT_THROW(RecordValidator{broken.schema}, std::exception);
  sources_[0].endpoints.push_back(broken);

  PreparedBatch b = stage_and_commit({msg("50", "bcb", "broken", R"([{"data":"01/01/24","valor":"1"}])", "ex-s"),
                                      msg("51", "bcb", "series", R"([{"data":"01/01/2024","valor":"1"}])", "ex-s"),
                                      msg("52", "bcb", "broken", R"([])", "ex-s")});
  auto lines = read_jsonl("deadletter/bcb/broken/" + kHour0 + "/000000000050-000000000052.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("reason"), "invalid_schema");
  EXPECT_EQ(lines[0].at("record"), R"([{"data":"01/01/24","valor":"1"}])");
  EXPECT_EQ(lines[1].at("message_id"), "52");
  EXPECT_EQ(b.counts["ex-s"].rows, 1);
  EXPECT_EQ(b.counts["ex-s"].deadlettered, 2);
}

}  // namespace
}  // namespace apilake
