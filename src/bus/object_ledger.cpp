#include "bus/object_ledger.h"

#include <stdexcept>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace apilake {

namespace json = boost::json;

namespace {

constexpr std::string_view kPrepared = ".prepared.json";
constexpr std::string_view kCommitted = ".committed.json";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void check_name(const std::string& what, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw std::invalid_argument(fmt::format("object ledger: invalid {} '{}'", what, name));
}

}  // namespace

std::string manifest_json(const PreparedBatch& batch, const std::string& owner) {
  json::object o;
  o["consumer"] = batch.consumer;
  o["batch_id"] = batch.batch_id;
  o["owner"] = owner;
  json::array files;
  for (const auto& f : batch.files) files.push_back(json::object{{"staged", f.staged}, {"final", f.final}});
  o["files"] = std::move(files);
  json::array ids(batch.message_ids.begin(), batch.message_ids.end());
  o["message_ids"] = std::move(ids);
  json::array acks(batch.ack_ids.begin(), batch.ack_ids.end());
  o["ack_ids"] = std::move(acks);
  json::array keys(batch.keys.begin(), batch.keys.end());
  o["keys"] = std::move(keys);
  json::object counts;
  for (const auto& [ex, c] : batch.counts) counts[ex] = json::object{{"rows", c.rows}, {"deadlettered", c.deadlettered}};
  o["counts"] = std::move(counts);
  return json::serialize(o);
}

PreparedBatch parse_manifest(const std::string& text, std::string* owner) {
  PreparedBatch b;
  try {
    const auto doc = json::parse(text);
    const auto& o = doc.as_object();
    b.consumer = std::string(o.at("consumer").as_string());
    b.batch_id = std::string(o.at("batch_id").as_string());
    if (owner) *owner = std::string(o.at("owner").as_string());
    for (const auto& f : o.at("files").as_array())
      b.files.push_back({std::string(f.at("staged").as_string()), std::string(f.at("final").as_string())});
    for (const auto& id : o.at("message_ids").as_array()) b.message_ids.emplace_back(id.as_string());
    for (const auto& id : o.at("ack_ids").as_array()) b.ack_ids.emplace_back(id.as_string());
    // Optional: manifests written before keys were recorded have none.
    if (const auto* keys = o.if_contains("keys"))
      for (const auto& k : keys->as_array()) b.keys.emplace_back(k.as_string());
    for (const auto& [ex, c] : o.at("counts").as_object())
      b.counts[std::string(ex)] = {c.at("rows").to_number<int64_t>(), c.at("deadlettered").to_number<int64_t>()};
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("object ledger: malformed manifest: ") + e.what());
  }
  return b;
}

std::string ObjectLedger::prepared_path(const std::string& consumer, const std::string& batch_id) {
  return fmt::format("_ledger/{}/{}{}", consumer, batch_id, kPrepared);
}

std::string ObjectLedger::committed_path(const std::string& consumer, const std::string& batch_id) {
  return fmt::format("_ledger/{}/{}{}", consumer, batch_id, kCommitted);
}

ObjectLedger::ObjectLedger(ObjectStore& store, Bus& bus, ObjectLedgerOptions options)
    : store_(store), bus_(bus), options_(std::move(options)) {
  if (options_.instance.empty()) throw std::invalid_argument("object ledger: an instance id is required");
}

ObjectLedger::Index& ObjectLedger::index(const std::string& consumer) {
  auto& idx = indexes_[consumer];
  if (!idx.ever_listed) refresh(consumer, idx);
  return idx;
}

void ObjectLedger::refresh(const std::string& consumer, Index& idx) {
  // Only manifests not read before are fetched: committed manifests never change.
  for (const auto& path : store_.list(fmt::format("_ledger/{}/", consumer))) {
    if (!ends_with(path, kCommitted) || idx.manifests.count(path)) continue;
    const auto text = store_.get(path);
    if (!text) continue;  // listed, then gone: a clean-up we do not do; treat as not yet there
    add_committed(idx, parse_manifest(*text));
    idx.manifests.insert(path);
  }
  idx.listed = std::chrono::steady_clock::now();
  idx.ever_listed = true;
}

