#include "curate/compact.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "curate/layout.h"
#include "curate/schema.h"

namespace apilake {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kHourUs = 3'600'000'000LL;
constexpr const char* kIntent = "_compaction.json";  // object lakes: not .parquet, so no reader sees it

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw CompactError(fmt::format("cannot open {}: {}", dir.string(), std::strerror(errno)));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw CompactError(fmt::format("cannot fsync {}", dir.string()));
}

uint64_t fnv1a(const std::vector<std::string>& names) {
  uint64_t h = 1469598103934665603ULL;
  for (const auto& n : names) {
    for (unsigned char c : n) h = (h ^ c) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
  }
  return h;
}

int64_t count_rows(duck::Connection& con, const std::string& list_sql) {
  auto r = con.query("SELECT count(*) FROM read_parquet(" + list_sql + ", union_by_name=true, hive_partitioning=false)");
  return r.int64(0, 0);
}

// Start of the hour "YYYY-MM-DDTHH" in µs since the epoch; nullopt when malformed.
std::optional<int64_t> parse_hour(const std::string& hour) {
  if (hour.size() != 13 || hour[4] != '-' || hour[7] != '-' || hour[10] != 'T') return std::nullopt;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12})
    if (!std::isdigit(static_cast<unsigned char>(hour[i]))) return std::nullopt;
  const int y = std::stoi(hour.substr(0, 4));
  const int m = std::stoi(hour.substr(5, 2)), d = std::stoi(hour.substr(8, 2)), h = std::stoi(hour.substr(11, 2));
  if (m < 1 || m > 12 || d < 1 || d > 31 || h < 0 || h > 23) return std::nullopt;
  return (int64_t{days_from_civil(y, static_cast<unsigned>(m), static_cast<unsigned>(d))} * 24 + h) * kHourUs;
}

std::string dataset_prefix(const Source& source, const Endpoint& endpoint) {
  return "curated/" + source.name + "/" + endpoint.name;
}

// The hour ("YYYY-MM-DDTHH") of an hour directory relative to the dataset prefix, in either layout
// ("2026/11/26/08" or "year=2026/month=11/day=26/hour=08"); nullopt unless it is exactly what
// hour_dir() writes for the endpoint's layout.
std::optional<std::pair<std::string, int64_t>> hour_of_dir(const Endpoint& endpoint, const std::string& rel) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = rel.find('/', start);
    std::string seg = rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    const std::size_t eq = seg.find('=');
    parts.push_back(eq == std::string::npos ? seg : seg.substr(eq + 1));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (parts.size() != 4) return std::nullopt;
  const std::string hour = fmt::format("{}-{}-{}T{}", parts[0], parts[1], parts[2], parts[3]);
  const auto start_us = parse_hour(hour);
  if (!start_us || hour_dir(endpoint.layout, *start_us) != rel) return std::nullopt;
  return std::make_pair(hour, *start_us);
}

