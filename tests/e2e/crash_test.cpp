// Exactly once, proven by crashing: for each consumer (curate, archive) and each step of the ledger
// protocol (docs/delivery.md), `apilake up --demo` runs with APILAKE_FAULT armed (bus/fault.h), gets
// two extractions (two datasets, so a batch holds several files), and kills itself with SIGKILL at
// that step of its first batch. The test checks the state the crash left (what the ledger and the
// lake hold), restarts the binary without the fault, waits for everything to be consumed, and counts
// with independent readers: every (extraction, page) archived once (python3-avro), every fetched
// record once in curated Parquet (DuckDB read_parquet) or the dead letters — nothing lost, nothing
// twice.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "bus/sqlite_bus.h"
#include "duck/duck.h"
#include "harness.h"

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace apilake;
using namespace apilake::test;

namespace {

struct Archived {
  std::string extraction_id, page, data;
};

std::vector<Archived> read_archive(const fs::path& data_dir) {
  std::vector<Archived> out;
  if (!fs::exists(data_dir / "raw")) return out;
  std::istringstream lines(run_command("/usr/bin/python3 " + std::string(APILAKE_SOURCE_DIR) +
                                       "/tests/e2e/read_avro.py " + (data_dir / "raw").string()));
  std::string line;
  while (std::getline(lines, line)) {
    auto v = json::parse(line).as_object();
    auto& attrs = v["attributes"].as_object();
    out.push_back({std::string(attrs["extraction_id"].as_string()), std::string(attrs["page"].as_string()),
                   b64decode(std::string(v["data"].as_string()))});
  }
  return out;
}

std::map<std::string, int64_t> deadletters_by_extraction(const fs::path& data_dir) {
  std::map<std::string, int64_t> out;
  if (!fs::exists(data_dir / "deadletter")) return out;
  for (const auto& e : fs::recursive_directory_iterator(data_dir / "deadletter")) {
    if (e.path().extension() != ".jsonl") continue;
    std::ifstream f(e.path());
    std::string line;
    while (std::getline(f, line))
      if (!line.empty()) out[std::string(json::parse(line).as_object().at("extraction_id").as_string())]++;
  }
  return out;
}

std::vector<fs::path> staged_files(const fs::path& data_dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(data_dir / "_staging", ec))
    if (e.is_regular_file()) out.push_back(e.path());
  return out;
}

std::string submit_example(ApilakeProcess& app, const std::string& source, const std::string& endpoint) {
  return submit(app, source, endpoint, example_of(app, source, endpoint));
}

// Waits until the extraction has succeeded, the curator has accounted for every record and the
// archiver for every page (its ledger counts, read from the bus database the process is using).
json::object wait_consumed(ApilakeProcess& app, SqliteBus& bus, const std::string& id) {
  const auto start = std::chrono::steady_clock::now();
  json::object s;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(90)) {
    s = get_json(app, "/v1/extractions/" + id);
    if (s["status"].as_string() == "failed") break;
    if (s["status"].as_string() == "succeeded" &&
        s["curated"].as_int64() + s["deadlettered"].as_int64() == s["records"].as_int64() &&
        bus.counts("archive", id).rows >= s["pages"].as_int64())
      return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "extraction " << id << " was not consumed: " << json::serialize(s);
  return s;
}

struct Crash {
  std::string consumer, point;
};

class CrashAtEachStep : public ::testing::TestWithParam<Crash> {};

