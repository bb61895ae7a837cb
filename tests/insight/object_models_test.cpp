// Insight models over an object-store lake (real s3rver, tests/lake/s3_server.h): materialised through
// the local cache, published to insights/<name>/ in the lake (data object, then current.json), served
// by another service that only reads, two refreshers at once, and the removal of old versions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "insight/models.h"
#include "lake/s3_lake.h"
#include "support/curate_fixtures.h"
#include "lake/s3_server.h"

namespace apilake {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using test::S3Server;

const std::set<std::string> kKnown{"demo_series"};

InsightModel stats_model() {
  return parse_model(
      "-- name: demo_stats\n-- description: count, sum, max\n-- datasets: demo_series\n"
      "SELECT count(*) AS n, sum(value) AS total, max(date) AS last_day, 'a,\"b' AS label FROM demo_series\n",
      "demo_stats.sql", kKnown);
}

class ObjectInsights : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> n{0};
    tag_ = "oi" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    base_ = fs::temp_directory_path() / ("apilake-objinsight-" + tag_);
    fs::create_directories(base_);
    try {
      server_ = &S3Server::shared();
    } catch (const std::exception& e) {
      FAIL() << "cannot run the object-lake insight tests: " << e.what();
    }
    lake_ = std::make_unique<S3Lake>(server_->config(tag_, base_ / "staging"));
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  // A curated file of demo.series (days from..to of Jan 2024, value = day) committed to the lake.
  void commit_series(const std::string& name, int from, int to, const std::string& ingested) {
    static duck::Database writer;
    duck::Connection con(writer);
    const fs::path staged = lake_->staging_dir() / ("w-" + name + ".parquet");
    con.execute("COPY (SELECT DATE '2024-01-01' + INTERVAL (d - 1) DAY AS date, CAST(d AS DOUBLE) AS value, "
                "TIMESTAMP '" + ingested + "' AS _ingested_at FROM range(" + std::to_string(from) + ", " +
                std::to_string(to + 1) + ") t(d)) TO " + duck::quote_literal(staged.string()) + " (FORMAT parquet)");
    lake_->commit_staged(staged, "curated/demo/series/2024/01/01/00/" + name + ".parquet");
  }

  json::object pointer() {
    auto text = lake_->get("insights/demo_stats/current.json");
    EXPECT_TRUE(text.has_value());
    return text ? json::parse(*text).as_object() : json::object{};
  }
  std::vector<std::string> objects() { return lake_->list("insights/demo_stats"); }

  // The expected answer: DuckDB over the lake's curated objects, downloaded here.
  std::vector<std::string> expected_row() {
    const fs::path dl = base_ / "download";
    fs::remove_all(dl);
    for (const auto& p : lake_->list("curated")) {
      fs::create_directories((dl / p).parent_path());
      std::ofstream(dl / p, std::ios::binary) << *lake_->get(p);
    }
    duck::Database db;
    duck::Connection con(db);
    auto r = con.query("SELECT CAST(count(*) AS VARCHAR), CAST(sum(value) AS VARCHAR), CAST(max(date) AS VARCHAR) "
                       "FROM read_parquet(" + duck::quote_literal((dl / "curated/**/*.parquet").string()) + ")");
    return {r.text(0, 0).value_or(""), r.text(1, 0).value_or(""), r.text(2, 0).value_or("")};
  }

  std::string tag_;
  fs::path base_;
  S3Server* server_ = nullptr;
  std::unique_ptr<S3Lake> lake_;
};

