// The Ledger for scale-out (Pub/Sub + object-store lake, many consumer processes): manifests live in
// the lake, under _ledger/<consumer>/:
//   <batch_id>.prepared.json   prepare(): files (staged → final), message ids, ack ids, counts, owner
//   <batch_id>.committed.json  commit(): the same manifest; the object name is the commit point.
//                              The messages are acked on the bus after it exists.
// seen() = the message is in a committed batch of the consumer (any process), or in a batch this
// instance has prepared and not finished; seen_key() the same for a dedup key (a page republished
// under a new message id), and a commit that overlaps a committed batch by id or by key rolls back. The committed index is built by listing at first use and
// listed again (only new manifests are read) on a miss at most every `relist_interval`, and always
// just before a commit, where a batch that lost a race with another process is rolled back instead
// of committed (see docs/delivery.md, "Pub/Sub", for the exact guarantee).
// pending() returns only batches prepared by this `instance` (their staged files are local to it).
// Thread-safe.
#pragma once
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_set>

#include "bus/bus.h"
#include "bus/ledger.h"
#include "bus/object_store.h"

namespace apilake {

struct ObjectLedgerOptions {
  std::string instance;                                   // stable id of this process (host name, pod name)
  std::chrono::milliseconds relist_interval{2000};
};

class ObjectLedger final : public Ledger {
 public:
  ObjectLedger(ObjectStore& store, Bus& bus, ObjectLedgerOptions options);
  void prepare(const PreparedBatch& batch) override;
  void commit(const PreparedBatch& batch, const std::string& subscription) override;
  std::vector<PreparedBatch> pending(const std::string& consumer) override;
  void abandon(const PreparedBatch& batch, const std::string& subscription) override;
  bool seen(const std::string& consumer, const std::string& message_id) override;
  bool seen_key(const std::string& consumer, const std::string& dedup_key) override;
  ExtractionCounts counts(const std::string& consumer, const std::string& extraction_id) override;

  static std::string prepared_path(const std::string& consumer, const std::string& batch_id);
  static std::string committed_path(const std::string& consumer, const std::string& batch_id);

 private:
  struct Index {
    std::set<std::string> manifests;                         // committed manifest paths read
    std::unordered_set<std::string> ids;                     // message ids in committed batches
    std::map<std::string, std::string> owner_of;             // message id → committed batch id
    std::map<std::string, std::string> key_owner;            // dedup key → committed batch id
    std::map<std::string, ExtractionCounts> counts;          // per extraction
    std::unordered_set<std::string> own_prepared;            // message ids of this instance's open batches
    std::unordered_set<std::string> own_prepared_keys;       // their dedup keys
    std::chrono::steady_clock::time_point listed{};
    bool ever_listed = false;
  };
  void refresh(const std::string& consumer, Index& index);   // caller holds mu_
  void add_committed(Index& index, const PreparedBatch& batch);   // caller holds mu_
  static void add_own(Index& index, const PreparedBatch& batch);  // caller holds mu_
  static void forget_own(Index& index, const PreparedBatch& batch);
  Index& index(const std::string& consumer);                 // caller holds mu_
  ObjectStore& store_;
  Bus& bus_;
  ObjectLedgerOptions options_;
  std::mutex mu_;
  std::map<std::string, Index> indexes_;
};

// Manifest JSON (exposed for tests and tools).
std::string manifest_json(const PreparedBatch& batch, const std::string& owner);
PreparedBatch parse_manifest(const std::string& text, std::string* owner = nullptr);

}  // namespace apilake
