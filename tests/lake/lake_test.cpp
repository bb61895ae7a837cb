#include "lake/lake.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <stdexcept>

namespace fs = std::filesystem;
using apilake::LocalLake;

namespace {

class LakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> n{0};
    dir_ = fs::temp_directory_path() /
           ("apilake-lake-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out << bytes;
  }
  fs::path dir_;
};

TEST_F(LakeTest, ConstructorCreatesRootAndStaging) {
  LocalLake lake(dir_ / "a" / ".." / "lake");
  EXPECT_TRUE(fs::is_directory(dir_ / "lake"));
  EXPECT_TRUE(fs::is_directory(dir_ / "lake" / "_staging"));
  EXPECT_EQ(lake.staging_dir(), fs::weakly_canonical(dir_ / "lake" / "_staging"));
  EXPECT_EQ(lake.local_root(), fs::weakly_canonical(dir_ / "lake").string());
  EXPECT_TRUE(fs::path(lake.local_root()).is_absolute());
}

TEST_F(LakeTest, PutGetExistsRemove) {
  LocalLake lake(dir_);
  const std::string bytes("a\0b\xff\xfe\n", 6);
  EXPECT_FALSE(lake.exists("raw/x/y/file.bin"));
  EXPECT_FALSE(lake.get("raw/x/y/file.bin").has_value());
  lake.put("raw/x/y/file.bin", bytes);
  EXPECT_TRUE(lake.exists("raw/x/y/file.bin"));
  auto got = lake.get("raw/x/y/file.bin");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, bytes);
  EXPECT_FALSE(lake.exists("raw/x/y"));  // a directory is not a file
  EXPECT_FALSE(lake.get("raw/x").has_value());

  lake.put("raw/x/y/file.bin", "second");  // overwrite replaces atomically
  EXPECT_EQ(*lake.get("raw/x/y/file.bin"), "second");

  lake.put("empty", "");
  ASSERT_TRUE(lake.get("empty").has_value());
  EXPECT_EQ(*lake.get("empty"), "");

  lake.remove("raw/x/y/file.bin");
  EXPECT_FALSE(lake.exists("raw/x/y/file.bin"));
  EXPECT_FALSE(lake.get("raw/x/y/file.bin").has_value());
  EXPECT_NO_THROW(lake.remove("raw/x/y/file.bin"));  // idempotent
  EXPECT_THROW(lake.remove("raw/x"), std::invalid_argument);
  // put leaves nothing behind in staging
  EXPECT_TRUE(fs::is_empty(lake.staging_dir()));
}

TEST_F(LakeTest, ListIsRecursiveSortedAndExcludesStaging) {
  LocalLake lake(dir_);
  lake.put("raw/s/e/2026/01/02/03/b.avro", "1");
  lake.put("raw/s/e/2026/01/02/03/a.avro", "2");
  lake.put("raw/s/f/2025/12/31/23/z.avro", "3");
  lake.put("curated/s/e/x.parquet", "4");
  lake.put("rawish/other", "5");
  write_file(lake.staging_dir() / "pending.avro", "staged");

  const std::vector<std::string> all = {"curated/s/e/x.parquet", "raw/s/e/2026/01/02/03/a.avro",
                                        "raw/s/e/2026/01/02/03/b.avro", "raw/s/f/2025/12/31/23/z.avro",
                                        "rawish/other"};
  EXPECT_EQ(lake.list(""), all);
  EXPECT_EQ(lake.list("raw"),
            (std::vector<std::string>{"raw/s/e/2026/01/02/03/a.avro", "raw/s/e/2026/01/02/03/b.avro",
                                      "raw/s/f/2025/12/31/23/z.avro"}));
  EXPECT_EQ(lake.list("raw/s/e/"),
            (std::vector<std::string>{"raw/s/e/2026/01/02/03/a.avro", "raw/s/e/2026/01/02/03/b.avro"}));
  EXPECT_TRUE(lake.list("deadletter").empty());
  EXPECT_EQ(lake.list("curated/s/e/x.parquet"), std::vector<std::string>{"curated/s/e/x.parquet"});
  EXPECT_THROW(lake.list("_staging"), std::invalid_argument);
}

