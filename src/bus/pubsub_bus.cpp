#include "bus/pubsub_bus.h"

#include <algorithm>
#include <cstdlib>
#include <future>
#include <stdexcept>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "net/base64.h"

namespace apilake {

namespace json = boost::json;

// The result of one publish() call: filled in by whichever flusher sends each of its messages.
struct PubSubBus::Call {
  std::vector<std::string> ids;
  std::size_t remaining = 0;
  std::exception_ptr error;
};

// HttpClient is one-per-thread; the bus's threads (callers, flushers, parallel pulls) borrow one.
// Clients are kept, so their keep-alive connections are reused.
class PubSubBus::ClientPool {
 public:
  explicit ClientPool(HttpOptions options) : options_(std::move(options)) {}
  std::unique_ptr<HttpClient> take() {
    std::lock_guard lock(mu_);
    if (free_.empty()) return std::make_unique<HttpClient>(options_);
    auto c = std::move(free_.back());
    free_.pop_back();
    return c;
  }
  void give(std::unique_ptr<HttpClient> c) {
    std::lock_guard lock(mu_);
    if (free_.size() < 16) free_.push_back(std::move(c));
  }

 private:
  HttpOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<HttpClient>> free_;
};

namespace {

constexpr std::size_t kPullCap = 100;       // the server returns at most this many per pull
constexpr std::size_t kAckIdsPerRequest = 500;  // keeps acknowledge bodies far below the 512 KB limit
constexpr std::size_t kEnvelopeBytes = 16;  // {"messages":[ ... ]} around the entries

std::string error_text(const HttpResponse& r) {
  // The body is Google's error JSON (no secrets); keep it short in logs and exceptions.
  std::string body = r.body.substr(0, 300);
  std::replace(body.begin(), body.end(), '\n', ' ');
  return fmt::format("HTTP {}: {}", r.status, body);
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

int64_t parse_rfc3339_us(std::string_view s) {
  auto bad = [&] { return std::invalid_argument("not an RFC 3339 timestamp: '" + std::string(s.substr(0, 40)) + "'"); };
  auto num = [&](std::size_t pos, std::size_t len) {
    if (pos + len > s.size()) throw bad();
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') throw bad();
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
    throw bad();
  const int y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), se = num(17, 2);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) throw bad();
  std::size_t pos = 19;
  int64_t frac_us = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 6) frac_us = frac_us * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) throw bad();
    for (int i = digits; i < 6; ++i) frac_us *= 10;
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
    offset_s = (num(pos + 1, 2) * 3600 + num(pos + 4, 2) * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    throw bad();
  }
  if (pos != s.size()) throw bad();
  const int64_t secs = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 +
                       mi * 60 + se - offset_s;
  return secs * 1'000'000 + frac_us;
}

PubSubOptions PubSubOptions::from_environment(std::string project) {
  PubSubOptions o;
  o.project = std::move(project);
  if (const char* host = std::getenv("PUBSUB_EMULATOR_HOST"); host && *host) o.endpoint = std::string("http://") + host;
  return o;
}

PubSubBus::PubSubBus(PubSubOptions options) : options_(std::move(options)) {
  if (options_.project.size() < 3) throw std::invalid_argument("pubsub: a project id (3+ characters) is required");
  while (!options_.endpoint.empty() && options_.endpoint.back() == '/') options_.endpoint.pop_back();
  if (options_.endpoint.empty()) throw std::invalid_argument("pubsub: endpoint is empty");
  if (options_.max_batch_messages == 0 || options_.max_batch_messages > 1000)
    throw std::invalid_argument("pubsub: max_batch_messages must be 1..1000");
  if (options_.max_batch_bytes < 1024 || options_.max_batch_bytes >= 10'000'000)
    throw std::invalid_argument("pubsub: max_batch_bytes must be below 10 MB (the server's request limit)");
  if (options_.ack_deadline_s < 10 || options_.ack_deadline_s > 600)
    throw std::invalid_argument("pubsub: ack_deadline_s must be 10..600");
  if (options_.max_delivery_attempts < 5 || options_.max_delivery_attempts > 100)
    throw std::invalid_argument("pubsub: max_delivery_attempts must be 5..100");
  if (options_.publish_threads < 1) options_.publish_threads = 1;
  if (options_.max_outstanding_pulls < 1) options_.max_outstanding_pulls = 1;
  HttpOptions http;
  http.timeout = options_.timeout;
  http.connect_timeout = std::min(options_.timeout, std::chrono::milliseconds(5000));
  http.max_body_bytes = 64u << 20;
  http.max_redirects = 0;
  clients_ = std::make_unique<ClientPool>(http);
  for (int i = 0; i < options_.publish_threads; ++i) flushers_.emplace_back([this] { flusher(); });
}

