// Google Cloud Pub/Sub as the Bus, over the REST API v1 (net/http_client.h; the emulator speaks the
// same paths over plain HTTP). Semantics as bus.h, with Pub/Sub's own differences:
//  - publish() batches across concurrent callers: messages wait in a per-topic queue until a request
//    is full (max_batch_messages ≤ 1000, or max_batch_bytes of JSON body — base64 data included —
//    < 10 MB) or the oldest has waited max_batch_latency; background flushers send them. publish()
//    returns when the server has answered for every message of the call (durable) and throws if a
//    request failed after retries. dedup_key is not enforced by Pub/Sub: it travels as the attribute
//    "dedup_key" and consumers must tolerate a republished page (see docs/delivery.md).
//  - With `ordering`, the attribute ordering_attribute (extraction_id) is the ordering key; one request
//    per topic is in flight at a time so a caller's order survives.
//  - pull() fans out up to max_outstanding_pulls requests of ≤ 100 messages (the server's cap) and
//    never blocks longer than pull_wait. Pulled messages get the subscription's ack deadline; when
//    `lease` differs, one modifyAckDeadline sets it. extend() is modifyAckDeadline, nack() is 0.
//  - create_subscription() adds the dead-letter policy when dead_letter_topic is set (and creates that
//    topic plus a subscription of the same name that keeps the dead letters). Both are idempotent.
// Thread-safe. Every request has a short timeout; transient failures are retried (net/retry.h).
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.h"
#include "net/http_client.h"
#include "net/retry.h"

namespace apilake {

struct PubSubOptions {
  std::string project;                                  // required
  std::string endpoint = "https://pubsub.googleapis.com";
  // Returns an OAuth2 access token for "Authorization: Bearer"; empty function = no auth (emulator).
  std::function<std::string()> access_token;
  bool ordering = true;                                 // ordering key from ordering_attribute
  std::string ordering_attribute = "extraction_id";
  int ack_deadline_s = 60;                              // subscription default lease, 10..600
  std::string dead_letter_topic;                        // "" = no dead-letter policy
  int max_delivery_attempts = 5;                        // 5..100 (Pub/Sub's range)
  std::size_t max_batch_messages = 1000;
  std::size_t max_batch_bytes = 9'500'000;              // request body, after base64
  std::chrono::milliseconds max_batch_latency{5};
  int publish_threads = 2;
  int max_outstanding_pulls = 4;
  // 0: returnImmediately (the emulator; may return nothing on real Pub/Sub even with a backlog);
  // > 0: a waiting pull cut off by the client after this long (an empty result, not an error).
  std::chrono::milliseconds pull_wait{0};
  std::chrono::milliseconds timeout{15000};             // per request
  RetryPolicy retry{};

  // endpoint = http://$PUBSUB_EMULATOR_HOST when that variable is set; the rest as given.
  static PubSubOptions from_environment(std::string project);
};

class PubSubBus final : public Bus {
 public:
  explicit PubSubBus(PubSubOptions options);
  ~PubSubBus() override;  // sends what is queued, then stops the flushers
  PubSubBus(const PubSubBus&) = delete;
  PubSubBus& operator=(const PubSubBus&) = delete;

  void create_topic(const std::string& topic) override;
  void create_subscription(const std::string& subscription, const std::string& topic) override;
  std::vector<std::string> publish(const std::string& topic, const std::vector<OutMessage>& batch) override;
  std::vector<Message> pull(const std::string& subscription, std::size_t max, std::chrono::seconds lease) override;
  void ack(const std::string& subscription, const std::vector<std::string>& ack_ids) override;
  void nack(const std::string& subscription, const std::vector<std::string>& ack_ids) override;
  void extend(const std::string& subscription, const std::vector<std::string>& ack_ids,
              std::chrono::seconds lease) override;

  void delete_subscription(const std::string& subscription);  // tests and tear-down; 404 ok
  std::size_t publish_requests() const;                       // requests sent so far (tests, metrics)
  const PubSubOptions& options() const { return options_; }

 private:
  struct Call;
  struct Entry {
    std::string json;                 // one PubsubMessage, encoded
    std::shared_ptr<Call> call;
    std::size_t index = 0;            // position in the call's result
    std::chrono::steady_clock::time_point queued;
  };
  struct TopicQueue {
    std::deque<Entry> entries;
    std::size_t bytes = 0;
    bool in_flight = false;
  };
  class ClientPool;

  HttpResponse request(const std::string& method, const std::string& path, const std::string& body,
                       std::chrono::milliseconds timeout, bool retry = true);
  void flusher();
  void send_batch(const std::string& topic, std::vector<Entry> entries);
  void modify_deadline(const std::string& subscription, const std::vector<std::string>& ack_ids, int seconds);
  std::vector<Message> pull_once(const std::string& subscription, std::size_t max);
  std::vector<Message> pull_many(const std::string& subscription, std::size_t max);

  PubSubOptions options_;
  std::unique_ptr<ClientPool> clients_;
  mutable std::mutex mu_;
  std::condition_variable queue_cv_;
  std::map<std::string, TopicQueue> queues_;
  bool stopping_ = false;
  std::size_t publish_requests_ = 0;
  std::vector<std::thread> flushers_;
};

// RFC 3339 timestamp ("2026-11-25T10:47:45.692Z", any fraction, Z or ±hh:mm) → µs since the epoch.
// Throws std::invalid_argument when malformed.
int64_t parse_rfc3339_us(std::string_view text);

}  // namespace apilake
