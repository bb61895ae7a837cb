// The curated zone's lake features: layouts and partition hours, file rotation, dead-letter counts /
// samples / replay, and compaction (docs/lake.md). Every Parquet file written here is also read by
// hyparquet (tests/support/read_parquet.mjs) and compared value by value with DuckDB.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "curate/compact.h"
#include "curate/curator.h"
#include "curate/deadletters.h"
#include "curate/layout.h"
#include "insight/query.h"
#include "lake/lake.h"
#include "support/curate_fixtures.h"
#include "support/parquet_compare.h"
#include "support/temp_dir.h"

namespace apilake {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

using test::kT0;
constexpr int64_t kHour = 3600LL * 1000000;

Endpoint series(bool value_required = true) {
  Endpoint e;
  e.name = "series";
  e.schema.fields = test::bcb_series_fields(value_required);
  return e;
}

Source bcb(Endpoint e) {
  Source s;
  s.name = "bcb";
  s.endpoints = {std::move(e)};
  return s;
}

// Page 1 of bcb/<endpoint>, its own extraction "ex-<id>".
Message msg(const std::string& id, const std::string& body, int64_t t = kT0, const std::string& endpoint = "series") {
  return test::page_message(id, "bcb", endpoint, body, "ex-" + id, "1", t);
}

class LakeZoneTest : public ::testing::Test {
 protected:
  void SetUp() override { lake_ = std::make_unique<LocalLake>(root_); }

  // Curates and commits one batch as the consumer would; checks every Parquet file with hyparquet.
  PreparedBatch curate(const std::vector<Source>& sources, const std::vector<Message>& batch) {
    Curator curator(sources, db_, lake_->staging_dir());
    PreparedBatch b = curator.stage(batch);
    for (const auto& f : b.files) {
      lake_->commit_staged(f.staged, f.final);
      if (f.final.ends_with(".parquet")) {
        EXPECT_EQ(test::compare_parquet_readers((root_ / f.final).string()), "");
      }
    }
    return b;
  }

  std::vector<std::string> parquet_files(const std::string& prefix = "curated") {
    std::vector<std::string> out;
    for (const auto& p : lake_->list(prefix))
      if (p.ends_with(".parquet")) out.push_back(p);
    return out;
  }

  int64_t count(const std::string& glob_sql) {
    return con_.query("SELECT count(*) FROM read_parquet(" + glob_sql + ", union_by_name=true, hive_partitioning=false)")
        .int64(0, 0);
  }
  std::string glob(const std::string& rel) { return duck::quote_literal((root_ / rel).string()); }