TEST_F(ObjectInsights, RefreshPublishesToTheLakeAndAReaderServesAllFormats) {
  InsightService curator(*lake_, (base_ / "curator").string(), {test::source_with("demo", "series")}, {stats_model()});
  EXPECT_FALSE(curator.refresh("demo_stats"));   // no curated objects yet: nothing to compute
  EXPECT_TRUE(objects().empty());

  commit_series("a", 1, 10, "2024-02-01 10:00:00");
  EXPECT_TRUE(curator.refresh("demo_stats"));
  auto ptr = pointer();
  const std::string file = json::value_to<std::string>(ptr.at("file"));
  EXPECT_EQ(objects(), (std::vector<std::string>{"insights/demo_stats/current.json", "insights/demo_stats/" + file}));
  EXPECT_EQ(ptr.at("rows").as_int64(), 1);
  EXPECT_EQ(json::value_to<std::string>(ptr.at("data_through")), "2024-02-01T10:00:00.000000Z");
  EXPECT_FALSE(curator.refresh("demo_stats"));   // same inputs: nothing written

  // A serving process with its own (empty) directory reads what the curator published.
  InsightService server(*lake_, (base_ / "server").string(), {test::source_with("demo", "series")}, {stats_model()});
  auto listed = server.list();
  ASSERT_EQ(listed.size(), 1u);
  ASSERT_TRUE(listed[0].state.has_value());
  EXPECT_EQ(listed[0].state->file, file);
  EXPECT_EQ(listed[0].last_error, "");

  auto want = expected_row();   // {"10", "55.0", "2024-01-10"}
  EXPECT_EQ(want[0], "10");
  auto js = server.render("demo_stats", "json");
  ASSERT_TRUE(js.has_value());
  EXPECT_EQ(js->state.file, file);
  auto body = json::parse(js->body).as_object();
  auto row = body.at("rows").as_array().at(0).as_object();
  EXPECT_EQ(std::to_string(row.at("n").to_number<int64_t>()), want[0]);
  EXPECT_DOUBLE_EQ(row.at("total").to_number<double>(), std::stod(want[1]));
  EXPECT_EQ(json::value_to<std::string>(row.at("last_day")), want[2]);

  auto csv = server.render("demo_stats", "csv");
  ASSERT_TRUE(csv.has_value());
  EXPECT_EQ(csv->body, "n,total,last_day,label\r\n" + want[0] + "," + want[1] + "," + want[2] + ",\"a,\"\"b\"\r\n");

  auto pq = server.render("demo_stats", "parquet");
  ASSERT_TRUE(pq.has_value());
  EXPECT_EQ(pq->body, *lake_->get("insights/demo_stats/" + file));   // the published object, byte for byte
  EXPECT_EQ(pq->body.substr(0, 4), "PAR1");
}

TEST_F(ObjectInsights, NewDataReplacesTheVersionAndOldObjectsGoTwoPointersLater) {
  InsightService curator(*lake_, (base_ / "curator").string(), {test::source_with("demo", "series")}, {stats_model()});
  InsightService server(*lake_, (base_ / "server").string(), {test::source_with("demo", "series")}, {stats_model()});
  commit_series("a", 1, 10, "2024-02-01 10:00:00");
  ASSERT_TRUE(curator.refresh("demo_stats"));
  const std::string v1 = json::value_to<std::string>(pointer().at("file"));
  ASSERT_TRUE(server.render("demo_stats", "json").has_value());

  commit_series("b", 11, 20, "2024-02-01 11:00:00");
  ASSERT_TRUE(curator.refresh("demo_stats"));
  auto p2 = pointer();
  const std::string v2 = json::value_to<std::string>(p2.at("file"));
  EXPECT_NE(v1, v2);
  EXPECT_EQ(json::value_to<std::string>(p2.at("previous")), v1);
  EXPECT_TRUE(lake_->exists("insights/demo_stats/" + v1));   // a reader may have just read the old pointer

  // The server notices the new pointer without being told and serves the new data.
  auto csv = server.render("demo_stats", "csv");
  ASSERT_TRUE(csv.has_value());
  EXPECT_EQ(csv->state.file, v2);
  auto want = expected_row();
  EXPECT_EQ(want[0], "20");
  EXPECT_NE(csv->body.find("\r\n20," + want[1] + "," + want[2] + ","), std::string::npos) << csv->body;

  commit_series("c", 21, 31, "2024-02-01 12:00:00");
  ASSERT_TRUE(curator.refresh("demo_stats"));
  const std::string v3 = json::value_to<std::string>(pointer().at("file"));
  EXPECT_FALSE(lake_->exists("insights/demo_stats/" + v1));
  EXPECT_TRUE(lake_->exists("insights/demo_stats/" + v2));
  EXPECT_TRUE(lake_->exists("insights/demo_stats/" + v3));
}

TEST_F(ObjectInsights, TwoCuratorsRefreshingAtOnceLeaveOneCompleteCurrentVersion) {
  commit_series("a", 1, 10, "2024-02-01 10:00:00");
  InsightService a(*lake_, (base_ / "a").string(), {test::source_with("demo", "series")}, {stats_model()});
  InsightService b(*lake_, (base_ / "b").string(), {test::source_with("demo", "series")}, {stats_model()});
  for (int round = 0; round < 3; ++round) {
    commit_series("r" + std::to_string(round), 11 + round * 5, 15 + round * 5,
                  "2024-02-01 1" + std::to_string(round + 1) + ":00:00");
    std::atomic<int> errors{0};
    std::thread ta([&] {
      try {
        a.refresh("demo_stats");
      } catch (const std::exception&) {
        ++errors;
      }
    });
    std::thread tb([&] {
      try {
        b.refresh("demo_stats");
      } catch (const std::exception&) {
        ++errors;
      }
    });
    ta.join();
    tb.join();
    EXPECT_EQ(errors.load(), 0);
    auto ptr = pointer();
    const std::string file = json::value_to<std::string>(ptr.at("file"));
    EXPECT_TRUE(lake_->exists("insights/demo_stats/" + file)) << "round " << round;
    // Both saw the same inputs, so the current version is the one for all the data.
    auto want = expected_row();
    InsightService reader(*lake_, (base_ / ("reader" + std::to_string(round))).string(), {test::source_with("demo", "series")}, {stats_model()});
    auto js = reader.render("demo_stats", "json");
    ASSERT_TRUE(js.has_value());
    auto row = json::parse(js->body).as_object().at("rows").as_array().at(0).as_object();
    EXPECT_EQ(std::to_string(row.at("n").to_number<int64_t>()), want[0]) << "round " << round;
  }
}

