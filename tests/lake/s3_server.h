// Test harness: a real S3-compatible server (s3rver from node_modules, installed by scripts/setup.sh)
// on a free loopback port with its own data directory, one per test binary, started on first use and
// stopped (by PID) when the binary's tests end. s3rver accepts any credentials and does not verify
// signatures (tests/net/sigv4_test.cpp checks signing against AWS's documented examples).
// Missing s3rver or node is a test FAILURE with the fix in the message, never a silent skip.
#pragma once
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lake/s3_lake.h"
#include "net/http_client.h"
#include "support/free_port.h"

namespace apilake::test {

class S3Server {
 public:
  static constexpr const char* kBucket = "apilake-test";

  // The binary's server, started on first call. Throws std::runtime_error when it cannot start.
  static S3Server& shared() {
    static S3Server* server = [] {
      auto* s = new S3Server();
      ::testing::AddGlobalTestEnvironment(new Stopper(s));  // stop after the last test
      return s;
    }();
    if (!server->running()) server->start();
    return *server;
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // A config for an S3Lake under `prefix` of the test bucket (unique prefixes isolate tests).
  S3Config config(const std::string& prefix, const std::filesystem::path& staging) const {
    S3Config c;
    c.bucket = kBucket;
    c.prefix = prefix;
    c.endpoint = endpoint();
    c.region = "us-east-1";
    c.credentials = {"S3RVER", "S3RVER", ""};
    c.path_style = true;
    c.staging_dir = staging;
    c.retry.max_attempts = 2;
    c.retry.base_delay = std::chrono::milliseconds(50);
    return c;
  }

  // Where s3rver keeps objects on disk (tests look for stray files there).
  const std::filesystem::path& data_dir() const { return dir_; }

  bool running() const { return pid_ > 0; }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

 private:
  struct Stopper : ::testing::Environment {
    explicit Stopper(S3Server* s) : s_(s) {}
    void TearDown() override { s_->stop(); }
    S3Server* s_;
  };

  void start() {
    const std::filesystem::path script =
        std::filesystem::path(APILAKE_SOURCE_DIR) / "node_modules" / "s3rver" / "bin" / "s3rver.js";
    if (!std::filesystem::exists(script))
      throw std::runtime_error("s3rver is not installed (" + script.string() +
                               " missing): run scripts/setup.sh (npm ci installs it from package.json)");
    if (::access("/usr/bin/node", X_OK) != 0 && std::system("command -v node >/dev/null 2>&1") != 0)
      throw std::runtime_error("node is not installed: run scripts/setup.sh");
    dir_ = std::filesystem::temp_directory_path() /
           ("apilake-s3rver-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::filesystem::create_directories(dir_);
    for (int attempt = 0; attempt < 3; ++attempt) {  // the free port can be taken before s3rver binds it
      port_ = free_port();
      // --openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation tokens with DES, which
      // OpenSSL 3 (node >= 17) only offers through its legacy provider (else: HTTP 500 on page 2).
      std::vector<std::string> args = {"node", "--openssl-legacy-provider", script.string(), "-d", dir_.string(), "-a", "127.0.0.1",
                                       "-p", std::to_string(port_), "--silent", "--configure-bucket", kBucket};
      pid_ = ::fork();
      if (pid_ == 0) {
        // Dies with the test binary even when that crashes or is killed (no orphaned servers).
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        // Its banner goes to stdout despite --silent; test output stays readable without it.
        if (FILE* devnull = std::fopen("/dev/null", "w")) ::dup2(::fileno(devnull), STDOUT_FILENO);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execvp("node", argv.data());
        std::perror("execvp node");
        ::_exit(127);
      }
      if (wait_ready()) return;
    }
    throw std::runtime_error("s3rver did not start (3 attempts) at " + endpoint());
  }

  // Ready when the bucket answers a listing; false when the child died (e.g. port taken).
  bool wait_ready() {
    HttpOptions o;
    o.connect_timeout = std::chrono::milliseconds(500);
    o.timeout = std::chrono::milliseconds(2000);
    HttpClient client(o);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      try {
        HttpRequest r;
        r.url = endpoint() + "/" + kBucket + "?list-type=2&max-keys=1";
        if (client.perform(r).status == 200) return true;
      } catch (const NetError&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    throw std::runtime_error("s3rver did not answer within 30 s at " + endpoint());
  }

  std::filesystem::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace apilake::test
