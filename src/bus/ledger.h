// The delivery ledger: makes "files in the lake" + "acks on the bus" exactly-once together.
// Protocol for one batch (see docs/delivery.md):
//   1. the consumer writes every output file to a staging path and fsyncs it;
//   2. prepare(): records durably "batch B: staged S_i becomes F_i, holds messages M";
//   3. each S_i is moved to F_i (Lake::commit_staged, idempotent);
//   4. commit(): marks B committed and acks M in one step.
// pending() returns prepared-but-uncommitted batches; the consumer rolls them forward (3 and 4), or
// abandon()s one whose staged file is gone before it reached its final name.
// A message id already in a prepared or committed batch of this consumer is skipped and acked, and
// so is a message whose dedup key (bus.h kDedupKeyAttribute: the publisher's identity of the content,
// "<extraction_id>:<page>") is: a republished page (Pub/Sub cannot drop it) is not written twice.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace apilake {

struct StagedFile {
  std::string staged;  // local path of the staged file
  std::string final;   // lake-relative final path
};

// Counts a batch contributes per extraction id (for GET /v1/extractions/{id}).
struct ExtractionCounts {
  int64_t rows = 0;          // curated rows, or archived messages for the archiver
  int64_t deadlettered = 0;
};

struct PreparedBatch {
  std::string consumer;                       // "curate", "archive", ...
  std::string batch_id;
  std::vector<StagedFile> files;
  std::vector<std::string> message_ids;
  std::vector<std::string> ack_ids;
  std::vector<std::string> keys;              // dedup key per message id ("" = none); filled by the Consumer
  std::map<std::string, ExtractionCounts> counts;
};

class Ledger {
 public:
  virtual ~Ledger() = default;
  virtual void prepare(const PreparedBatch& batch) = 0;
  // Marks the batch committed and acks its messages on `subscription`, atomically where the bus allows.
  // Idempotent; throws for a batch that was never prepared.
  virtual void commit(const PreparedBatch& batch, const std::string& subscription) = 0;
  virtual std::vector<PreparedBatch> pending(const std::string& consumer) = 0;
  // Forgets a prepared batch that can never be rolled forward (a staged file is lost and its final
  // name does not exist): its messages become deliverable again on `subscription`, even those whose
  // redelivered copies were acked as duplicates meanwhile. No-op for an unknown batch; throws for a
  // committed one.
  virtual void abandon(const PreparedBatch& batch, const std::string& subscription) = 0;
  // True when message_id is in a prepared or committed batch of `consumer`.
  virtual bool seen(const std::string& consumer, const std::string& message_id) = 0;
  // True when a message with this dedup key is in a prepared or committed batch of `consumer` (the
  // same page published again under a new message id). Buses that drop such publishes at the source
  // (SqliteBus) never deliver a second copy and may answer false.
  virtual bool seen_key(const std::string& consumer, const std::string& dedup_key) = 0;
  // Sum over committed batches of `consumer` for one extraction.
  virtual ExtractionCounts counts(const std::string& consumer, const std::string& extraction_id) = 0;
};

}  // namespace apilake
