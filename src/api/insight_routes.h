// Insight and dataset routes (data access goes through insight/InsightService, never files):
//   GET /v1/insights                      list with freshness (refreshed_at, data_through, rows)
//   GET /v1/insights/{name}?format=json|csv|parquet
//       ETag per file and format, Last-Modified = refresh time; 304 on If-None-Match (or, without
//       it, If-Modified-Since); 404 for an unknown insight or one with no data yet; 400 bad format
//   GET /v1/datasets                      schema, rows, files, bytes, hours, last update, dead letters
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "definition/definition.h"
#include "insight/models.h"
#include "net/http_server.h"

namespace apilake {

// nullopt when the request is for none of these paths.
std::optional<ServerResponse> insight_routes(const ServerRequest& request, InsightService& insights,
                                             const std::vector<Source>& sources);

// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") of a UTC time in microseconds, and back (nullopt
// when the text is not an IMF-fixdate).
std::string http_date(int64_t us);
std::optional<int64_t> parse_http_date(const std::string& text);

}  // namespace apilake
