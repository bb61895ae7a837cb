// Compaction beyond the single-hour CLI case (lake_zone_test.cpp): choosing closed hours, a late file
// racing the compaction of its hour, compaction on an object-store lake (s3rver) including recovery
// of an interrupted one, and the background task's pass (docs/lake.md, "Compaction").
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "curate/compact.h"
#include "curate/curator.h"
#include "curate/layout.h"
#include "lake/lake.h"
#include "lake/s3_lake.h"
#include "lake/s3_server.h"
#include "support/curate_fixtures.h"

namespace apilake {
namespace {

namespace fs = std::filesystem;

using test::kT0;
constexpr int64_t kHour = 3600LL * 1000000;
constexpr int64_t kMin = 60LL * 1000000;

Source bcb(Endpoint::Layout layout = Endpoint::Layout::Seed) {
  Endpoint e;
  e.name = "series";
  e.layout = layout;
  e.schema.fields = test::bcb_series_fields();
  Source s;
  s.name = "bcb";
  s.endpoints = {e};
  return s;
}

Message msg(const std::string& id, int64_t t) {
  // two rows per message
  const std::string body =
      fmt::format(R"([{{"data":"01/01/2024","valor":"{}"}},{{"data":"02/01/2024","valor":"1"}}])", id.size());
  return test::page_message(id, "bcb", "series", body, "ex-" + id, "1", t);
}

class CompactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() / fmt::format("apilake-compact-{}-{}", info->name(), ::getpid());
    fs::remove_all(root_);
    lake_ = std::make_unique<LocalLake>(root_);
  }
  void TearDown() override {
    lake_.reset();
    fs::remove_all(root_);
  }

  // Curates one message per id into `lake` as the consumer would (stage, then commit).
  void curate(Lake& lake, const std::vector<Source>& sources, const std::string& id, int64_t t) {
    Curator curator(sources, db_, lake.staging_dir());
    PreparedBatch b = curator.stage({msg(id, t)});
    for (const auto& f : b.files) lake.commit_staged(f.staged, f.final);
  }

  std::vector<std::string> parquet(Lake& lake, const std::string& prefix = "curated") {
    std::vector<std::string> out;
    for (auto& p : lake.list(prefix))
      if (p.ends_with(".parquet")) out.push_back(p);
    return out;
  }

  // Rows in every curated file of a local lake.
  int64_t rows_local() {
    duck::Connection con(db_);
    return con
        .query("SELECT count(*) FROM read_parquet(" +
               duck::quote_literal((root_ / "curated/bcb/series/**/*.parquet").string()) + ", union_by_name=true)")
        .int64(0, 0);
  }

  fs::path root_;
  std::unique_ptr<LocalLake> lake_;
  duck::Database db_;
};

TEST_F(CompactTest, ClosedHoursAreThoseEndedBeforeTheGraceWithMoreThanOneFile) {
  for (auto layout : {Endpoint::Layout::Seed, Endpoint::Layout::Hive}) {
    SCOPED_TRACE(layout == Endpoint::Layout::Seed ? "seed" : "hive");
    fs::remove_all(root_ / "curated");
    const std::vector<Source> sources = {bcb(layout)};
    const auto& s = sources[0];
    curate(*lake_, sources, "a1", kT0);              // 08:15  \ two files in 08
    curate(*lake_, sources, "a2", kT0 + 10 * kMin);  // 08:25  /
    curate(*lake_, sources, "b1", kT0 + kHour);      // 09:15: one file, nothing to merge
    curate(*lake_, sources, "c1", kT0 + 2 * kHour);  // 10:15  \ two files in 10
    curate(*lake_, sources, "c2", kT0 + 2 * kHour);  //        /
    // Not an hour of the layout: ignored, never touched.
    lake_->put("curated/bcb/series/stray/x.parquet", "not parquet");
    const std::string h08 = "curated/bcb/series/" + hour_dir(layout, kT0);
    const std::string h10 = "curated/bcb/series/" + hour_dir(layout, kT0 + 2 * kHour);

    // 09:04: hour 08 ended 4 minutes ago; a grace of 5 minutes keeps it open, of 3 closes it.
    const int64_t t0904 = kT0 + 49 * kMin;
    EXPECT_TRUE(closed_hours(*lake_, s, s.endpoints[0], t0904, 5 * kMin).empty());
    auto hours = closed_hours(*lake_, s, s.endpoints[0], t0904, 3 * kMin);
    ASSERT_EQ(hours.size(), 1u);
    EXPECT_EQ(hours[0].hour, "2025-11-26T08");
    EXPECT_EQ(hours[0].dir, h08);
    EXPECT_EQ(hours[0].files, 2u);
    // Much later: 08 and 10 (09 has one file).
    hours = closed_hours(*lake_, s, s.endpoints[0], kT0 + 5 * kHour, 5 * kMin);
    ASSERT_EQ(hours.size(), 2u);
    EXPECT_EQ(hours[0].hour, "2025-11-26T08");
    EXPECT_EQ(hours[1].hour, "2025-11-26T10");
    EXPECT_EQ(hours[1].dir, h10);
  }
}