PubSubBus::~PubSubBus() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  for (auto& t : flushers_) t.join();
}

HttpResponse PubSubBus::request(const std::string& method, const std::string& path, const std::string& body,
                                std::chrono::milliseconds timeout, bool retry) {
  HttpRequest req;
  req.method = method;
  req.url = options_.endpoint + "/v1/" + path;
  req.body = body;
  req.headers.emplace_back("Content-Type", "application/json");
  if (options_.access_token) req.headers.emplace_back("Authorization", "Bearer " + options_.access_token());
  std::unique_ptr<HttpClient> client;
  if (timeout == options_.timeout) {
    client = clients_->take();
  } else {
    HttpOptions http;
    http.timeout = timeout;
    http.max_body_bytes = 64u << 20;
    http.max_redirects = 0;
    client = std::make_unique<HttpClient>(http);
  }
  RetryPolicy once = options_.retry;
  if (!retry) once.max_attempts = 1;
  HttpResponse r = perform_with_retry(*client, req, once);
  if (timeout == options_.timeout) clients_->give(std::move(client));
  return r;
}

// ---- set-up --------------------------------------------------------------------------------------

void PubSubBus::create_topic(const std::string& topic) {
  const auto r = request("PUT", fmt::format("projects/{}/topics/{}", options_.project, topic), "{}", options_.timeout);
  if (r.status == 409 || (r.status >= 200 && r.status < 300)) return;  // 409 ALREADY_EXISTS: idempotent
  throw std::runtime_error(fmt::format("pubsub: creating topic '{}' failed: {}", topic, error_text(r)));
}

void PubSubBus::create_subscription(const std::string& subscription, const std::string& topic) {
  json::object body;
  body["topic"] = fmt::format("projects/{}/topics/{}", options_.project, topic);
  body["ackDeadlineSeconds"] = options_.ack_deadline_s;
  if (options_.ordering) body["enableMessageOrdering"] = true;
  if (!options_.dead_letter_topic.empty()) {
    // Dead letters go to a topic; without a subscription on it they would be dropped.
    create_topic(options_.dead_letter_topic);
    if (options_.dead_letter_topic != topic) {
      json::object dl;
      dl["topic"] = fmt::format("projects/{}/topics/{}", options_.project, options_.dead_letter_topic);
      dl["ackDeadlineSeconds"] = options_.ack_deadline_s;
      const auto r = request("PUT", fmt::format("projects/{}/subscriptions/{}", options_.project, options_.dead_letter_topic),
                             json::serialize(dl), options_.timeout);
      if (r.status != 409 && (r.status < 200 || r.status >= 300))
        throw std::runtime_error(fmt::format("pubsub: creating dead-letter subscription '{}' failed: {}",
                                             options_.dead_letter_topic, error_text(r)));
    }
    json::object policy;
    policy["deadLetterTopic"] = fmt::format("projects/{}/topics/{}", options_.project, options_.dead_letter_topic);
    policy["maxDeliveryAttempts"] = options_.max_delivery_attempts;
    body["deadLetterPolicy"] = std::move(policy);
  }
  const auto r = request("PUT", fmt::format("projects/{}/subscriptions/{}", options_.project, subscription),
                         json::serialize(body), options_.timeout);
  if (r.status == 409 || (r.status >= 200 && r.status < 300)) return;
  throw std::runtime_error(fmt::format("pubsub: creating subscription '{}' failed: {}", subscription, error_text(r)));
}