  test::TempDir tmp_;  // declared first: removed after the lake and the database are gone
  fs::path root_ = tmp_.path();
  std::unique_ptr<LocalLake> lake_;
  duck::Database db_;
  duck::Connection con_{db_};
};

TEST(Layout, HourDirsForBothLayouts) {
  EXPECT_EQ(hour_dir(Endpoint::Layout::Seed, kT0), "2025/11/26/08");
  EXPECT_EQ(hour_dir(Endpoint::Layout::Hive, kT0), "year=2025/month=11/day=26/hour=08");
  EXPECT_EQ(hour_dir(Endpoint::Layout::Seed, 0), "1970/01/01/00");
  EXPECT_EQ(hour_dir(Endpoint::Layout::Hive, kT0 + 16 * kHour), "year=2025/month=11/day=27/hour=00");
}

TEST(Layout, FileSlicesCapRowsAndBytes) {
  std::vector<Row> rows(5, Row{std::string(100, 'x'), int64_t{1}});
  Endpoint::Files f;
  f.max_rows = 2;
  EXPECT_EQ(file_slices(rows, f), (std::vector<std::pair<std::size_t, std::size_t>>{{0, 2}, {2, 4}, {4, 5}}));
  f.max_rows = 100;
  EXPECT_EQ(file_slices(rows, f).size(), 1u);
  // One MiB cap with ~0.6 MiB rows: one row per file (but never an empty file).
  std::vector<Row> big(3, Row{std::string(600 * 1024, 'y')});
  f.max_mb = 1;
  EXPECT_EQ(file_slices(big, f).size(), 3u);
  EXPECT_TRUE(file_slices({}, f).empty());
}

TEST_F(LakeZoneTest, HiveLayoutWithEventTimeSendsLateRecordsToTheirHour) {
  Endpoint e = series();
  e.layout = Endpoint::Layout::Hive;
  e.partition_by = "date";
  const std::vector<Source> sources = {bcb(e)};
  // One page, two event days, ingested at 08:15 on 2025-11-26.
  PreparedBatch b = curate(sources, {msg("7", R"([{"data":"01/01/2024","valor":"1.5"},{"data":"02/01/2024","valor":"2.5"},)"
                                               R"({"data":"01/01/2024","valor":"3.5"}])")});
  EXPECT_EQ(parquet_files(), (std::vector<std::string>{
                                 "curated/bcb/series/year=2024/month=01/day=01/hour=00/000000000007-000000000007.parquet",
                                 "curated/bcb/series/year=2024/month=01/day=02/hour=00/000000000007-000000000007.parquet"}));
  EXPECT_EQ(count(glob("curated/bcb/series/year=2024/month=01/day=01/**/*.parquet")), 2);

  // A NULL event time falls back to the ingestion hour.
  Endpoint n = series(false);
  n.layout = Endpoint::Layout::Seed;
  n.schema.fields[0].required = false;
  n.partition_by = "date";
  curate({bcb(n)}, {msg("8", R"([{"valor":"9"}])")});
  EXPECT_TRUE(lake_->exists("curated/bcb/series/2025/11/26/08/000000000008-000000000008.parquet"));

  // The SQL view reads both layouts by column name, without hive columns (hive_partitioning=false).
  QueryService q(root_.string(), sources);
  auto r = q.run("SELECT count(*), sum(value) FROM bcb_series");
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0], "4");
  EXPECT_EQ(r.rows[0][1], "16.5");
  auto cols = q.run("SELECT * FROM bcb_series LIMIT 1").columns;
  EXPECT_EQ(cols, (std::vector<std::string>{"date", "value", "_extraction_id", "_message_id", "_ingested_at",
                                            "_replayed_at"}));
}

TEST_F(LakeZoneTest, RotationSplitsAGroupIntoDeterministicFilesAndRowGroups) {
  Endpoint e = series();
  e.files.max_rows = 3000;
  e.files.row_group_rows = 2048;  // DuckDB's smallest row group is one vector (2048 rows)
  std::string page = "[";
  for (int d = 0; d < 7000; ++d) page += (d > 0 ? "," : "") + fmt::format(R"({{"data":"01/01/2024","valor":"{}"}})", d);
  page += "]";
  curate({bcb(e)}, {msg("1", page), msg("2", R"([])")});
  const std::string dir = "curated/bcb/series/2025/11/26/08/";
  EXPECT_EQ(parquet_files(), (std::vector<std::string>{dir + "000000000001-000000000001-p000.parquet",
                                                       dir + "000000000001-000000000001-p001.parquet",
                                                       dir + "000000000001-000000000001-p002.parquet"}));
  EXPECT_EQ(count(glob(dir + "*.parquet")), 7000);
  EXPECT_EQ(count(glob(dir + "*p002.parquet")), 1000);
  // ROW_GROUP_SIZE 2048: a file of 3000 rows has two row groups.
  auto rg = con_.query("SELECT count(DISTINCT row_group_id) FROM parquet_metadata(" + glob(dir + "000000000001-000000000001-p000.parquet") + ")");
  EXPECT_EQ(rg.int64(0, 0), 2);
}