// A batch committed into the hour while its merge runs survives, is queryable, and is merged by the
// next compaction. The in_flight hook runs after the listing and before the merge: the late file
// is committed exactly there.
TEST_F(CompactTest, LateFileCommittedDuringTheMergeSurvivesAndIsCompactedLater) {
  const std::vector<Source> sources = {bcb()};
  const auto& s = sources[0];
  for (int i = 0; i < 3; ++i) curate(*lake_, sources, fmt::format("m{}", i), kT0);
  bool injected = false;
  auto r = compact_hour(*lake_, db_, s, s.endpoints[0], "2025-11-26T08", [&](const std::string&) {
    if (!injected) {
      injected = true;
      curate(*lake_, sources, "late", kT0);
    }
    return false;
  });
  ASSERT_TRUE(injected);
  EXPECT_EQ(r.inputs, 3);
  EXPECT_EQ(r.rows, 6);
  auto files = parquet(*lake_);
  ASSERT_EQ(files.size(), 2u);  // the merged file and the late one
  EXPECT_NE(std::find(files.begin(), files.end(), r.output), files.end());
  EXPECT_EQ(rows_local(), 8);
  auto again = compact_hour(*lake_, db_, s, s.endpoints[0], "2025-11-26T08");
  EXPECT_EQ(again.inputs, 2);
  EXPECT_EQ(again.rows, 8);
  EXPECT_EQ(parquet(*lake_), (std::vector<std::string>{again.output}));
  EXPECT_EQ(rows_local(), 8);
}

// The curator committing into the hour continuously while it is compacted, again and again: every
// committed file's rows are in the lake afterwards (a commit that raced the removal of the old
// directory fails and is retried, as the consumer's roll-forward does), and nothing stays in staging.
TEST_F(CompactTest, ConcurrentCommitsIntoTheHourAreNeverLost) {
  const std::vector<Source> sources = {bcb()};
  const auto& s = sources[0];
  for (int i = 0; i < 2; ++i) curate(*lake_, sources, fmt::format("seed{}", i), kT0);
  std::atomic<bool> done{false};
  std::atomic<int> committed{0}, retried{0};
  std::thread writer([&] {
    duck::Database wdb;
    Curator curator(sources, wdb, lake_->staging_dir());
    for (int i = 0; !done.load() || i < 20; ++i) {
      PreparedBatch b = curator.stage({msg(fmt::format("w{}", i), kT0)});
      for (const auto& f : b.files) {
        while (true) {
          try {
            lake_->commit_staged(f.staged, f.final);
            break;
          } catch (const std::exception&) {
            ++retried;  // the directory it resolved was removed under it: retry, as roll-forward does
          }
        }
      }
      ++committed;
    }
  });
  int compactions = 0;
  while (committed.load() < 20 || compactions < 10) {
    try {
      if (!compact_hour(*lake_, db_, s, s.endpoints[0], "2025-11-26T08").output.empty()) ++compactions;
    } catch (const CompactError& e) {
      // A file vanished from a listing mid-merge cannot happen here (only this thread removes); fail.
      ADD_FAILURE() << e.what();
      break;
    }
  }
  done = true;
  writer.join();
  EXPECT_EQ(rows_local(), 2 * (2 + committed.load()));
  compact_hour(*lake_, db_, s, s.endpoints[0], "2025-11-26T08");
  EXPECT_EQ(parquet(*lake_).size(), 1u);
  EXPECT_EQ(rows_local(), 2 * (2 + committed.load()));
  for (const auto& entry : fs::directory_iterator(lake_->staging_dir()))
    EXPECT_EQ(entry.path().filename().string().rfind("compact-", 0), std::string::npos) << entry.path();
}