TEST_F(LakeTest, CommitStagedMovesAndIsIdempotent) {
  LocalLake lake(dir_);
  const fs::path staged = lake.staging_dir() / "batch-1.avro";
  write_file(staged, "payload");
  apilake::fsync_file(staged);

  lake.commit_staged(staged, "raw/src/ep/2026/11/26/08/000000000001-000000000004.avro");
  EXPECT_FALSE(fs::exists(staged));
  EXPECT_EQ(*lake.get("raw/src/ep/2026/11/26/08/000000000001-000000000004.avro"), "payload");

  // Roll-forward after a crash: the staged file is gone and the final exists -> nothing to do.
  EXPECT_NO_THROW(lake.commit_staged(staged, "raw/src/ep/2026/11/26/08/000000000001-000000000004.avro"));
  EXPECT_EQ(*lake.get("raw/src/ep/2026/11/26/08/000000000001-000000000004.avro"), "payload");

  // A rewrite of the same content (redelivery) replaces rather than duplicates.
  write_file(staged, "payload v2");
  lake.commit_staged(staged, "raw/src/ep/2026/11/26/08/000000000001-000000000004.avro");
  EXPECT_EQ(*lake.get("raw/src/ep/2026/11/26/08/000000000001-000000000004.avro"), "payload v2");
  EXPECT_EQ(lake.list("raw").size(), 1u);

  // Neither staged nor final: a clear error, not silence.
  try {
    lake.commit_staged(lake.staging_dir() / "never-written", "raw/src/ep/missing.avro");
    FAIL() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(lake.exists("raw/src/ep/missing.avro"));
}

TEST_F(LakeTest, RefusesPathTraversalAndMalformedPaths) {
  LocalLake lake(dir_ / "lake");
  const fs::path staged = lake.staging_dir() / "f";
  write_file(staged, "x");
  for (const std::string& bad : std::vector<std::string>{"../escape", "raw/../../escape", "/etc/passwd", "raw//x", "raw/./x", "", "raw/x/",
                                "..", "_staging/x", std::string("raw/a\0b", 7)}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(lake.commit_staged(staged, bad), std::invalid_argument);
    EXPECT_THROW(lake.put(bad, "x"), std::invalid_argument);
    EXPECT_THROW(lake.get(bad), std::invalid_argument);
    EXPECT_THROW(lake.exists(bad), std::invalid_argument);
    EXPECT_THROW(lake.remove(bad), std::invalid_argument);
  }
  EXPECT_THROW(lake.list("../"), std::invalid_argument);
  EXPECT_THROW(lake.list("/"), std::invalid_argument);
  EXPECT_TRUE(fs::exists(staged));  // nothing moved
  EXPECT_FALSE(fs::exists(dir_ / "escape"));
  EXPECT_TRUE(lake.list("").empty());
}

TEST_F(LakeTest, FsyncFileThrowsOnMissingFile) {
  fs::create_directories(dir_);
  write_file(dir_ / "f", "x");
  EXPECT_NO_THROW(apilake::fsync_file(dir_ / "f"));
  EXPECT_NO_THROW(apilake::fsync_file(dir_));  // directories too (used after rename)
  EXPECT_THROW(apilake::fsync_file(dir_ / "nope"), std::system_error);
}

TEST(HourPath, KnownInstants) {
  using apilake::hour_path;
  EXPECT_EQ(hour_path(0), "1970/01/01/00");
  // 2026-11-26T08:15:30.5Z
  EXPECT_EQ(hour_path(1795680930500000LL), "2026/11/26/08");
  // 2024-02-29T23:59:59.999999Z (leap day, last microsecond of the hour)
  EXPECT_EQ(hour_path(1709251199999999LL), "2024/02/29/23");
  EXPECT_EQ(hour_path(1709251200000000LL), "2024/03/01/00");
  // Before the epoch: one microsecond earlier is the previous day's last hour, not 1970/01/01.
  EXPECT_EQ(hour_path(-1), "1969/12/31/23");
  // 1969-07-20T20:17:40Z
  EXPECT_EQ(hour_path(-14182940LL * 1000000), "1969/07/20/20");
  // 2000-01-01T00:00:00Z
  EXPECT_EQ(hour_path(946684800LL * 1000000), "2000/01/01/00");
  EXPECT_EQ(hour_path(253402300800LL * 1000000 - 1), "9999/12/31/23");
  EXPECT_EQ(hour_path(-62167219200LL * 1000000), "0000/01/01/00");
  EXPECT_THROW(hour_path(253402300800LL * 1000000), std::out_of_range);
  EXPECT_THROW(hour_path(INT64_MIN), std::out_of_range);
  EXPECT_THROW(hour_path(INT64_MAX), std::out_of_range);
}

TEST(HourPath, AgreesWithGmtime) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> dist(-2'000'000'000LL, 4'000'000'000LL);
  for (int i = 0; i < 2000; ++i) {
    const int64_t secs = dist(rng);
    const time_t t = static_cast<time_t>(secs);
    struct tm tm {};
    ASSERT_NE(gmtime_r(&t, &tm), nullptr);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d/%02d/%02d/%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
    ASSERT_EQ(apilake::hour_path(secs * 1000000 + 123456), buf) << secs;
  }
}

}  // namespace
