// Pub/Sub push mode: Pub/Sub (or Cloud Run / Eventarc) POSTs each message to us in a push envelope
//   {"subscription":"projects/P/subscriptions/S","message":{"data":"<base64>","attributes":{…},
//    "messageId":"76","publishTime":"…"},"deliveryAttempt":3?}
// A PushReceiver maps the envelope's subscription to the Consumer registered for it and runs the
// message as a one-message batch through Consumer::process() — the same ledger protocol as pulling.
// The HTTP status tells Pub/Sub what happened: 2xx only once the message is durably committed (or
// was already); 5xx (retry) when committing failed; 4xx for a bad envelope or token.
// Optional shared token: the push endpoint URL carries ?token=… (Pub/Sub sends no Authorization
// header to plain push endpoints) or a caller sends "Authorization: Bearer …".
#pragma once
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "bus/bus.h"
#include "bus/consumer.h"

namespace apilake {

struct PushResult {
  int status = 204;
  std::string detail;  // for the problem body; never contains the token
};

class PushReceiver {
 public:
  explicit PushReceiver(std::string token = "") : token_(std::move(token)) {}
  // `subscription` is the short name (the last segment of projects/P/subscriptions/S).
  void add(const std::string& subscription, Consumer& consumer);
  // True when no token is configured or `presented` equals it (constant time).
  bool authorized(std::string_view presented) const;
  PushResult handle(const std::string& body);

 private:
  std::string token_;
  std::mutex mu_;
  std::map<std::string, Consumer*> consumers_;
};

// The envelope's message as a bus Message (ack_id empty: a push is settled by the HTTP status).
// Throws std::invalid_argument for a malformed envelope; `subscription` gets its short name.
Message parse_push_envelope(const std::string& body, std::string& subscription);

}  // namespace apilake
