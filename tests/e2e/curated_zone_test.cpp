// End to end: dead-letter replay with the real binary. The demo's bcb_sgs recording plants one record
// with "valor": "" (bad_format for a double). After the definition is fixed (value becomes a string),
// `apilake deadletters replay` writes the row once, marks the dead letter replayed, and a second
// replay writes nothing.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "duck/duck.h"
#include "harness.h"
#include "support/parquet_compare.h"

namespace apilake::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

TEST(CuratedZone, DeadLetterReplayWritesTheFixedRowOnce) {
  const auto dir = temp_dir("zone-replay");
  const fs::path sources = dir / "sources";
  fs::copy(std::string(APILAKE_SOURCE_DIR) + "/sources", sources, fs::copy_options::recursive);
  ApilakeProcess app(dir / "data");
  app.set_sources(sources.string());
  app.start();

  const json::object params = example_of(app, "bcb_sgs", "series");
  auto r = app.post("/v1/extractions", json::serialize(json::object{{"source", "bcb_sgs"}, {"endpoint", "series"}, {"params", params}}));
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id(json::parse(r.body).at("id").as_string());
  json::object st = wait_done(app, id);
  ASSERT_EQ(st["status"], "succeeded") << json::serialize(st);
  ASSERT_EQ(st["deadlettered"].as_int64(), 1);

  // Counts and samples over HTTP.
  auto counts = get_json(app, "/v1/deadletters").at("datasets").as_array();
  ASSERT_EQ(counts.size(), 1u) << json::serialize(counts);
  EXPECT_EQ(counts[0].at("dataset"), "bcb_sgs_series");
  EXPECT_EQ(counts[0].at("reason"), "bad_format");
  EXPECT_EQ(counts[0].at("pending"), 1);
  auto lines = get_json(app, "/v1/deadletters/bcb_sgs_series?reason=bad_format&limit=5").at("deadletters").as_array();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("record").at("valor"), "");
  EXPECT_EQ(app.get("/v1/deadletters/nope_nothing").status, 404);

  // Replay through the API with the unfixed definition: nothing to write, still pending.
  auto none = app.post("/v1/deadletters/bcb_sgs_series:replay", "{}");
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(json::parse(none.body).at("replayed"), 0);
  EXPECT_EQ(json::parse(none.body).at("still_failing"), 1);

  // Fix the definition in the copy: value becomes a string.
  const fs::path def = sources / "bcb_sgs" / "source.yaml";
  std::stringstream text;
  text << std::ifstream(def).rdbuf();
  const std::string fixed = std::regex_replace(text.str(), std::regex(R"(\{name: value, type: double, path: /valor, required: true\})"),
                                               "{name: value, type: string, path: /valor}");
  ASSERT_NE(fixed, text.str());
  std::ofstream(def) << fixed;

  const std::string cli = std::string(APILAKE_BINARY) + " deadletters replay bcb_sgs_series --data-dir " +
                          (dir / "data").string() + " --sources " + sources.string();
  const std::string out1 = run_command(cli);
  EXPECT_NE(out1.find("replayed 1 dead letter(s) into 1 row(s)"), std::string::npos) << out1;
  const std::string out2 = run_command(cli);
  EXPECT_NE(out2.find("replayed 0 dead letter(s) into 0 row(s)"), std::string::npos) << out2;

  counts = get_json(app, "/v1/deadletters").at("datasets").as_array();
  EXPECT_EQ(counts[0].at("replayed"), 1);
  EXPECT_EQ(counts[0].at("pending"), 0);

  // The row is in the curated zone once, with the original lineage, and readable by both readers.
  duck::Database db;
  duck::Connection con(db);
  auto rows = con.query("SELECT count(*), min(_message_id), min(CAST(value AS VARCHAR)), bool_and(_replayed_at IS NOT NULL) FROM read_parquet(" +
                        duck::quote_literal((dir / "data/curated/bcb_sgs/series/**/replay-*.parquet").string()) +
                        ") WHERE _extraction_id = " + duck::quote_literal(id));
  EXPECT_EQ(rows.int64(0, 0), 1);
  EXPECT_EQ(rows.text(2, 0), "");
  EXPECT_EQ(rows.text(3, 0), "true");
  for (const auto& f : fs::recursive_directory_iterator(dir / "data/curated/bcb_sgs"))
    if (f.path().extension() == ".parquet") {
      EXPECT_EQ(compare_parquet_readers(f.path().string()), "");
    }
  // Visible to SQL through the API: fetched = curated + replayed.
  auto q = app.post("/v1/query", json::serialize(json::object{
                                     {"sql", "SELECT count(*) FROM bcb_sgs_series WHERE _extraction_id = '" + id + "'"}}));
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_NE(q.body.find(std::to_string(st["records"].as_int64())), std::string::npos) << q.body;
  app.kill(SIGTERM);
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  fs::remove_all(dir, cleanup_ec);
}

}  // namespace
}  // namespace apilake::test
