// Runs extractions: a bounded pool of fetch workers takes queued extractions, fetches their pages
// (source/) and publishes one bus message per page with lineage attributes. A page's dedup key is
// "<extraction_id>:<page>", so re-running an interrupted extraction after a crash publishes nothing twice.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
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
  int workers = 4;
  std::size_t max_queue = 10000;   // submit() beyond this is refused (503)
  HttpOptions http;
  RetryPolicy retry;
};

class ExtractionService {
 public:
  ExtractionService(const std::vector<Source>& sources, ExtractionStore& store, Bus& bus,
                    ExtractionServiceOptions options);
  ~ExtractionService();   // stops workers (running extractions resume on next start)
  void start();           // requeues unfinished extractions, starts workers
  void stop();
  // Records the extraction (durably) and queues it; returns false when the queue is full.
  bool submit(const Extraction& e);
  // Called on a fetch worker for every page just before it is published (body still intact), e.g.
  // for `apilake extract`'s progress line. Set before start(); must not throw or block long.
  using PageObserver = std::function<void(const std::string& extraction_id, const Endpoint&, const Page&)>;
  void set_page_observer(PageObserver observer) { observer_ = std::move(observer); }

 private:
  void worker();
  void run_one(const std::string& id);
  const std::vector<Source>& sources_;
  ExtractionStore& store_;
  Bus& bus_;
  ExtractionServiceOptions options_;
  PageObserver observer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace apilake
