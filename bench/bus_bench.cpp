// Bus throughput and latency, embedded vs scale-out, on the same input and machine (issue 5, "Done
// when"): SqliteBus (a file under /tmp) against PubSubBus talking to the real Pub/Sub emulator, which
// this bench starts itself on a free loopback port and stops by its process group at the end.
//   publish    — N messages of 1 KB in one publish() call (durable when it returns)
//   pull_ack   — N messages already published, pulled (≤ 500 a call, as the consumer does) and acked
//   round_trip — one message published, pulled and acked: the latency a page sees on the bus
// After the runs it prints msg/s for both buses and the PubSub/SQLite ratio. Each Pub/Sub benchmark
// gets a fresh, warmed-up emulator (slow JVM start, heap growth: see notes/pubsub.md); the figures
// are the emulator's on 2 shared cores, not production Pub/Sub's.
// Usage: build/bench/bus_bench [--benchmark_filter=...]   (APILAKE_BENCH_N: messages per call, 1000)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bus/pubsub_bus.h"
#include "bus/sqlite_bus.h"
#include "net/http_client.h"

namespace fs = std::filesystem;
using namespace apilake;

namespace {

const char* kEmulator = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";

std::size_t messages_per_call() {
  const char* v = std::getenv("APILAKE_BENCH_N");
  return v ? std::stoul(v) : 1000;
}

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The emulator in its own process group (the launcher script and its java), killed as a group.
class Emulator {
 public:
  Emulator() {
    if (!fs::exists(kEmulator))
      throw std::runtime_error(std::string("Pub/Sub emulator not found at ") + kEmulator + " (scripts/setup.sh)");
    host_ = "127.0.0.1:" + std::to_string(free_port());
    log_ = fs::temp_directory_path() / ("apilake-bus-bench-emulator-" + std::to_string(::getpid()) + ".log");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      // Direct memory: the emulator keeps ~64 KB per REST publish (notes/pubsub.md).
      ::setenv("JAVA_OPTS", "-Xmx1g -XX:MaxDirectMemorySize=4g", 1);
      const std::string port = "--port=" + host_.substr(host_.find(':') + 1);
      ::execl(kEmulator, kEmulator, "--host=127.0.0.1", port.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
    HttpOptions o;
    o.timeout = std::chrono::milliseconds(2000);
    HttpClient client(o);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (std::chrono::steady_clock::now() < until) {
      try {
        auto r = client.perform({"GET", "http://" + host_ + "/", {}, ""});
        if (r.status == 200) return;
      } catch (const NetError&) {
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("Pub/Sub emulator exited during start-up; see " + log_.string());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    stop();
    throw std::runtime_error("Pub/Sub emulator did not answer within 90 s; see " + log_.string());
  }
  ~Emulator() { stop(); }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    ::kill(-pid_, SIGKILL);
    pid_ = -1;
  }
  const std::string& host() const { return host_; }

 private:
  pid_t pid_ = -1;
  std::string host_;
  fs::path log_;
};

std::unique_ptr<Emulator> g_emulator;
fs::path g_dir;

void drain(Bus& bus, const std::string& sub, std::size_t n);
std::vector<OutMessage> batch(std::size_t n, std::size_t seq);

// A bus with topic `name` and subscription `name`-sub. Pub/Sub: on a fresh emulator per benchmark
// (it keeps every message in its heap and would run out over a whole run), warmed up with 5k
// messages through publish, pull and ack before anything is measured.
std::unique_ptr<Bus> make_bus(const std::string& kind, const std::string& name) {
  std::unique_ptr<Bus> bus;
  if (kind == "sqlite") {
    bus = std::make_unique<SqliteBus>(g_dir / (name + ".db"));
  } else {
    g_emulator.reset();
    g_emulator = std::make_unique<Emulator>();
    {
      PubSubOptions o;
      o.project = "bench";
      o.endpoint = "http://" + g_emulator->host();
      o.ordering = false;
      PubSubBus warm(o);
      warm.create_topic("warmup");
      warm.create_subscription("warmup-sub", "warmup");
      for (std::size_t i = 0; i < 5; ++i) {
        warm.publish("warmup", batch(1000, i * 1000));
        drain(warm, "warmup-sub", 1000);
      }
    }
    PubSubOptions o;
    o.project = "bench";
    o.endpoint = "http://" + g_emulator->host();
    o.ordering = false;
    bus = std::make_unique<PubSubBus>(o);
  }
  bus->create_topic(name);
  bus->create_subscription(name + "-sub", name);
  return bus;
}

std::vector<OutMessage> batch(std::size_t n, std::size_t seq) {
  std::vector<OutMessage> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    out[i].data = std::string(1024, static_cast<char>('a' + (seq + i) % 26));
    out[i].attributes = {{"extraction_id", "bench"}, {"page", std::to_string(seq + i)}};
  }
  return out;
}

// Pulls and acks exactly n messages (throws if the bus goes quiet for 30 s).
void drain(Bus& bus, const std::string& sub, std::size_t n) {
  std::size_t got = 0;
  auto quiet_since = std::chrono::steady_clock::now();
  while (got < n) {
    auto msgs = bus.pull(sub, 500, std::chrono::seconds(60));
    if (msgs.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // not a hot loop of empty pulls
      if (std::chrono::steady_clock::now() - quiet_since > std::chrono::seconds(30))
        throw std::runtime_error("bus went quiet with " + std::to_string(n - got) + " messages to pull");
      continue;
    }
    quiet_since = std::chrono::steady_clock::now();
    std::vector<std::string> acks;
    for (auto& m : msgs) acks.push_back(m.ack_id);
    bus.ack(sub, acks);
    got += msgs.size();
  }
}

// msg/s per (benchmark, bus), measured over the timed region of the final run.
std::map<std::string, std::map<std::string, double>> g_rate;

void record(benchmark::State& state, const std::string& what, const std::string& kind, std::size_t per_iter,
            std::chrono::steady_clock::duration timed) {
  const double msgs = static_cast<double>(state.iterations()) * static_cast<double>(per_iter);
  state.SetItemsProcessed(static_cast<int64_t>(msgs));
  state.SetBytesProcessed(static_cast<int64_t>(msgs * 1024));
  const double s = std::chrono::duration<double>(timed).count();
  if (s > 0) g_rate[what][kind] = msgs / s;
}

void BM_Publish(benchmark::State& state, const std::string& kind) {
  const std::size_t n = messages_per_call();
  auto bus = make_bus(kind, "publish-" + kind);
  std::size_t seq = 0;
  std::chrono::steady_clock::duration timed{};
  for (auto _ : state) {
    state.PauseTiming();
    auto msgs = batch(n, seq);
    seq += n;
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    auto ids = bus->publish("publish-" + kind, msgs);
    timed += std::chrono::steady_clock::now() - t0;
    benchmark::DoNotOptimize(ids);
    state.PauseTiming();
    drain(*bus, "publish-" + kind + "-sub", n);  // keeps the emulator's memory flat; not timed
    state.ResumeTiming();
  }
  record(state, "publish", kind, n, timed);
}

void BM_PullAck(benchmark::State& state, const std::string& kind) {
  const std::size_t n = messages_per_call();
  auto bus = make_bus(kind, "pull-" + kind);
  std::size_t seq = 0;
  std::chrono::steady_clock::duration timed{};
  for (auto _ : state) {
    state.PauseTiming();
    bus->publish("pull-" + kind, batch(n, seq));
    seq += n;
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    drain(*bus, "pull-" + kind + "-sub", n);
    timed += std::chrono::steady_clock::now() - t0;
  }
  record(state, "pull+ack", kind, n, timed);
}

void BM_RoundTrip(benchmark::State& state, const std::string& kind) {
  auto bus = make_bus(kind, "rt-" + kind);
  std::size_t seq = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    bus->publish("rt-" + kind, batch(1, seq++));
    drain(*bus, "rt-" + kind + "-sub", 1);
  }
  record(state, "round trip", kind, 1, std::chrono::steady_clock::now() - t0);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  g_dir = fs::temp_directory_path() / ("apilake-bus-bench-" + std::to_string(::getpid()));
  fs::create_directories(g_dir);
  int rc = 0;
  try {
    // Fixed iterations: both buses get exactly the same input (20 × N messages; 500 round trips).
    for (const std::string kind : {"sqlite", "pubsub"}) {
      benchmark::RegisterBenchmark(("publish/" + kind).c_str(), BM_Publish, kind)->Unit(benchmark::kMillisecond)->Iterations(20)->UseRealTime();
      benchmark::RegisterBenchmark(("pull_ack/" + kind).c_str(), BM_PullAck, kind)->Unit(benchmark::kMillisecond)->Iterations(20)->UseRealTime();
      benchmark::RegisterBenchmark(("round_trip/" + kind).c_str(), BM_RoundTrip, kind)->Unit(benchmark::kMicrosecond)->Iterations(500)->UseRealTime();
    }
    benchmark::RunSpecifiedBenchmarks();
    std::printf("\n%-12s %14s %14s %10s   (1 KB messages, %zu per call)\n", "", "SqliteBus", "PubSubBus", "ratio",
                messages_per_call());
    for (const auto& [what, rates] : g_rate) {
      const double sq = rates.count("sqlite") ? rates.at("sqlite") : 0, ps = rates.count("pubsub") ? rates.at("pubsub") : 0;
      std::printf("%-12s %10.0f msg/s %10.0f msg/s %9.2fx   (PubSub / SQLite)\n", what.c_str(), sq, ps,
                  sq > 0 ? ps / sq : 0.0);
      if (what == "round trip" && sq > 0 && ps > 0)
        std::printf("%-12s %10.0f us    %10.0f us\n", "  latency", 1e6 / sq, 1e6 / ps);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bus_bench: %s\n", e.what());
    rc = 1;
  }
  g_emulator.reset();
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove_all(g_dir, ec);
  return rc;
}