TEST_F(CompactTest, AutoCompactorPassMergesClosedHoursOnlyAndCounts) {
  const std::vector<Source> sources = {bcb()};
  for (int i = 0; i < 3; ++i) curate(*lake_, sources, fmt::format("a{}", i), kT0);          // 08: closed
  for (int i = 0; i < 3; ++i) curate(*lake_, sources, fmt::format("b{}", i), kT0 + kHour);  // 09: open
  AutoCompactOptions o;
  o.grace = std::chrono::minutes(5);
  o.now_us = [] { return kT0 + kHour + 10 * kMin; };  // 09:25
  std::atomic<bool> block{true};
  o.pending_files = [&] {
    std::set<std::string> all;
    if (block.load())
      for (auto& f : parquet(*lake_)) all.insert(f);
    return all;
  };
  AutoCompactor auto_compact(*lake_, db_, sources, o);
  // An in-flight batch: the hour is skipped this pass, counted as a failure, retried on the next.
  EXPECT_TRUE(auto_compact.run_once().empty());
  EXPECT_EQ(auto_compact.failures(), 1u);
  EXPECT_EQ(parquet(*lake_).size(), 6u);
  block = false;
  auto done = auto_compact.run_once();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].dir, "curated/bcb/series/2025/11/26/08");
  EXPECT_EQ(auto_compact.compactions(), 1u);
  EXPECT_EQ(auto_compact.files_merged(), 3u);
  EXPECT_EQ(parquet(*lake_, "curated/bcb/series/2025/11/26/08").size(), 1u);
  EXPECT_EQ(parquet(*lake_, "curated/bcb/series/2025/11/26/09").size(), 3u);
  EXPECT_EQ(rows_local(), 12);
  EXPECT_TRUE(auto_compact.run_once().empty());  // nothing left to do
  AutoCompactOptions negative;
  negative.interval = std::chrono::seconds(-1);
  EXPECT_THROW(AutoCompactor(*lake_, db_, sources, negative), std::invalid_argument);
}

class CompactS3Test : public CompactTest {
 protected:
  void SetUp() override {
    CompactTest::SetUp();
    server_ = &test::S3Server::shared();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    s3_ = std::make_unique<S3Lake>(server_->config(fmt::format("compact-{}-{}", info->name(), ::getpid()),
                                                   root_ / "s3-staging"));
  }
  void TearDown() override {
    s3_.reset();
    CompactTest::TearDown();
  }
  // Rows in the object lake's curated files (downloaded, read by DuckDB).
  int64_t rows_s3() {
    const fs::path dir = root_ / "download";
    fs::remove_all(dir);
    fs::create_directories(dir);
    int64_t n = 0;
    duck::Connection con(db_);
    for (const auto& p : parquet(*s3_)) {
      const fs::path f = dir / fmt::format("{}.parquet", n++);
      std::ofstream(f, std::ios::binary) << s3_->get(p).value();
    }
    if (n == 0) return 0;
    return con.query("SELECT count(*) FROM read_parquet(" + duck::quote_literal((dir / "*.parquet").string()) + ")")
        .int64(0, 0);
  }
  test::S3Server* server_ = nullptr;
  std::unique_ptr<S3Lake> s3_;
};

