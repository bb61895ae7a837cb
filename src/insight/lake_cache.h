// A local mirror of the lake's curated Parquet objects, so DuckDB (which reads local files only: the
// query session has external access off) can query an object-store lake.
// Curated files are immutable: a name, once committed, always holds the same bytes (names derive
// from contents; compaction writes new names and removes old ones). So a refresh only downloads
// names it has not got and deletes local copies whose object is gone — no content comparison.
// A download lands under dir/_staging first and is renamed into place: a query never sees half a file.
// Thread-safe (one refresh at a time).
#pragma once
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <mutex>
#include <string>

#include "lake/lake.h"

namespace apilake {

class LakeCache {
 public:
  struct Stats {
    std::size_t downloaded = 0;
    std::size_t removed = 0;
    std::size_t files = 0;  // cached after the refresh
    bool skipped = false;   // throttled: nothing was checked
  };

  // dir: absolute local directory owned by the cache (created); lake path P is cached at dir/P.
  // The lake must outlive the cache.
  LakeCache(Lake& lake, std::filesystem::path dir,
            std::chrono::milliseconds min_interval = std::chrono::milliseconds(500));

  const std::filesystem::path& dir() const { return dir_; }

  // Mirrors curated/**/*.parquet. Does nothing when the last successful refresh was less than
  // min_interval ago (unless force). Throws (lake or disk errors) leaving the cache consistent: every
  // file in it is a whole copy of an object that existed.
  Stats refresh(bool force = false);

 private:
  Lake& lake_;
  std::filesystem::path dir_;
  std::chrono::milliseconds min_interval_;
  std::chrono::steady_clock::time_point last_{};
  bool synced_ = false;
  std::mutex mu_;
};

}  // namespace apilake
