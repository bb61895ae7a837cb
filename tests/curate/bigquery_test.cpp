// BigQuery DDL (curate/bigquery.h): the type of every column for both layouts, the options of each
// layout, refusals, and — the part that matters — the mapping checked against the Parquet types the
// curator really writes: a file staged by the Curator is read back with DuckDB's parquet_schema() and
// each Parquet column's physical/logical type is mapped to BigQuery here, independently of
// bigquery_type(), by BigQuery's documented Parquet conversion rules.
#include "curate/bigquery.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>

#include <gtest/gtest.h>

#include "curate/curator.h"
#include "duck/duck.h"
#include "support/curate_fixtures.h"

namespace apilake {
namespace {

namespace fs = std::filesystem;

using test::field;
FieldSpec decimal(std::string name, int p, int s) {
  FieldSpec f = field(std::move(name), FieldType::Decimal);
  f.precision = p;
  f.scale = s;
  return f;
}
FieldSpec structure(std::string name, std::vector<FieldSpec> fields) {
  FieldSpec f = field(std::move(name), FieldType::Struct);
  f.fields = std::move(fields);
  return f;
}
FieldSpec list(std::string name, FieldSpec item) {
  FieldSpec f = field(std::move(name), FieldType::List);
  item.name = "item";
  item.path.clear();
  f.items = {std::move(item)};
  return f;
}
FieldSpec enumeration(std::string name, std::vector<std::string> values) {
  FieldSpec f = field(std::move(name), FieldType::Enum);
  f.values = std::move(values);
  return f;
}

// One column of every FieldType, nested ones included.
Endpoint all_types(Endpoint::Layout layout) {
  Endpoint e;
  e.name = "things";
  e.records_pointer = "";
  e.layout = layout;
  e.schema.fields = {
      field("s", FieldType::String),
      field("i", FieldType::Int64),
      field("d", FieldType::Double),
      field("b", FieldType::Bool),
      field("dt", FieldType::Date),
      field("ts", FieldType::Timestamp),
      decimal("price", 12, 2),
      decimal("wide", 38, 12),
      enumeration("kind", {"a", "b"}),
      structure("st", {field("x", FieldType::Int64), field("y", FieldType::String)}),
      list("li", field("", FieldType::Int64)),
      list("ls", structure("", {field("x", FieldType::Int64), field("y", FieldType::String)})),
  };
  return e;
}

// The expected BigQuery column list, written out by hand: schema fields, then the lineage columns.
const std::vector<std::pair<std::string, std::string>> kExpected = {
    {"s", "STRING"},
    {"i", "INT64"},
    {"d", "FLOAT64"},
    {"b", "BOOL"},
    {"dt", "DATE"},
    {"ts", "TIMESTAMP"},
    {"price", "NUMERIC"},
    {"wide", "BIGNUMERIC"},
    {"kind", "STRING"},
    {"st", "STRUCT<`x` INT64, `y` STRING>"},
    {"li", "ARRAY<INT64>"},
    {"ls", "ARRAY<STRUCT<`x` INT64, `y` STRING>>"},
    {"_extraction_id", "STRING"},
    {"_message_id", "STRING"},
    {"_ingested_at", "TIMESTAMP"},
    {"_replayed_at", "TIMESTAMP"},
};

Source source_of(Endpoint e) {
  Source s;
  s.name = "shop";
  s.endpoints = {std::move(e)};
  return s;
}

TEST(BigQueryType, EveryFieldTypeHasAType) {
  // Total over the enum: the switch in bigquery_type has no default, so a new FieldType fails to
  // compile (-Werror=switch); this loop makes sure none of the current ones throws.
  for (int t = 0; t <= static_cast<int>(FieldType::List); ++t) {
    FieldSpec f = field("c", static_cast<FieldType>(t));
    f.precision = 10;
    f.fields = {field("x", FieldType::Int64)};
    f.items = {field("item", FieldType::String)};
    EXPECT_NO_THROW(bigquery_type(f)) << to_string(f.type);
    EXPECT_FALSE(bigquery_type(f).empty());
  }
}

TEST(BigQueryType, DecimalsAreNumericWhenTheyFitElseBignumeric) {
  EXPECT_EQ(bigquery_type(decimal("c", 1, 0)), "NUMERIC");
  EXPECT_EQ(bigquery_type(decimal("c", 29, 0)), "NUMERIC");   // 29 integer digits: the NUMERIC maximum
  EXPECT_EQ(bigquery_type(decimal("c", 30, 0)), "BIGNUMERIC");
  EXPECT_EQ(bigquery_type(decimal("c", 38, 9)), "NUMERIC");   // NUMERIC's full range
  EXPECT_EQ(bigquery_type(decimal("c", 10, 10)), "BIGNUMERIC");  // scale 10 > 9
  EXPECT_EQ(bigquery_type(decimal("c", 38, 38)), "BIGNUMERIC");
  EXPECT_THROW(bigquery_type(decimal("c", 0, 0)), std::invalid_argument);
  EXPECT_THROW(bigquery_type(decimal("c", 39, 0)), std::invalid_argument);
  EXPECT_THROW(bigquery_type(decimal("c", 5, 6)), std::invalid_argument);
}

TEST(BigQueryType, NestedTypesAndTheirRefusals) {
  EXPECT_EQ(bigquery_type(structure("c", {structure("in", {field("z", FieldType::Date)})})),
            "STRUCT<`in` STRUCT<`z` DATE>>");
  EXPECT_EQ(bigquery_type(list("c", decimal("", 40 - 2, 20))), "ARRAY<BIGNUMERIC>");
  EXPECT_THROW(bigquery_type(list("c", list("", field("", FieldType::Int64)))), std::invalid_argument);
  EXPECT_THROW(bigquery_type(structure("c", {})), std::invalid_argument);
  FieldSpec bad = field("c", FieldType::List);
  EXPECT_THROW(bigquery_type(bad), std::invalid_argument);  // no item spec
}

TEST(BigQueryColumns, EveryColumnInFileOrderLineageLast) {
  auto columns = bigquery_columns(all_types(Endpoint::Layout::Seed));
  ASSERT_EQ(columns.size(), kExpected.size());
  for (std::size_t i = 0; i < columns.size(); ++i) {
    EXPECT_EQ(columns[i].name, kExpected[i].first) << i;
    EXPECT_EQ(columns[i].type, kExpected[i].second) << columns[i].name;
  }
}

std::string expected_column_block() {
  std::string out;
  for (std::size_t i = 0; i < kExpected.size(); ++i)
    out += "  `" + kExpected[i].first + "` " + kExpected[i].second + (i + 1 < kExpected.size() ? ",\n" : "\n");
  return out;
}

TEST(BigQueryDdl, HiveLayoutDeclaresPartitionColumnsAndPrefix) {
  BigQueryTarget t;
  t.bucket = "gs://lake-bucket/prod/";
  t.project = "my-proj";
  t.dataset = "analytics";
  const std::string ddl = bigquery_ddl(source_of(all_types(Endpoint::Layout::Hive)),
                                       all_types(Endpoint::Layout::Hive), t);
  const std::string statement = ddl.substr(ddl.find("CREATE"));
  EXPECT_EQ(statement,
            "CREATE EXTERNAL TABLE `my-proj.analytics.shop_things` (\n" + expected_column_block() +
                ")\n"
                "WITH PARTITION COLUMNS (year STRING, month STRING, day STRING, hour STRING)\n"
                "OPTIONS (\n"
                "  format = 'PARQUET',\n"
                "  uris = ['gs://lake-bucket/prod/curated/shop/things/*'],\n"
                "  hive_partition_uri_prefix = 'gs://lake-bucket/prod/curated/shop/things',\n"
                "  require_hive_partition_filter = false,\n"
                "  enable_list_inference = true\n"
                ");\n");
  EXPECT_NE(ddl.find("-- shop.things: hive layout"), std::string::npos) << ddl;
}

TEST(BigQueryDdl, SeedLayoutUsesOneWildcardAndSaysItCannotPrune) {
  BigQueryTarget t;
  t.bucket = "gs://lake-bucket";
  const std::string ddl = bigquery_ddl(source_of(all_types(Endpoint::Layout::Seed)),
                                       all_types(Endpoint::Layout::Seed), t);
  const std::string statement = ddl.substr(ddl.find("CREATE"));
  EXPECT_EQ(statement,
            "CREATE EXTERNAL TABLE `apilake.shop_things` (\n" + expected_column_block() +
                ")\n"
                "OPTIONS (\n"
                "  format = 'PARQUET',\n"
                "  uris = ['gs://lake-bucket/curated/shop/things/*.parquet'],\n"
                "  enable_list_inference = true\n"
                ");\n");
  EXPECT_NE(ddl.find("cannot prune"), std::string::npos) << ddl;
  EXPECT_EQ(std::count(statement.begin(), statement.end(), '*'), 1) << "BigQuery allows one wildcard per URI";
}

TEST(BigQueryDdl, NoListNoListInference) {
  Endpoint e;
  e.name = "series";
  e.schema.fields = {field("date", FieldType::Date), field("value", FieldType::Double)};
  BigQueryTarget t;
  t.bucket = "gs://b";
  const std::string ddl = bigquery_ddl(source_of(e), e, t);
  EXPECT_EQ(ddl.find("enable_list_inference"), std::string::npos) << ddl;
  EXPECT_NE(ddl.find("  uris = ['gs://b/curated/shop/series/*.parquet']\n);\n"), std::string::npos) << ddl;
}

TEST(BigQueryDdl, RefusesWhatBigQueryWouldRefuse) {
  Endpoint e = all_types(Endpoint::Layout::Seed);
  Source s = source_of(e);
  auto ddl_with = [&](BigQueryTarget t) { return bigquery_ddl(s, e, t); };
  EXPECT_THROW(ddl_with({"s3://b", "", "", ""}), std::invalid_argument);
  EXPECT_THROW(ddl_with({"gs://", "", "", ""}), std::invalid_argument);
  EXPECT_THROW(ddl_with({"gs://b/it's", "", "", ""}), std::invalid_argument);
  EXPECT_THROW(ddl_with({"gs://b/x*", "", "", ""}), std::invalid_argument);
  EXPECT_THROW(ddl_with({"gs://b//x", "", "", ""}), std::invalid_argument);
  EXPECT_THROW(ddl_with({"gs://b", "p;DROP", "", ""}), std::invalid_argument);
  EXPECT_THROW(ddl_with({"gs://b", "", "d.s", ""}), std::invalid_argument);
  EXPECT_THROW(ddl_with({"gs://b", "", "", "t`"}), std::invalid_argument);
  // A field named like a hive key would clash with the partition column.
  Endpoint h = all_types(Endpoint::Layout::Hive);
  h.schema.fields.push_back(field("Hour", FieldType::Int64));
  EXPECT_THROW(bigquery_ddl(source_of(h), h, {"gs://b", "", "", ""}), std::invalid_argument);
  Endpoint seed_hour = h;
  seed_hour.layout = Endpoint::Layout::Seed;
  EXPECT_NO_THROW(bigquery_ddl(source_of(seed_hour), seed_hour, {"gs://b", "", "", ""}));
}

// --- Against the Parquet the curator writes -----------------------------------------------------

struct ParquetNode {
  std::string name, type, converted, logical;
  int64_t scale = 0, precision = 0;
  std::vector<ParquetNode> children;
};

// BigQuery's Parquet conversion (https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet
// "Parquet conversions"), applied to what is in the file, with list inference on.
std::string bigquery_from_parquet(const ParquetNode& n) {
  if (!n.children.empty()) {
    if (n.converted == "LIST") {
      // <name> (LIST) { repeated group list { <element> } }
      EXPECT_EQ(n.children.size(), 1u) << n.name;
      const ParquetNode& repeated = n.children.front();
      EXPECT_EQ(repeated.children.size(), 1u) << n.name;
      return "ARRAY<" + bigquery_from_parquet(repeated.children.front()) + ">";
    }
    std::string out = "STRUCT<";
    for (std::size_t i = 0; i < n.children.size(); ++i)
      out += (i ? ", " : "") + ("`" + n.children[i].name + "` ") + bigquery_from_parquet(n.children[i]);
    return out + ">";
  }
  if (n.converted == "DECIMAL" || n.logical.find("DecimalType") != std::string::npos)
    return n.scale <= 9 && n.precision - n.scale <= 29 ? "NUMERIC" : "BIGNUMERIC";
  if (n.converted == "UTF8" || n.converted == "ENUM" || n.logical.find("StringType") != std::string::npos)
    return "STRING";
  if (n.converted == "DATE") return "DATE";
  if (n.converted == "TIMESTAMP_MICROS" || n.converted == "TIMESTAMP_MILLIS" ||
      n.logical.find("TimestampType") != std::string::npos) {
    // UTC-adjusted timestamps are TIMESTAMP; local ones would be DATETIME (we must not write those).
    const bool utc = n.logical.empty() || n.logical.find("isAdjustedToUTC=1") != std::string::npos ||
                     n.logical.find("isAdjustedToUTC=true") != std::string::npos;
    return utc ? "TIMESTAMP" : "DATETIME";
  }
  if (n.type == "INT64" || n.type == "INT32") return "INT64";
  if (n.type == "DOUBLE" || n.type == "FLOAT") return "FLOAT64";
  if (n.type == "BOOLEAN") return "BOOL";
  if (n.type == "BYTE_ARRAY") return "BYTES";
  return "UNMAPPED(" + n.type + "/" + n.converted + "/" + n.logical + ")";
}

TEST(BigQueryAgainstParquet, EveryColumnTheCuratorWritesMapsToTheDdlType) {
  const fs::path root = fs::temp_directory_path() / ("apilake-bigquery-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  std::vector<Source> sources = {source_of(all_types(Endpoint::Layout::Hive))};
  duck::Database db;
  PreparedBatch batch;
  {
    Curator curator(sources, db, root);
    Message m;
    m.id = "1";
    m.ack_id = "a1";
    m.publish_time_us = 1764144900000000;
    m.attributes = {{"source", "shop"}, {"endpoint", "things"}, {"extraction_id", "ex-1"}, {"page", "1"}};
    m.data = R"([{"s":"a","i":1,"d":1.5,"b":true,"dt":"2024-01-02","ts":"2024-01-02T03:04:05Z",
                  "price":"12.34","wide":"1.5","kind":"a","st":{"x":1,"y":"q"},"li":[1,2],
                  "ls":[{"x":1,"y":"z"}]}])";
    batch = curator.stage({m});
  }
  std::string parquet, dead_letters;
  for (const auto& f : batch.files) {
    if (f.final.find(".parquet") != std::string::npos) {
      parquet = f.staged;
    } else {
      std::ifstream in(f.staged);
      dead_letters.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  ASSERT_FALSE(parquet.empty()) << "no Parquet staged; dead letters: " << dead_letters;
  EXPECT_TRUE(dead_letters.empty()) << dead_letters;
  EXPECT_EQ(batch.counts["ex-1"].rows, 1) << "the record must be curated, not dead-lettered";

  duck::Connection con(db);
  auto r = con.query("SELECT name, type, converted_type, logical_type, scale, precision, num_children FROM "
                     "parquet_schema(" + duck::quote_literal(parquet) + ")");
  // Rebuild the schema tree from the depth-first rows (row 0 is the root).
  std::size_t row = 0;
  std::function<ParquetNode()> node = [&]() {
    ParquetNode n;
    n.name = r.text(0, row).value_or("");
    n.type = r.text(1, row).value_or("");
    n.converted = r.text(2, row).value_or("");
    n.logical = r.text(3, row).value_or("");
    n.scale = r.is_null(4, row) ? 0 : r.int64(4, row);
    n.precision = r.is_null(5, row) ? 0 : r.int64(5, row);
    const int64_t children = r.is_null(6, row) ? 0 : r.int64(6, row);
    ++row;
    for (int64_t i = 0; i < children; ++i) n.children.push_back(node());
    return n;
  };
  ASSERT_GT(r.row_count(), 0u);
  const ParquetNode file = node();
  ASSERT_EQ(row, r.row_count());

  const auto ddl_columns = bigquery_columns(sources.front().endpoints.front());
  ASSERT_EQ(file.children.size(), ddl_columns.size());
  for (std::size_t i = 0; i < ddl_columns.size(); ++i) {
    EXPECT_EQ(file.children[i].name, ddl_columns[i].name);
    EXPECT_EQ(bigquery_from_parquet(file.children[i]), ddl_columns[i].type)
        << ddl_columns[i].name << ": Parquet " << file.children[i].type << "/" << file.children[i].converted << "/"
        << file.children[i].logical;
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace apilake
