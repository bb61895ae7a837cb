// The embedded bus: one SQLite database (WAL, synchronous=FULL) holds topics, subscriptions,
// messages, per-subscription deliveries and the delivery ledger, so a ledger commit and its acks
// are one transaction. Safe to use from several threads (one connection, serialised by a mutex).
// Message ids are decimal integers, never reused; ack ids are "<message id>:<delivery attempt>".
// Bad arguments (unknown topic/subscription, malformed batches) throw std::invalid_argument;
// database failures throw std::runtime_error.
#pragma once
#include <filesystem>
#include <memory>
#include <mutex>

#include "bus/bus.h"
#include "bus/ledger.h"

struct sqlite3;

namespace apilake {

struct SqliteBusOptions {
  int max_delivery_attempts = 5;   // then the message goes to the subscription's dead letters
};

class SqliteBus final : public Bus, public Ledger {
 public:
  explicit SqliteBus(const std::filesystem::path& db_file, SqliteBusOptions options = {});
  ~SqliteBus() override;

  void create_topic(const std::string& topic) override;
  void create_subscription(const std::string& subscription, const std::string& topic) override;
  std::vector<std::string> publish(const std::string& topic, const std::vector<OutMessage>& batch) override;
  std::vector<Message> pull(const std::string& subscription, std::size_t max, std::chrono::seconds lease) override;
  void ack(const std::string& subscription, const std::vector<std::string>& ack_ids) override;
  void nack(const std::string& subscription, const std::vector<std::string>& ack_ids) override;
  void extend(const std::string& subscription, const std::vector<std::string>& ack_ids,
              std::chrono::seconds lease) override;

  void prepare(const PreparedBatch& batch) override;
  void commit(const PreparedBatch& batch, const std::string& subscription) override;
  std::vector<PreparedBatch> pending(const std::string& consumer) override;
  void abandon(const PreparedBatch& batch, const std::string& subscription) override;
  bool seen(const std::string& consumer, const std::string& message_id) override;
  // Always false: publish() already drops a second message with the same dedup key.
  bool seen_key(const std::string&, const std::string&) override { return false; }
  // Answered from memory after the first read, exactly: every commit() (this process or another on
  // the same file) moves a counter shared through "<db file>-ledger-version", and a moved counter
  // drops the cached counts. Does not wait for publish()/pull() transactions on a hit.
  ExtractionCounts counts(const std::string& consumer, const std::string& extraction_id) override;

  // Introspection for tests and GET /v1/... : messages dead-lettered on a subscription, and how many
  // are waiting (not acked, not dead).
  std::vector<Message> dead_letters(const std::string& subscription);
  std::size_t backlog(const std::string& subscription);

  // Ends every lease at once: the messages are deliverable again now (their attempt counts stay).
  // For start-up in the embedded mode, where the process that held the leases is known to be dead;
  // never call it while another process may be consuming from this database. Returns how many.
  std::size_t release_leases();

 private:
  struct Statements;  // prepared-statement cache
  void require_subscription(const std::string& subscription);  // throws std::invalid_argument
  void prune(int64_t message_id);  // drops a message no subscription or prepared batch still needs
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  SqliteBusOptions options_;
  std::unique_ptr<Statements> stmts_;
  struct CountsCache;  // counts() answers and the shared ledger version (sqlite_bus.cpp)
  std::unique_ptr<CountsCache> counts_cache_;
};

}  // namespace apilake