void PubSubBus::delete_subscription(const std::string& subscription) {
  const auto r = request("DELETE", fmt::format("projects/{}/subscriptions/{}", options_.project, subscription), "",
                         options_.timeout);
  if (r.status == 404 || (r.status >= 200 && r.status < 300)) return;
  throw std::runtime_error(fmt::format("pubsub: deleting subscription '{}' failed: {}", subscription, error_text(r)));
}

// ---- publish -------------------------------------------------------------------------------------

std::vector<std::string> PubSubBus::publish(const std::string& topic, const std::vector<OutMessage>& batch) {
  if (batch.empty()) return {};
  auto call = std::make_shared<Call>();
  call->ids.resize(batch.size());
  call->remaining = batch.size();
  // Encode in the caller's thread (base64 is the expensive part; callers run in parallel).
  std::vector<Entry> entries;
  entries.reserve(batch.size());
  const auto now = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& m = batch[i];
    json::object msg;
    msg["data"] = base64_encode(m.data);
    json::object attrs;
    for (const auto& [k, v] : m.attributes) attrs[k] = v;
    if (!m.dedup_key.empty()) attrs[kDedupKeyAttribute] = m.dedup_key;
    if (!attrs.empty()) msg["attributes"] = std::move(attrs);
    if (options_.ordering) {
      auto it = m.attributes.find(options_.ordering_attribute);
      if (it != m.attributes.end() && !it->second.empty()) msg["orderingKey"] = it->second;
    }
    Entry e{json::serialize(msg), call, i, now};
    if (e.json.size() + kEnvelopeBytes > options_.max_batch_bytes)
      throw std::invalid_argument(fmt::format("pubsub: message {} is {} bytes encoded, over the {} byte request limit",
                                              i, e.json.size(), options_.max_batch_bytes));
    entries.push_back(std::move(e));
  }
  std::unique_lock lock(mu_);
  if (stopping_) throw std::runtime_error("pubsub: bus is shutting down");
  auto& q = queues_[topic];
  for (auto& e : entries) {
    q.bytes += e.json.size() + 1;
    q.entries.push_back(std::move(e));
  }
  queue_cv_.notify_all();
  queue_cv_.wait(lock, [&] { return call->remaining == 0; });
  if (call->error) std::rethrow_exception(call->error);
  return call->ids;
}

void PubSubBus::flusher() {
  std::unique_lock lock(mu_);
  while (true) {
    // Pick a topic whose queue is ready: full by count or bytes, old enough, or we are stopping.
    std::string ready;
    auto wake = std::chrono::steady_clock::time_point::max();
    const auto now = std::chrono::steady_clock::now();
    for (auto& [topic, q] : queues_) {
      if (q.entries.empty() || q.in_flight) continue;
      const auto due = q.entries.front().queued + options_.max_batch_latency;
      if (stopping_ || q.entries.size() >= options_.max_batch_messages ||
          q.bytes + kEnvelopeBytes >= options_.max_batch_bytes || due <= now) {
        ready = topic;
        break;
      }
      wake = std::min(wake, due);
    }
    if (ready.empty()) {
      if (stopping_) {
        bool busy = false;
        for (auto& [t, q] : queues_) busy = busy || !q.entries.empty();
        if (!busy) return;
      }
      if (wake == std::chrono::steady_clock::time_point::max()) queue_cv_.wait(lock);
      else queue_cv_.wait_until(lock, wake);
      continue;
    }
    auto& q = queues_[ready];
    std::vector<Entry> take;
    std::size_t bytes = kEnvelopeBytes;
    while (!q.entries.empty() && take.size() < options_.max_batch_messages &&
           bytes + q.entries.front().json.size() + 1 <= options_.max_batch_bytes) {
      bytes += q.entries.front().json.size() + 1;
      q.bytes -= q.entries.front().json.size() + 1;
      take.push_back(std::move(q.entries.front()));
      q.entries.pop_front();
    }
    q.in_flight = true;  // one request per topic at a time keeps ordering keys in order
    ++publish_requests_;
    lock.unlock();
    send_batch(ready, std::move(take));
    lock.lock();
    queues_[ready].in_flight = false;
    queue_cv_.notify_all();  // callers waiting for results, and flushers waiting for this topic
  }
}

