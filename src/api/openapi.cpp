#include "api/openapi.h"

#include <boost/json.hpp>

namespace json = boost::json;

namespace apilake {
namespace {

json::object jref(const std::string& what) { return json::object{{"$ref", what}}; }
json::object problem_response(const std::string& description) {
  return json::object{{"description", description},
                      {"content", json::object{{"application/problem+json",
                                                json::object{{"schema", jref("#/components/schemas/Problem")}}}}}};
}
json::object json_response(const std::string& description, json::object schema) {
  return json::object{{"description", description},
                      {"content", json::object{{"application/json", json::object{{"schema", std::move(schema)}}}}}};
}

// A declared bound as a JSON number (bounds are normalised text in the definition).
json::value number_of(const std::string& text, bool integer) {
  try {
    if (integer) return std::stoll(text);
    return std::stod(text);
  } catch (const std::exception&) {
    return nullptr;
  }
}

json::object scalar_schema(ParamType type, const ParamSpec& p) {
  json::object s;
  switch (type) {
    case ParamType::Integer: s["type"] = "integer"; break;
    case ParamType::Number: s["type"] = "number"; break;
    case ParamType::Boolean: s["type"] = "boolean"; break;
    case ParamType::Date: s["type"] = "string"; s["format"] = "date"; break;
    case ParamType::Enum: {
      s["type"] = "string";
      json::array values;
      for (const auto& v : p.values) values.push_back(json::string(v));
      s["enum"] = std::move(values);
      break;
    }
    default: s["type"] = "string"; break;
  }
  if (type == ParamType::Integer || type == ParamType::Number) {
    if (p.minimum) if (auto v = number_of(*p.minimum, type == ParamType::Integer); !v.is_null()) s["minimum"] = v;
    if (p.maximum) if (auto v = number_of(*p.maximum, type == ParamType::Integer); !v.is_null()) s["maximum"] = v;
  } else if (type == ParamType::Date && (p.minimum || p.maximum)) {
    // JSON Schema has no bounds for date strings: stated in words.
    s["description"] = "from " + p.minimum.value_or("any date") + " to " + p.maximum.value_or("any date");
  }
  if (type == ParamType::String && !p.pattern.empty()) s["pattern"] = p.pattern;
  return s;
}

json::object param_schema(const ParamSpec& p) {
  json::object s;
  if (p.type == ParamType::List) {
    s = json::object{{"type", "array"}, {"items", scalar_schema(p.item_type, p)}};
  } else {
    s = scalar_schema(p.type, p);
  }
  std::string desc = p.description;
  if (auto it = s.find("description"); it != s.end())
    desc += (desc.empty() ? "" : " (") + std::string(it->value().as_string()) + (p.description.empty() ? "" : ")");
  s["description"] = desc;
  if (p.default_value) {
    if (p.type == ParamType::Integer) s["default"] = number_of(*p.default_value, true);
    else if (p.type == ParamType::Number) s["default"] = number_of(*p.default_value, false);
    else if (p.type == ParamType::Boolean) s["default"] = *p.default_value == "true";
    else if (p.type != ParamType::List) s["default"] = *p.default_value;
  }
  return s;
}

}  // namespace

std::string openapi_document(const std::vector<Source>& sources, const std::vector<InsightModel>& insights) {
  json::object schemas;
  schemas["Problem"] = json::object{
      {"type", "object"},
      {"description", "RFC 9457 problem details"},
      {"required", json::array{"type", "title", "status", "detail"}},
      {"properties", json::object{{"type", json::object{{"type", "string"}}},
                                  {"title", json::object{{"type", "string"}}},
                                  {"status", json::object{{"type", "integer"}}},
                                  {"detail", json::object{{"type", "string"}}}}}};
  json::array requests;
  for (const auto& s : sources) {
    for (const auto& e : s.endpoints) {
      json::object props;
      json::array required;
      for (const auto& p : e.params) {
        props[p.name] = param_schema(p);
        if (p.required) required.push_back(json::string(p.name));
      }
      json::object params{{"type", "object"}, {"properties", std::move(props)}, {"additionalProperties", false}};
      if (!required.empty()) params["required"] = std::move(required);
      json::object example;
      for (const auto& [k, v] : e.example) example[k] = v;
      std::string name = "Extract_" + s.name + "_" + e.name;
      schemas[name] = json::object{
          {"type", "object"},
          {"title", s.name + "." + e.name},
          {"description", e.description},
          {"required", json::array{"source", "params"}},
          {"properties", json::object{{"source", json::object{{"const", s.name}}},
                                      {"endpoint", json::object{{"const", e.name}}},
                                      {"params", std::move(params)},
                                      {"incremental", json::object{{"type", "boolean"}}}}},
          {"example", json::object{{"source", s.name}, {"endpoint", e.name}, {"params", std::move(example)}}}};
      requests.push_back(jref("#/components/schemas/" + name));
    }
  }
  schemas["ExtractionRequest"] = json::object{{"oneOf", std::move(requests)}};
  schemas["Extraction"] = json::object{
      {"type", "object"},
      {"required", json::array{"id", "status"}},
      {"properties", json::object{{"id", json::object{{"type", "string"}}},
                                  {"source", json::object{{"type", "string"}}},
                                  {"endpoint", json::object{{"type", "string"}}},
                                  {"params", json::object{{"type", "object"}}},
                                  {"status", json::object{{"enum", json::array{"queued", "running", "succeeded", "failed"}}}},
                                  {"pages", json::object{{"type", "integer"}}},
                                  {"records", json::object{{"type", "integer"}}},
                                  {"bytes", json::object{{"type", "integer"}}},
                                  {"curated", json::object{{"type", "integer"}}},
                                  {"deadlettered", json::object{{"type", "integer"}}},
                                  {"created_at", json::object{{"type", "string"}, {"format", "date-time"}}},
                                  {"finished_at", json::object{{"type", "string"}, {"format", "date-time"}}},
                                  {"error", json::object{{"type", "string"}}}}}};
  json::array insight_names;
  for (const auto& m : insights) insight_names.push_back(json::string(m.name));

  auto obj = [](std::initializer_list<std::pair<json::string_view, json::value_ref>> il) { return json::object(il); };
  json::object any_object{{"type", "object"}};
  json::array secured{json::object{}, obj({{"bearer", json::array{}}}), obj({{"apiKey", json::array{}}})};

  json::object paths;
  paths["/healthz"] = obj({{"get", obj({{"summary", "Liveness"}, {"operationId", "health"},
                                        {"responses", obj({{"200", json_response("alive", any_object)}})}})}});
  paths["/v1/sources"] = obj({{"get", obj({{"summary", "Sources, endpoints, typed params, examples, schemas"},
                                           {"operationId", "listSources"},
                                           {"responses", obj({{"200", json_response("the sources", any_object)}})}})}});
  paths["/v1/extractions"] = obj({{"post", obj({
      {"summary", "Start an extraction"}, {"operationId", "createExtraction"}, {"security", secured},
      {"requestBody", obj({{"required", true},
                           {"content", obj({{"application/json", obj({{"schema", jref("#/components/schemas/ExtractionRequest")}})}})}})},
      {"responses", obj({{"202", obj({{"description", "queued; Location names the extraction"},
                                      {"headers", obj({{"Location", obj({{"schema", obj({{"type", "string"}})}})}})},
                                      {"content", obj({{"application/json", obj({{"schema", jref("#/components/schemas/Extraction")}})}})}})},
                         {"400", problem_response("bad body or params")},
                         {"401", problem_response("an API key is required")},
                         {"404", problem_response("unknown source or endpoint")},
                         {"409", problem_response("stored incremental cursor unusable")},
                         {"503", problem_response("too many queued extractions")}})}})}});
  paths["/v1/extractions/{id}"] = obj({{"get", obj({
      {"summary", "One extraction's status and counts"}, {"operationId", "getExtraction"},
      {"parameters", json::array{obj({{"name", "id"}, {"in", "path"}, {"required", true}, {"schema", obj({{"type", "string"}})}})}},
      {"responses", obj({{"200", json_response("the extraction", jref("#/components/schemas/Extraction"))},
                         {"404", problem_response("no such extraction")}})}})}});
  paths["/v1/query"] = obj({{"post", obj({
      {"summary", "One read-only SELECT over the dataset views <source>_<endpoint>"}, {"operationId", "query"},
      {"security", secured},
      {"requestBody", obj({{"required", true},
                           {"content", obj({{"application/json", obj({{"schema", obj({
                               {"type", "object"}, {"required", json::array{"sql"}},
                               {"properties", obj({{"sql", obj({{"type", "string"}, {"minLength", 1}})}})},
                               {"example", obj({{"sql", "SELECT date, value FROM bcb_sgs_series LIMIT 5"}})}})}})}})}})},
      {"responses", obj({{"200", json_response("columns, types, rows", obj({
                             {"type", "object"}, {"required", json::array{"columns", "types", "rows", "truncated"}},
                             {"properties", obj({{"columns", obj({{"type", "array"}, {"items", obj({{"type", "string"}})}})},
                                                 {"types", obj({{"type", "array"}, {"items", obj({{"type", "string"}})}})},
                                                 {"rows", obj({{"type", "array"}, {"items", obj({{"type", "array"}})}})},
                                                 {"truncated", obj({{"type", "boolean"}})}})}}))},
                         {"400", problem_response("not a single SELECT, or an SQL error")},
                         {"401", problem_response("an API key is required")},
                         {"408", problem_response("the query timed out")},
                         {"500", problem_response("the SQL engine failed")}})}})}});
  paths["/v1/insights"] = obj({{"get", obj({{"summary", "Insight models with their freshness"}, {"operationId", "listInsights"},
                                            {"responses", obj({{"200", json_response("the insights", any_object)}})}})}});
  json::object name_schema{{"type", "string"}};
  if (!insight_names.empty()) name_schema["enum"] = insight_names;
  paths["/v1/insights/{name}"] = obj({{"get", obj({
      {"summary", "One materialised insight"}, {"operationId", "getInsight"},
      {"parameters", json::array{
           obj({{"name", "name"}, {"in", "path"}, {"required", true}, {"schema", name_schema}}),
           obj({{"name", "format"}, {"in", "query"}, {"required", false},
                {"schema", obj({{"type", "string"}, {"enum", json::array{"json", "csv", "parquet"}}, {"default", "json"}})}}),
           obj({{"name", "If-None-Match"}, {"in", "header"}, {"required", false}, {"schema", obj({{"type", "string"}})}}),
           obj({{"name", "If-Modified-Since"}, {"in", "header"}, {"required", false}, {"schema", obj({{"type", "string"}})}})}},
      {"responses", obj({{"200", obj({{"description", "the insight (ETag, Last-Modified)"},
                                      {"headers", obj({{"ETag", obj({{"schema", obj({{"type", "string"}})}})},
                                                       {"Last-Modified", obj({{"schema", obj({{"type", "string"}})}})}})},
                                      {"content", obj({{"application/json", obj({{"schema", any_object}})},
                                                       {"text/csv", obj({{"schema", obj({{"type", "string"}})}})},
                                                       {"application/vnd.apache.parquet", obj({{"schema", obj({{"type", "string"}, {"contentMediaType", "application/vnd.apache.parquet"}})}})}})}})},
                         {"304", obj({{"description", "not modified since the given ETag / date"}})},
                         {"400", problem_response("unknown format")},
                         {"404", problem_response("unknown insight, or no data yet")},
                         {"500", problem_response("the insight could not be rendered")}})}})}});
  paths["/v1/datasets"] = obj({{"get", obj({{"summary", "Datasets: schema, rows, hours, size, last update, dead letters"},
                                            {"operationId", "listDatasets"},
                                            {"responses", obj({{"200", json_response("the datasets", any_object)}})}})}});
  paths["/v1/deadletters"] = obj({{"get", obj({{"summary", "Dead-letter counts by dataset, hour and reason"},
                                               {"operationId", "listDeadLetters"},
                                               {"responses", obj({{"200", json_response("the counts", any_object)},
                                                                  {"503", problem_response("dead letters unavailable")}})}})}});
  paths["/openapi.json"] = obj({{"get", obj({{"summary", "This document"}, {"operationId", "openapi"},
                                             {"responses", obj({{"200", json_response("OpenAPI 3.1", any_object)}})}})}});
  paths["/docs"] = obj({{"get", obj({{"summary", "Swagger UI"}, {"operationId", "docs"},
                                     {"responses", obj({{"200", obj({{"description", "HTML page"}, {"content", obj({{"text/html", obj({{"schema", obj({{"type", "string"}})}})}})}})},
                                                        {"503", problem_response("the swagger-ui-dist assets are not installed")}})}})}});
  paths["/metrics"] = obj({{"get", obj({{"summary", "Prometheus metrics"}, {"operationId", "metrics"},
                                        {"responses", obj({{"200", obj({{"description", "text exposition format 0.0.4"}, {"content", obj({{"text/plain", obj({{"schema", obj({{"type", "string"}})}})}})}})}})}})}});
  // Recent extractions, newest first: the same object as GET /v1/extractions/{id} per item.
  paths["/v1/extractions"].as_object()["get"] = obj({
      {"summary", "Recent extractions, newest first"}, {"operationId", "listExtractions"},
      {"parameters", json::array{obj({{"name", "limit"}, {"in", "query"}, {"required", false},
                                      {"schema", obj({{"type", "integer"}, {"minimum", 1}, {"maximum", 100}, {"default", 20}})}})}},
      {"responses", obj({{"200", json_response("the extractions", obj({
                             {"type", "object"}, {"required", json::array{"extractions"}},
                             {"properties", obj({{"extractions", obj({{"type", "array"}, {"items", jref("#/components/schemas/Extraction")}})}})}}))},
                         {"400", problem_response("limit is not an integer 1..100")}})}});
  json::object counts{{"type", "object"},
                      {"properties", obj({{"batches", obj({{"type", "integer"}})}, {"messages", obj({{"type", "integer"}})},
                                          {"records", obj({{"type", "integer"}})}, {"deadlettered", obj({{"type", "integer"}})}})}};
  paths["/v1/status"] = obj({{"get", obj({
      {"summary", "Pipeline status: bus backlog per subscription, counters since start, uptime (the numbers of /metrics)"},
      {"operationId", "status"},
      {"responses", obj({{"200", json_response("the status", obj({
                             {"type", "object"},
                             {"required", json::array{"uptime_seconds", "bus", "lake", "backlog", "pages_published", "archive", "curate"}},
                             {"properties", obj({
                                 {"uptime_seconds", obj({{"type", "number"}})},
                                 {"bus", obj({{"type", "string"}, {"description", "sqlite | pubsub"}})},
                                 {"lake", obj({{"type", "string"}, {"description", "local | object"}})},
                                 {"backlog", obj({{"type", json::array{"object", "null"}},
                                                  {"description", "messages waiting per subscription; null when this bus cannot count them"},
                                                  {"additionalProperties", obj({{"type", "integer"}})}})},
                                 {"pages_published", obj({{"type", "integer"}})},
                                 {"archive", counts},
                                 {"curate", counts}})}}))},
                         {"503", problem_response("metrics are not enabled in this process")}})}})}});
  paths["/v1/deadletters/{dataset}"] = obj({{"get", obj({
      {"summary", "Dead-letter lines of one dataset (oldest first), optionally of one reason"},
      {"operationId", "getDeadLetters"},
      {"parameters", json::array{
           obj({{"name", "dataset"}, {"in", "path"}, {"required", true}, {"schema", obj({{"type", "string"}})},
                {"description", "<source>_<endpoint>"}}),
           obj({{"name", "reason"}, {"in", "query"}, {"required", false}, {"schema", obj({{"type", "string"}})},
                {"description", "only lines with this reason (as listed by GET /v1/deadletters)"}}),
           obj({{"name", "limit"}, {"in", "query"}, {"required", false},
                {"schema", obj({{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}, {"default", 100}})}})}},
      {"responses", obj({{"200", json_response("the lines: each the original record, reason, replayed, file, line", any_object)},
                         {"400", problem_response("limit is not an integer 1..1000")},
                         {"404", problem_response("unknown dataset")},
                         {"409", problem_response("the dataset's definition cannot be read")},
                         {"503", problem_response("dead letters unavailable")}})}})}});
  paths["/v1/deadletters/{dataset}:replay"] = obj({{"post", obj({
      {"summary", "Re-curate a dataset's pending dead letters with the current definition"},
      {"operationId", "replayDeadLetters"}, {"security", secured},
      {"parameters", json::array{obj({{"name", "dataset"}, {"in", "path"}, {"required", true}, {"schema", obj({{"type", "string"}})}})}},
      {"requestBody", obj({{"required", false},
                           {"content", obj({{"application/json", obj({{"schema", obj({
                               {"type", "object"},
                               {"properties", obj({{"from", obj({{"type", "string"}, {"pattern", "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}$"}})},
                                                   {"to", obj({{"type", "string"}, {"pattern", "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}$"}})}})}})}})}})}})},
      {"responses", obj({{"200", json_response("files looked at, lines replayed, rows written, still failing", any_object)},
                         {"400", problem_response("body is not {\"from\", \"to\"} with hours YYYY-MM-DDTHH")},
                         {"401", problem_response("an API key is required")},
                         {"404", problem_response("unknown dataset")},
                         {"409", problem_response("the dataset's schema cannot be applied")},
                         {"503", problem_response("dead letters unavailable")}})}})}});
  paths["/v1/pubsub/push"] = obj({{"post", obj({
      {"summary", "Pub/Sub push delivery (push deployments; its own token, not the API keys)"},
      {"operationId", "pubsubPush"},
      {"parameters", json::array{obj({{"name", "token"}, {"in", "query"}, {"required", false}, {"schema", obj({{"type", "string"}})}})}},
      {"requestBody", obj({{"required", true}, {"content", obj({{"application/json", obj({{"schema", any_object}})}})}})},
      {"responses", obj({{"204", obj({{"description", "committed: Pub/Sub acks the message"}})},
                         {"400", problem_response("not a push envelope")},
                         {"401", problem_response("a valid push token is required")},
                         {"404", problem_response("push mode is not enabled, or unknown subscription")},
                         {"503", problem_response("not committed: Pub/Sub redelivers")}})}})}});
  auto html = [&](const std::string& what) {
    return obj({{"description", what}, {"content", obj({{"text/html", obj({{"schema", obj({{"type", "string"}})}})}})}});
  };
  paths["/"] = obj({{"get", obj({{"summary", "The dashboard (web/index.html)"}, {"operationId", "dashboard"},
                                 {"responses", obj({{"200", html("HTML page")},
                                                    {"503", problem_response("the dashboard's files (web/) are not found")}})}})}});
  paths["/ui/{file}"] = obj({{"get", obj({
      {"summary", "The dashboard's scripts and styles"}, {"operationId", "dashboardFile"},
      {"parameters", json::array{obj({{"name", "file"}, {"in", "path"}, {"required", true}, {"schema", obj({{"type", "string"}})}})}},
      {"responses", obj({{"200", obj({{"description", "the file (text/javascript, text/css)"}})},
                         {"404", problem_response("no such file")},
                         {"503", problem_response("the dashboard's files (web/) are not found")}})}})}});
  paths["/assets/chart.js"] = obj({{"get", obj({
      {"summary", "Chart.js (UMD build of the pinned npm package chart.js)"}, {"operationId", "chartJs"},
      {"responses", obj({{"200", obj({{"description", "JavaScript"}, {"content", obj({{"text/javascript", obj({{"schema", obj({{"type", "string"}})}})}})}})},
                         {"503", problem_response("the chart.js package is not installed")}})}})}});
  paths["/docs/{file}"] = obj({{"get", obj({
      {"summary", "Swagger UI's assets (npm package swagger-ui-dist)"}, {"operationId", "docsFile"},
      {"parameters", json::array{obj({{"name", "file"}, {"in", "path"}, {"required", true}, {"schema", obj({{"type", "string"}})}})}},
      {"responses", obj({{"200", obj({{"description", "the file"}})},
                         {"404", problem_response("no such file")},
                         {"503", problem_response("the swagger-ui-dist assets are not installed")}})}})}});
  // Every route answers these the same way.
  for (auto& [path, item] : paths)
    for (auto& [method, op] : item.as_object()) {
      auto& responses = op.as_object()["responses"].as_object();
      if (!responses.contains("404")) responses["404"] = problem_response("no route");
      responses["405"] = problem_response("method not allowed on this path");
    }

  json::object doc{
      {"openapi", "3.1.0"},
      {"info", obj({{"title", "apilake"}, {"version", "0.1.0"},
                    {"description", "Extract public HTTP/JSON APIs into a queryable lake; insights over it."}})},
      {"servers", json::array{obj({{"url", "/"}})}},
      {"paths", std::move(paths)},
      {"components", obj({{"schemas", std::move(schemas)},
                          {"securitySchemes", obj({{"bearer", obj({{"type", "http"}, {"scheme", "bearer"}})},
                                                   {"apiKey", obj({{"type", "apiKey"}, {"in", "header"}, {"name", "X-API-Key"}})}})}})}};
  return json::serialize(doc);
}

}  // namespace apilake
