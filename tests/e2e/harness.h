// Test harness for end-to-end tests: runs the real build/apilake as a child process on a free
// loopback port with its own data directory, and talks to it over HTTP (ApilakeProcess: `up --demo`;
// ChildProcess: any argv + environment, e.g. the scale-out roles serve / archive / curate), plus the
// API steps every e2e test takes (get_json, example_of, submit, wait_done) and the fixture / archive
// readers they check with (fixture_bodies, curated_rows_by_extraction, b64decode).
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include "duck/duck.h"
#include "net/http_client.h"
#include "support/files.h"
#include "support/free_port.h"

namespace apilake::test {

inline std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("apilake-" + name + "-" + std::to_string(::getpid()) + "-" +
              std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::create_directories(dir);
  return dir;
}

// `apilake up --demo` on a free port; killed (SIGKILL) on destruction if still running.
class ApilakeProcess {
 public:
  ApilakeProcess(std::filesystem::path data_dir, std::vector<std::string> extra = {})
      : data_dir_(std::move(data_dir)), port_(free_port()), extra_(std::move(extra)) {}
  ~ApilakeProcess() { kill(SIGKILL); }
  // Definitions directory for the next start() (default: the repo's sources/).
  void set_sources(std::string dir) { sources_ = std::move(dir); }

  void start() {
    std::vector<std::string> args = {APILAKE_BINARY, "up", "--demo", "--port", std::to_string(port_),
                                     "--data-dir", data_dir_.string(), "--sources", sources_, "--log-level", "warn"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const auto& [name, value] : env_) ::setenv(name.c_str(), value.c_str(), 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::perror("execv");
      ::_exit(127);
    }
    // Ready when /healthz answers.
    for (int i = 0; i < 300; ++i) {
      try {
        if (get("/healthz").status == 200) return;
      } catch (const std::exception&) {
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("apilake exited during start-up");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("apilake did not become ready");
  }

  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // Environment variables for the child (set before the next start()).
  void set_env(const std::string& name, const std::string& value) { env_.emplace_back(name, value); }

  // Waits up to `timeout` for the child to exit on its own; returns its waitpid status, or nullopt
  // when it is still running (then it is left running).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return std::nullopt;
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      if (std::chrono::steady_clock::now() >= until) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  HttpResponse get(const std::string& path) { return call("GET", path, ""); }
  HttpResponse post(const std::string& path, const std::string& body) { return call("POST", path, body); }
  HttpResponse call(const std::string& method, const std::string& path, const std::string& body,
                    Headers headers = {{"Content-Type", "application/json"}}) {
    HttpRequest r;
    r.method = method;
    r.url = "http://127.0.0.1:" + std::to_string(port_) + path;
    r.body = body;
    r.headers = std::move(headers);
    return client_.perform(r);
  }
  uint16_t port() const { return port_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }

 private:
  std::filesystem::path data_dir_;
  uint16_t port_;
  std::vector<std::string> extra_;
  std::vector<std::pair<std::string, std::string>> env_;
  std::string sources_ = std::string(APILAKE_SOURCE_DIR) + "/sources";
  pid_t pid_ = -1;
  HttpClient client_{HttpOptions{}};
};

// Any child process (a role of the scale-out suite: `apilake serve|archive|curate`, or a server):
// argv + extra environment, stdout and stderr appended to `log`. It dies with the test binary
// (PR_SET_PDEATHSIG) and is SIGKILLed by its PID on destruction if still running.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> args, std::vector<std::pair<std::string, std::string>> env,
               std::filesystem::path log)
      : args_(std::move(args)), env_(std::move(env)), log_(std::move(log)) {}
  ~ChildProcess() { kill(SIGKILL); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void start() {
    if (pid_ > 0) throw std::runtime_error("already running: " + args_.at(0));
    if (::access(args_.at(0).c_str(), X_OK) != 0) throw std::runtime_error("not executable: " + args_.at(0));
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (const auto& [name, value] : env_) ::setenv(name.c_str(), value.c_str(), 1);
      if (!log_.empty()) {
        const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
          ::dup2(fd, STDOUT_FILENO);
          ::dup2(fd, STDERR_FILENO);
        }
      }
      std::vector<char*> argv;
      for (auto& a : args_) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::perror("execv");
      ::_exit(127);
    }
  }

