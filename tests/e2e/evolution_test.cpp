// schema.evolution through the real binary (`apilake up --demo` replaying fixtures): one source with an
// endpoint per policy, fed a clean page then a page with type drift (a number that becomes a string, a
// new field, a missing required field). For each policy: fetched = curated + dead-lettered by count,
// each dead letter has the policy's reason; evolve adds a column DuckDB reads over every file
// (union_by_name), registers v2, and after a restart continues from the registry (v3, v2 untouched),
// which `apilake bigquery ddl --data-dir` names; a dead-letter replay with the fixed definition keeps the
// evolved columns. The `batch` column is a from_param field.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "duck/duck.h"
#include "harness.h"
#include "support/duck_rows.h"

using namespace apilake::test;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

const char* kPolicies[] = {"evolve", "freeze", "discard_value", "discard_row"};

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

std::string read(const fs::path& p) {
  std::stringstream s;
  s << std::ifstream(p).rdbuf();
  return s.str();
}

// sources/drift: one endpoint per policy, all served by the same fixtures (by `batch`).
// price_type: "double" (the definition), or "string" (the fix a dead-letter replay runs with).
fs::path make_sources(const fs::path& dir, const std::string& price_type = "double") {
  std::string yaml = "name: drift\nbase_url: https://drift.example.org\nendpoints:\n";
  for (const char* p : kPolicies)
    yaml += std::string("  - name: ") + p +
            "\n    path: /items\n    params:\n      - {name: batch, type: string, required: true}\n"
            "    pagination: {kind: none}\n    records: /items\n    schema:\n      evolution: " + p +
            "\n      fields:\n"
            "        - {name: id, type: int64, required: true}\n"
            "        - {name: price, type: " + price_type + "}\n"
            "        - {name: name, type: string}\n"
            "        - {name: batch, type: string, from_param: batch, required: true}\n";
  write(dir / "drift" / "source.yaml", yaml);
  write(dir / "drift" / "fixtures" / "replay.yaml",
        "responses:\n"
        "  - {path: /items, query: {batch: b1}, body_file: b1.json}\n"
        "  # drift: price becomes a string (\"abc\"), a new field (color), id missing\n"
        "  - {path: /items, query: {batch: b2}, body_file: b2.json}\n"
        "  # after the restart: the known new field and one more (size)\n"
        "  - {path: /items, query: {batch: b3}, body_file: b3.json}\n");
  write(dir / "drift" / "fixtures" / "b1.json", R"({"items":[{"id":10,"price":1,"name":"x"},{"id":11,"price":2.5,"name":"y"}]})");
  write(dir / "drift" / "fixtures" / "b2.json", R"({"items":[
  {"id":1,"price":1.5,"name":"a"},
  {"id":2,"price":"abc","name":"b","color":"green"},
  {"id":3,"price":2,"name":"c","color":"red"},
  {"price":3,"name":"d"},
  {"id":5,"price":"4.5","name":"e"}]})");
  write(dir / "drift" / "fixtures" / "b3.json", R"({"items":[{"id":20,"color":"blue","size":4}]})");
  return dir;
}

struct Counts {
  int64_t records = 0, curated = 0, deadlettered = 0;
};

Counts extract(ApilakeProcess& app, const std::string& endpoint, const std::string& batch) {
  auto r = app.post("/v1/extractions", json::serialize(json::object{
                                           {"source", "drift"}, {"endpoint", endpoint}, {"params", json::object{{"batch", batch}}}}));
  EXPECT_EQ(r.status, 202) << r.body;
  const std::string id(json::parse(r.body).at("id").as_string());
  json::object st = wait_done(app, id);
  EXPECT_EQ(st["status"], "succeeded") << json::serialize(st);
  return {st["records"].as_int64(), st["curated"].as_int64(), st["deadlettered"].as_int64()};
}

