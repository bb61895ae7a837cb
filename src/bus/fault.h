// Fault injection for the crash tests (tests/e2e/crash_test.cpp) — inert in production.
// The consumer calls fault_point(consumer, point) at each step of the ledger protocol
// (docs/delivery.md). Nothing happens unless the environment variable APILAKE_FAULT was set when the
// process started; production never sets it. Format:
//   APILAKE_FAULT=[<consumer>:]<point>[:<n>]     e.g. "curate:after_prepare:1", "after_rename"
// point: in_stage | after_stage | after_prepare | after_rename | after_commit_before_return.
// On the n-th hit (default 1) of that point (by that consumer, when one is named) the process dies at
// once with SIGKILL: no destructors, no flush, no stop() — as a power cut or OOM kill would leave it.
// A malformed value is refused at start-up (fault_arm throws), never silently ignored.
#pragma once
#include <string>

namespace apilake {

// Reads APILAKE_FAULT (once; the embedded pipeline calls it at start-up, the first fault_point call
// does otherwise). Throws std::invalid_argument for a malformed value. Returns true when armed.
bool fault_arm();

// Counts a hit of (consumer, point); true on the armed n-th hit. Lets a caller do point-specific
// damage before dying (in_stage tears a staged file), then fault_kill().
bool fault_hit(const std::string& consumer, const std::string& point);

// SIGKILLs the process (a marker line goes to stderr first).
[[noreturn]] void fault_kill();

// fault_hit + fault_kill: dies when the armed fault is hit; otherwise returns. Cheap when unarmed.
void fault_point(const std::string& consumer, const std::string& point);

}  // namespace apilake