  // True while the child has not exited (reaps it when it has; exit_status() then tells how).
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      status_ = status;
      return false;
    }
    return true;
  }
  std::optional<int> exit_status() const { return status_; }

  // Sends `sig` and reaps the child (SIGTERM: waits up to `grace`, then SIGKILL).
  void kill(int sig, std::chrono::milliseconds grace = std::chrono::seconds(10)) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    if (sig != SIGKILL && wait_exit(grace)) return;
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    status_ = status;
    pid_ = -1;
  }

  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (!running()) return status_;
      if (std::chrono::steady_clock::now() >= until) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Waits until GET http://127.0.0.1:port/healthz answers 200; throws (with the log's tail) when the
  // child exits first or `timeout` passes.
  void wait_healthy(uint16_t port, std::chrono::milliseconds timeout) {
    HttpOptions o;
    o.connect_timeout = std::chrono::milliseconds(500);
    o.timeout = std::chrono::milliseconds(2000);
    HttpClient client(o);
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      try {
        HttpRequest r;
        r.url = "http://127.0.0.1:" + std::to_string(port) + "/healthz";
        if (client.perform(r).status == 200) return;
      } catch (const std::exception&) {
      }
      if (!running()) throw std::runtime_error(describe() + " exited during start-up:\n" + log_tail());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error(describe() + " did not answer /healthz:\n" + log_tail());
  }

  std::string log_tail(std::size_t max = 4000) const {
    std::ifstream f(log_, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return all.size() > max ? all.substr(all.size() - max) : all;
  }
  std::string describe() const {
    std::string s;
    for (const auto& a : args_) s += (s.empty() ? "" : " ") + a;
    return s;
  }
  pid_t pid() const { return pid_; }
  const std::filesystem::path& log() const { return log_; }

 private:
  std::vector<std::string> args_;
  std::vector<std::pair<std::string, std::string>> env_;
  std::filesystem::path log_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs a shell command, returns its stdout; throws when it exits non-zero.
inline std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + cmd + "\n" + out);
  return out;
}

// GET `path`; a failed expectation unless it answers 200. The body as a JSON object.
inline boost::json::object get_json(ApilakeProcess& app, const std::string& path) {
  auto r = app.get(path);
  EXPECT_EQ(r.status, 200) << path << ": " << r.body;
  return boost::json::parse(r.body).as_object();
}

// The example parameters GET /v1/sources lists for source.endpoint ({} and a failure when absent).
inline boost::json::object example_of(ApilakeProcess& app, const std::string& source, const std::string& endpoint) {
  auto sources = get_json(app, "/v1/sources");
  for (auto& s : sources["sources"].as_array())
    if (s.as_object().at("name").as_string() == source)
      for (auto& e : s.as_object().at("endpoints").as_array())
        if (e.as_object().at("name").as_string() == endpoint) return e.as_object().at("example").as_object();
  ADD_FAILURE() << "no example for " << source << "." << endpoint;
  return {};
}

// POST /v1/extractions; a failed expectation unless it answers 202. The new extraction's id.
inline std::string submit(ApilakeProcess& app, const std::string& source, const std::string& endpoint,
                          const boost::json::object& params) {
  namespace json = boost::json;
  auto r = app.post("/v1/extractions",
                    json::serialize(json::object{{"source", source}, {"endpoint", endpoint}, {"params", params}}));
  EXPECT_EQ(r.status, 202) << r.body;
  return std::string(json::parse(r.body).as_object()["id"].as_string());
}

// Polls GET /v1/extractions/<id> (every 50 ms, up to 60 s) until it failed, or succeeded with every
// record accounted for by the curator (curated + deadlettered == records); a failure when time runs
// out. Returns the last status object. `succeeded_at_ms` (steady clock) gets when "succeeded" was
// first seen, before the curator may have finished.
inline boost::json::object wait_done(ApilakeProcess& app, const std::string& id, int64_t* succeeded_at_ms = nullptr) {
  const auto start = std::chrono::steady_clock::now();
  bool seen_succeeded = false;
  boost::json::object s;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
    s = get_json(app, "/v1/extractions/" + id);
    std::string status(s["status"].as_string());
    if (status == "failed") return s;
    if (status == "succeeded" && !seen_succeeded) {
      seen_succeeded = true;
      if (succeeded_at_ms)
        *succeeded_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
    }
    if (status == "succeeded" &&
        s["curated"].as_int64() + s["deadlettered"].as_int64() == s["records"].as_int64())
      return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "extraction " << id << " did not finish: " << boost::json::serialize(s);
  return s;
}

// Every fixture body of a bundled source (sources/<source>/fixtures/*.json), byte for byte.
inline std::set<std::string> fixture_bodies(const std::string& source) {
  std::set<std::string> out;
  const auto dir = std::filesystem::path(APILAKE_SOURCE_DIR) / "sources" / source / "fixtures";
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".json") out.insert(slurp(e.path()));
  return out;
}

// Curated rows per _extraction_id under <data_dir>/curated/<dataset>/**/*.parquet for each dataset
// ("source/endpoint"), counted by DuckDB.
inline std::map<std::string, int64_t> curated_rows_by_extraction(const std::filesystem::path& data_dir,
                                                                 const std::vector<std::string>& datasets) {
  duck::Database db;
  duck::Connection con(db);
  std::map<std::string, int64_t> rows;
  for (const auto& ds : datasets) {
    auto res = con.query("SELECT _extraction_id, count(*) FROM read_parquet(" +
                         duck::quote_literal((data_dir / "curated" / ds / "**" / "*.parquet").string()) + ") GROUP BY 1");
    for (std::size_t r = 0; r < res.row_count(); ++r) rows[*res.text(0, r)] += res.int64(1, r);
  }
  return rows;
}

// Standard base64 (tests/e2e/read_avro.py prints message data so); stops at the first other byte.
inline std::string b64decode(const std::string& in) {
  static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (char c : in) {
    auto pos = chars.find(c);
    if (pos == std::string::npos) break;
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

}  // namespace apilake::test