void ObjectLedger::add_committed(Index& idx, const PreparedBatch& b) {
  for (const auto& id : b.message_ids) {
    idx.ids.insert(id);
    idx.owner_of.emplace(id, b.batch_id);
  }
  for (const auto& k : b.keys)
    if (!k.empty()) idx.key_owner.emplace(k, b.batch_id);
  for (const auto& [ex, c] : b.counts) {
    idx.counts[ex].rows += c.rows;
    idx.counts[ex].deadlettered += c.deadlettered;
  }
}

void ObjectLedger::add_own(Index& idx, const PreparedBatch& b) {
  idx.own_prepared.insert(b.message_ids.begin(), b.message_ids.end());
  for (const auto& k : b.keys)
    if (!k.empty()) idx.own_prepared_keys.insert(k);
}

void ObjectLedger::forget_own(Index& idx, const PreparedBatch& b) {
  for (const auto& id : b.message_ids) idx.own_prepared.erase(id);
  for (const auto& k : b.keys) idx.own_prepared_keys.erase(k);
}

void ObjectLedger::prepare(const PreparedBatch& batch) {
  check_name("consumer", batch.consumer);
  check_name("batch id", batch.batch_id);
  store_.put(prepared_path(batch.consumer, batch.batch_id), manifest_json(batch, options_.instance));
  std::lock_guard lock(mu_);
  add_own(index(batch.consumer), batch);
}

void ObjectLedger::commit(const PreparedBatch& batch, const std::string& subscription) {
  check_name("consumer", batch.consumer);
  check_name("batch id", batch.batch_id);
  const auto prepared = prepared_path(batch.consumer, batch.batch_id);
  const auto committed = committed_path(batch.consumer, batch.batch_id);
  std::unique_lock lock(mu_);
  auto& idx = index(batch.consumer);
  refresh(batch.consumer, idx);  // see the latest commits of other processes before deciding
  auto forget = [&] { forget_own(idx, batch); };
  if (idx.manifests.count(committed)) {  // committed before (a retry, or the same batch elsewhere)
    forget();
    lock.unlock();
    store_.remove(prepared);
    bus_.ack(subscription, batch.ack_ids);
    return;
  }
  if (!store_.exists(prepared)) throw std::logic_error("object ledger: commit of a batch never prepared: " + batch.batch_id);
  // Lost a race: another process committed some of these messages (its copy of a redelivery, or
  // of a republished page: same dedup key, another message id) while this batch was in flight.
  // Committing too would duplicate them, so roll this one back.
  auto key_at = [&](std::size_t i) { return i < batch.keys.size() ? batch.keys[i] : std::string(); };
  auto committed_elsewhere = [&](std::size_t i) {
    if (idx.ids.count(batch.message_ids[i])) return true;
    const auto k = key_at(i);
    return !k.empty() && idx.key_owner.count(k) > 0;
  };
  std::string winner;
  for (std::size_t i = 0; i < batch.message_ids.size() && winner.empty(); ++i) {
    if (auto it = idx.owner_of.find(batch.message_ids[i]); it != idx.owner_of.end()) winner = it->second;
    else if (auto k = key_at(i); !k.empty())
      if (auto kt = idx.key_owner.find(k); kt != idx.key_owner.end()) winner = kt->second;
  }
  if (!winner.empty()) {
    forget();
    lock.unlock();
    spdlog::warn("{}: batch {} overlaps batch {} committed by another process; removing its files instead of "
                 "committing",
                 batch.consumer, batch.batch_id, winner);
    for (const auto& f : batch.files) store_.remove(f.final);
    store_.remove(prepared);
    // Messages only in this batch (not in the winner's) must come back; the others are done.
    std::vector<std::string> done, again;
    {
      std::lock_guard relock(mu_);
      for (std::size_t i = 0; i < batch.message_ids.size() && i < batch.ack_ids.size(); ++i)
        (committed_elsewhere(i) ? done : again).push_back(batch.ack_ids[i]);
    }
    bus_.ack(subscription, done);
    bus_.nack(subscription, again);
    return;
  }
  store_.put(committed, manifest_json(batch, options_.instance));
  add_committed(idx, batch);
  idx.manifests.insert(committed);
  forget();
  lock.unlock();
  store_.remove(prepared);
  // After the commit object: a lost ack only means a redelivery that seen() skips.
  bus_.ack(subscription, batch.ack_ids);
}

