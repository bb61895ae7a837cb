#include "api/extraction_service.h"

#include "api/json_write.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <exception>
#include <random>
#include <fmt/chrono.h>

namespace apilake {
namespace {

// RFC 3339 UTC with microseconds, e.g. 2026-11-26T08:53:47.123456Z.
std::string rfc3339(int64_t us) {
  return fmt::format("{:%FT%T}Z", std::chrono::sys_time<std::chrono::microseconds>(std::chrono::microseconds(us)));
}

// Params as a compact JSON object, keys in order (the bytes boost::json::serialize makes of the same
// object, without building it).
std::string params_to_json(const Params& params) {
  std::string out;
  json_write::Object o(out);
  for (const auto& [k, v] : params) o.string(k, v);
  o.close();
  return out;
}

Params params_from_json(const std::string& text) {
  Params out;
  auto v = boost::json::parse(text);
  for (const auto& [k, val] : v.as_object()) out[std::string(k)] = std::string(val.as_string());
  return out;
}

}  // namespace

ExtractionService::ExtractionService(const std::vector<Source>& sources, ExtractionStore& store, Bus& bus,
                                     ExtractionServiceOptions options)
    : sources_(sources), store_(store), bus_(bus), options_(std::move(options)) {}

ExtractionService::~ExtractionService() { stop(); }

void ExtractionService::start() {
  stopping_ = false;
  if (options_.workers == 0) return;  // accept-only: leaves unfinished extractions to a process with workers
  for (const auto& e : store_.unfinished()) {
    if (e.status == "running") {
      spdlog::info("extraction {} was interrupted; running it again (pages already published are skipped)", e.id);
      store_.reset_progress(e.id);
    }
    std::lock_guard lock(mu_);
    queue_.push_back(e);
  }
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { worker(); });
}

void ExtractionService::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

ExtractionService::NewExtraction ExtractionService::prepare(const Source& source, const Endpoint& endpoint,
                                                           Params params, bool incremental) {
  NewExtraction out;
  if (incremental) {
    if (!endpoint.incremental)
      throw std::invalid_argument("endpoint '" + source.name + "." + endpoint.name + "' declares no incremental cursor");
    if (auto stored = store_.incremental_state(source.name, endpoint.name, incremental_key(endpoint, params))) {
      auto v = incremental_param_value(endpoint, *stored);
      if (!v)
        throw IncrementalStateError("the stored incremental cursor '" + *stored +
                                    "' is not a valid value for parameter '" + endpoint.incremental->param + "'");
      params[endpoint.incremental->param] = *v;
      out.incremental_from = *v;
    }
  }
  Extraction& ex = out.record;
  ex.created_us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  // 32 hex digits: the creation time in milliseconds (48 bits), then 80 random bits. Unguessable (80
  // random bits), so ids can be handed out without leaking others' extractions, and increasing, so
  // the rows of one group commit land on the last pages of the primary-key index (fully random ids
  // put each row on its own page: one more page written to the WAL per row).
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  ex.id.resize(32);
  auto put = [&ex](std::size_t at, std::size_t digits, uint64_t bits) {
    for (std::size_t i = at + digits; i-- > at; bits >>= 4) ex.id[i] = kHex[bits & 0xf];
  };
  put(0, 12, static_cast<uint64_t>(ex.created_us / 1000));
  put(12, 4, rng());
  put(16, 16, rng());
  ex.source = source.name;
  ex.endpoint = endpoint.name;
  ex.params_json = params_to_json(params);
  ex.status = "queued";
  return out;
}

bool ExtractionService::submit(const Extraction& e) {
  if (options_.workers == 0) {
    // An accept-only instance: the store is the queue; a process with workers runs it after its
    // start(). Nothing is held in memory here, so there is no queue to fill.
    store_.insert(e);
    return true;
  }
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.max_queue) return false;
  }
  store_.insert(e);
  {
    std::lock_guard lock(mu_);
    queue_.push_back(e);
  }
  cv_.notify_one();
  return true;
}

void ExtractionService::submit_async(Extraction e, SubmitDone done) {
  if (options_.workers > 0) {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.max_queue) return done(false, {});
  }
  // Accept-only instances (no workers) keep nothing in memory (see submit); others queue the row
  // itself, so the worker does not read back what was just inserted.
  std::optional<Extraction> row;
  if (options_.workers > 0) row = e;
  store_.insert_async(std::move(e), [this, row = std::move(row), done = std::move(done)](const std::string& error) mutable {
    if (!error.empty()) return done(false, error);
    if (row) {
      {
        std::lock_guard lock(mu_);
        queue_.push_back(std::move(*row));
      }
      cv_.notify_one();
    }
    done(true, {});
  });
}

void ExtractionService::worker() {
  // One fetcher per worker for its whole life: its HTTP client keeps the connections to upstreams
  // open between extractions (a new TCP connection per extraction was a large share of the full flow).
  Fetcher fetcher(options_.http, options_.retry);
  for (;;) {
    Extraction e;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      e = std::move(queue_.front());
      queue_.pop_front();
    }
    const std::string& id = e.id;
    try {
      run_one(e, fetcher);
    } catch (const std::exception& ex) {
      // Anything unexpected fails this extraction, never the worker.
      spdlog::error("extraction {} failed: {}", id, ex.what());
      try {
        store_.finish(id, false, ex.what());
      } catch (...) {
      }
    }
  }
}

