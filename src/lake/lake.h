// The lake seam: where raw, curated and dead-letter files live. Embedded: LocalLake (a directory);
// scale-out: an S3-API object store (later). Paths are lake-relative with '/' separators, e.g.
// "curated/bcb_sgs/series/2026/11/26/08/000001-000004.parquet".
// Writers produce files in staging_dir() (outside every lake glob), fsync them, and call
// commit_staged(), which makes the final name appear atomically and is idempotent: if the staged file
// is gone and the final name exists, it does nothing.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace apilake {

class Lake {
 public:
  virtual ~Lake() = default;
  // Local scratch directory for staged files (created on construction).
  virtual std::filesystem::path staging_dir() const = 0;
  virtual void commit_staged(const std::filesystem::path& staged, const std::string& final_path) = 0;
  virtual bool exists(const std::string& path) = 0;
  virtual void put(const std::string& path, const std::string& bytes) = 0;  // atomic
  virtual std::optional<std::string> get(const std::string& path) = 0;
  virtual std::vector<std::string> list(const std::string& prefix) = 0;     // files under prefix, sorted
  virtual void remove(const std::string& path) = 0;
  // Local directory where DuckDB can read the lake ("" when not local).
  virtual std::string local_root() const = 0;
};

class LocalLake final : public Lake {
 public:
  explicit LocalLake(std::filesystem::path root);  // creates root and root/_staging
  std::filesystem::path staging_dir() const override;
  void commit_staged(const std::filesystem::path& staged, const std::string& final_path) override;
  bool exists(const std::string& path) override;
  void put(const std::string& path, const std::string& bytes) override;
  std::optional<std::string> get(const std::string& path) override;
  std::vector<std::string> list(const std::string& prefix) override;
  void remove(const std::string& path) override;
  std::string local_root() const override;

 private:
  std::filesystem::path root_;
};

// Validates a lake-relative path (relative, '/'-separated, no empty/"."/".." segments, no NUL, not
// inside "_staging") and returns it; for prefixes "" is the whole lake and a trailing '/' is dropped.
// Throws std::invalid_argument. Every Lake implementation checks its paths with it.
std::string checked_lake_path(const std::string& path, bool is_prefix);

// fsyncs a file's contents (throws on failure); used by every writer of staged files.
void fsync_file(const std::filesystem::path& file);

// "YYYY/MM/DD/HH" of a UTC time in microseconds since the epoch (the seed hour layout).
std::string hour_path(int64_t time_us);

}  // namespace apilake