// "reason field" of each record-level dead letter, and "field=value" of each value line.
std::pair<std::multiset<std::string>, std::multiset<std::string>> deadletters(const fs::path& data, const std::string& ep) {
  std::multiset<std::string> records, values;
  const fs::path dir = data / "deadletter" / "drift" / ep;
  if (!fs::exists(dir)) return {records, values};
  for (const auto& f : fs::recursive_directory_iterator(dir)) {
    if (f.path().extension() != ".jsonl") continue;
    std::ifstream in(f.path());
    std::string line;
    while (std::getline(in, line)) {
      json::object o = json::parse(line).as_object();
      const std::string field(o["field"].as_string());
      if (o["level"] == "value")
        values.insert(field + "=" + json::serialize(o["record"]));
      else
        records.insert(std::string(o["reason"].as_string()) + " " + field);
    }
  }
  return {records, values};
}

std::string query(const std::string& sql) {
  apilake::duck::Database db;
  return rows_text(db, sql);
}

std::string glob(const fs::path& data, const std::string& ep) {
  return apilake::duck::quote_literal((data / "curated" / "drift" / ep / "**" / "*.parquet").string());
}

TEST(EvolutionE2e, EachPolicyEndsAsDeclaredAndEvolveSurvivesARestart) {
  const auto dir = temp_dir("evolution-e2e");
  const fs::path sources = make_sources(dir / "sources");
  const fs::path data = dir / "data";
  auto app = std::make_unique<ApilakeProcess>(data);
  app->set_sources(sources.string());
  app->start();

  const std::multiset<std::string> drift_refusals = {"bad_format price", "missing_required id"};
  for (const char* p : kPolicies) {
    SCOPED_TRACE(p);
    const Counts c1 = extract(*app, p, "b1");
    EXPECT_EQ(c1.records, 2);
    EXPECT_EQ(c1.curated, 2);
    const Counts c2 = extract(*app, p, "b2");
    EXPECT_EQ(c2.records, 5);
    EXPECT_EQ(c2.curated + c2.deadlettered, c2.records);  // fetched = curated + dead-lettered
    auto [records, values] = deadletters(data, p);
    EXPECT_EQ(static_cast<int64_t>(records.size()), c2.deadlettered);
    const std::string policy = p;
    if (policy == "freeze" || policy == "discard_row") {
      EXPECT_EQ(c2.curated, 2);
      std::multiset<std::string> want = drift_refusals;
      want.insert("unknown_field color");
      EXPECT_EQ(records, want);
      EXPECT_TRUE(values.empty());
    } else if (policy == "discard_value") {
      EXPECT_EQ(c2.curated, 3);
      EXPECT_EQ(records, drift_refusals);
      EXPECT_EQ(values, (std::multiset<std::string>{"color=\"red\""}));  // kept, not counted
    } else {  // evolve
      EXPECT_EQ(c2.curated, 3);
      EXPECT_EQ(records, drift_refusals);
      EXPECT_TRUE(values.empty());
    }
    // every curated row is in the lake, with the batch taken from the extraction's params
    EXPECT_EQ(query("SELECT count(*) FROM read_parquet(" + glob(data, p) + ", union_by_name=true)"),
              std::to_string(c1.curated + c2.curated) + ";");
    EXPECT_EQ(query("SELECT batch, count(*) FROM read_parquet(" + glob(data, p) +
                    ", union_by_name=true) GROUP BY 1 ORDER BY 1"),
              "b1,2;b2," + std::to_string(c2.curated) + ";");
  }
  // evolve: the new column over every file (old files read NULL), and v2 in the registry
  EXPECT_EQ(query("SELECT id, color FROM read_parquet(" + glob(data, "evolve") + ", union_by_name=true) ORDER BY id"),
            "1,NULL;3,red;5,NULL;10,NULL;11,NULL;");
  const fs::path reg = data / "_schemas" / "drift" / "evolve";
  ASSERT_TRUE(fs::exists(reg / "v2.json"));
  EXPECT_FALSE(fs::exists(reg / "v3.json"));
  const std::string v2 = read(reg / "v2.json");
  EXPECT_NE(v2.find("\"name\":\"color\""), std::string::npos) << v2;
  for (const char* p : {"freeze", "discard_value", "discard_row"})
    EXPECT_FALSE(fs::exists(data / "_schemas" / "drift" / p)) << p;

  // restart: the curator continues from the registry
  app->kill(SIGTERM);
  app = std::make_unique<ApilakeProcess>(data);
  app->set_sources(sources.string());
  app->start();
  const Counts c3 = extract(*app, "evolve", "b3");
  EXPECT_EQ(c3.records, 1);
  EXPECT_EQ(c3.curated, 1);
  EXPECT_EQ(read(reg / "v2.json"), v2);  // never overwritten
  ASSERT_TRUE(fs::exists(reg / "v3.json"));
  const std::string v3 = read(reg / "v3.json");
  EXPECT_LT(v3.find("\"name\":\"color\""), v3.find("\"name\":\"size\"")) << v3;
  EXPECT_EQ(query("SELECT id, color, size FROM read_parquet(" + glob(data, "evolve") +
                  ", union_by_name=true) WHERE id IN (3, 20) ORDER BY id"),
            "3,red,NULL;20,blue,4;");
  app->kill(SIGTERM);

  // bigquery ddl names the evolved columns, read from the registry
  const std::string ddl = run_command(std::string(APILAKE_BINARY) + " bigquery ddl drift.evolve --bucket gs://b --sources " +
                                      sources.string() + " --data-dir " + data.string());
  EXPECT_NE(ddl.find("  `batch` STRING,\n  `color` STRING,\n  `size` INT64,\n  `_extraction_id` STRING"),
            std::string::npos)
      << ddl;
  const std::string frozen = run_command(std::string(APILAKE_BINARY) + " bigquery ddl drift.freeze --bucket gs://b --sources " +
                                         sources.string() + " --data-dir " + data.string());
  EXPECT_EQ(frozen.find("color"), std::string::npos) << frozen;

  // replay with the definition fixed (price: string): the replayed row keeps the evolved columns (the
  // registry's v3: color and size), so id 2's color is there; the missing-id record still fails.
  const fs::path fixed = make_sources(dir / "fixed", "string");
  const std::string replay = run_command(std::string(APILAKE_BINARY) + " deadletters replay drift_evolve --sources " +
                                         fixed.string() + " --data-dir " + data.string());
  EXPECT_NE(replay.find("replayed 1 dead letter(s) into 1 row(s); 1 still failing"), std::string::npos) << replay;
  EXPECT_EQ(query("SELECT id, color, size, batch FROM read_parquet(" + glob(data, "evolve") +
                  ", union_by_name=true) WHERE id = 2"),
            "2,green,NULL,b2;");
  EXPECT_EQ(query("SELECT count(*), count(DISTINCT id) FROM read_parquet(" + glob(data, "evolve") +
                  ", union_by_name=true)"),
            "7,7;");  // b1 2 + b2 3 + b3 1 + replayed 1: written once
  EXPECT_FALSE(fs::exists(reg / "v4.json"));  // nothing new to register
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  fs::remove_all(dir, cleanup_ec);
}

