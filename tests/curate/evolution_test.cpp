// schema.evolution end to end at the curator: pages with type drift (a number that becomes a
// string), a new field and a missing required field end as each policy says, and
// fetched = curated + dead-lettered by count (docs/schema.md "Accounting").

#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "curate/curator.h"
#include "curate/schema.h"
#include "curate/schema_registry.h"
#include "lake/lake.h"
#include "support/curate_fixtures.h"
#include "support/duck_rows.h"
#include "support/parquet_compare.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;

using test::field;

std::vector<Source> sources_with(Evolution policy) {
  return test::shop_items({field("id", FieldType::Int64, true), field("price", FieldType::Double),
                           field("name", FieldType::String)},
                          policy);
}

Message page(const std::string& id, const std::string& body) { return test::page_message(id, "shop", "items", body); }

// 5 records: fine; type drift (price "abc"); a new field; id missing; fine (price as a numeric string).
const std::string kDrift = R"({"items":[
  {"id":1,"price":1.5,"name":"a"},
  {"id":2,"price":"abc","name":"b"},
  {"id":3,"price":2,"name":"c","color":"red"},
  {"price":3,"name":"d"},
  {"id":5,"price":"4.5","name":"e"}]})";

struct Result {
  int64_t rows = 0, deadlettered = 0;
  std::vector<std::string> record_reasons;  // level "record" lines
  std::vector<std::string> value_lines;     // level "value" lines: "field=value"
  std::vector<std::string> parquet, schemas;
};

class Evolution_ : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(root_ / "staging"); }

  Result run(Curator& c, const std::vector<Message>& batch) {
    PreparedBatch b = c.stage(batch);
    Result r;
    r.rows = b.counts["ex-1"].rows;
    r.deadlettered = b.counts["ex-1"].deadlettered;
    for (const auto& f : b.files) {
      const fs::path dest = root_ / "lake" / f.final;
      fs::create_directories(dest.parent_path());
      fs::rename(f.staged, dest);
      if (dest.extension() == ".parquet") {
        r.parquet.push_back(dest.string());
        EXPECT_EQ(test::compare_parquet_readers(dest.string()), "");
      } else if (f.final.rfind("_schemas/", 0) == 0) {
        r.schemas.push_back(f.final);
      } else if (dest.extension() == ".jsonl") {
        std::ifstream in(dest);
        std::string line;
        while (std::getline(in, line)) {
          json::object o = json::parse(line).as_object();
          if (o["level"].as_string() == "value")
            r.value_lines.push_back(std::string(o["field"].as_string()) + "=" + json::serialize(o["record"]));
          else
            r.record_reasons.push_back(std::string(o["reason"].as_string()) + " " +
                                       std::string(o["field"].as_string()));
        }
      }
    }
    return r;
  }

  std::string query(const std::string& sql) { return test::rows_text(db_, sql); }
  static std::string files(const std::vector<std::string>& fs_) {
    std::string list = "[";
    for (std::size_t i = 0; i < fs_.size(); ++i) list += (i ? "," : "") + duck::quote_literal(fs_[i]);
    return list + "]";
  }

  test::TempDir tmp_;  // declared first: removed after the database is gone
  fs::path root_ = tmp_.path();
  duck::Database db_;
};

TEST_F(Evolution_, FreezeAndDiscardRowDeadLetterTheRecord) {
  for (Evolution policy : {Evolution::Freeze, Evolution::DiscardRow}) {
    auto srcs = sources_with(policy);
    Curator c(srcs, db_, root_ / "staging");
    Result r = run(c, {page("1", kDrift)});
    EXPECT_EQ(r.rows, 2);
    EXPECT_EQ(r.deadlettered, 3);
    EXPECT_EQ(r.rows + r.deadlettered, 5);  // fetched = curated + dead-lettered
    EXPECT_EQ(r.record_reasons,
              (std::vector<std::string>{"bad_format price", "unknown_field color", "missing_required id"}));
    EXPECT_TRUE(r.value_lines.empty());
    ASSERT_EQ(r.parquet.size(), 1u);
    EXPECT_EQ(query("SELECT id, price FROM read_parquet(" + files(r.parquet) + ") ORDER BY id"), "1,1.5;5,4.5;");
    fs::remove_all(root_ / "lake");
  }
}

