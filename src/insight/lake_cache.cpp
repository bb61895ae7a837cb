#include "insight/lake_cache.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace apilake {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCurated = "curated";

bool is_parquet(const std::string& path) { return path.size() > 8 && path.ends_with(".parquet"); }

// Writes bytes to tmp and renames it to target (same filesystem): the cached name appears whole.
// No fsync: the cache is a copy that a restart can fetch again.
void write_atomically(const fs::path& tmp, const fs::path& target, const std::string& bytes) {
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("cannot create {}", tmp.string()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw std::runtime_error(fmt::format("write to {} failed", tmp.string()));
    }
  }
  fs::create_directories(target.parent_path());
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw std::system_error(ec, fmt::format("cannot move {} into the cache", target.string()));
  }
}

}  // namespace

LakeCache::LakeCache(Lake& lake, fs::path dir, std::chrono::milliseconds min_interval)
    : lake_(lake), dir_(fs::absolute(std::move(dir)).lexically_normal()), min_interval_(min_interval) {
  fs::create_directories(dir_ / "_staging");
}

LakeCache::Stats LakeCache::refresh(bool force) {
  std::lock_guard lk(mu_);
  Stats stats;
  const auto now = std::chrono::steady_clock::now();
  if (!force && synced_ && now - last_ < min_interval_) {
    stats.skipped = true;
    return stats;
  }
  std::set<std::string> wanted;
  for (auto& p : lake_.list(kCurated))
    if (is_parquet(p)) wanted.insert(std::move(p));

  // What is cached now (only curated Parquet files count; _staging holds downloads in flight).
  std::set<std::string> have;
  const fs::path curated = dir_ / kCurated;
  std::error_code ec;
  if (fs::is_directory(curated, ec)) {
    fs::recursive_directory_iterator it(curated, fs::directory_options::skip_permission_denied, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      std::error_code st;
      if (!it->is_regular_file(st)) continue;
      std::string rel = it->path().lexically_relative(dir_).generic_string();
      if (is_parquet(rel)) have.insert(std::move(rel));
    }
    if (ec) throw std::system_error(ec, fmt::format("cannot scan the query cache {}", curated.string()));
  }

  // Gone from the lake (compaction replaced it, or it was removed): gone from queries. A query
  // still reading it keeps its open file; the next one no longer matches the name.
  for (const auto& p : have) {
    if (wanted.count(p)) continue;
    std::error_code rm;
    fs::remove(dir_ / p, rm);
    if (rm) throw std::system_error(rm, fmt::format("cannot remove {} from the query cache", p));
    ++stats.removed;
  }

  static std::atomic<std::uint64_t> counter{0};
  for (const auto& p : wanted) {
    if (have.count(p)) continue;
    auto bytes = lake_.get(p);
    if (!bytes) continue;  // removed between the listing and now
    const fs::path tmp = dir_ / "_staging" / fmt::format("dl-{}-{}.tmp", ::getpid(), counter.fetch_add(1));
    write_atomically(tmp, dir_ / p, *bytes);
    ++stats.downloaded;
  }
  stats.files = wanted.size();
  last_ = now;
  synced_ = true;
  if (stats.downloaded || stats.removed)
    spdlog::debug("insight: query cache +{} -{} ({} files)", stats.downloaded, stats.removed, stats.files);
  return stats;
}

}  // namespace apilake
