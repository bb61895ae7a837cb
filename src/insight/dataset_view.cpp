#include "insight/dataset_view.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

namespace apilake {
namespace {

namespace fs = std::filesystem;

struct Listed {
  std::string path;
  int64_t size;
  int64_t mtime_ns;
};

// Every regular *.parquet below dir, sorted by path (the order union_by_name over the glob used).
std::vector<Listed> list_parquet(const std::string& dir) {
  std::vector<Listed> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".parquet" || !it->is_regular_file(ec)) continue;
    std::string path = it->path().string();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;  // removed while listing (compaction): not in the lake any more
    out.push_back({std::move(path), static_cast<int64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec});
  }
  std::sort(out.begin(), out.end(), [](const Listed& a, const Listed& b) { return a.path < b.path; });
  return out;
}

// The file's columns as DuckDB reads them, "name type" lines sorted: files with equal keys can share
// one read_parquet without union_by_name (DuckDB maps columns by name, so their order may differ).
std::string column_set(duck::Connection& con, const std::string& path) {
  auto r = con.query("DESCRIBE SELECT * FROM read_parquet(" + duck::quote_literal(path) + ", hive_partitioning=false)");
  std::vector<std::string> cols;
  for (std::size_t i = 0; i < r.row_count(); ++i)
    cols.push_back(r.text(0, i).value_or("") + " " + r.text(1, i).value_or(""));
  std::sort(cols.begin(), cols.end());
  std::string key;
  for (const auto& c : cols) key += c + "\n";
  return key;
}

}  // namespace

std::string dataset_view_sql(const std::string& view, const std::vector<std::vector<std::string>>& groups) {
  std::string sql = "CREATE OR REPLACE VIEW " + duck::quote_ident(view) + " AS ";
  bool first = true;
  for (const auto& files : groups) {
    if (files.empty()) continue;
    if (!first) sql += "\nUNION ALL BY NAME\n";
    first = false;
    sql += "SELECT * FROM read_parquet([";
    for (std::size_t i = 0; i < files.size(); ++i) sql += (i ? ", " : "") + duck::quote_literal(files[i]);
    sql += "], hive_partitioning=false)";
  }
  return sql;
}

bool stale_view_error(std::string_view m) {
  return m.find("Contents of view were altered") != std::string_view::npos ||  // a file's columns changed
         m.find("No files found that match the pattern") != std::string_view::npos ||  // removed before the bind
         m.find("No such file or directory") != std::string_view::npos;  // removed between bind and scan
}

DatasetView::DatasetView(std::string name, std::string dir) : name_(std::move(name)), dir_(std::move(dir)) {}

bool DatasetView::sync(duck::Connection& con) {
  const std::vector<Listed> listed = list_parquet(dir_);
  if (listed.empty()) return exists();  // nothing to bind; a view over files since removed stays (queries report it)

  std::map<std::string, File> now;
  bool changed = listed.size() != files_.size();
  for (const auto& l : listed) {
    auto old = files_.find(l.path);
    if (old != files_.end() && old->second.size == l.size && old->second.mtime_ns == l.mtime_ns) {
      now.emplace_hint(now.end(), l.path, old->second);
      continue;
    }
    changed = true;
    std::string key;
    try {
      key = column_set(con, l.path);
    } catch (const duck::Error&) {
      std::error_code ec;
      if (!fs::exists(l.path, ec)) continue;  // removed since the listing: not part of the lake any more
      throw;
    }
    auto [id, fresh] = set_ids_.emplace(std::move(key), set_ids_.size());
    now.emplace_hint(now.end(), l.path, File{l.size, l.mtime_ns, id->second});
  }
  if (!changed && exists()) return true;
  if (now.empty()) return exists();

  // Groups in order of their first file, so the columns come in the order union_by_name gave them.
  std::vector<std::vector<std::string>> groups;
  std::map<std::size_t, std::size_t> group_of;  // column set -> index in groups
  for (const auto& [path, f] : now) {
    auto [g, fresh] = group_of.emplace(f.columns, groups.size());
    if (fresh) groups.emplace_back();
    groups[g->second].push_back(path);
  }
  std::string sql = dataset_view_sql(name_, groups);
  if (sql != sql_) con.execute(sql);  // throws: files_ and sql_ stay as they were, the next sync retries
  files_ = std::move(now);
  sql_ = std::move(sql);
  return true;
}

}  // namespace apilake
