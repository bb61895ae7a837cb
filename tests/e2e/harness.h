// Test harness for end-to-end tests: runs the real build/apilake as a child process on a free
// loopback port with its own data directory, and talks to it over HTTP.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
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