TEST_F(LakeZoneTest, DeadLetterCountsSamplesAndReplay) {
  const std::vector<Source> strict = {bcb(series(true))};
  curate(strict, {msg("1", R"([{"data":"01/01/2024","valor":"1"},{"data":"02/01/2024"},{"data":"03/01/2024","valor":"x"}])"),
                  msg("2", "not json", kT0 + kHour)});
  curate(strict, {msg("3", R"([{"data":"04/01/2024"}])")});

  DeadLetters dl(strict, *lake_, db_);
  auto counts = dl.counts();
  ASSERT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts[0].dataset, "bcb_series");
  EXPECT_EQ(counts[0].hour, "2025-11-26T08");
  EXPECT_EQ(counts[0].reason, "bad_format");  // "x" for a double
  EXPECT_EQ(counts[0].count, 1);
  EXPECT_EQ(counts[1].reason, "missing_required");
  EXPECT_EQ(counts[1].count, 2);
  EXPECT_EQ(counts[1].pending, 2);
  EXPECT_EQ(counts[2].hour, "2025-11-26T09");
  EXPECT_EQ(counts[2].reason, "parse_error");

  auto samples = dl.samples("bcb_series", "missing_required", 10);
  ASSERT_EQ(samples.size(), 2u);
  auto first = json::parse(samples[0]).as_object();
  EXPECT_EQ(first.at("record"), json::parse(R"({"data":"02/01/2024"})"));
  EXPECT_EQ(first.at("replayed"), false);
  EXPECT_EQ(first.at("level"), "record");
  EXPECT_EQ(dl.samples("bcb/series", "", 1).size(), 1u);
  EXPECT_THROW(dl.samples("nope_nothing", "", 1), UnknownDataset);

  // Replaying with the unchanged definition writes nothing and keeps everything pending.
  auto none = dl.replay("bcb_series");
  EXPECT_EQ(none.replayed, 0);
  EXPECT_EQ(none.still_failing, 4);
  EXPECT_TRUE(none.written.empty());

  // The fix: value becomes optional. Missing values replay; "x" and the non-JSON page still fail.
  const std::vector<Source> fixed = {bcb(series(false))};
  DeadLetters dl2(fixed, *lake_, db_);
  auto r = dl2.replay("bcb_series", "2025-11-26T08", "2025-11-26T08");
  EXPECT_EQ(r.replayed, 2);
  EXPECT_EQ(r.rows, 2);
  EXPECT_EQ(r.still_failing, 1);  // the 09 hour is outside --from/--to
  ASSERT_EQ(r.written.size(), 2u);
  for (const auto& w : r.written) EXPECT_EQ(test::compare_parquet_readers((root_ / w).string()), "");

  auto rows = con_.query("SELECT strftime(date, '%d'), value IS NULL, _extraction_id, _message_id, _replayed_at IS NOT NULL "
                         "FROM read_parquet(" + glob("curated/**/replay-*.parquet") + ") ORDER BY date");
  ASSERT_EQ(rows.row_count(), 2u);
  EXPECT_EQ(rows.text(0, 0), "02");
  EXPECT_EQ(rows.text(1, 0), "true");
  EXPECT_EQ(rows.text(2, 0), "ex-1");
  EXPECT_EQ(rows.text(3, 0), "1");
  EXPECT_EQ(rows.text(4, 0), "true");
  EXPECT_EQ(rows.text(3, 1), "3");

  // Marked, not deleted: counts show replayed vs pending.
  counts = dl2.counts();
  EXPECT_EQ(counts[1].reason, "missing_required");
  EXPECT_EQ(counts[1].count, 2);
  EXPECT_EQ(counts[1].replayed, 2);
  EXPECT_EQ(counts[1].pending, 0);
  EXPECT_EQ(counts[0].pending, 1);  // bad_format still pending
  EXPECT_EQ(json::parse(dl2.samples("bcb_series", "missing_required", 1)[0]).at("replayed"), true);

  // Idempotent: a second replay writes nothing new.
  const auto before = parquet_files();
  auto again = dl2.replay("bcb_series");
  EXPECT_EQ(again.replayed, 0);
  EXPECT_TRUE(again.written.empty());
  EXPECT_EQ(parquet_files(), before);
  EXPECT_EQ(count(glob("curated/**/*.parquet")), 3);  // 1 original + 2 replayed
}

TEST_F(LakeZoneTest, InterruptedReplayIsRedoneWithoutDuplicates) {
  curate({bcb(series(true))}, {msg("1", R"([{"data":"02/01/2024"}])")});
  const std::vector<Source> fixed = {bcb(series(false))};
  DeadLetters dl(fixed, *lake_, db_);
  auto r = dl.replay("bcb_series");
  ASSERT_EQ(r.written.size(), 1u);
  // Simulate a crash after the commit and before the marks: restore the "in_progress" state.
  const std::string marks = "deadletter/bcb/series/2025/11/26/08/000000000001-000000000001.jsonl.replayed.json";
  json::object o = json::parse(*lake_->get(marks)).as_object();
  o["replayed"] = json::array{};
  o["in_progress"] = json::object{{"gen", 1}, {"files", json::array{json::string(r.written[0])}}};
  o["generations"] = json::array{};
  lake_->put(marks, json::serialize(o));
  auto redo = dl.replay("bcb_series");
  EXPECT_EQ(redo.replayed, 1);
  EXPECT_EQ(redo.written, r.written);  // same deterministic name
  EXPECT_EQ(count(glob("curated/**/replay-*.parquet")), 1);
}