void PubSubBus::send_batch(const std::string& topic, std::vector<Entry> entries) {
  std::string body = "{\"messages\":[";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i) body += ',';
    body += entries[i].json;
  }
  body += "]}";
  std::vector<std::string> ids;
  std::exception_ptr error;
  try {
    const auto r = request("POST", fmt::format("projects/{}/topics/{}:publish", options_.project, topic), body,
                           options_.timeout);
    if (r.status < 200 || r.status >= 300)
      throw std::runtime_error(fmt::format("pubsub: publish to '{}' failed: {}", topic, error_text(r)));
    const auto doc = json::parse(r.body);
    for (const auto& id : doc.at("messageIds").as_array()) ids.emplace_back(id.as_string());
    if (ids.size() != entries.size())
      throw std::runtime_error(fmt::format("pubsub: publish to '{}' returned {} ids for {} messages", topic, ids.size(),
                                           entries.size()));
  } catch (...) {
    error = std::current_exception();
  }
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto& call = *entries[i].call;
    if (error) call.error = error;
    else call.ids[entries[i].index] = ids[i];
    --call.remaining;
  }
}

std::size_t PubSubBus::publish_requests() const {
  std::lock_guard lock(mu_);
  return publish_requests_;
}

// ---- pull, ack -----------------------------------------------------------------------------------

