#include "bus/consumer.h"

#include "bus/fault.h"

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace apilake {

namespace {

std::vector<std::string> ack_ids_of(const std::vector<Message>& messages) {
  std::vector<std::string> out;
  out.reserve(messages.size());
  for (const auto& m : messages) out.push_back(m.ack_id);
  return out;
}

void remove_staged(const PreparedBatch& batch) {
  std::error_code ec;
  for (const auto& f : batch.files) std::filesystem::remove(f.staged, ec);
}

// The publisher's identity of a message's content ("" = none): a page republished under a new
// message id carries the same key (ledger.h).
const std::string& key_of(const Message& m) {
  static const std::string none;
  auto it = m.attributes.find(kDedupKeyAttribute);
  return it == m.attributes.end() ? none : it->second;
}

// Keeps a batch's leases alive from its own thread while the batch is staged and its files are
// moved into the lake (both can be slow: a big curate batch, an upload). Without it a lease could
// run out mid-batch and the bus would hand the messages to another consumer process, which would
// write them too. Extends every lease/3, so one late or failed extension still leaves time.
// stop() joins, so no extension can land after the caller's own ack or nack (it would undo a nack).
class LeaseKeeper {
 public:
  LeaseKeeper(Bus& bus, const ConsumerOptions& o, std::vector<std::string> ack_ids)
      : bus_(bus), options_(o), ack_ids_(std::move(ack_ids)) {
    if (ack_ids_.empty()) return;
    thread_ = std::thread([this] { run(); });
  }
  ~LeaseKeeper() { stop(); }
  void stop() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    const auto every = std::chrono::duration_cast<std::chrono::milliseconds>(options_.lease) / 3;
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, every, [this] { return done_; })) {
      lock.unlock();
      try {
        bus_.extend(options_.subscription, ack_ids_, options_.lease);
        spdlog::debug("{}: extended the lease of {} messages being written", options_.consumer, ack_ids_.size());
      } catch (const std::exception& e) {
        spdlog::warn("{}: extending the lease of a batch being written failed (retried in {} ms): {}",
                     options_.consumer, every.count(), e.what());
      }
      lock.lock();
    }
  }
  Bus& bus_;
  const ConsumerOptions& options_;
  std::vector<std::string> ack_ids_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

Consumer::Consumer(Bus& bus, Ledger& ledger, BatchHandler& handler, CommitFile commit_file, ConsumerOptions options)
    : bus_(bus), ledger_(ledger), handler_(handler), commit_file_(std::move(commit_file)), options_(std::move(options)) {
  if (options_.consumer.empty()) throw std::invalid_argument("consumer: a ledger name (consumer) is required");
  if (options_.subscription.empty()) throw std::invalid_argument("consumer: a subscription is required");
  if (options_.max_messages == 0) throw std::invalid_argument("consumer: max_messages must be at least 1");
  if (options_.lease.count() <= 0) throw std::invalid_argument("consumer: lease must be positive");
  if (!commit_file_) throw std::invalid_argument("consumer: a commit_file function is required");
}

Consumer::~Consumer() {
  try {
    stop();
  } catch (...) {
    // a destructor must not throw; stop() already logs
  }
}

void Consumer::start() {
  if (running_.exchange(true)) return;
  try {
    recover();
  } catch (const std::exception& e) {
    spdlog::error("{}: recovery failed, will retry: {}", options_.consumer, e.what());
    recover_due_ = true;
  }
  thread_ = std::thread([this] { loop(); });
}

void Consumer::stop() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
  if (held_.empty()) return;
  // Held messages are in no batch: hand them back now rather than when their lease runs out.
  try {
    bus_.nack(options_.subscription, ack_ids_of(held_));
  } catch (const std::exception& e) {
    spdlog::warn("{}: could not nack {} held messages on stop (they return when their lease expires): {}",
                 options_.consumer, held_.size(), e.what());
  }
  held_.clear();
}

void Consumer::loop() {
  // Sleeps in short slices so stop() is not kept waiting.
  auto pause = [this](std::chrono::milliseconds total) {
    const auto until = std::chrono::steady_clock::now() + total;
    while (running_ && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(total, std::chrono::milliseconds(50)));
  };
  while (running_) {
    bool pulled = false;
    std::size_t committed = 0;
    try {
      committed = step(false, pulled);
    } catch (const std::exception& e) {
      spdlog::error("{}: consumer step failed: {}", options_.consumer, e.what());
      pause(std::chrono::milliseconds(1000));
      continue;
    } catch (...) {
      spdlog::error("{}: consumer step failed with an unknown exception", options_.consumer);
      pause(std::chrono::milliseconds(1000));
      continue;
    }
    if (!pulled && committed == 0) pause(options_.idle_sleep);
  }
}

std::size_t Consumer::run_once(bool force_flush) {
  bool pulled = false;
  return step(force_flush, pulled);
}