TEST_F(Evolution_, DiscardValueCuratesTheRowAndKeepsTheValue) {
  auto srcs = sources_with(Evolution::DiscardValue);
  Curator c(srcs, db_, root_ / "staging");
  Result r = run(c, {page("1", kDrift)});
  EXPECT_EQ(r.rows, 3);
  EXPECT_EQ(r.deadlettered, 2);
  EXPECT_EQ(r.rows + r.deadlettered, 5);
  EXPECT_EQ(r.record_reasons, (std::vector<std::string>{"bad_format price", "missing_required id"}));
  EXPECT_EQ(r.value_lines, (std::vector<std::string>{"color=\"red\""}));  // extra line, not in deadlettered
  EXPECT_EQ(query("SELECT id, name FROM read_parquet(" + files(r.parquet) + ") ORDER BY id"), "1,a;3,c;5,e;");
  EXPECT_EQ(query("SELECT count(*) FROM (DESCRIBE SELECT * FROM read_parquet(" + files(r.parquet) +
                  ")) WHERE column_name = 'color'"),
            "0;");
}

TEST_F(Evolution_, EvolveAddsAColumnAndRecordsAVersion) {
  auto srcs = sources_with(Evolution::Evolve);
  Curator c(srcs, db_, root_ / "staging");
  // batch 1: no new field yet -> a file without `color`
  Result r1 = run(c, {page("1", R"({"items":[{"id":0,"price":1,"name":"z"}]})")});
  EXPECT_EQ(r1.rows, 1);
  EXPECT_TRUE(r1.schemas.empty());
  // batch 2: the drift page -> `color` becomes a column, schema v2 in the registry
  Result r2 = run(c, {page("2", kDrift)});
  EXPECT_EQ(r2.rows, 3);
  EXPECT_EQ(r2.deadlettered, 2);
  EXPECT_EQ(r2.rows + r2.deadlettered, 5);
  EXPECT_EQ(r2.record_reasons, (std::vector<std::string>{"bad_format price", "missing_required id"}));
  EXPECT_TRUE(r2.value_lines.empty());
  ASSERT_EQ(r2.schemas, (std::vector<std::string>{"_schemas/shop/items/v2.json"}));
  std::ifstream in(root_ / "lake" / r2.schemas[0]);
  std::stringstream text;
  text << in.rdbuf();
  json::object reg = json::parse(text.str()).as_object();
  EXPECT_EQ(reg["version"].as_int64(), 2);
  auto& fields = reg["fields"].as_array();
  ASSERT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields[3].as_object()["name"].as_string(), "color");
  EXPECT_EQ(fields[3].as_object()["type"].as_string(), "string");
  EXPECT_EQ(fields[3].as_object()["nullable"].as_bool(), true);
  // each file names its schema version in its Parquet key-value metadata
  auto version_of = [&](const std::string& f) {
    return query("SELECT decode(value) FROM parquet_kv_metadata(" + duck::quote_literal(f) +
                 ") WHERE decode(key) = 'apilake_schema_version'");
  };
  ASSERT_EQ(r1.parquet.size(), 1u);
  ASSERT_EQ(r2.parquet.size(), 1u);
  EXPECT_EQ(version_of(r1.parquet[0]), "1;");
  EXPECT_EQ(version_of(r2.parquet[0]), "2;");
  // old and new files read together by column name: the old file's rows have NULL color
  std::vector<std::string> all = r1.parquet;
  all.insert(all.end(), r2.parquet.begin(), r2.parquet.end());
  EXPECT_EQ(query("SELECT id, color FROM read_parquet(" + files(all) + ", union_by_name=true) ORDER BY id"),
            "0,NULL;1,NULL;3,red;5,NULL;");
  // batch 3: a later type drift on the evolved column is a dead letter like any other; a number is
  // coerced to the string column
  Result r3 = run(c, {page("3", R"({"items":[{"id":7,"color":{"r":1}},{"id":8,"color":12}]})")});
  EXPECT_EQ(r3.rows, 1);
  EXPECT_EQ(r3.deadlettered, 1);
  EXPECT_EQ(r3.record_reasons, (std::vector<std::string>{"type_mismatch color"}));
  EXPECT_TRUE(r3.schemas.empty());
  EXPECT_EQ(query("SELECT id, color FROM read_parquet(" + files(r3.parquet) + ")"), "8,12;");
}