TEST_F(CompactS3Test, MergesAnHourOnTheObjectStoreAndKeepsLateFiles) {
  const std::vector<Source> sources = {bcb()};
  const auto& s = sources[0];
  for (int i = 0; i < 4; ++i) curate(*s3_, sources, fmt::format("m{}", i), kT0);
  ASSERT_EQ(parquet(*s3_).size(), 4u);
  EXPECT_EQ(closed_hours(*s3_, s, s.endpoints[0], kT0 + kHour, 0).size(), 1u);
  bool injected = false;
  auto r = compact_hour(*s3_, db_, s, s.endpoints[0], "2025-11-26T08", [&](const std::string&) {
    if (!injected) {
      injected = true;
      curate(*s3_, sources, "late", kT0);  // committed while the hour is being compacted
    }
    return false;
  });
  EXPECT_EQ(r.inputs, 4);
  EXPECT_EQ(r.rows, 8);
  auto files = parquet(*s3_);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_NE(std::find(files.begin(), files.end(), r.output), files.end());
  EXPECT_EQ(rows_s3(), 10);
  EXPECT_FALSE(s3_->exists(r.dir + "/_compaction.json"));
  auto again = compact_hour(*s3_, db_, s, s.endpoints[0], "2025-11-26T08");
  EXPECT_EQ(again.inputs, 2);
  EXPECT_EQ(parquet(*s3_), (std::vector<std::string>{again.output}));
  EXPECT_EQ(rows_s3(), 10);
  // Nothing of the compaction stays in staging.
  for (const auto& entry : fs::directory_iterator(s3_->staging_dir()))
    EXPECT_EQ(entry.path().filename().string().rfind("compact-", 0), std::string::npos) << entry.path();
}

// A crash after the intent: with the output uploaded the next compaction finishes (deletes the
// inputs named in the intent); without it the intent is dropped and the inputs stay. Rows are
// counted once either way.
TEST_F(CompactS3Test, InterruptedCompactionIsFinishedOrDroppedByTheNextOne) {
  const std::vector<Source> sources = {bcb()};
  const auto& s = sources[0];
  for (int i = 0; i < 3; ++i) curate(*s3_, sources, fmt::format("m{}", i), kT0);
  const auto inputs = parquet(*s3_);
  ASSERT_EQ(inputs.size(), 3u);
  const std::string dir = "curated/bcb/series/2025/11/26/08";

  // Crash 1: intent written, output never uploaded.
  s3_->put(dir + "/_compaction.json",
           fmt::format(R"({{"output":"{}/compact-never.parquet","inputs":["{}","{}"]}})", dir, inputs[0], inputs[1]));
  EXPECT_EQ(closed_hours(*s3_, s, s.endpoints[0], kT0 + 2 * kHour, 0).size(), 1u);
  EXPECT_EQ(rows_s3(), 6);

  // Crash 2 (written over it): output of inputs 0 and 1 uploaded, inputs not yet deleted. A reader
  // now sees those rows twice — the documented window; the next compaction closes it.
  const fs::path merged = root_ / "merged.parquet";
  {
    const fs::path in = root_ / "in";
    fs::create_directories(in);
    for (int i = 0; i < 2; ++i) std::ofstream(in / fmt::format("{}.parquet", i), std::ios::binary) << s3_->get(inputs[i]).value();
    duck::Connection con(db_);
    con.execute("COPY (SELECT * FROM read_parquet(" + duck::quote_literal((in / "*.parquet").string()) + ")) TO " +
                duck::quote_literal(merged.string()) + " (FORMAT parquet)");
  }
  s3_->put(dir + "/_compaction.json",
           fmt::format(R"({{"output":"{}/compact-half.parquet","inputs":["{}","{}"]}})", dir, inputs[0], inputs[1]));
  std::ifstream mf(merged, std::ios::binary);
  s3_->put(dir + "/compact-half.parquet", std::string(std::istreambuf_iterator<char>(mf), {}));
  EXPECT_EQ(rows_s3(), 10);

  auto r = compact_hour(*s3_, db_, s, s.endpoints[0], "2025-11-26T08");
  EXPECT_EQ(r.inputs, 2);  // compact-half + inputs[2], after the recovery removed inputs 0 and 1
  EXPECT_EQ(r.rows, 6);
  EXPECT_EQ(parquet(*s3_), (std::vector<std::string>{r.output}));
  EXPECT_FALSE(s3_->exists(dir + "/_compaction.json"));
  EXPECT_EQ(rows_s3(), 6);

  // An unreadable intent is an error naming it, and nothing is touched.
  s3_->put(dir + "/_compaction.json", "{not json");
  try {
    compact_hour(*s3_, db_, s, s.endpoints[0], "2025-11-26T08");
    ADD_FAILURE() << "expected CompactError";
  } catch (const CompactError& e) {
    EXPECT_NE(std::string(e.what()).find("_compaction.json"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rows_s3(), 6);
}

}  // namespace
}  // namespace apilake