std::vector<PreparedBatch> ObjectLedger::pending(const std::string& consumer) {
  check_name("consumer", consumer);
  std::vector<PreparedBatch> out;
  for (const auto& path : store_.list(fmt::format("_ledger/{}/", consumer))) {
    if (!ends_with(path, kPrepared)) continue;
    const auto text = store_.get(path);
    if (!text) continue;
    std::string owner;
    auto b = parse_manifest(*text, &owner);
    if (owner != options_.instance) continue;  // another process's batch: its staged files are not here
    if (store_.exists(committed_path(consumer, b.batch_id))) {
      store_.remove(path);  // committed, the clean-up was interrupted
      continue;
    }
    {
      std::lock_guard lock(mu_);
      add_own(index(consumer), b);
    }
    out.push_back(std::move(b));
  }
  return out;
}

void ObjectLedger::abandon(const PreparedBatch& batch, const std::string& subscription) {
  check_name("consumer", batch.consumer);
  check_name("batch id", batch.batch_id);
  if (store_.exists(committed_path(batch.consumer, batch.batch_id)))
    throw std::logic_error("object ledger: cannot abandon committed batch " + batch.batch_id);
  store_.remove(prepared_path(batch.consumer, batch.batch_id));
  {
    std::lock_guard lock(mu_);
    forget_own(index(batch.consumer), batch);
  }
  try {
    bus_.nack(subscription, batch.ack_ids);
  } catch (const std::exception& e) {
    // Stale ack ids are normal here; unacked messages come back when their lease runs out anyway.
    spdlog::info("{}: nack of abandoned batch {} failed ({}); its messages return after their lease", batch.consumer,
                 batch.batch_id, e.what());
  }
}

bool ObjectLedger::seen(const std::string& consumer, const std::string& message_id) {
  std::lock_guard lock(mu_);
  auto& idx = index(consumer);
  if (idx.ids.count(message_id) || idx.own_prepared.count(message_id)) return true;
  if (std::chrono::steady_clock::now() - idx.listed < options_.relist_interval) return false;
  refresh(consumer, idx);
  return idx.ids.count(message_id) > 0;
}

bool ObjectLedger::seen_key(const std::string& consumer, const std::string& dedup_key) {
  if (dedup_key.empty()) return false;
  std::lock_guard lock(mu_);
  auto& idx = index(consumer);
  if (idx.key_owner.count(dedup_key) || idx.own_prepared_keys.count(dedup_key)) return true;
  if (std::chrono::steady_clock::now() - idx.listed < options_.relist_interval) return false;
  refresh(consumer, idx);
  return idx.key_owner.count(dedup_key) > 0;
}

ExtractionCounts ObjectLedger::counts(const std::string& consumer, const std::string& extraction_id) {
  std::lock_guard lock(mu_);
  auto& idx = index(consumer);
  if (std::chrono::steady_clock::now() - idx.listed >= options_.relist_interval) refresh(consumer, idx);
  auto it = idx.counts.find(extraction_id);
  return it == idx.counts.end() ? ExtractionCounts{} : it->second;
}

}  // namespace apilake