TEST(EvolvedField, InfersTypesAndSafeNames) {
  EXPECT_EQ(evolved_field({"n", "12"}).type, FieldType::Int64);
  EXPECT_EQ(evolved_field({"n", "-1.5e3"}).type, FieldType::Double);
  EXPECT_EQ(evolved_field({"n", "123456789012345678901234"}).type, FieldType::Double);
  EXPECT_EQ(evolved_field({"n", "true"}).type, FieldType::Bool);
  EXPECT_EQ(evolved_field({"n", "\"x\""}).type, FieldType::String);
  EXPECT_EQ(evolved_field({"n", "{\"a\":1}"}).type, FieldType::String);
  EXPECT_EQ(evolved_field({"n", "null"}).type, FieldType::String);
  EXPECT_EQ(evolved_field({"first-name", "1"}).name, "first_name");
  EXPECT_EQ(evolved_field({"first-name", "1"}).path, "/first-name");
  EXPECT_EQ(evolved_field({"a/b", "1"}).path, "/a~1b");
  EXPECT_EQ(evolved_field({"_extraction_id", "1"}).name, "f__extraction_id");  // lineage names are reserved
  EXPECT_EQ(evolved_field({"1st", "1"}).name, "f_1st");
  Schema s;
  s.fields = {field("name", FieldType::String)};
  EXPECT_EQ(evolve_schema(s, {{"Name", "1"}, {"b", "1"}, {"b", "2"}}), 1u);  // case-insensitive clash skipped
  EXPECT_EQ(s.version, 2);
  EXPECT_EQ(evolve_schema(s, {{"b", "1"}}), 0u);
  EXPECT_EQ(s.version, 2);
}

// The schema registry survives a restart: a new curator (same lake) starts from the latest version,
// keeps the evolved columns and continues the numbering (docs/schema.md "Schema registry").
TEST_F(Evolution_, RegistrySurvivesARestart) {
  auto srcs = sources_with(Evolution::Evolve);
  LocalLake lake(root_ / "lake");
  {
    Curator c(srcs, db_, root_ / "staging", &lake);
    Result r = run(c, {page("1", kDrift)});
    ASSERT_EQ(r.schemas, (std::vector<std::string>{"_schemas/shop/items/v2.json"}));
  }
  const auto v2 = lake.get("_schemas/shop/items/v2.json");
  ASSERT_TRUE(v2);
  Curator c(srcs, db_, root_ / "staging", &lake);  // the restart
  // `color` is known: no new version, and the rows carry the column
  Result r1 = run(c, {page("2", R"({"items":[{"id":10,"color":"blue"}]})")});
  EXPECT_EQ(r1.rows, 1);
  EXPECT_TRUE(r1.schemas.empty());
  EXPECT_TRUE(r1.value_lines.empty());
  EXPECT_EQ(query("SELECT id, color FROM read_parquet(" + files(r1.parquet) + ")"), "10,blue;");
  EXPECT_EQ(query("SELECT decode(value) FROM parquet_kv_metadata(" + duck::quote_literal(r1.parquet.at(0)) +
                  ") WHERE decode(key) = 'apilake_schema_version'"),
            "2;");
  // a new key after the restart is v3, and v2 is untouched
  Result r2 = run(c, {page("3", R"({"items":[{"id":11,"color":"red","size":4}]})")});
  EXPECT_EQ(r2.schemas, (std::vector<std::string>{"_schemas/shop/items/v3.json"}));
  EXPECT_EQ(lake.get("_schemas/shop/items/v2.json"), v2);
  const Schema v3 = schema_from_json(lake.get("_schemas/shop/items/v3.json").value());
  ASSERT_EQ(v3.fields.size(), 5u);
  EXPECT_EQ(v3.fields[3].name, "color");
  EXPECT_EQ(v3.fields[4].name, "size");
  EXPECT_EQ(v3.fields[4].type, FieldType::Int64);
}

// A version another writer registered meanwhile (same number, other content) is never overwritten:
// this curator takes the next number.
TEST_F(Evolution_, NeverOverwritesARegisteredVersion) {
  auto srcs = sources_with(Evolution::Evolve);
  LocalLake lake(root_ / "lake");
  Curator c(srcs, db_, root_ / "staging", &lake);
  run(c, {page("1", R"({"items":[{"id":0}]})")});  // meets the dataset: nothing registered yet
  Schema other = srcs[0].endpoints[0].schema;
  evolve_schema(other, {{"weight", "1.5"}});
  ASSERT_EQ(other.version, 2);
  lake.put("_schemas/shop/items/v2.json", schema_json(other));
  Result r = run(c, {page("2", kDrift)});
  EXPECT_EQ(r.schemas, (std::vector<std::string>{"_schemas/shop/items/v3.json"}));
  EXPECT_EQ(lake.get("_schemas/shop/items/v2.json"), schema_json(other));
  EXPECT_EQ(schema_from_json(lake.get("_schemas/shop/items/v3.json").value()).fields.back().name, "color");
}