TEST_P(CrashAtEachStep, RedeliveryYieldsNoDuplicateAndNoLoss) {
  const Crash crash = GetParam();
  auto dir = temp_dir("crash-" + crash.consumer + "-" + crash.point);
  const fs::path data = dir / "data";

  // --- Run 1: armed; dies in its first batch of `consumer` at `point`. -------------------------
  std::vector<std::string> ids;
  {
    ApilakeProcess app(data);
    app.set_env("APILAKE_FAULT", crash.consumer + ":" + crash.point + ":1");
    // Long enough that both extractions' pages share the first batch (several files per batch).
    app.set_env("APILAKE_BATCH_MAX_AGE_MS", "2500");
    app.start();
    ids.push_back(submit_example(app, "bcb_sgs", "series"));
    ids.push_back(submit_example(app, "openbrewerydb", "breweries"));
    auto status = app.wait_exit(std::chrono::seconds(60));
    ASSERT_TRUE(status.has_value()) << "the armed fault was never hit";
    ASSERT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << "exit status " << *status;
  }

  // --- The state the crash left. ---------------------------------------------------------------
  {
    SqliteBus bus(data / "_state" / "bus.db");
    auto pending = bus.pending(crash.consumer);
    int64_t committed = 0;
    for (const auto& id : ids) {
      auto c = bus.counts(crash.consumer, id);
      committed += c.rows + c.deadlettered;
    }
    if (crash.point == "in_stage" || crash.point == "after_stage") {
      EXPECT_TRUE(pending.empty()) << "nothing may be in the ledger before prepare";
      EXPECT_EQ(committed, 0);
      EXPECT_FALSE(staged_files(data).empty()) << "the batch was staged";
    } else if (crash.point == "after_prepare") {
      ASSERT_EQ(pending.size(), 1u);
      EXPECT_EQ(committed, 0);
      for (const auto& f : pending[0].files) {
        EXPECT_TRUE(fs::exists(f.staged)) << f.staged;
        EXPECT_FALSE(fs::exists(data / f.final)) << f.final;
      }
    } else if (crash.point == "after_rename") {
      ASSERT_EQ(pending.size(), 1u);
      EXPECT_EQ(committed, 0);
      const auto& files = pending[0].files;
      ASSERT_GE(files.size(), 2u) << "the batch must hold several files to crash between two moves";
      EXPECT_TRUE(fs::exists(data / files[0].final)) << files[0].final;
      EXPECT_FALSE(fs::exists(files[0].staged));
      for (std::size_t i = 1; i < files.size(); ++i) {
        EXPECT_TRUE(fs::exists(files[i].staged)) << files[i].staged;
        EXPECT_FALSE(fs::exists(data / files[i].final)) << files[i].final;
      }
    } else if (crash.point == "after_commit_before_return") {
      EXPECT_TRUE(pending.empty());
      EXPECT_GT(committed, 0) << "the first batch was committed";
    }
  }

  // --- Run 2: no fault; recovery, redelivery, then everything is consumed. -----------------------
  std::map<std::string, json::object> statuses;
  {
    ApilakeProcess again(data);
    again.start();
    SqliteBus bus(data / "_state" / "bus.db");
    for (const auto& id : ids) {
      statuses[id] = wait_consumed(again, bus, id);
      ASSERT_EQ(statuses[id]["status"].as_string(), "succeeded") << json::serialize(statuses[id]);
    }
    EXPECT_TRUE(bus.pending("curate").empty());
    EXPECT_TRUE(bus.pending("archive").empty());
    again.kill(SIGTERM);  // a clean stop: what is on disk now is final
  }
  EXPECT_TRUE(staged_files(data).empty()) << "staging is swept or consumed";

  // --- Count with independent readers. ---------------------------------------------------------
  // Archive: each (extraction, page) exactly once, byte-identical to a fixture.
  auto bodies = fixture_bodies("bcb_sgs");
  bodies.merge(fixture_bodies("openbrewerydb"));
  std::map<std::string, std::map<std::string, int>> page_copies;
  std::map<std::string, int64_t> records;  // fetched records per extraction, from the archived pages
  for (const auto& m : read_archive(data)) {
    EXPECT_TRUE(bodies.count(m.data)) << "archived page is not a fixture body";
    if (++page_copies[m.extraction_id][m.page] == 1)
      records[m.extraction_id] += static_cast<int64_t>(json::parse(m.data).as_array().size());
  }
  // Curated rows per extraction (DuckDB over the Parquet files) and dead letters per extraction.
  auto rows = curated_rows_by_extraction(data, {"bcb_sgs/series", "openbrewerydb/breweries"});
  auto dead = deadletters_by_extraction(data);
  for (const auto& id : ids) {
    auto& s = statuses[id];
    EXPECT_EQ(static_cast<int64_t>(page_copies[id].size()), s["pages"].as_int64()) << id << ": a page lost";
    for (const auto& [page, copies] : page_copies[id]) EXPECT_EQ(copies, 1) << id << " page " << page;
    EXPECT_EQ(records[id], s["records"].as_int64()) << id;
    EXPECT_GT(records[id], 0) << id;
    EXPECT_EQ(rows[id] + dead[id], records[id]) << id << ": rows " << rows[id] << " + dead letters " << dead[id];
    EXPECT_EQ(rows[id], s["curated"].as_int64()) << id;
    EXPECT_EQ(dead[id], s["deadlettered"].as_int64()) << id;
  }
  EXPECT_GE(dead[ids[0]], 1) << "the bcb_sgs fixture plants a bad record";
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  fs::remove_all(dir, cleanup_ec);
}

std::vector<Crash> all_crashes() {
  std::vector<Crash> out;
  for (const char* consumer : {"curate", "archive"})
    for (const char* point : {"in_stage", "after_stage", "after_prepare", "after_rename", "after_commit_before_return"})
      out.push_back({consumer, point});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Protocol, CrashAtEachStep, ::testing::ValuesIn(all_crashes()),
                         [](const ::testing::TestParamInfo<Crash>& info) {
                           return info.param.consumer + "_" + info.param.point;
                         });

// The hook is refused loudly when malformed, never silently ignored.
TEST(FaultInjection, MalformedFaultIsRefusedAtStartUp) {
  auto dir = temp_dir("crash-bad-fault");
  ApilakeProcess app(dir / "data");
  app.set_env("APILAKE_FAULT", "curate:after_lunch");
  EXPECT_THROW(app.start(), std::runtime_error);
  std::error_code cleanup_ec;  // the app may still be writing (e.g. an insight refresh): cleanup never fails a test
  fs::remove_all(dir, cleanup_ec);
}

}  // namespace
