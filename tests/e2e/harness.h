// Test harness for end-to-end tests: runs the real build/apilake as a child process on a free
// loopback port with its own data directory, and talks to it over HTTP (ApilakeProcess: `up --demo`;
// ChildProcess: any argv + environment, e.g. the scale-out roles serve / archive / curate).
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "net/http_client.h"

namespace apilake::test {

inline uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

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

}  // namespace apilake::test
