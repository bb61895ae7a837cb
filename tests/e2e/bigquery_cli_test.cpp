// `apilake bigquery ddl` through the real binary: the bundled bcb_sgs definition as shipped (seed
// layout) and with `layout: hive` added, and the refusals (unknown dataset, bad bucket) as non-zero
// exits with the reason on stderr.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "harness.h"

using namespace apilake::test;
namespace fs = std::filesystem;

namespace {

const std::string kSources = std::string(APILAKE_SOURCE_DIR) + "/sources";

struct Run {
  int status;
  std::string output;  // stdout and stderr
};

Run run(const std::string& args) {
  std::string out;
  FILE* p = ::popen((std::string(APILAKE_BINARY) + " " + args + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("popen failed");
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

// The bcb_sgs definition with `layout: hive` added to its endpoint, in a temp sources dir.
fs::path hive_sources() {
  auto dir = temp_dir("bq-sources");
  fs::create_directories(dir / "bcb_sgs");
  std::ifstream in(kSources + "/bcb_sgs/source.yaml");
  std::ofstream out(dir / "bcb_sgs" / "source.yaml");
  std::string line;
  bool added = false;
  while (std::getline(in, line)) {
    out << line << "\n";
    if (!added && line == "    records: \"\"") {
      out << "    layout: hive\n";
      added = true;
    }
  }
  EXPECT_TRUE(added) << "the bcb_sgs definition changed shape; update this test";
  return dir;
}

const char* kColumns =
    "  `date` DATE,\n"
    "  `value` FLOAT64,\n"
    "  `series` INT64,\n"
    "  `_extraction_id` STRING,\n"
    "  `_message_id` STRING,\n"
    "  `_ingested_at` TIMESTAMP,\n"
    "  `_replayed_at` TIMESTAMP\n";

TEST(BigQueryCli, SeedLayoutDdlForTheBundledDefinition) {
  auto r = run("bigquery ddl bcb_sgs.series --bucket gs://my-lake/prod --project proj-1 --dataset raw_zone --sources " +
               kSources);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("CREATE EXTERNAL TABLE `proj-1.raw_zone.bcb_sgs_series` (\n" + std::string(kColumns) +
                          ")\nOPTIONS (\n  format = 'PARQUET',\n"
                          "  uris = ['gs://my-lake/prod/curated/bcb_sgs/series/*.parquet']\n);\n"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("PARTITION"), std::string::npos) << r.output;
  // The view name works as the dataset name too.
  auto v = run("bigquery ddl bcb_sgs_series --bucket gs://my-lake --sources " + kSources);
  ASSERT_EQ(v.status, 0) << v.output;
  EXPECT_NE(v.output.find("CREATE EXTERNAL TABLE `apilake.bcb_sgs_series`"), std::string::npos) << v.output;
}

TEST(BigQueryCli, HiveLayoutDdlHasPartitionColumnsAndPrefix) {
  auto dir = hive_sources();
  auto r = run("bigquery ddl bcb_sgs.series --bucket gs://my-lake/ --sources " + dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("CREATE EXTERNAL TABLE `apilake.bcb_sgs_series` (\n" + std::string(kColumns) +
                          ")\nWITH PARTITION COLUMNS (year STRING, month STRING, day STRING, hour STRING)\n"
                          "OPTIONS (\n  format = 'PARQUET',\n"
                          "  uris = ['gs://my-lake/curated/bcb_sgs/series/*'],\n"
                          "  hive_partition_uri_prefix = 'gs://my-lake/curated/bcb_sgs/series',\n"
                          "  require_hive_partition_filter = false\n);\n"),
            std::string::npos)
      << r.output;
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  fs::remove_all(dir, cleanup_ec);
}

TEST(BigQueryCli, RefusalsAreNonZeroWithTheReason) {
  auto unknown = run("bigquery ddl nope.nothing --bucket gs://b --sources " + kSources);
  EXPECT_NE(unknown.status, 0);
  EXPECT_NE(unknown.output.find("unknown dataset 'nope.nothing'"), std::string::npos) << unknown.output;
  EXPECT_NE(unknown.output.find("bcb_sgs.series"), std::string::npos) << unknown.output;
  auto bucket = run("bigquery ddl bcb_sgs.series --bucket s3://b --sources " + kSources);
  EXPECT_NE(bucket.status, 0);
  EXPECT_NE(bucket.output.find("gs://"), std::string::npos) << bucket.output;
  auto missing = run("bigquery ddl bcb_sgs.series --sources " + kSources);
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.output.find("--bucket"), std::string::npos) << missing.output;
}

}  // namespace