// Lake paths of the Parquet files directly in `dir` (list() is recursive), sorted.
std::vector<std::string> parquet_in(Lake& lake, const std::string& dir) {
  std::vector<std::string> out;
  for (auto& p : lake.list(dir)) {
    if (p.size() <= dir.size() + 1 || p.compare(0, dir.size() + 1, dir + "/") != 0) continue;
    const std::string name = p.substr(dir.size() + 1);
    if (name.find('/') == std::string::npos && name.size() > 8 && name.ends_with(".parquet")) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path fresh_staging_dir(Lake& lake) {
  static std::atomic<uint64_t> counter{0};
  const fs::path fresh =
      lake.staging_dir() / fmt::format("compact-{}-{:x}-{}", ::getpid(), std::random_device{}(), counter++);
  fs::create_directories(fresh);
  return fresh;
}

// Merges `files` (local paths, in order) into `out`, checking the row count. Returns the rows.
int64_t merge(duck::Database& db, const std::vector<fs::path>& files, const fs::path& out, const Endpoint& endpoint,
              const std::string& dir) {
  try {
    std::string list = "[";
    for (std::size_t i = 0; i < files.size(); ++i) list += (i ? ", " : "") + duck::quote_literal(files[i].string());
    list += "]";
    duck::Connection con(db);
    const int64_t in_rows = count_rows(con, list);
    // insertion order is kept (files in name order = message order).
    con.execute(fmt::format(
        "COPY (SELECT * FROM read_parquet({}, union_by_name=true, hive_partitioning=false)) TO {} "
        "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {})",
        list, duck::quote_literal(out.string()), endpoint.files.row_group_rows));
    fsync_file(out);
    const int64_t out_rows = count_rows(con, duck::quote_literal(out.string()));
    if (out_rows != in_rows)
      throw CompactError(fmt::format("merged file has {} rows, the inputs {}", out_rows, in_rows));
    return out_rows;
  } catch (const duck::Error& e) {
    throw CompactError(fmt::format("cannot merge {}: {}", dir, e.what()));
  }
}

void check_not_in_flight(const std::string& dir, const std::vector<std::string>& names,
                         const std::function<bool(const std::string&)>& in_flight) {
  for (const auto& n : names)
    if (in_flight && in_flight(dir + "/" + n))
      throw CompactError(fmt::format("{}/{} belongs to a batch not yet committed; retry later", dir, n));
}

CompactResult compact_local(Lake& lake, duck::Database& db, const Endpoint& endpoint, CompactResult result,
                            const std::function<bool(const std::string&)>& in_flight) {
  const fs::path hour_path = fs::path(lake.local_root()) / result.dir;
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(hour_path, ec)) {
    if (entry.path().extension() == ".parquet" && entry.is_regular_file()) names.push_back(entry.path().filename());
  }
  std::sort(names.begin(), names.end());
  result.inputs = static_cast<int64_t>(names.size());
  if (names.size() < 2) return result;  // nothing to merge
  check_not_in_flight(result.dir, names, in_flight);

  // Build the replacement directory in staging (same filesystem, outside every glob).
  const fs::path fresh = fresh_staging_dir(lake);
  const std::string out_name = fmt::format("compact-{:016x}.parquet", fnv1a(names));
  try {
    std::vector<fs::path> files;
    for (const auto& n : names) files.push_back(hour_path / n);
    result.rows = merge(db, files, fresh / out_name, endpoint, result.dir);
    fsync_dir(fresh);
  } catch (...) {
    fs::remove_all(fresh, ec);
    throw;
  }

  // The commit point: one atomic exchange of the two directory entries.
  if (::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, hour_path.c_str(), RENAME_EXCHANGE) != 0) {
    const int err = errno;
    fs::remove_all(fresh, ec);
    throw CompactError(fmt::format("cannot exchange {} atomically: {}", result.dir, std::strerror(err)));
  }
  fsync_dir(hour_path.parent_path());
  // `fresh` now holds the old hour. The curator may still commit into it: its rename resolved the
  // old directory before the exchange. So: move every non-input file over, delete the inputs, and
  // rmdir — which fails (ENOTEMPTY) if a file landed meanwhile; then go round again. Once the
  // directory is gone a racing rename fails (ENOENT) and the consumer retries it into the new hour.
  // Never remove_all here: that could delete a committed file.
  const std::set<std::string> inputs(names.begin(), names.end());
  for (int round = 0;; ++round) {
    for (const auto& entry : fs::directory_iterator(fresh, ec)) {
      const std::string n = entry.path().filename();
      if (inputs.count(n)) continue;
      fs::rename(entry.path(), hour_path / n);
      spdlog::info("compact: {}/{} arrived during compaction; kept", result.dir, n);
    }
    for (const auto& n : names) fs::remove(fresh / n, ec);
    if (::rmdir(fresh.c_str()) == 0) break;
    if ((errno != ENOTEMPTY && errno != EEXIST) || round > 100) {
      spdlog::warn("compact: cannot remove {} ({}); left in staging", fresh.string(), std::strerror(errno));
      break;
    }
  }
  fsync_dir(hour_path);
  result.output = result.dir + "/" + out_name;
  return result;
}