std::size_t Consumer::step(bool force_flush, bool& pulled_any) {
  pulled_any = false;
  if (recover_due_) recover();
  if (held_.size() < options_.max_messages) {
    auto messages = bus_.pull(options_.subscription, options_.max_messages - held_.size(), options_.lease);
    pulled_any = !messages.empty();
    std::vector<std::string> duplicates;
    const auto now = std::chrono::steady_clock::now();
    for (auto& m : messages) {
      // Already in a batch of ours (a redelivery after a lost ack or a crash): its file exists or
      // will be rolled forward, so only the ack is missing.
      if (ledger_.seen(options_.consumer, m.id) || ledger_.seen_key(options_.consumer, key_of(m))) {
        duplicates.push_back(m.ack_id);
        continue;
      }
      // Redelivered while still held (its lease ran out): keep one copy, with the live ack id.
      auto it = std::find_if(held_.begin(), held_.end(), [&](const Message& h) { return h.id == m.id; });
      if (it != held_.end()) {
        it->ack_id = m.ack_id;
        it->delivery_attempt = m.delivery_attempt;
        continue;
      }
      if (held_.empty()) oldest_ = extended_ = now;
      held_.push_back(std::move(m));
    }
    if (!duplicates.empty()) {
      spdlog::info("{}: acking {} redelivered messages already in the ledger", options_.consumer, duplicates.size());
      bus_.ack(options_.subscription, duplicates);
    }
  }
  if (held_.empty()) return 0;
  const bool due = force_flush || held_.size() >= options_.max_messages ||
                   std::chrono::steady_clock::now() - oldest_ >= options_.max_age;
  if (!due) {
    extend_if_due();
    return 0;
  }
  return flush();
}

void Consumer::extend_if_due() {
  const auto now = std::chrono::steady_clock::now();
  if (now - extended_ < options_.lease / 2) return;
  bus_.extend(options_.subscription, ack_ids_of(held_), options_.lease);
  extended_ = now;
}

std::size_t Consumer::flush() {
  std::vector<Message> messages = std::move(held_);
  held_.clear();
  return settle(std::move(messages), false);
}

void Consumer::process(const std::vector<Message>& messages) {
  std::lock_guard lock(process_mu_);
  if (recover_due_) recover();
  std::vector<Message> fresh;
  for (const auto& m : messages)
    if (!ledger_.seen(options_.consumer, m.id) && !ledger_.seen_key(options_.consumer, key_of(m))) fresh.push_back(m);
  if (fresh.empty()) return;  // a redelivery of something already in the ledger
  const std::size_t n = fresh.size();
  if (settle(std::move(fresh), true) != n)
    throw std::runtime_error(fmt::format("{}: pushed batch not committed yet", options_.consumer));
}

