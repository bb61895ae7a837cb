// One consumer loop per subscription: pulls, batches by count and age, hands the batch to a
// BatchHandler that stages output files, then runs the ledger protocol (ledger.h) and acks.
// Back-pressure: at most max_messages are held; nothing is pulled while a batch is being written.
// A failure never stops the loop: a handler that throws gets its batch nacked; a failed file commit
// leaves the batch pending in the ledger and recover() retries it before the next step.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.h"
#include "bus/ledger.h"

namespace apilake {

// Turns a batch into staged files + per-extraction counts. Must not touch the lake's final names.
// Throwing fails the batch: its messages are nacked (and dead-lettered after N attempts).
class BatchHandler {
 public:
  virtual ~BatchHandler() = default;
  virtual PreparedBatch stage(const std::vector<Message>& batch) = 0;
};

// Moves a staged file into its final place (Lake::commit_staged); idempotent.
using CommitFile = std::function<void(const StagedFile&)>;

struct ConsumerOptions {
  std::string consumer;          // ledger name, e.g. "curate"
  std::string subscription;
  std::size_t max_messages = 500;
  std::chrono::milliseconds max_age{1000};   // flush a non-empty batch after this long
  std::chrono::seconds lease{60};
  std::chrono::milliseconds idle_sleep{50};  // between empty pulls
};

class Consumer {
 public:
  Consumer(Bus& bus, Ledger& ledger, BatchHandler& handler, CommitFile commit_file, ConsumerOptions options);
  ~Consumer();                 // stops and joins
  void recover();              // rolls pending batches forward; start() calls it first
  void start();                // runs the loop on its own thread
  void stop();                 // flushes nothing: unacked messages come back on restart
  // Runs one pull/flush step synchronously (tests); returns messages committed.
  std::size_t run_once(bool force_flush);
  // Push mode (bus/push.h): runs messages that arrived without a pull through the same commit path
  // (seen → skip; stage, prepare, move, commit). Returns once they are durably committed (or were
  // already); throws when they are not, so the sender redelivers. Nothing is nacked. Serialised.
  void process(const std::vector<Message>& messages);

 private:
  void loop();
  std::size_t step(bool force_flush, bool& pulled_any);
  std::size_t flush();
  std::size_t settle(std::vector<Message> messages, bool pushed);
  void extend_if_due();
  Bus& bus_;
  Ledger& ledger_;
  BatchHandler& handler_;
  CommitFile commit_file_;
  ConsumerOptions options_;
  std::vector<Message> held_;
  std::chrono::steady_clock::time_point oldest_{};
  std::chrono::steady_clock::time_point extended_{};  // last lease extension of held_
  bool recover_due_ = false;  // a batch was left pending: roll it forward before the next step
  std::mutex process_mu_;   // process() callers (HTTP threads) one at a time
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace apilake
