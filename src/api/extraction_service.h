// Runs extractions: a bounded pool of fetch workers takes queued extractions, fetches their pages
// (source/) and publishes one bus message per page with lineage attributes. A page's dedup key is
// "<extraction_id>:<page>", so re-running an interrupted extraction after a crash publishes nothing twice.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/extraction_store.h"
#include "bus/bus.h"
#include "definition/definition.h"
#include "source/source.h"

namespace apilake {

struct ExtractionServiceOptions {
  std::string topic = "pages";
  int workers = 4;                 // 0 = accept only: submit() records, the extraction waits in the
                                   // store until a process with workers starts (it requeues them)
  std::size_t max_queue = 10000;   // submit() beyond this is refused (503)
  HttpOptions http;
  RetryPolicy retry;
};

struct IncrementalStateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ExtractionService {
 public:
  ExtractionService(const std::vector<Source>& sources, ExtractionStore& store, Bus& bus,
                    ExtractionServiceOptions options);
  ~ExtractionService();   // stops workers (running extractions resume on next start)
  void start();           // requeues unfinished extractions, starts workers
  void stop();
  // A new extraction of validated params, ready for submit(): a fresh unguessable id, the params as
  // JSON and, when `incremental`, the endpoint's cursor param set from the stored state of the same
  // other params (inclusive; no state yet = the params as given, a full first run). Shared by
  // POST /v1/extractions and `apilake extract`. Throws std::invalid_argument when `incremental` is
  // asked of an endpoint without a cursor, IncrementalStateError when the stored cursor no longer
  // fits the param.
  struct NewExtraction {
    Extraction record;
    std::optional<std::string> incremental_from;
  };
  NewExtraction prepare(const Source& source, const Endpoint& endpoint, Params params, bool incremental);
  // Records the extraction (durably) and queues it; returns false when the queue is full.
  bool submit(const Extraction& e);
  // The same without waiting (the API's accept path): `done(accepted, error)` runs once the
  // extraction is durably recorded and queued (true, ""), refused because the queue is full
  // (false, "") or not stored (false, why) — on the store's writer thread, or on the caller's when
  // refused up front. Concurrent submissions share one commit (ExtractionStore::insert_async).
  using SubmitDone = std::function<void(bool accepted, const std::string& error)>;
  void submit_async(Extraction e, SubmitDone done);
  // Called on a fetch worker for every page just before it is published (body still intact), e.g.
  // for `apilake extract`'s progress line. Set before start(); must not throw or block long.
  using PageObserver = std::function<void(const std::string& extraction_id, const Endpoint&, const Page&)>;
  void set_page_observer(PageObserver observer) { observer_ = std::move(observer); }

 private:
  void worker();
  // `e`: the row as queued (its source, endpoint and params never change after the insert, so the
  // queue's copy is exact and the run needs no store read). fetcher: the worker's own (keeps its
  // connections).
  void run_one(const Extraction& e, Fetcher& fetcher);
  // Group publish: pages of concurrent workers go to the bus in one publish() call (one transaction
  // and one fsync on the embedded bus); each caller returns once its own page is published, and
  // throws what publish() threw.
  void publish_grouped(OutMessage m);
  struct PublishSlot;
  std::mutex pub_mu_;
  std::condition_variable pub_cv_;
  std::vector<PublishSlot*> pub_pending_;
  bool pub_busy_ = false;
  const std::vector<Source>& sources_;
  ExtractionStore& store_;
  Bus& bus_;
  ExtractionServiceOptions options_;
  PageObserver observer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Extraction> queue_;  // the rows to run, as stored
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace apilake