// Steps 1–4 of the ledger protocol for one batch. Pulled batches (pushed = false) are nacked on a
// failure before prepare; pushed ones have nothing to nack: the exception goes to the sender.
std::size_t Consumer::settle(std::vector<Message> messages, bool pushed) {
  // Riders: later copies of a page already in this batch (same dedup key, another message id — a
  // republished page pulled together with the first copy). They are not written; they are acked
  // once the batch commits and handed back with it when it fails.
  std::vector<Message> riders;
  {
    std::set<std::string> keys;
    std::vector<Message> unique;
    for (auto& m : messages) {
      const auto& k = key_of(m);
      if (!k.empty() && !keys.insert(k).second) riders.push_back(std::move(m));
      else unique.push_back(std::move(m));
    }
    messages = std::move(unique);
  }
  auto all_ack_ids = [&] {
    auto ids = ack_ids_of(messages);
    for (const auto& r : riders) ids.push_back(r.ack_id);
    return ids;
  };
  std::optional<LeaseKeeper> keeper;
  if (!pushed) keeper.emplace(bus_, options_, all_ack_ids());
  PreparedBatch batch;
  try {
    batch = handler_.stage(messages);
  } catch (const std::exception& e) {
    if (pushed) throw;
    spdlog::warn("{}: staging a batch of {} messages failed, nacking them: {}", options_.consumer, messages.size(),
                 e.what());
    keeper->stop();
    bus_.nack(options_.subscription, all_ack_ids());
    return 0;
  } catch (...) {
    if (pushed) throw;
    spdlog::warn("{}: staging a batch of {} messages failed (unknown exception), nacking them", options_.consumer,
                 messages.size());
    keeper->stop();
    bus_.nack(options_.subscription, all_ack_ids());
    return 0;
  }

  // The consumer owns the bookkeeping: the ledger name, and which deliveries the batch settles.
  batch.consumer = options_.consumer;
  if (keeper) keeper->stop();  // restarted below for exactly the deliveries the batch settles
  if (batch.message_ids.empty()) {
    for (const auto& m : messages) {
      batch.message_ids.push_back(m.id);
      batch.ack_ids.push_back(m.ack_id);
    }
  } else {
    std::unordered_map<std::string, const Message*> by_id;
    for (const auto& m : messages) by_id.emplace(m.id, &m);
    if (batch.ack_ids.size() != batch.message_ids.size()) {
      batch.ack_ids.clear();
      for (const auto& id : batch.message_ids) {
        auto it = by_id.find(id);
        batch.ack_ids.push_back(it == by_id.end() ? std::string() : it->second->ack_id);
      }
    }
    // Messages the handler left out of its batch are not settled by it: hand them back.
    std::set<std::string> in_batch(batch.message_ids.begin(), batch.message_ids.end());
    std::vector<std::string> left_out;
    for (const auto& m : messages)
      if (!in_batch.count(m.id)) left_out.push_back(m.ack_id);
    if (!left_out.empty() && !pushed) bus_.nack(options_.subscription, left_out);
  }
  {
    std::unordered_map<std::string, const Message*> by_id;
    for (const auto& m : messages) by_id.emplace(m.id, &m);
    batch.keys.clear();
    for (const auto& id : batch.message_ids) {
      auto it = by_id.find(id);
      batch.keys.push_back(it == by_id.end() ? std::string() : key_of(*it->second));
    }
  }
  if (batch.message_ids.empty()) {
    if (!riders.empty() && !pushed) bus_.nack(options_.subscription, ack_ids_of(riders));
    return 0;
  }
  if (!pushed) {
    auto ids = batch.ack_ids;
    for (const auto& r : riders) ids.push_back(r.ack_id);
    keeper.emplace(bus_, options_, std::move(ids));
  }
  if (batch.batch_id.empty())
    batch.batch_id = fmt::format("{}-{}-{}", options_.consumer, batch.message_ids.front(), batch.message_ids.back());

  // Test-only crash points (bus/fault.h; inert unless APILAKE_FAULT is set). in_stage stands for a
  // crash while the staged file was being written: the file is torn to half its length first.
  if (fault_hit(options_.consumer, "in_stage")) {
    if (!batch.files.empty()) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(batch.files.front().staged, ec);
      if (!ec) std::filesystem::resize_file(batch.files.front().staged, size / 2, ec);
    }
    fault_kill();
  }
  fault_point(options_.consumer, "after_stage");

  try {
    ledger_.prepare(batch);
  } catch (const std::exception& e) {
    // Nothing is recorded, so nothing may be moved into the lake: drop the staged files and let the
    // messages come back.
    spdlog::error("{}: preparing batch {} failed, nacking its messages: {}", options_.consumer, batch.batch_id, e.what());
    remove_staged(batch);
    if (pushed) throw;
    keeper->stop();
    bus_.nack(options_.subscription, all_ack_ids());
    return 0;
  }

  fault_point(options_.consumer, "after_prepare");

  try {
    for (const auto& f : batch.files) {
      commit_file_(f);
      fault_point(options_.consumer, "after_rename");  // the first file is in the lake, the rest staged
    }
    if (keeper) keeper->stop();  // before commit() acks: no extension may land after the ack
    ledger_.commit(batch, options_.subscription);
  } catch (const std::exception& e) {
    // The batch is durable in the ledger: recover() finishes it; its messages are not nacked
    // (a redelivery would only be acked as a duplicate).
    spdlog::warn("{}: committing batch {} failed, will roll it forward: {}", options_.consumer, batch.batch_id,
                 e.what());
    recover_due_ = true;
    return 0;
  }
  if (keeper) keeper->stop();
  fault_point(options_.consumer, "after_commit_before_return");
  if (!riders.empty() && !pushed) {
    try {
      bus_.ack(options_.subscription, ack_ids_of(riders));
    } catch (const std::exception& e) {
      // They come back and are acked then: their key is in the committed batch.
      spdlog::info("{}: acking {} republished copies failed ({}); they are skipped when redelivered",
                   options_.consumer, riders.size(), e.what());
    }
  }
  if (!riders.empty())
    spdlog::info("{}: {} republished copies of pages in batch {} acked without writing", options_.consumer,
                 riders.size(), batch.batch_id);
  spdlog::debug("{}: committed batch {} ({} messages, {} files)", options_.consumer, batch.batch_id,
                batch.message_ids.size(), batch.files.size());
  return batch.message_ids.size() + riders.size();
}

void Consumer::recover() {
  const auto batches = ledger_.pending(options_.consumer);
  bool left_pending = false;
  for (const auto& b : batches) {
    bool lost = false;
    try {
      for (const auto& f : b.files) {
        try {
          commit_file_(f);
        } catch (...) {
          // commit_file is idempotent: it fails with the staged file gone only when the final file
          // is missing too, so this batch can never be completed.
          if (!std::filesystem::exists(f.staged)) {
            lost = true;
            break;
          }
          throw;
        }
      }
      if (lost) {
        spdlog::warn("{}: pending batch {} lost a staged file before it reached the lake; abandoning it, its {} "
                     "messages will be delivered again",
                     options_.consumer, b.batch_id, b.message_ids.size());
        ledger_.abandon(b, options_.subscription);
        remove_staged(b);
        continue;
      }
      ledger_.commit(b, options_.subscription);
      spdlog::info("{}: rolled pending batch {} forward ({} messages)", options_.consumer, b.batch_id,
                   b.message_ids.size());
    } catch (const std::exception& e) {
      spdlog::warn("{}: pending batch {} not rolled forward yet: {}", options_.consumer, b.batch_id, e.what());
      left_pending = true;
    }
  }
  recover_due_ = left_pending;
}

}  // namespace apilake