// `apilake sources validate` refuses a default the curator would refuse, naming file, line and field.
TEST(EvolutionE2e, SourcesValidateCatchesABadDefault) {
  const auto dir = temp_dir("bad-default");
  const fs::path file = dir / "s.yaml";
  write(file,
        "name: s\nbase_url: https://example.org\nendpoints:\n  - name: e\n    path: /x\n    schema:\n      fields:\n"
        "        - {name: amount, type: decimal, precision: 4, scale: 2, default: \"123.45\"}\n"
        "        - {name: day, type: date, format: dd/MM/yyyy, default: 2024-01-01}\n");
  std::string out;
  int status = -1;
  {
    FILE* p = ::popen((std::string(APILAKE_BINARY) + " sources validate " + file.string() + " 2>&1").c_str(), "r");
    ASSERT_TRUE(p);
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    status = ::pclose(p);
  }
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_NE(out.find(file.string() + ":8:"), std::string::npos) << out;
  EXPECT_NE(out.find("field 'amount': invalid default '123.45'"), std::string::npos) << out;
  EXPECT_NE(out.find(file.string() + ":9:"), std::string::npos) << out;
  EXPECT_NE(out.find("field 'day'"), std::string::npos) << out;
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  fs::remove_all(dir, cleanup_ec);
}

}  // namespace
