#include "bus/fault.h"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace apilake {

namespace {

constexpr std::array<const char*, 5> kPoints = {"in_stage", "after_stage", "after_prepare", "after_rename",
                                                "after_commit_before_return"};

struct Fault {
  bool armed = false;
  std::string consumer;  // "" = any consumer
  std::string point;
  long n = 1;
  std::atomic<long> hits{0};
};

Fault& fault() {
  static Fault f;
  return f;
}

std::once_flag once;
std::string arm_error;

void parse() {
  const char* v = std::getenv("APILAKE_FAULT");
  if (!v || !*v) return;
  std::string s(v);
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    auto colon = s.find(':', start);
    parts.push_back(s.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  auto is_point = [](const std::string& p) {
    for (const char* k : kPoints)
      if (p == k) return true;
    return false;
  };
  auto is_count = [](const std::string& p) {
    return !p.empty() && p.size() < 9 && p.find_first_not_of("0123456789") == std::string::npos && std::stol(p) > 0;
  };
  Fault& f = fault();
  if (parts.size() == 1 && is_point(parts[0])) {
    f.point = parts[0];
  } else if (parts.size() == 2 && is_point(parts[0]) && is_count(parts[1])) {
    f.point = parts[0];
    f.n = std::stol(parts[1]);
  } else if (parts.size() == 2 && is_point(parts[1]) && !parts[0].empty()) {
    f.consumer = parts[0];
    f.point = parts[1];
  } else if (parts.size() == 3 && !parts[0].empty() && is_point(parts[1]) && is_count(parts[2])) {
    f.consumer = parts[0];
    f.point = parts[1];
    f.n = std::stol(parts[2]);
  } else {
    arm_error = "APILAKE_FAULT='" + s +
                "' is malformed: expected [consumer:]point[:n] with point one of in_stage, after_stage, "
                "after_prepare, after_rename, after_commit_before_return and n a positive count";
    return;
  }
  f.armed = true;
}

}  // namespace

bool fault_arm() {
  std::call_once(once, parse);
  if (!arm_error.empty()) throw std::invalid_argument(arm_error);
  return fault().armed;
}

bool fault_hit(const std::string& consumer, const std::string& point) {
  std::call_once(once, parse);
  Fault& f = fault();
  if (!f.armed || f.point != point || (!f.consumer.empty() && f.consumer != consumer)) return false;
  return f.hits.fetch_add(1) + 1 == f.n;
}

void fault_kill() {
  // A marker on stderr for whoever reads the log, then the hardest stop there is.
  static constexpr char msg[] = "apilake: APILAKE_FAULT hit, killing the process\n";
  [[maybe_unused]] auto w = ::write(2, msg, sizeof msg - 1);
  ::raise(SIGKILL);
  ::_exit(137);  // not reached
}

void fault_point(const std::string& consumer, const std::string& point) {
  if (fault_hit(consumer, point)) fault_kill();
}

}  // namespace apilake