std::vector<Message> PubSubBus::pull_once(const std::string& subscription, std::size_t max) {
  json::object body;
  body["maxMessages"] = max;
  const bool wait = options_.pull_wait.count() > 0;
  body["returnImmediately"] = !wait;
  HttpResponse r;
  const auto path = fmt::format("projects/{}/subscriptions/{}:pull", options_.project, subscription);
  if (wait) {
    try {
      // A waiting pull that times out is just "nothing yet"; retrying it would only wait longer.
      r = request("POST", path, json::serialize(body), options_.pull_wait, false);
    } catch (const NetError& e) {
      if (e.kind == NetError::Kind::Timeout) return {};
      throw;
    }
  } else {
    r = request("POST", path, json::serialize(body), options_.timeout);
  }
  if (r.status < 200 || r.status >= 300)
    throw std::runtime_error(fmt::format("pubsub: pull from '{}' failed: {}", subscription, error_text(r)));
  std::vector<Message> out;
  const auto doc = json::parse(r.body);
  const auto* received = doc.as_object().if_contains("receivedMessages");
  if (!received) return out;
  for (const auto& rm : received->as_array()) {
    const auto& o = rm.as_object();
    const auto& pm = o.at("message").as_object();
    Message m;
    m.ack_id = std::string(o.at("ackId").as_string());
    m.id = std::string(pm.at("messageId").as_string());
    if (const auto* d = pm.if_contains("data")) m.data = base64_decode(d->as_string(), kMessageDataSlack);
    if (const auto* a = pm.if_contains("attributes"))
      for (const auto& [k, v] : a->as_object()) m.attributes.emplace(std::string(k), std::string(v.as_string()));
    if (const auto* t = pm.if_contains("publishTime")) m.publish_time_us = parse_rfc3339_us(t->as_string());
    if (const auto* n = o.if_contains("deliveryAttempt")) m.delivery_attempt = static_cast<int>(n->to_number<int64_t>());
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<Message> PubSubBus::pull(const std::string& subscription, std::size_t max, std::chrono::seconds lease) {
  if (max == 0) return {};
  auto out = pull_many(subscription, max);
  // Pulled messages are leased for the subscription's ack deadline; give them the lease asked for.
  if (!out.empty() && lease.count() > 0 && lease.count() != options_.ack_deadline_s) {
    std::vector<std::string> ids;
    for (const auto& m : out) ids.push_back(m.ack_id);
    try {
      extend(subscription, ids, lease);
    } catch (const std::exception& e) {
      spdlog::warn("pubsub: could not set a {} s lease on {} pulled messages (they keep {} s): {}", lease.count(),
                   ids.size(), options_.ack_deadline_s, e.what());
    }
  }
  return out;
}

std::vector<Message> PubSubBus::pull_many(const std::string& subscription, std::size_t max) {
  // One request when it can hold everything; otherwise several in parallel (each ≤ 100).
  const std::size_t n = std::min<std::size_t>((max + kPullCap - 1) / kPullCap, options_.max_outstanding_pulls);
  if (n == 1) return pull_once(subscription, std::min(max, kPullCap));
  std::vector<std::future<std::vector<Message>>> pulls;
  std::size_t left = max;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t share = std::min({kPullCap, left, (max + n - 1) / n});
    left -= share;
    pulls.push_back(std::async(std::launch::async, [this, subscription, share] { return pull_once(subscription, share); }));
  }
  std::vector<Message> out;
  std::exception_ptr error;
  for (auto& f : pulls) {
    try {
      auto part = f.get();
      for (auto& m : part) out.push_back(std::move(m));
    } catch (...) {
      error = std::current_exception();
    }
  }
  // Messages already received must not be lost to another pull's failure: hand them back.
  if (error && out.empty()) std::rethrow_exception(error);
  if (error) spdlog::warn("pubsub: one of {} parallel pulls from '{}' failed; returning the others", n, subscription);
  return out;
}

void PubSubBus::ack(const std::string& subscription, const std::vector<std::string>& ack_ids) {
  for (std::size_t i = 0; i < ack_ids.size(); i += kAckIdsPerRequest) {
    json::array ids;
    for (std::size_t j = i; j < std::min(ack_ids.size(), i + kAckIdsPerRequest); ++j)
      if (!ack_ids[j].empty()) ids.emplace_back(ack_ids[j]);
    if (ids.empty()) continue;
    json::object body;
    body["ackIds"] = std::move(ids);
    const auto r = request("POST", fmt::format("projects/{}/subscriptions/{}:acknowledge", options_.project, subscription),
                           json::serialize(body), options_.timeout);
    if (r.status < 200 || r.status >= 300)
      throw std::runtime_error(fmt::format("pubsub: acknowledge on '{}' failed: {}", subscription, error_text(r)));
  }
}

void PubSubBus::modify_deadline(const std::string& subscription, const std::vector<std::string>& ack_ids, int seconds) {
  for (std::size_t i = 0; i < ack_ids.size(); i += kAckIdsPerRequest) {
    json::array ids;
    for (std::size_t j = i; j < std::min(ack_ids.size(), i + kAckIdsPerRequest); ++j)
      if (!ack_ids[j].empty()) ids.emplace_back(ack_ids[j]);
    if (ids.empty()) continue;
    json::object body;
    body["ackIds"] = std::move(ids);
    body["ackDeadlineSeconds"] = seconds;
    const auto r =
        request("POST", fmt::format("projects/{}/subscriptions/{}:modifyAckDeadline", options_.project, subscription),
                json::serialize(body), options_.timeout);
    if (r.status < 200 || r.status >= 300)
      throw std::runtime_error(fmt::format("pubsub: modifyAckDeadline on '{}' failed: {}", subscription, error_text(r)));
  }
}

void PubSubBus::nack(const std::string& subscription, const std::vector<std::string>& ack_ids) {
  modify_deadline(subscription, ack_ids, 0);
}

void PubSubBus::extend(const std::string& subscription, const std::vector<std::string>& ack_ids,
                       std::chrono::seconds lease) {
  modify_deadline(subscription, ack_ids, static_cast<int>(std::clamp<int64_t>(lease.count(), 0, 600)));
}

}  // namespace apilake
