#include "lake/lake.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>

namespace apilake {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kStaging = "_staging";

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

// Lake paths come from attributes and requests, so they are checked before touching the disk:
// relative, '/'-separated, no empty/"."/".." segments, no NUL, and never inside the staging area.
// For prefixes, "" means the whole lake and a trailing '/' is tolerated.
std::string checked(const std::string& path, bool is_prefix) {
  std::string p = path;
  if (is_prefix) {
    if (p.empty()) return p;
    if (p.back() == '/') p.pop_back();
  }
  if (p.empty()) throw std::invalid_argument("lake path is empty");
  if (p.find('\0') != std::string::npos) throw std::invalid_argument("lake path contains a NUL byte");
  if (p.front() == '/') throw std::invalid_argument(fmt::format("lake path must be relative: '{}'", path));
  std::size_t start = 0;
  bool first = true;
  while (true) {
    const std::size_t slash = p.find('/', start);
    const std::string_view seg(p.data() + start, (slash == std::string::npos ? p.size() : slash) - start);
    if (seg.empty()) throw std::invalid_argument(fmt::format("lake path has an empty segment: '{}'", path));
    if (seg == "." || seg == "..")
      throw std::invalid_argument(fmt::format("lake path must not contain '.' or '..': '{}'", path));
    if (first && seg == kStaging)
      throw std::invalid_argument(fmt::format("lake path points into the staging area: '{}'", path));
    first = false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return p;
}

// Creates the missing directories between root and dir one at a time, fsyncing each parent so that
// the new entries survive a crash together with the file later renamed into them.
void make_dirs_durable(const fs::path& root, const fs::path& dir) {
  std::vector<fs::path> missing;
  for (fs::path d = dir; d != root && !fs::exists(d); d = d.parent_path()) missing.push_back(d);
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    std::error_code ec;
    const bool created = fs::create_directory(*it, ec);
    if (ec) throw std::system_error(ec, fmt::format("cannot create directory {}", it->string()));
    if (created) fsync_file(it->parent_path());
  }
  if (!fs::is_directory(dir)) throw std::runtime_error(fmt::format("{} exists and is not a directory", dir.string()));
}

std::string unique_token() {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t salt = std::random_device{}();
  return fmt::format("{}-{:x}-{}", ::getpid(), salt, counter.fetch_add(1));
}

}  // namespace

std::string checked_lake_path(const std::string& path, bool is_prefix) { return checked(path, is_prefix); }

void fsync_file(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, fmt::format("cannot open {} to fsync", file.string()));
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw_errno(err, fmt::format("fsync of {} failed", file.string()));
  }
  if (::close(fd) != 0) throw_errno(errno, fmt::format("close of {} failed", file.string()));
}

std::string hour_path(int64_t time_us) {
  using namespace std::chrono;
  // Four-digit years only: beyond them the calendar arithmetic would overflow and paths stop sorting.
  constexpr int64_t kMin = -62167219200LL * 1000000;              // 0000-01-01T00:00:00Z
  constexpr int64_t kMax = 253402300800LL * 1000000 - 1;          // 9999-12-31T23:59:59.999999Z
  if (time_us < kMin || time_us > kMax)
    throw std::out_of_range(fmt::format("time {} us is outside years 0000..9999", time_us));
  // floor (not truncation) so that instants before 1970 land in the right hour and day.
  const sys_time<microseconds> t{microseconds{time_us}};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const auto hour = floor<hours>(t - day).count();
  return fmt::format("{:04}/{:02}/{:02}/{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()), hour);
}

LocalLake::LocalLake(fs::path root) : root_(fs::weakly_canonical(fs::absolute(root))) {
  fs::create_directories(root_ / kStaging);
}

fs::path LocalLake::staging_dir() const { return root_ / kStaging; }

std::string LocalLake::local_root() const { return root_.string(); }

void LocalLake::commit_staged(const fs::path& staged, const std::string& final_path) {
  const fs::path target = root_ / checked(final_path, false);
  if (!fs::exists(staged)) {
    // Roll-forward after a crash between rename and the ledger's commit: already in place.
    if (fs::is_regular_file(target)) return;
    throw std::runtime_error(fmt::format("cannot commit {} to {}: staged file is missing and the final file does not exist",
                                         staged.string(), final_path));
  }
  make_dirs_durable(root_, target.parent_path());
  if (::rename(staged.c_str(), target.c_str()) != 0) {
    const int err = errno;
    if (err == EXDEV)
      throw std::runtime_error(fmt::format("cannot commit {}: staged files must be on the lake's filesystem (use {})",
                                           staged.string(), staging_dir().string()));
    throw_errno(err, fmt::format("rename {} -> {} failed", staged.string(), target.string()));
  }
  fsync_file(target.parent_path());
}

bool LocalLake::exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(root_ / checked(path, false), ec);
}

void LocalLake::put(const std::string& path, const std::string& bytes) {
  const std::string rel = checked(path, false);
  const fs::path tmp = staging_dir() / fmt::format("put-{}.tmp", unique_token());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno(errno, fmt::format("cannot create {}", tmp.string()));
  auto fail = [&](int err, const std::string& what) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw_errno(err, what);
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(errno, fmt::format("write to {} failed", tmp.string()));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail(errno, fmt::format("fsync of {} failed", tmp.string()));
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_errno(err, fmt::format("close of {} failed", tmp.string()));
  }
  try {
    commit_staged(tmp, rel);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

std::optional<std::string> LocalLake::get(const std::string& path) {
  const fs::path file = root_ / checked(path, false);
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    if (!fs::exists(file, ec)) return std::nullopt;  // removed between the check and the open
    throw std::runtime_error(fmt::format("cannot open {}", file.string()));
  }
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error(fmt::format("read of {} failed", file.string()));
  return out;
}

std::vector<std::string> LocalLake::list(const std::string& prefix) {
  const std::string rel = checked(prefix, true);
  const fs::path base = rel.empty() ? root_ : root_ / rel;
  std::vector<std::string> out;
  std::error_code ec;
  if (fs::is_regular_file(base, ec)) return {rel};
  if (!fs::is_directory(base, ec)) return out;
  // Writers add and remove files concurrently; an entry vanishing mid-walk is skipped, not an error.
  fs::recursive_directory_iterator it(base, fs::directory_options::skip_permission_denied, ec);
  if (ec) return out;
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      ec.clear();
      break;
    }
    std::error_code st;
    if (it.depth() == 0 && rel.empty() && it->path().filename() == kStaging) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(st)) out.push_back(it->path().lexically_relative(root_).generic_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void LocalLake::remove(const std::string& path) {
  const fs::path file = root_ / checked(path, false);
  std::error_code ec;
  const auto status = fs::symlink_status(file, ec);
  if (!fs::exists(status)) return;  // removing twice is not an error (retries, roll-back)
  if (fs::is_directory(status)) throw std::invalid_argument(fmt::format("lake path is a directory: '{}'", path));
  if (::unlink(file.c_str()) != 0 && errno != ENOENT) throw_errno(errno, fmt::format("cannot remove {}", file.string()));
  fsync_file(file.parent_path());
}

}  // namespace apilake
