// A dataset's view, as both readers of the lake (QueryService, InsightService) create it: <source>_<endpoint>
// over every curated/<source>/<endpoint>/**/*.parquet file, with every column any file has (NULL in rows
// of files that lack it, columns in order of first appearance) — what
// read_parquet(glob, union_by_name=true) gives — but without decoding every file's footer each time the
// view is bound. DuckDB re-binds a view for every statement that uses it, and a union_by_name bind
// decodes all footers at once (~27 KB per file per bind: docs/performance.md "Memory", rounds 4-5).
//
// How: sync() lists the folder and reads the columns of each file it has not seen (one footer, once per
// file while its size and mtime stay the same). Files with the same column set form a group; each group is
// one read_parquet over its explicit file list without union_by_name (DuckDB binds it from the group's
// first file and maps the others by name), and the groups are combined with UNION ALL BY NAME. So a bind
// decodes one footer per column set (schema version), whatever the file count, and the view is re-created
// only when the files changed. Files written before this (no schema tag needed), dead-letter replays and
// compacted files are all read the same way.
// Not thread-safe: one owner, under the lock that guards its DuckDB connection.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "duck/duck.h"

namespace apilake {

// The view's SQL over files grouped by column set: groups in the given order, files of a group in the
// given order (the first one binds the group). Requires at least one non-empty group.
std::string dataset_view_sql(const std::string& view, const std::vector<std::vector<std::string>>& groups);

// DuckDB errors that mean a view may no longer match its files (one removed, e.g. by compaction, or
// rewritten between the view's sync and its use): sync() and run the statement again, once.
bool stale_view_error(std::string_view duckdb_message);

class DatasetView {
 public:
  DatasetView(std::string name, std::string dir);

  // Lists dir; reads the columns of new or changed files; (re)creates the view on con when the set of
  // files changed. Returns whether the view exists (false until the folder holds a .parquet file).
  // Throws duck::Error when a file's columns cannot be read or the view cannot be created; the view
  // then stays as it was and the next sync tries again.
  bool sync(duck::Connection& con);

  const std::string& name() const { return name_; }
  const std::string& dir() const { return dir_; }
  bool exists() const { return !sql_.empty(); }
  std::size_t files() const { return files_.size(); }  // as of the last sync

 private:
  struct File {
    int64_t size = 0;
    int64_t mtime_ns = 0;
    std::size_t columns = 0;  // its column set's id (set_ids_)
  };
  std::string name_, dir_;
  std::map<std::string, File> files_;         // path -> as last read
  std::map<std::string, std::size_t> set_ids_;  // column set ("name type" lines, sorted) -> index
  std::string sql_;                           // the view as created ("" = none yet)
};

}  // namespace apilake
