#include "curate/compact.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "curate/layout.h"
#include "curate/schema.h"

namespace apilake {

namespace fs = std::filesystem;

namespace {

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

}  // namespace

CompactResult compact_hour(Lake& lake, duck::Database& db, const Source& source, const Endpoint& endpoint,
                           const std::string& hour, const std::function<bool(const std::string&)>& in_flight) {
  if (lake.local_root().empty()) throw CompactError("compaction needs a local lake");
  if (hour.size() != 13 || hour[4] != '-' || hour[7] != '-' || hour[10] != 'T')
    throw CompactError(fmt::format("--hour must be YYYY-MM-DDTHH, got '{}'", hour));
  int64_t start_us = 0;
  try {
    const int y = std::stoi(hour.substr(0, 4));
    const int m = std::stoi(hour.substr(5, 2)), d = std::stoi(hour.substr(8, 2)), h = std::stoi(hour.substr(11, 2));
    if (m < 1 || m > 12 || d < 1 || d > 31 || h < 0 || h > 23) throw std::out_of_range("hour");
    start_us = (int64_t{days_from_civil(y, static_cast<unsigned>(m), static_cast<unsigned>(d))} * 24 + h) *
               3'600'000'000LL;
  } catch (const std::exception&) {
    throw CompactError(fmt::format("--hour must be YYYY-MM-DDTHH, got '{}'", hour));
  }

  CompactResult result;
  result.dir = "curated/" + source.name + "/" + endpoint.name + "/" + hour_dir(endpoint.layout, start_us);
  const fs::path root = lake.local_root();
  const fs::path hour_path = root / result.dir;

  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(hour_path, ec)) {
    if (entry.path().extension() == ".parquet" && entry.is_regular_file()) names.push_back(entry.path().filename());
  }
  std::sort(names.begin(), names.end());
  result.inputs = static_cast<int64_t>(names.size());
  if (names.size() < 2) return result;  // nothing to merge
  for (const auto& n : names) {
    if (in_flight && in_flight(result.dir + "/" + n))
      throw CompactError(fmt::format("{}/{} belongs to a batch not yet committed; retry later", result.dir, n));
  }

  // Build the replacement directory in staging (same filesystem, outside every glob).
  static std::atomic<uint64_t> counter{0};
  const fs::path fresh =
      lake.staging_dir() / fmt::format("compact-{}-{:x}-{}", ::getpid(), std::random_device{}(), counter++);
  fs::create_directories(fresh);
  auto cleanup = [&] { fs::remove_all(fresh, ec); };
  const std::string out_name = fmt::format("compact-{:016x}.parquet", fnv1a(names));
  try {
    std::string list = "[";
    for (std::size_t i = 0; i < names.size(); ++i)
      list += (i ? ", " : "") + duck::quote_literal((hour_path / names[i]).string());
    list += "]";
    duck::Connection con(db);
    const int64_t in_rows = count_rows(con, list);
    const fs::path out = fresh / out_name;
    // insertion order is kept (files in name order = message order).
    con.execute(fmt::format(
        "COPY (SELECT * FROM read_parquet({}, union_by_name=true, hive_partitioning=false)) TO {} "
        "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {})",
        list, duck::quote_literal(out.string()), endpoint.files.row_group_rows));
    fsync_file(out);
    const int64_t out_rows = count_rows(con, duck::quote_literal(out.string()));
    if (out_rows != in_rows)
      throw CompactError(fmt::format("merged file has {} rows, the inputs {}", out_rows, in_rows));
    result.rows = out_rows;
    fsync_dir(fresh);
  } catch (const duck::Error& e) {
    cleanup();
    throw CompactError(fmt::format("cannot merge {}: {}", result.dir, e.what()));
  } catch (...) {
    cleanup();
    throw;
  }

  // The commit point: one atomic exchange of the two directory entries.
  if (::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, hour_path.c_str(), RENAME_EXCHANGE) != 0) {
    const int err = errno;
    cleanup();
    throw CompactError(fmt::format("cannot exchange {} atomically: {}", result.dir, std::strerror(err)));
  }
  fsync_dir(hour_path.parent_path());
  // `fresh` now holds the old hour. Anything committed there meanwhile joins the new hour.
  const std::set<std::string> inputs(names.begin(), names.end());
  for (const auto& entry : fs::directory_iterator(fresh, ec)) {
    const std::string n = entry.path().filename();
    if (inputs.count(n)) continue;
    fs::rename(entry.path(), hour_path / n);
    spdlog::info("compact: {}/{} arrived during compaction; kept", result.dir, n);
  }
  fsync_dir(hour_path);
  cleanup();
  result.output = result.dir + "/" + out_name;
  spdlog::info("compact: {} files of {} -> {} ({} rows)", names.size(), result.dir, out_name, result.rows);
  return result;
}

}  // namespace apilake
