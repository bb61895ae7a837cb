// Insight models: header parsing, materialisation into DATA/insights/<name>/, rendering, the atomic
// pointer replace under a concurrent reader, and the refresher reacting to notify_batch().
#include "insight/models.h"
#include "support/duck_rows.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace apilake {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

fs::path unique_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  fs::path p = fs::temp_directory_path() /
               ("apilake_models_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// A curated file of the demo.series dataset: days `from`..`to` of Jan 2024 with value = day,
// ingested at `ingested` (a timestamp literal).
void write_series(const fs::path& root, const std::string& name, int from, int to, const std::string& ingested) {
  test::write_parquet(root / "curated/demo/series/2024/01/01/00" / (name + ".parquet"),
                "SELECT DATE '2024-01-01' + INTERVAL (d - 1) DAY AS date, CAST(d AS DOUBLE) AS value, "
                "'x' AS _extraction_id, 'm' AS _message_id, TIMESTAMP '" + ingested + "' AS _ingested_at "
                "FROM range(" + std::to_string(from) + ", " + std::to_string(to + 1) + ") t(d)");
}

Source demo_source(const fs::path& dir) {
  Source s;
  s.name = "demo";
  s.dir = dir;
  Endpoint e;
  e.name = "series";
  s.endpoints.push_back(e);
  return s;
}

const std::set<std::string> kKnown{"demo_series", "other_things"};

const char* kModel =
    "-- name: demo_stats\n"
    "-- description: count and sum\n"
    "-- datasets: demo_series\n"
    "-- refresh: after_batch\n"
    "SELECT count(*) AS n, sum(value) AS total, 'a,\"b' AS label FROM demo_series;\n";

InsightModel demo_model() { return parse_model(kModel, "demo_stats.sql", kKnown); }

TEST(ParseModel, ReadsTheHeaderAndTheSql) {
  InsightModel m = demo_model();
  EXPECT_EQ(m.name, "demo_stats");
  EXPECT_EQ(m.description, "count and sum");
  EXPECT_EQ(m.datasets, std::vector<std::string>{"demo_series"});
  EXPECT_TRUE(m.after_batch);
  EXPECT_EQ(m.every.count(), 0);
  EXPECT_EQ(m.sql, "SELECT count(*) AS n, sum(value) AS total, 'a,\"b' AS label FROM demo_series");
}

TEST(ParseModel, PeriodicRefreshAndNameFromFile) {
  auto m = parse_model("-- description: d\n-- datasets: demo_series, other_things\n-- refresh: every 5m\n\nSELECT 1\n",
                       "dir/my_model.sql", kKnown);
  EXPECT_EQ(m.name, "my_model");
  EXPECT_FALSE(m.after_batch);
  EXPECT_EQ(m.every, std::chrono::seconds(300));
  EXPECT_EQ(m.datasets.size(), 2u);
}

TEST(ParseModel, ErrorsNameFileAndLine) {
  struct Case {
    std::string text, expect;
  };
  std::vector<Case> cases = {
      {"-- name: x\n-- datasets: demo_series\nSELECT 1", "f.sql:1: missing '-- description:'"},
      {"-- name: x\n-- description: d\nSELECT 1", "f.sql:1: missing '-- datasets:'"},
      {"-- name: x\n-- description: d\n-- datasets: nope\nSELECT 1", "f.sql:3: unknown dataset 'nope'"},
      {"-- name: x\n-- colour: red\n", "f.sql:2: unknown header key 'colour'"},
      {"-- name: x\n-- name: y\n", "f.sql:2: duplicate header key 'name'"},
      {"-- name: Bad-Name\n", "f.sql:1: name must be"},
      {"-- name: x\n-- description: d\n-- datasets: demo_series\n-- refresh: every 0s\nSELECT 1", "f.sql:4: refresh 'every'"},
      {"-- name: x\n-- description: d\n-- datasets: demo_series\n-- refresh: hourly\nSELECT 1", "f.sql:4: refresh must be"},
      {"-- name: x\n-- description: d\n-- datasets: demo_series\n\n", "no SQL after the header"},
  };
  for (const auto& c : cases) {
    try {
      parse_model(c.text, "f.sql", kKnown);
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const InsightError& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what() << " / wanted " << c.expect;
    }
  }
}

TEST(LoadModels, FindsSqlBesideSourcesAndRejectsDuplicates) {
  fs::path dir = unique_dir("load");
  Source s = demo_source(dir / "demo");
  write_file(dir / "demo/insights/a.sql", kModel);
  auto models = load_models({s});
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name, "demo_stats");
  write_file(dir / "demo/insights/b.sql", kModel);
  try {
    load_models({s});
    ADD_FAILURE() << "duplicate name accepted";
  } catch (const InsightError& e) {
    EXPECT_NE(std::string(e.what()).find("already defined"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(InsightService, MaterialisesOnlyWhenInputsChange) {
  fs::path root = unique_dir("mat");
  InsightService svc(root.string(), {demo_source(root)}, {demo_model()});
  EXPECT_FALSE(svc.refresh("demo_stats"));  // no data yet: nothing, and no error
  EXPECT_FALSE(svc.state("demo_stats"));

  write_series(root, "a", 1, 10, "2024-02-01 10:00:00");
  ASSERT_TRUE(svc.refresh("demo_stats"));
  auto s1 = svc.state("demo_stats");
  ASSERT_TRUE(s1);
  EXPECT_EQ(s1->rows, 1);
  EXPECT_EQ(iso_utc(s1->data_through_us), "2024-02-01T10:00:00.000000Z");
  ASSERT_EQ(s1->columns.size(), 3u);
  EXPECT_EQ(s1->columns[0].name, "n");
  EXPECT_EQ(s1->columns[0].type, "BIGINT");
  EXPECT_TRUE(fs::exists(root / "insights/demo_stats" / s1->file));
  EXPECT_EQ(s1->file, "demo_stats-" + s1->version + ".parquet");

  EXPECT_FALSE(svc.refresh("demo_stats"));  // unchanged inputs: no new file
  write_series(root, "b", 11, 20, "2024-02-02 11:00:00");
  ASSERT_TRUE(svc.refresh("demo_stats"));
  auto s2 = svc.state("demo_stats");
  ASSERT_TRUE(s2);
  EXPECT_NE(s2->file, s1->file);
  EXPECT_EQ(iso_utc(s2->data_through_us), "2024-02-02T11:00:00.000000Z");
  EXPECT_TRUE(fs::exists(root / "insights/demo_stats" / s1->file));  // previous kept one cycle

  write_series(root, "c", 21, 31, "2024-02-03 12:00:00");
  ASSERT_TRUE(svc.refresh("demo_stats"));
  EXPECT_FALSE(fs::exists(root / "insights/demo_stats" / s1->file));  // older than previous: gone
  EXPECT_TRUE(fs::exists(root / "insights/demo_stats" / s2->file));

  // A second service over the same lake reads the pointer (restarts keep the state).
  InsightService again(root.string(), {demo_source(root)}, {demo_model()});
  auto s3 = again.state("demo_stats");
  ASSERT_TRUE(s3);
  EXPECT_EQ(s3->file, svc.state("demo_stats")->file);
  fs::remove_all(root);
}

TEST(InsightService, RendersJsonCsvAndParquet) {
  fs::path root = unique_dir("render");
  InsightService svc(root.string(), {demo_source(root)}, {demo_model()});
  EXPECT_FALSE(svc.render("demo_stats", "json"));
  write_series(root, "a", 1, 4, "2024-02-01 10:00:00");
  ASSERT_TRUE(svc.refresh("demo_stats"));

  auto j = svc.render("demo_stats", "json");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->content_type, "application/json");
  json::object o = json::parse(j->body).as_object();
  EXPECT_EQ(o.at("name").as_string(), "demo_stats");
  EXPECT_EQ(o.at("data_through").as_string(), "2024-02-01T10:00:00.000000Z");
  ASSERT_EQ(o.at("rows").as_array().size(), 1u);
  const auto& row = o.at("rows").as_array()[0].as_object();
  EXPECT_EQ(row.at("n").to_number<int64_t>(), 4);
  EXPECT_EQ(row.at("total").to_number<double>(), 10.0);
  EXPECT_EQ(row.at("label").as_string(), "a,\"b");

  auto c = svc.render("demo_stats", "csv");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->body, "n,total,label\r\n4,10.0,\"a,\"\"b\"\r\n");

  auto p = svc.render("demo_stats", "parquet");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->body.substr(0, 4), "PAR1");
  EXPECT_EQ(p->body, slurp(root / "insights/demo_stats" / p->state.file));
  EXPECT_THROW(svc.render("demo_stats", "xml"), std::invalid_argument);
  EXPECT_FALSE(svc.render("nope", "json"));
  fs::remove_all(root);
}

TEST(InsightService, NonSelectModelIsAnErrorNotACrash) {
  fs::path root = unique_dir("bad");
  auto bad = parse_model("-- name: bad\n-- description: d\n-- datasets: demo_series\nCREATE TABLE t AS SELECT * FROM demo_series",
                         "bad.sql", kKnown);
  auto broken = parse_model("-- name: broken\n-- description: d\n-- datasets: demo_series\nSELECT nope FROM demo_series",
                            "broken.sql", kKnown);
  InsightService svc(root.string(), {demo_source(root)}, {bad, broken});
  write_series(root, "a", 1, 2, "2024-02-01 10:00:00");
  EXPECT_THROW(svc.refresh("bad"), InsightError);
  EXPECT_THROW(svc.refresh("broken"), InsightError);
  auto list = svc.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_NE(list[0].last_error.find("single SELECT"), std::string::npos) << list[0].last_error;
  EXPECT_NE(list[1].last_error.find("nope"), std::string::npos) << list[1].last_error;
  EXPECT_FALSE(list[0].state);
  EXPECT_THROW(svc.refresh("unknown"), InsightError);
  fs::remove_all(root);
}

// A reader following current.json (as an outside tool would) while refreshes replace the file: every
// read finds a complete file whose row count is one the model produced.
TEST(InsightService, ReaderAlwaysSeesOneCompleteFile) {
  fs::path root = unique_dir("atomic");
  auto per_day = parse_model("-- name: days\n-- description: d\n-- datasets: demo_series\nSELECT date, value FROM demo_series",
                             "days.sql", kKnown);
  InsightService svc(root.string(), {demo_source(root)}, {per_day});
  write_series(root, "f00", 1, 1, "2024-02-01 10:00:00");
  ASSERT_TRUE(svc.refresh("days"));

  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, failures{0};
  std::string failure;
  std::thread reader([&] {
    duck::Database db;
    duck::Connection con(db);
    while (!done) {
      try {
        json::object ptr = json::parse(slurp(root / "insights/days/current.json")).as_object();
        std::string file = (root / "insights/days" / std::string(ptr.at("file").as_string())).string();
        auto r = con.query("SELECT count(*) FROM read_parquet(" + duck::quote_literal(file) + ")");
        int64_t n = r.int64(0, 0);
        if (n != ptr.at("rows").to_number<int64_t>() || n < 1 || n > 20) throw std::runtime_error("rows " + std::to_string(n));
        ++reads;
      } catch (const std::exception& e) {
        if (failures++ == 0) failure = e.what();
      }
    }
  });
  for (int i = 2; i <= 20; ++i) {
    write_series(root, fmt::format("f{:02}", i), i, i, "2024-02-01 10:00:00");
    ASSERT_TRUE(svc.refresh("days"));
    // Let the reader get at least one read of this version in (not a timing assertion: a wait).
    int seen = reads.load();
    while (reads.load() == seen && failures.load() == 0) std::this_thread::yield();
  }
  done = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0) << failure;
  EXPECT_GE(reads.load(), 19);
  EXPECT_EQ(svc.state("days")->rows, 20);
  fs::remove_all(root);
}