// Object lake: finishes or drops an intent left by an interrupted compaction of `dir`.
void recover_intent(Lake& lake, const std::string& dir) {
  const std::string intent_path = dir + "/" + kIntent;
  const auto body = lake.get(intent_path);
  if (!body) return;
  std::string output;
  std::vector<std::string> inputs;
  try {
    const auto v = boost::json::parse(*body).as_object();
    output = std::string(v.at("output").as_string());
    for (const auto& i : v.at("inputs").as_array()) inputs.emplace_back(i.as_string());
  } catch (const std::exception& e) {
    throw CompactError(fmt::format("{} is unreadable ({}); remove it after checking the hour by hand", intent_path,
                                   e.what()));
  }
  if (lake.exists(output)) {
    for (const auto& i : inputs) lake.remove(i);
    spdlog::info("compact: {}: finished an interrupted compaction into {}", dir, output);
  } else {
    spdlog::info("compact: {}: dropped an interrupted compaction (its output was never uploaded)", dir);
  }
  lake.remove(intent_path);
}

CompactResult compact_object(Lake& lake, duck::Database& db, const Endpoint& endpoint, CompactResult result,
                             const std::function<bool(const std::string&)>& in_flight) {
  try {
    recover_intent(lake, result.dir);
    const std::vector<std::string> names = parquet_in(lake, result.dir);
    result.inputs = static_cast<int64_t>(names.size());
    if (names.size() < 2) return result;
    check_not_in_flight(result.dir, names, in_flight);
    const std::string out_name = fmt::format("compact-{:016x}.parquet", fnv1a(names));
    const std::string output = result.dir + "/" + out_name;
    const fs::path tmp = fresh_staging_dir(lake);
    std::error_code ec;
    try {
      std::vector<fs::path> files;
      for (std::size_t i = 0; i < names.size(); ++i) {
        auto bytes = lake.get(result.dir + "/" + names[i]);
        if (!bytes) throw CompactError(fmt::format("{}/{} vanished while compacting; retry later", result.dir, names[i]));
        files.push_back(tmp / fmt::format("in-{:06}.parquet", i));  // keeps name order
        std::ofstream f(files.back(), std::ios::binary);
        f.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
        if (!f.flush()) throw CompactError(fmt::format("cannot write {}", files.back().string()));
      }
      const fs::path out = tmp / out_name;
      result.rows = merge(db, files, out, endpoint, result.dir);
      // Intent first: a crash from here on is finished or undone by recover_intent().
      boost::json::array in;
      for (const auto& n : names) in.emplace_back(result.dir + "/" + n);
      lake.put(result.dir + "/" + kIntent, boost::json::serialize(boost::json::object{{"output", output}, {"inputs", in}}));
      lake.commit_staged(out, output);  // the merged rows are visible from here
      for (const auto& n : names) lake.remove(result.dir + "/" + n);
      lake.remove(result.dir + "/" + kIntent);
    } catch (...) {
      fs::remove_all(tmp, ec);
      throw;
    }
    fs::remove_all(tmp, ec);
    result.output = output;
    return result;
  } catch (const CompactError&) {
    throw;
  } catch (const std::exception& e) {
    throw CompactError(fmt::format("cannot compact {}: {}", result.dir, e.what()));
  }
}

}  // namespace

CompactResult compact_hour(Lake& lake, duck::Database& db, const Source& source, const Endpoint& endpoint,
                           const std::string& hour, const std::function<bool(const std::string&)>& in_flight) {
  const auto start_us = parse_hour(hour);
  if (!start_us) throw CompactError(fmt::format("--hour must be YYYY-MM-DDTHH, got '{}'", hour));
  CompactResult result;
  result.dir = dataset_prefix(source, endpoint) + "/" + hour_dir(endpoint.layout, *start_us);
  result = lake.local_root().empty() ? compact_object(lake, db, endpoint, std::move(result), in_flight)
                                     : compact_local(lake, db, endpoint, std::move(result), in_flight);
  if (!result.output.empty())
    spdlog::info("compact: {} files of {} -> {} ({} rows)", result.inputs, result.dir,
                 result.output.substr(result.dir.size() + 1), result.rows);
  return result;
}

