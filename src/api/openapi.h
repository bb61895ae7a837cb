// The OpenAPI 3.1 document served at /openapi.json: every route of the API, each source endpoint's
// params as a schema (type, enum, minimum/maximum, pattern, default as declared), every error as an
// RFC 9457 problem. Built once at start-up from the loaded sources and insight models.
#pragma once
#include <string>
#include <vector>

#include "definition/definition.h"
#include "insight/models.h"

namespace apilake {

std::string openapi_document(const std::vector<Source>& sources, const std::vector<InsightModel>& insights);

}  // namespace apilake