TEST(InsightService, RefresherReactsToABatchOfItsDataset) {
  fs::path root = unique_dir("loop");
  InsightService svc(root.string(), {demo_source(root)}, {demo_model()});
  svc.start();
  write_series(root, "a", 1, 3, "2024-02-01 10:00:00");
  svc.notify_batch({"other_things"});  // not an input of demo_stats
  svc.notify_batch({"demo_series"});
  std::optional<InsightState> s;
  for (int i = 0; i < 600 && !(s = svc.state("demo_stats")); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(s) << "not materialised after the batch notification";
  EXPECT_EQ(s->rows, 1);
  write_series(root, "b", 4, 6, "2024-02-02 10:00:00");
  svc.notify_batch({"demo_series"});
  std::string first = s->file;
  for (int i = 0; i < 600 && (s = svc.state("demo_stats")) && s->file == first; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(s->file, first);
  svc.stop();
  fs::remove_all(root);
}

// 2024-02-01T10:00:00Z + seconds, as the literal write_series takes and as epoch microseconds.
std::string ingested_at(int seconds) {
  return fmt::format("2024-02-01 10:{:02}:{:02}", seconds / 60, seconds % 60);
}
int64_t ingested_us(int seconds) { return (int64_t{1706781600} + seconds) * 1000000; }

TEST(InsightService, SustainedBatchesAreDebouncedAndTheLatestIsReflected) {
  fs::path root = unique_dir("debounce");
  InsightOptions o;
  o.min_interval = std::chrono::milliseconds(1000);
  InsightService svc(root.string(), {demo_source(root)}, {demo_model()}, o);
  svc.start();
  // A batch every ~50 ms for 3 s: without the debounce this is one refresh per 100 ms gather (~25).
  const auto t0 = std::chrono::steady_clock::now();
  int batches = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3)) {
    write_series(root, fmt::format("b{:04}", batches), 1, 2, ingested_at(batches));
    svc.notify_batch({"demo_series"});
    ++batches;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_GT(batches, 10);
  // At most one refresh per min_interval (from the end of the previous one), plus the first.
  EXPECT_LE(svc.refreshes(), static_cast<uint64_t>(elapsed_s / 1.0) + 2) << batches << " batches";
  EXPECT_GE(svc.refreshes(), 1u);
  // The last batch is reflected without another notification: within min_interval + a refresh.
  std::optional<InsightState> s;
  for (int i = 0; i < 400; ++i) {
    s = svc.state("demo_stats");
    if (s && s->data_through_us == ingested_us(batches - 1)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(s);
  EXPECT_EQ(s->data_through_us, ingested_us(batches - 1));
  auto body = svc.render("demo_stats", "json");
  ASSERT_TRUE(body);
  EXPECT_EQ(json::parse(body->body).at("rows").as_array()[0].at("n").to_number<int64_t>(), 2 * batches);
  svc.stop();
  fs::remove_all(root);
}

TEST(InsightService, LoneBatchIsReflectedAtOnceAndTheNextWaitsForTheInterval) {
  fs::path root = unique_dir("lone");
  InsightOptions o;
  o.min_interval = std::chrono::seconds(60);
  InsightService svc(root.string(), {demo_source(root)}, {demo_model()}, o);
  svc.start();
  write_series(root, "a", 1, 3, ingested_at(0));
  svc.notify_batch({"demo_series"});
  // The first materialisation does not wait for min_interval (60 s): nothing was refreshed before.
  std::optional<InsightState> s;
  for (int i = 0; i < 400 && !(s = svc.state("demo_stats")); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(s) << "a lone batch was not reflected within 20 s";
  EXPECT_EQ(svc.refreshes(), 1u);
  // A second batch right after is held back until 60 s after the first refresh.
  write_series(root, "b", 4, 6, ingested_at(1));
  svc.notify_batch({"demo_series"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(svc.state("demo_stats")->file, s->file);
  EXPECT_EQ(svc.refreshes(), 1u);
  svc.stop();
  fs::remove_all(root);
}

}  // namespace
}  // namespace apilake