struct ExtractionService::PublishSlot {
  OutMessage* message;
  bool done = false;
  std::exception_ptr error;
};

void ExtractionService::publish_grouped(OutMessage m) {
  PublishSlot mine{&m, false, nullptr};
  std::unique_lock lock(pub_mu_);
  pub_pending_.push_back(&mine);
  while (!mine.done) {
    if (pub_busy_) {
      pub_cv_.wait(lock);
      continue;
    }
    // Leader: publish every page queued so far (ours included); pages queued meanwhile form the
    // next batch. The waiting workers' slots live on their stacks until they see done.
    pub_busy_ = true;
    std::vector<PublishSlot*> batch;
    batch.swap(pub_pending_);
    lock.unlock();
    std::vector<OutMessage> messages;
    messages.reserve(batch.size());
    for (auto* slot : batch) messages.push_back(std::move(*slot->message));
    std::exception_ptr error;
    try {
      bus_.publish(options_.topic, messages);
    } catch (...) {
      error = std::current_exception();  // the batch is one transaction: none of it is published
    }
    lock.lock();
    pub_busy_ = false;
    for (auto* slot : batch) {
      slot->error = error;
      slot->done = true;
    }
    pub_cv_.notify_all();
  }
  lock.unlock();
  if (mine.error) std::rethrow_exception(mine.error);
}

void ExtractionService::run_one(const Extraction& e, Fetcher& fetcher) {
  const std::string& id = e.id;
  const Source* source = nullptr;
  for (const auto& s : sources_)
    if (s.name == e.source) source = &s;
  const Endpoint* endpoint = source ? source->endpoint(e.endpoint) : nullptr;
  if (!endpoint) {
    store_.finish(id, false, "source " + e.source + "." + e.endpoint + " is no longer defined");
    return;
  }
  store_.set_running(id);
  Params params = validate_params(*endpoint, params_from_json(e.params_json));
  const std::string schema_version = std::to_string(endpoint->schema.version);
  // The validated params travel with each page (compact JSON) for schema fields that take one
  // (docs/schema.md "from_param"). Left out above Pub/Sub's 1024-byte attribute limit: such fields are
  // then absent (NULL, or dead-lettered as missing_required), never a failed publish.
  std::string params_json = params_to_json(params);
  if (params_json.size() > 1024) {
    spdlog::warn("extraction {}: params are {} bytes as JSON, above the 1024-byte attribute limit; not attached",
                 id, params_json.size());
    params_json.clear();
  }
  std::optional<std::string> highest;  // incremental endpoints: the highest cursor value fetched
  // A published page's counts are written with the next store write of this extraction (the next
  // page's, or finish's): the last page and the end are one write. Progress lags one page meanwhile;
  // after a crash the extraction runs again from page 1 with its counts reset, so none is lost.
  std::optional<ExtractionStore::PageCounts> unwritten;
  try {
    int pages = fetcher.run(*source, *endpoint, params, [&](Page&& page) {
      OutMessage m;
      m.attributes = {{"source", source->name},
                      {"endpoint", endpoint->name},
                      {"extraction_id", id},
                      {"page", std::to_string(page.number)},
                      {"fetched_at", rfc3339(page.fetched_at_us)},
                      {"content_type", page.content_type},
                      {"schema_version", schema_version},
                      {"url", page.url}};
      if (!params_json.empty()) m.attributes["params"] = params_json;
      m.dedup_key = id + ":" + std::to_string(page.number);
      const auto bytes = static_cast<int64_t>(page.body.size());
      const auto records = static_cast<int64_t>(page.records);
      if (page.max_cursor && (!highest || cursor_less(*highest, *page.max_cursor))) highest = page.max_cursor;
      if (observer_) observer_(id, *endpoint, page);
      m.data = std::move(page.body);
      if (unwritten) store_.add_page(id, unwritten->records, unwritten->bytes);
      unwritten.reset();
      publish_grouped(std::move(m));
      unwritten = ExtractionStore::PageCounts{records, bytes};
    });
    // Saved only when every page was fetched and published: a failed extraction leaves the state
    // where it was, so the next incremental run asks for the same range again.
    if (endpoint->incremental && highest)
      store_.save_incremental_state(source->name, endpoint->name, incremental_key(*endpoint, params), *highest,
                                    cursor_less);
    store_.finish(id, true, "", unwritten);
    // Debug, not info: at hundreds of extractions a second a line each is a cost; failures stay warn.
    spdlog::debug("extraction {} ({}.{}) succeeded: {} pages", id, source->name, endpoint->name, pages);
  } catch (const FetchError& ex) {
    store_.finish(id, false, ex.what(), unwritten);
    spdlog::warn("extraction {} ({}.{}) failed: {}", id, source->name, endpoint->name, ex.what());
  } catch (...) {
    // worker() fails the extraction; the page published last still counts.
    if (unwritten) {
      try {
        store_.add_page(id, unwritten->records, unwritten->bytes);
      } catch (...) {
      }
    }
    throw;
  }
}

}  // namespace apilake
