// The HTTP API's routes (JSON; errors as RFC 9457 problem bodies):
//   GET  /healthz                 GET /v1/sources
//   POST /v1/extractions          GET /v1/extractions/{id}
//   POST /v1/query
// When API keys are configured, POST endpoints and the query endpoint need one
// (Authorization: Bearer <key> or X-API-Key: <key>).
#pragma once
#include <string>
#include <vector>

#include "api/extraction_service.h"
#include "api/extraction_store.h"
#include "bus/ledger.h"
#include "insight/query.h"
#include "net/http_server.h"

namespace apilake {

struct ApiDeps {
  const std::vector<Source>* sources;
  ExtractionStore* store;
  ExtractionService* extractions;
  Ledger* ledger;          // curated / dead-lettered counts per extraction
  QueryService* query;
  std::vector<std::string> api_keys;   // empty = open
};

class Api {
 public:
  explicit Api(ApiDeps deps);
  ServerResponse handle(const ServerRequest& request);

 private:
  ServerResponse sources();
  ServerResponse create_extraction(const ServerRequest& request);
  ServerResponse get_extraction(const std::string& id);
  ServerResponse query(const ServerRequest& request);
  bool authorized(const ServerRequest& request) const;
  ApiDeps deps_;
  std::string sources_json_;   // GET /v1/sources is static: rendered once
};

// An RFC 9457 problem response.
ServerResponse problem(int status, const std::string& title, const std::string& detail);

}  // namespace apilake