std::vector<HourFiles> closed_hours(Lake& lake, const Source& source, const Endpoint& endpoint, int64_t now_us,
                                    int64_t grace_us) {
  const std::string prefix = dataset_prefix(source, endpoint) + "/";
  struct Seen {
    std::string hour;
    std::size_t files = 0;
    bool intent = false;
  };
  std::map<std::string, Seen> dirs;  // lake dir -> what it holds
  for (const auto& p : lake.list(dataset_prefix(source, endpoint))) {
    if (p.compare(0, prefix.size(), prefix) != 0) continue;
    const std::size_t slash = p.rfind('/');
    const std::string dir = p.substr(0, slash), name = p.substr(slash + 1);
    const bool parquet = name.ends_with(".parquet"), intent = name == kIntent;
    if (!parquet && !intent) continue;
    auto it = dirs.find(dir);
    if (it == dirs.end()) {
      const auto h = dir.size() > prefix.size() ? hour_of_dir(endpoint, dir.substr(prefix.size())) : std::nullopt;
      if (!h || h->second + kHourUs + grace_us > now_us) continue;  // not an hour, or not closed yet
      it = dirs.emplace(dir, Seen{h->first}).first;
    }
    if (parquet) ++it->second.files;
    it->second.intent |= intent;
  }
  std::vector<HourFiles> out;
  for (const auto& [dir, s] : dirs)
    if (s.files > 1 || s.intent) out.push_back({s.hour, dir, s.files});
  std::sort(out.begin(), out.end(), [](const HourFiles& a, const HourFiles& b) { return a.hour < b.hour; });
  return out;
}

AutoCompactor::AutoCompactor(Lake& lake, duck::Database& db, const std::vector<Source>& sources,
                             AutoCompactOptions options)
    : lake_(lake), db_(db), sources_(sources), options_(std::move(options)) {
  if (options_.interval.count() < 0 || options_.grace.count() < 0)
    throw std::invalid_argument("compact.interval and compact.grace must not be negative");
  if (!options_.now_us)
    options_.now_us = [] {
      return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
}

AutoCompactor::~AutoCompactor() { stop(); }

void AutoCompactor::start() {
  if (options_.interval.count() == 0 || thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, options_.interval, [this] { return stopping_; })) {
      lock.unlock();
      run_once();
      lock.lock();
    }
  });
}

void AutoCompactor::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::vector<CompactResult> AutoCompactor::run_once() {
  std::vector<CompactResult> done;
  const int64_t now = options_.now_us();
  const int64_t grace = std::chrono::duration_cast<std::chrono::microseconds>(options_.grace).count();
  for (const auto& source : sources_) {
    for (const auto& endpoint : source.endpoints) {
      std::vector<HourFiles> hours;
      try {
        hours = closed_hours(lake_, source, endpoint, now, grace);
      } catch (const std::exception& e) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("compact: cannot list {}_{}: {}", source.name, endpoint.name, e.what());
        continue;
      }
      for (const auto& h : hours) {
        {
          std::lock_guard lock(mu_);
          if (stopping_) return done;
        }
        try {
          std::optional<std::set<std::string>> pending;
          auto in_flight = [&](const std::string& path) {
            if (!pending) pending = options_.pending_files ? options_.pending_files() : std::set<std::string>{};
            return pending->count(path) > 0;
          };
          auto r = compact_hour(lake_, db_, source, endpoint, h.hour, in_flight);
          if (r.output.empty()) continue;
          compactions_.fetch_add(1, std::memory_order_relaxed);
          files_merged_.fetch_add(static_cast<uint64_t>(r.inputs), std::memory_order_relaxed);
          done.push_back(std::move(r));
        } catch (const std::exception& e) {
          // Retried on the next pass: an in-flight batch commits, a flaky lake recovers.
          failures_.fetch_add(1, std::memory_order_relaxed);
          spdlog::warn("compact: {} skipped this pass: {}", h.dir, e.what());
        }
      }
    }
  }
  return done;
}

}  // namespace apilake
