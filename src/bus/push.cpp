#include "bus/push.h"

#include <stdexcept>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bus/pubsub_bus.h"
#include "net/base64.h"

namespace apilake {

namespace json = boost::json;

Message parse_push_envelope(const std::string& body, std::string& subscription) {
  json::value doc;
  try {
    doc = json::parse(body);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("push envelope is not JSON: ") + e.what());
  }
  const auto* root = doc.if_object();
  if (!root) throw std::invalid_argument("push envelope must be a JSON object");
  const auto* sub = root->if_contains("subscription");
  if (!sub || !sub->is_string()) throw std::invalid_argument("push envelope has no \"subscription\"");
  const std::string full(sub->as_string());
  subscription = full.substr(full.rfind('/') + 1);
  if (subscription.empty()) throw std::invalid_argument("push envelope has an empty subscription name");
  const auto* msg = root->if_contains("message");
  if (!msg || !msg->is_object()) throw std::invalid_argument("push envelope has no \"message\" object");
  const auto& m = msg->as_object();
  auto str = [&](std::initializer_list<const char*> names) -> std::string {
    for (const char* n : names)
      if (const auto* v = m.if_contains(n); v && v->is_string()) return std::string(v->as_string());
    return {};
  };
  Message out;
  out.id = str({"messageId", "message_id"});
  if (out.id.empty()) throw std::invalid_argument("push envelope message has no messageId");
  if (const auto* d = m.if_contains("data")) {
    if (!d->is_string()) throw std::invalid_argument("push envelope data must be a base64 string");
    out.data = base64_decode(d->as_string(), kMessageDataSlack);
  }
  if (const auto* a = m.if_contains("attributes")) {
    if (!a->is_object()) throw std::invalid_argument("push envelope attributes must be an object");
    for (const auto& [k, v] : a->as_object()) {
      if (!v.is_string()) throw std::invalid_argument(fmt::format("push attribute '{}' is not a string", std::string(k)));
      out.attributes.emplace(std::string(k), std::string(v.as_string()));
    }
  }
  if (const auto t = str({"publishTime", "publish_time"}); !t.empty()) out.publish_time_us = parse_rfc3339_us(t);
  // Sent by real Pub/Sub when the subscription has a dead-letter policy; the emulator omits it.
  if (const auto* n = root->if_contains("deliveryAttempt"); n && n->is_number())
    out.delivery_attempt = static_cast<int>(n->to_number<int64_t>());
  return out;
}

void PushReceiver::add(const std::string& subscription, Consumer& consumer) {
  std::lock_guard lock(mu_);
  consumers_[subscription] = &consumer;
}

bool PushReceiver::authorized(std::string_view presented) const {
  if (token_.empty()) return true;
  if (presented.size() != token_.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < token_.size(); ++i) diff |= static_cast<unsigned char>(token_[i] ^ presented[i]);
  return diff == 0;
}

PushResult PushReceiver::handle(const std::string& body) {
  std::string subscription;
  Message m;
  try {
    m = parse_push_envelope(body, subscription);
  } catch (const std::exception& e) {
    return {400, e.what()};
  }
  Consumer* consumer = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = consumers_.find(subscription);
    if (it != consumers_.end()) consumer = it->second;
  }
  if (!consumer) return {404, "no consumer for subscription '" + subscription + "'"};
  try {
    consumer->process({m});
  } catch (const std::exception& e) {
    spdlog::warn("push: message {} on '{}' not committed, asking for redelivery: {}", m.id, subscription, e.what());
    return {503, fmt::format("message {} not committed: {}", m.id, e.what())};
  }
  return {204, ""};
}

}  // namespace apilake