TEST_F(LakeZoneTest, PageLevelDeadLettersReplayWhenTheDefinitionAppears) {
  // No definition for endpoint "later": the page is kept whole (unknown_dataset).
  curate({bcb(series(true))}, {msg("4", R"([{"data":"05/01/2024","valor":"5"}])", kT0, "later")});
  ASSERT_EQ(DeadLetters({bcb(series())}, *lake_, db_).counts().at(0).reason, "unknown_dataset");
  Endpoint later = series(true);
  later.name = "later";
  const std::vector<Source> defined = {bcb(later)};
  DeadLetters dl(defined, *lake_, db_);
  auto r = dl.replay("bcb_later");
  EXPECT_EQ(r.replayed, 1);
  EXPECT_EQ(r.rows, 1);
  EXPECT_EQ(count(glob("curated/bcb/later/**/*.parquet")), 1);
}

TEST_F(LakeZoneTest, CompactionMergesAnHourAtomicallyForConcurrentReaders) {
  const std::vector<Source> sources = {bcb(series())};
  int64_t total = 0;
  for (int i = 1; i <= 6; ++i) {
    curate(sources, {msg(std::to_string(i), fmt::format(R"([{{"data":"0{}/01/2024","valor":"{}"}},{{"data":"0{}/02/2024","valor":"1"}}])", i, i, i))});
    total += 2;
  }
  const std::string dir = "curated/bcb/series/2025/11/26/08";
  ASSERT_EQ(parquet_files().size(), 6u);
  const std::string all = glob("curated/bcb/series/**/*.parquet");

  // Readers count rows in a loop while compaction runs. A reader may fail to open a file that the
  // swap moved away after it listed the directory (then it retries); it must never see another count.
  std::atomic<bool> done{false};
  std::atomic<int64_t> ok{0}, wrong{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      duck::Connection con(db_);
      while (!done.load()) {
        try {
          const int64_t n = con.query("SELECT count(*) FROM read_parquet(" + all + ", union_by_name=true, hive_partitioning=false)").int64(0, 0);
          (n == total ? ok : wrong)++;
        } catch (const duck::Error&) {
        }
      }
    });
  }
  while (ok.load() < 5) std::this_thread::yield();
  // A pending ledger batch's file is never merged away.
  EXPECT_THROW(compact_hour(*lake_, db_, sources[0], sources[0].endpoints[0], "2025-11-26T08",
                            [&](const std::string& p) { return p == dir + "/000000000003-000000000003.parquet"; }),
               CompactError);
  auto r = compact_hour(*lake_, db_, sources[0], sources[0].endpoints[0], "2025-11-26T08");
  const int64_t ok_at_swap = ok.load();
  while (ok.load() < ok_at_swap + 5) std::this_thread::yield();
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(r.inputs, 6);
  EXPECT_EQ(r.rows, total);
  ASSERT_EQ(parquet_files(), (std::vector<std::string>{r.output}));
  EXPECT_EQ(test::compare_parquet_readers((root_ / r.output).string()), "");
  // Rows keep message order and lineage.
  auto ids = con_.query("SELECT string_agg(_message_id, ',') FROM read_parquet(" + glob(r.output) + ")");
  EXPECT_EQ(ids.text(0, 0), "1,1,2,2,3,3,4,4,5,5,6,6");
  // Nothing to do the second time; a bad hour is refused; nothing left in staging.
  EXPECT_EQ(compact_hour(*lake_, db_, sources[0], sources[0].endpoints[0], "2025-11-26T08").output, "");
  EXPECT_THROW(compact_hour(*lake_, db_, sources[0], sources[0].endpoints[0], "2025-11-26 08"), CompactError);
  for (const auto& entry : fs::directory_iterator(lake_->staging_dir()))
    EXPECT_EQ(entry.path().filename().string().rfind("compact-", 0), std::string::npos) << entry.path();
}

}  // namespace
}  // namespace apilake