TEST_F(ObjectInsights, ARefreshSeesWhatAnotherCuratorCommittedAndPublished) {
  InsightService old_view(*lake_, (base_ / "old").string(), {test::source_with("demo", "series")}, {stats_model()});
  InsightService new_view(*lake_, (base_ / "new").string(), {test::source_with("demo", "series")}, {stats_model()});
  commit_series("a", 1, 10, "2024-02-01 10:00:00");
  // `old_view` materialises the first batch; another curator (`new_view`) then publishes the second.
  ASSERT_TRUE(old_view.refresh("demo_stats"));
  commit_series("b", 11, 20, "2024-02-01 11:00:00");
  ASSERT_TRUE(new_view.refresh("demo_stats"));
  const std::string newest = json::value_to<std::string>(pointer().at("file"));
  // old_view's cache has only the first batch; its refresh re-syncs from the lake first, finds the
  // published version equal to its inputs and writes nothing (no stale overwrite).
  EXPECT_FALSE(old_view.refresh("demo_stats"));
  EXPECT_EQ(json::value_to<std::string>(pointer().at("file")), newest);
}

// The guard against a slow curator rolling an insight back: a result whose data_through is older
// than the published one's never replaces the pointer, and its upload is removed again. (Staged
// here by removing the newer input before the second refresh, so the older result is deterministic.)
TEST_F(ObjectInsights, AnOlderResultNeverReplacesANewerPointer) {
  InsightService newer(*lake_, (base_ / "newer").string(), {test::source_with("demo", "series")}, {stats_model()});
  InsightService older(*lake_, (base_ / "older").string(), {test::source_with("demo", "series")}, {stats_model()});
  commit_series("a", 1, 10, "2024-02-01 10:00:00");
  commit_series("b", 11, 20, "2024-02-01 11:00:00");
  ASSERT_TRUE(newer.refresh("demo_stats"));
  const std::string published = json::value_to<std::string>(pointer().at("file"));
  lake_->remove("curated/demo/series/2024/01/01/00/b.parquet");
  EXPECT_FALSE(older.refresh("demo_stats"));
  EXPECT_EQ(json::value_to<std::string>(pointer().at("file")), published);
  EXPECT_EQ(objects(), (std::vector<std::string>{"insights/demo_stats/current.json", "insights/demo_stats/" + published}));
  auto js = older.render("demo_stats", "json");   // and it serves the published version
  ASSERT_TRUE(js.has_value());
  EXPECT_EQ(js->state.file, published);
  EXPECT_EQ(json::parse(js->body).as_object().at("rows").as_array().at(0).as_object().at("n").to_number<int64_t>(), 20);
}

TEST_F(ObjectInsights, LakeErrorsAreReportedNotThrownFromTheList) {
  S3Config bad = server_->config(tag_, base_ / "staging-bad");
  bad.endpoint = "http://127.0.0.1:1";   // nothing listens there
  bad.retry.max_attempts = 1;
  S3Lake unreachable(bad);
  InsightService svc(unreachable, (base_ / "svc").string(), {test::source_with("demo", "series")}, {stats_model()});
  auto listed = svc.list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_FALSE(listed[0].state.has_value());
  EXPECT_NE(listed[0].last_error.find("cannot read its pointer"), std::string::npos) << listed[0].last_error;
  EXPECT_THROW(svc.refresh("demo_stats"), InsightError);
  EXPECT_THROW(svc.render("demo_stats", "json"), InsightError);
}

TEST_F(ObjectInsights, LeftoversInTheServiceStagingAreSweptAtStart) {
  const fs::path dir = base_ / "svc";
  fs::create_directories(dir / "_staging");
  std::ofstream(dir / "_staging" / "insight-demo_stats-x.parquet") << "half a file";
  std::ofstream(dir / "_staging" / "dl-1-2.tmp") << "half a download";
  InsightService svc(*lake_, dir.string(), {test::source_with("demo", "series")}, {stats_model()});
  std::size_t left = 0;
  for (const auto& e : fs::directory_iterator(dir / "_staging"))
    if (e.is_regular_file()) ++left;
  EXPECT_EQ(left, 0u);
}

}  // namespace
}  // namespace apilake
