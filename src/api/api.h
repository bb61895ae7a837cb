// The HTTP API's routes (JSON; errors as RFC 9457 problem bodies):
//   GET  /healthz                 GET /v1/sources
//   POST /v1/extractions          GET /v1/extractions/{id}
//   POST /v1/query                GET /v1/deadletters[/{dataset}]  POST /v1/deadletters/{dataset}:replay
//   POST /v1/pubsub/push          (Pub/Sub push envelopes; its own shared token, see bus/push.h)
//   GET  /v1/extractions?limit=N  (newest first)   GET /v1/status (backlog, counters, uptime: metrics.h)
//   GET  /  /ui/{file}  /assets/chart.js           (the dashboard, static_files.h)
// When API keys are configured, POST endpoints and the query endpoint need one
// (Authorization: Bearer <key> or X-API-Key: <key>).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "api/extraction_service.h"
#include "api/extraction_store.h"
#include "bus/ledger.h"
#include "api/metrics.h"
#include "insight/models.h"
#include "insight/query.h"
#include "net/http_server.h"

namespace apilake {

class DeadLetters;
class PushReceiver;

struct ApiDeps {
  const std::vector<Source>* sources;
  ExtractionStore* store;
  ExtractionService* extractions;
  Ledger* ledger;          // curated / dead-lettered counts per extraction
  QueryService* query;
  std::vector<std::string> api_keys;   // empty = open
  DeadLetters* deadletters = nullptr;  // GET/POST /v1/deadletters... (503 when null)
  PushReceiver* push = nullptr;        // POST /v1/pubsub/push (404 when null: not a push deployment)
  InsightService* insights = nullptr;  // /v1/insights, /v1/datasets (404 when null); insight_routes.cpp
  Metrics* metrics = nullptr;          // GET /metrics (404 when null)
  std::filesystem::path node_modules{};  // npm web assets for /docs; "" = not installed (503)
  std::filesystem::path web_dir{};       // the dashboard (web/) for /; "" = not found (503)
};

class Api {
 public:
  explicit Api(ApiDeps deps);
  ServerResponse handle(const ServerRequest& request);
  // The same for HttpServer's AsyncHandler: POST /v1/extractions answers once the extraction is
  // durably recorded (group commit, off the io thread); every other route answers before returning.
  void handle_async(const ServerRequest& request, Responder reply);

 private:
  ServerResponse sources();
  // A response now (an invalid request), or nullopt when the extraction was handed to the store and
  // `accepted` (moved from then) will answer (202, or 503/500 when it cannot be queued or stored).
  std::optional<ServerResponse> create_extraction(const ServerRequest& request, Responder& accepted);
  ServerResponse get_extraction(const std::string& id);
  ServerResponse list_extractions(const ServerRequest& request);
  ServerResponse status();
  ServerResponse query(const ServerRequest& request);
  bool authorized(const ServerRequest& request) const;
  // /v1/insights..., /v1/datasets, /openapi.json, /docs, /metrics (insight_routes.cpp).
  std::optional<ServerResponse> insight_docs_metrics(const ServerRequest& request);
  ApiDeps deps_;
  std::string sources_json_;   // GET /v1/sources is static: rendered once
  std::string openapi_json_;   // GET /openapi.json too
};

// /v1/deadletters routes (deadletter_routes.cpp); nullopt when the path is not one of them.
std::optional<ServerResponse> deadletter_route(const ServerRequest& request, DeadLetters* deadletters,
                                               bool authorized);

// POST /v1/pubsub/push (pubsub_routes.cpp); nullopt when the path is not it.
std::optional<ServerResponse> pubsub_push_route(const ServerRequest& request, PushReceiver* push);


}  // namespace apilake
