// The real Google Cloud Pub/Sub emulator for tests: started lazily by the first test that needs it
// (one per test binary), on a free loopback port, and stopped by its process group id at the end
// (a gtest Environment). Missing emulator = a test FAILURE with a clear message, never a skip.
#pragma once
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "bus/pubsub_bus.h"
#include "net/http_client.h"
#include "support/free_port.h"

namespace apilake::test {

inline const char* kEmulatorBinary = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";

class PubSubEmulator {
 public:
  // "127.0.0.1:PORT", starting the emulator on first use; fails the current test when it cannot.
  static std::string host() {
    auto& e = instance();
    if (e.pid_ <= 0) e.start();
    return e.host_;
  }
  // Options for a PubSubBus on this emulator (started on first use): project "apilake-test", a 10 s
  // ack deadline (Pub/Sub's minimum, so redelivery tests stay short).
  static PubSubOptions options() {
    PubSubOptions o;
    o.project = "apilake-test";
    o.endpoint = "http://" + host();
    o.ack_deadline_s = 10;
    return o;
  }
  static void stop() {
    auto& e = instance();
    if (e.pid_ <= 0) return;
    ::kill(-e.pid_, SIGTERM);  // the group we created: the launcher script and its java
    int status = 0;
    ::waitpid(e.pid_, &status, 0);
    ::kill(-e.pid_, SIGKILL);  // anything in the group that ignored SIGTERM
    e.pid_ = -1;
  }

 private:
  static PubSubEmulator& instance() {
    static PubSubEmulator e;
    return e;
  }
  void start() {
    if (!std::filesystem::exists(kEmulatorBinary)) {
      ADD_FAILURE() << "Pub/Sub emulator not found at " << kEmulatorBinary
                    << " — install the Google Cloud CLI's pubsub emulator (scripts/setup.sh)";
      throw std::runtime_error("Pub/Sub emulator missing");
    }
    const int port = free_port();
    host_ = "127.0.0.1:" + std::to_string(port);
    const std::string log = std::filesystem::temp_directory_path() / ("apilake-pubsub-emulator-" + std::to_string(::getpid()) + ".log");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a crashed test binary does not leave it running
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::setenv("JAVA_OPTS", "-Xmx512m -XX:MaxDirectMemorySize=1g", 1);
      const std::string port_arg = "--port=" + std::to_string(port);
      ::execl(kEmulatorBinary, kEmulatorBinary, "--host=127.0.0.1", port_arg.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
    HttpOptions o;
    o.timeout = std::chrono::milliseconds(2000);
    HttpClient client(o);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        auto r = client.perform({"GET", "http://" + host_ + "/", {}, ""});
        if (r.status == 200 && r.body.find("Ok") != std::string::npos) return;
      } catch (const NetError&) {
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "Pub/Sub emulator exited during start-up; see " << log;
        throw std::runtime_error("Pub/Sub emulator died");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    stop();
    ADD_FAILURE() << "Pub/Sub emulator did not answer within 90 s; see " << log;
    throw std::runtime_error("Pub/Sub emulator not ready");
  }
  int pid_ = -1;
  std::string host_;
};

class PubSubEmulatorEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { PubSubEmulator::stop(); }
};

}  // namespace apilake::test
