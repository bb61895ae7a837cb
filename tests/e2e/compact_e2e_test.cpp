// End to end: the curate role's background compaction (docs/lake.md, "Compaction") in `apilake up`.
// bcb_sgs is partitioned by its event date here, so its rows land in hours of January 2024 — closed
// long ago. Two extractions of the same month (separate curated batches) leave two files in each
// day's hour; with compact.interval = 1 s the task merges each into one, and the rows are unchanged.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "harness.h"

namespace apilake::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

std::size_t parquet_files(const fs::path& dir, std::set<std::string>* hours = nullptr) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->path().extension() == ".parquet") {
      ++n;
      if (hours) hours->insert(it->path().parent_path().string());
    }
  }
  return n;
}

int64_t count_rows(ApilakeProcess& app) {
  auto r = app.post("/v1/query", R"({"sql":"SELECT count(*) AS n FROM bcb_sgs_series"})");
  EXPECT_EQ(r.status, 200) << r.body;
  return json::parse(r.body).at("rows").as_array()[0].as_array()[0].to_number<int64_t>();
}

void extract(ApilakeProcess& app) {
  auto r = app.post("/v1/extractions",
                    R"({"source":"bcb_sgs","endpoint":"series","params":{"series":11,"start":"2024-01-01","end":"2024-01-31"}})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id(json::parse(r.body).at("id").as_string());
  json::object st = wait_done(app, id);
  ASSERT_EQ(st["status"], "succeeded") << json::serialize(st);
  ASSERT_EQ(st["curated"].as_int64(), 21) << json::serialize(st);
}

TEST(CompactE2E, UpMergesTheFilesOfClosedHoursWithRowsUnchanged) {
  const auto dir = temp_dir("compact-e2e");
  const fs::path sources = dir / "sources";
  fs::create_directories(sources);
  fs::copy(std::string(APILAKE_SOURCE_DIR) + "/sources/bcb_sgs", sources / "bcb_sgs", fs::copy_options::recursive);
  fs::remove_all(sources / "bcb_sgs" / "insights");  // not under test here
  const fs::path def = sources / "bcb_sgs" / "source.yaml";
  std::stringstream text;
  text << std::ifstream(def).rdbuf();
  const std::string partitioned = std::regex_replace(text.str(), std::regex("\n    records: \"\"\n"),
                                                     "\n    records: \"\"\n    partition_by: date\n");
  ASSERT_NE(partitioned, text.str());
  std::ofstream(def) << partitioned;

  ApilakeProcess app(dir / "data");
  app.set_sources(sources.string());
  // Passes every second; the default grace (5 minutes) — January 2024 is long closed.
  app.set_env("APILAKE_COMPACT_INTERVAL", "1");
  app.start();
  const fs::path curated = dir / "data" / "curated" / "bcb_sgs" / "series";
  extract(app);
  std::set<std::string> hours;
  parquet_files(curated, &hours);
  ASSERT_EQ(hours.size(), 21u);  // one hour (00:00 UTC) per business day with a valid value
  extract(app);  // a second batch: a second file in each of those hours (or merged already)
  ASSERT_EQ(count_rows(app), 42);

  // The task merges every hour down to one file; wait for it (no timing asserted, only the outcome).
  std::size_t files = 0;
  for (int i = 0; i < 600 && (files = parquet_files(curated)) != 21; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(files, 21u);
  EXPECT_EQ(count_rows(app), 42);
  const std::string metrics = app.get("/metrics").body;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(metrics, m, std::regex(R"(apilake_compactions_total (\d+))"))) << metrics;
  EXPECT_GE(std::stoi(m[1]), 21);  // each hour merged at least once
  app.kill(SIGTERM);
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  fs::remove_all(dir, cleanup_ec);
}

}  // namespace
}  // namespace apilake::test
