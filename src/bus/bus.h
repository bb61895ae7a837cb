// The message bus seam. Embedded: SqliteBus (this folder); scale-out: Pub/Sub (later).
// Semantics (both implementations): at-least-once. A pulled message is leased to the puller until
// its ack deadline; not acked by then (or nacked) it is delivered again with delivery_attempt + 1.
// After max_delivery_attempts deliveries without an ack it is moved to the subscription's dead
// letters and never delivered again. Messages are delivered to every subscription of their topic.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace apilake {

using Attributes = std::map<std::string, std::string>;

// The attribute that carries OutMessage::dedup_key on buses that cannot enforce it (Pub/Sub); the
// consumers' ledger uses it as the identity of a message's content (ledger.h).
inline constexpr const char* kDedupKeyAttribute = "dedup_key";

struct OutMessage {
  std::string data;          // raw bytes
  Attributes attributes;
  std::string dedup_key;     // optional: a second publish with the same key on the topic is dropped
};

// Every bus leaves at least this much spare capacity after Message::data (capacity() - size()), so a
// consumer can parse the body in place: simdjson reads up to 64 bytes past the end (SIMDJSON_PADDING)
// and otherwise copies each page first. Only capacity is promised; the bytes there are unspecified.
inline constexpr std::size_t kMessageDataSlack = 64;

struct Message {
  std::string id;            // unique per topic, stable across redeliveries
  std::string ack_id;        // what ack/nack/extend take (per delivery)
  std::string data;
  Attributes attributes;
  int64_t publish_time_us = 0;   // microseconds since the Unix epoch, UTC
  int delivery_attempt = 1;
};

class Bus {
 public:
  virtual ~Bus() = default;
  // Idempotent set-up.
  virtual void create_topic(const std::string& topic) = 0;
  virtual void create_subscription(const std::string& subscription, const std::string& topic) = 0;
  // Durable when it returns. Returns the message ids in order ("" for a dropped duplicate).
  virtual std::vector<std::string> publish(const std::string& topic, const std::vector<OutMessage>& batch) = 0;
  // Up to max messages, leased for `lease`; may return fewer or none (does not block long).
  virtual std::vector<Message> pull(const std::string& subscription, std::size_t max,
                                    std::chrono::seconds lease) = 0;
  virtual void ack(const std::string& subscription, const std::vector<std::string>& ack_ids) = 0;
  virtual void nack(const std::string& subscription, const std::vector<std::string>& ack_ids) = 0;
  virtual void extend(const std::string& subscription, const std::vector<std::string>& ack_ids,
                      std::chrono::seconds lease) = 0;
};

}  // namespace apilake