TEST_F(Evolution_, ClaimReusesTheSameContentAndSkipsOther) {
  LocalLake lake(root_ / "lake");
  Schema s = sources_with(Evolution::Evolve)[0].endpoints[0].schema;
  s.version = 2;
  EXPECT_TRUE(claim_schema_version(lake, "shop", "items", s));  // nothing there
  EXPECT_EQ(s.version, 2);
  lake.put(schema_registry_path("shop", "items", 2), schema_json(s));
  EXPECT_FALSE(claim_schema_version(lake, "shop", "items", s));  // same content: already registered
  EXPECT_EQ(s.version, 2);
  Schema t = s;
  evolve_schema(t, {{"x", "1"}});
  t.version = 2;
  EXPECT_TRUE(claim_schema_version(lake, "shop", "items", t));  // v2 holds other content
  EXPECT_EQ(t.version, 3);
}

TEST_F(Evolution_, LatestRegisteredSkipsABrokenFileButKeepsItsNumber) {
  LocalLake lake(root_ / "lake");
  Schema declared = sources_with(Evolution::Evolve)[0].endpoints[0].schema;
  EXPECT_EQ(latest_registered_schema(lake, "shop", "items").latest_version, 0);
  EXPECT_EQ(current_schema(lake, "shop", "items", declared).fields.size(), 3u);
  Schema v2 = declared;
  evolve_schema(v2, {{"color", "\"red\""}});
  lake.put(schema_registry_path("shop", "items", 2), schema_json(v2));
  lake.put(schema_registry_path("shop", "items", 3), "{not json");
  lake.put("_schemas/shop/items/notes.txt", "not a version");
  RegisteredSchema r = latest_registered_schema(lake, "shop", "items");
  EXPECT_EQ(r.latest_version, 3);
  ASSERT_TRUE(r.schema);
  EXPECT_EQ(r.schema->version, 2);
  Schema cur = current_schema(declared, r);
  EXPECT_EQ(cur.version, 3);  // the next evolve writes v4, never over the broken v3
  ASSERT_EQ(cur.fields.size(), 4u);
  EXPECT_EQ(cur.fields[3].name, "color");
  // the declaration wins for a name it has (case-insensitively), and its policy is kept
  declared.fields.push_back(field("COLOR", FieldType::Int64));
  declared.evolution = Evolution::Freeze;
  cur = current_schema(declared, r);
  ASSERT_EQ(cur.fields.size(), 4u);
  EXPECT_EQ(cur.fields[3].type, FieldType::Int64);
  EXPECT_EQ(cur.evolution, Evolution::Freeze);
}

TEST(SchemaJson, RoundTripsEveryType) {
  Schema s;
  s.version = 7;
  s.evolution = Evolution::DiscardValue;
  FieldSpec d = field("price", FieldType::Decimal);
  d.precision = 12;
  d.scale = 3;
  d.format = "decimal_comma";
  d.default_value = "1,5";
  FieldSpec e = field("kind", FieldType::Enum);
  e.values = {"a", "b\"q"};
  FieldSpec st = field("owner", FieldType::Struct);
  st.fields = {field("login", FieldType::String, true)};
  FieldSpec l = field("tags", FieldType::List);
  FieldSpec item;
  item.name = "item";
  item.type = FieldType::Date;
  item.format = "dd/MM/yyyy";
  l.items = {item};
  FieldSpec p = field("series", FieldType::Int64);
  p.path.clear();
  p.from_param = "series";
  FieldSpec n = field("n", FieldType::Timestamp);
  n.nullable = false;
  n.default_value = "0";
  n.format = "epoch_s";
  s.fields = {d, e, st, l, p, n};
  const std::string text = schema_json(s);
  const Schema back = schema_from_json(text);
  EXPECT_EQ(schema_json(back), text);
  EXPECT_EQ(back.fields[4].from_param, "series");
  EXPECT_THROW(schema_from_json("[1]"), std::invalid_argument);
  EXPECT_THROW(schema_from_json(R"({"version":1,"fields":[{"name":"a","type":"blob"}]})"), std::invalid_argument);
  EXPECT_THROW(schema_from_json(R"({"version":0,"fields":[]})"), std::invalid_argument);
  EXPECT_THROW(schema_from_json("{"), std::invalid_argument);
}

}  // namespace
}  // namespace apilake
