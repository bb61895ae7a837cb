#include "api/api.h"

#include "api/json_write.h"
#include "api/query_json.h"
#include "api/openapi.h"
#include "api/static_files.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <future>

#include <fmt/chrono.h>

namespace json = boost::json;

namespace apilake {
namespace {

ServerResponse json_response(int status, const json::value& v) {
  ServerResponse r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

// Parses a request body as a JSON object or returns a 400 problem. The DOM lives in `storage`
// (e.g. a monotonic resource on the caller's stack: no heap allocation for a small body).
std::optional<json::object> parse_object(const std::string& body, ServerResponse& error,
                                         json::storage_ptr storage = {}) {
  json::error_code ec;
  json::value v = json::parse(body, ec, std::move(storage));
  if (ec) {
    error = problem(400, "Bad Request", "request body is not valid JSON: " + ec.message());
    return std::nullopt;
  }
  if (!v.is_object()) {
    error = problem(400, "Bad Request", "request body must be a JSON object");
    return std::nullopt;
  }
  return std::move(v.as_object());
}

void append_extraction_json(std::string& out, const Extraction& e, Ledger& ledger);

}  // namespace


Api::Api(ApiDeps deps) : deps_(std::move(deps)) {
  json::array sources;
  for (const auto& s : *deps_.sources) {
    json::array endpoints;
    for (const auto& e : s.endpoints) {
      json::object params;
      for (const auto& p : e.params) {
        json::object spec{{"type", to_string(p.type)},
                          {"in", p.in == ParamLocation::Path ? "path" : "query"},
                          {"required", p.required},
                          {"description", p.description}};
        if (p.default_value) spec["default"] = *p.default_value;
        // The constraints validate_params applies, so a client (the dashboard's form) can apply them too.
        if (p.type == ParamType::List) spec["items"] = to_string(p.item_type);
        if (!p.values.empty()) spec["enum"] = json::value_from(p.values);
        if (p.minimum) spec["minimum"] = *p.minimum;
        if (p.maximum) spec["maximum"] = *p.maximum;
        if (!p.pattern.empty()) spec["pattern"] = p.pattern;
        params[p.name] = std::move(spec);
      }
      json::object example;
      for (const auto& [k, v] : e.example) example[k] = v;
      json::array fields;
      for (const auto& f : e.schema.fields)
        fields.push_back(json::object{{"name", f.name}, {"type", to_string(f.type)}, {"required", f.required}});
      endpoints.push_back(json::object{{"name", e.name},
                                       {"description", e.description},
                                       {"dataset", s.name + "_" + e.name},
                                       {"params", std::move(params)},
                                       {"example", std::move(example)},
                                       {"schema", json::object{{"version", e.schema.version}, {"fields", std::move(fields)}}}});
    }
    sources.push_back(json::object{{"name", s.name}, {"description", s.description}, {"endpoints", std::move(endpoints)}});
  }
  sources_json_ = json::serialize(json::object{{"sources", std::move(sources)}});
  openapi_json_ = openapi_document(*deps_.sources, deps_.insights ? deps_.insights->models() : std::vector<InsightModel>{});
}

bool Api::authorized(const ServerRequest& request) const {
  if (deps_.api_keys.empty()) return true;
  std::string key = request.header("x-api-key");
  if (key.empty()) {
    std::string auth = request.header("authorization");
    if (auth.rfind("Bearer ", 0) == 0) key = auth.substr(7);
  }
  if (key.empty()) return false;
  for (const auto& k : deps_.api_keys) {
    // Constant-time comparison: the key check must not leak prefixes through timing.
    if (k.size() != key.size()) continue;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < k.size(); ++i) diff |= static_cast<unsigned char>(k[i] ^ key[i]);
    if (diff == 0) return true;
  }
  return false;
}

ServerResponse Api::handle(const ServerRequest& request) {
  const std::string& path = request.path;
  const std::string& method = request.method;
  auto method_not_allowed = [&](const char* allow) {
    auto r = problem(405, "Method Not Allowed", method + " is not allowed on " + path);
    r.headers.emplace_back("Allow", allow);
    return r;
  };
  auto unauthorized = [&] {
    auto r = problem(401, "Unauthorized", "an API key is required (Authorization: Bearer <key> or X-API-Key)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  };

  if (path == "/healthz") {
    if (method != "GET" && method != "HEAD") return method_not_allowed("GET, HEAD");
    return json_response(200, json::object{{"status", "ok"}});
  }
  if (path == "/v1/sources") {
    if (method != "GET") return method_not_allowed("GET");
    return sources();
  }
  if (path == "/v1/extractions") {
    if (method == "GET") return list_extractions(request);
    if (method != "POST") return method_not_allowed("GET, POST");
    if (!authorized(request)) return unauthorized();
    std::promise<ServerResponse> answer;
    auto answered = answer.get_future();
    Responder accepted = [&answer](ServerResponse r) { answer.set_value(std::move(r)); };
    if (auto r = create_extraction(request, accepted)) return *r;
    return answered.get();
  }
  if (path == "/v1/status") {
    if (method != "GET") return method_not_allowed("GET");
    return status();
  }
  static constexpr std::string_view kExtraction = "/v1/extractions/";
  if (path.rfind(kExtraction, 0) == 0) {
    if (method != "GET") return method_not_allowed("GET");
    std::string id = path.substr(kExtraction.size());
    if (id.empty() || id.find('/') != std::string::npos)
      return problem(404, "Not Found", "no such extraction: " + id);
    return get_extraction(id);
  }
  if (path == "/v1/query") {
    if (method != "POST") return method_not_allowed("POST");
    if (!authorized(request)) return unauthorized();
    return query(request);
  }
  if (auto r = deadletter_route(request, deps_.deadletters, authorized(request))) return *r;
  if (auto r = insight_docs_metrics(request)) return *r;
  if (auto r = pubsub_push_route(request, deps_.push)) return *r;
  if (auto r = dashboard_route(request, deps_.web_dir, deps_.node_modules)) return *r;
  return problem(404, "Not Found", "no route for " + method + " " + path);
}

ServerResponse Api::sources() {
  ServerResponse r;
  r.body = sources_json_;
  return r;
}

void Api::handle_async(const ServerRequest& request, Responder reply) {
  if (request.path == "/v1/extractions" && request.method == "POST" && authorized(request)) {
    if (auto r = create_extraction(request, reply)) reply(std::move(*r));
    return;
  }
  reply(handle(request));
}

std::optional<ServerResponse> Api::create_extraction(const ServerRequest& request, Responder& accepted) {
  ServerResponse error;
  // The body's DOM is read here only: a stack buffer holds it (a larger body spills to the heap).
  unsigned char dom_buffer[4096];
  json::monotonic_resource dom_storage(dom_buffer, sizeof dom_buffer);
  auto body = parse_object(request.body, error, &dom_storage);
  if (!body) return error;

  auto* source_v = body->if_contains("source");
  if (!source_v || !source_v->is_string())
    return problem(400, "Bad Request", "\"source\" is required and must be a string");
  const std::string source_name(source_v->as_string());
  const Source* source = nullptr;
  for (const auto& s : *deps_.sources)
    if (s.name == source_name) source = &s;
  if (!source) return problem(404, "Not Found", "unknown source '" + source_name + "' (see GET /v1/sources)");

  const Endpoint* endpoint = nullptr;
  if (auto* ep = body->if_contains("endpoint"); ep && !ep->is_null()) {
    if (!ep->is_string()) return problem(400, "Bad Request", "\"endpoint\" must be a string");
    endpoint = source->endpoint(std::string(ep->as_string()));
    if (!endpoint)
      return problem(404, "Not Found",
                     "source '" + source_name + "' has no endpoint '" + std::string(ep->as_string()) + "'");
  } else if (source->endpoints.size() == 1) {
    endpoint = &source->endpoints.front();
  } else {
    std::string names;
    for (const auto& e : source->endpoints) names += (names.empty() ? "" : ", ") + e.name;
    return problem(400, "Bad Request", "source '" + source_name + "' has several endpoints; name one of: " + names);
  }

  Params given;
  if (auto* p = body->if_contains("params"); p && !p->is_null()) {
    if (!p->is_object()) return problem(400, "Bad Request", "\"params\" must be a JSON object");
    for (const auto& [k, v] : p->as_object()) {
      std::string key(k);
      switch (v.kind()) {
        case json::kind::string: given[key] = std::string(v.as_string()); break;
        case json::kind::int64: given[key] = std::to_string(v.as_int64()); break;
        case json::kind::uint64: given[key] = std::to_string(v.as_uint64()); break;
        case json::kind::double_: given[key] = fmt::format("{}", v.as_double()); break;  // shortest: -23.55, not -2.355E1
        case json::kind::bool_: given[key] = v.as_bool() ? "true" : "false"; break;
        case json::kind::null: break;  // same as absent
        case json::kind::array: {  // a list parameter: items joined by commas, as validate_params takes them
          if (const ParamSpec* spec = endpoint->param(key); spec && spec->type != ParamType::List)
            return problem(400, "Bad Request", "parameter '" + key + "' takes one value, not a list");
          std::string joined;
          for (const auto& item : v.as_array()) {
            if (item.is_string()) joined += (joined.empty() ? "" : ",") + std::string(item.as_string());
            else if (item.is_double()) joined += (joined.empty() ? "" : ",") + fmt::format("{}", item.as_double());
            else if (item.is_number() || item.is_bool()) joined += (joined.empty() ? "" : ",") + json::serialize(item);
            else return problem(400, "Bad Request", "items of parameter '" + key + "' must be strings or numbers");
          }
          given[key] = std::move(joined);
          break;
        }
        default:
          return problem(400, "Bad Request", "parameter '" + key + "' must be a string, number or boolean");
      }
    }
  }
  Params params;
  try {
    params = validate_params(*endpoint, given);
  } catch (const ParamError& e) {
    return problem(400, "Bad Request", e.what());
  }
  // "incremental": true starts from the highest cursor value a previous successful extraction
  // fetched for the same other params (no state yet: the params as given, i.e. a full run).
  bool incremental = false;
  if (auto* inc = body->if_contains("incremental"); inc && !inc->is_null()) {
    if (!inc->is_bool()) return problem(400, "Bad Request", "\"incremental\" must be true or false");
    incremental = inc->as_bool();
  }
  ExtractionService::NewExtraction prepared;
  try {
    prepared = deps_.extractions->prepare(*source, *endpoint, std::move(params), incremental);
  } catch (const std::invalid_argument& e) {
    return problem(400, "Bad Request", e.what());
  } catch (const IncrementalStateError& e) {
    return problem(409, "Conflict", e.what());
  }
  // The 202 is built now (cheap, on the io thread) and sent once the row is committed.
  ServerResponse r;
  r.status = 202;
  r.body.reserve(96);
  json_write::Object o(r.body);
  o.string("id", prepared.record.id);
  o.string("status", "queued");
  if (prepared.incremental_from) o.string("incremental_from", *prepared.incremental_from);
  o.close();
  r.headers.emplace_back("Location", "/v1/extractions/" + prepared.record.id);
  deps_.extractions->submit_async(
      std::move(prepared.record),
      [accepted = std::move(accepted), r = std::move(r)](bool ok, const std::string& error) mutable {
        if (ok) return accepted(std::move(r));
        if (error.empty()) return accepted(problem(503, "Service Unavailable", "too many queued extractions; retry later"));
        // The store's message stays in the log; the client learns only that nothing was recorded.
        spdlog::error("POST /v1/extractions: {}", error);
        accepted(problem(500, "Internal Server Error", "the extraction could not be recorded"));
      });
  return std::nullopt;
}

ServerResponse Api::get_extraction(const std::string& id) {
  auto e = deps_.store->get(id);
  if (!e) return problem(404, "Not Found", "no such extraction: " + id);
  ServerResponse r;
  r.body.reserve(384);
  append_extraction_json(r.body, *e, *deps_.ledger);
  return r;
}

ServerResponse Api::list_extractions(const ServerRequest& request) {
  std::size_t limit = 20;
  if (auto l = request.query_param("limit"); !l.empty()) {
    bool digits = l.size() <= 3;
    for (char c : l) digits = digits && c >= '0' && c <= '9';
    limit = digits ? std::stoul(l) : 0;
    if (limit < 1 || limit > 100) return problem(400, "Bad Request", "limit must be an integer 1..100");
  }
  ServerResponse r;
  r.body = "{\"extractions\":[";
  bool first = true;
  for (const auto& e : deps_.store->recent(limit)) {
    if (!first) r.body += ',';
    first = false;
    append_extraction_json(r.body, e, *deps_.ledger);
  }
  r.body += "]}";
  return r;
}

ServerResponse Api::status() {
  if (!deps_.metrics) return problem(503, "Service Unavailable", "metrics are not enabled in this process");
  // The numbers /metrics exposes, structured: counters since start and the gauges read now.
  const Metrics::Snapshot s = deps_.metrics->snapshot();
  json::object backlog;
  if (auto it = s.gauges.find("apilake_bus_backlog_messages"); it != s.gauges.end())
    for (const auto& [subscription, n] : it->second) backlog[subscription] = static_cast<int64_t>(n);
  auto consumer = [](const Metrics::ConsumerCounts& c) {
    return json::object{{"batches", c.batches}, {"messages", c.messages}, {"records", c.rows},
                        {"deadlettered", c.deadlettered}};
  };
  return json_response(200, json::object{
      {"uptime_seconds", s.uptime_seconds},
      {"bus", s.bus},
      {"lake", s.lake},
      // null: this bus cannot count its backlog here (Pub/Sub: Cloud Monitoring has it).
      {"backlog", backlog.empty() ? json::value(nullptr) : json::value(std::move(backlog))},
      {"pages_published", s.pages_published},
      {"archive", consumer(s.archive)},
      {"curate", consumer(s.curate)}});
}

namespace {
// One extraction as GET /v1/extractions/{id} shows it (also each item of GET /v1/extractions),
// written as text: the same bytes a json::object of these members would serialise to.
void append_extraction_json(std::string& out, const Extraction& e, Ledger& ledger) {
  const auto curated = ledger.counts("curate", e.id);
  json_write::Object o(out);
  o.string("id", e.id);
  o.string("source", e.source);
  o.string("endpoint", e.endpoint);
  // Stored as compact JSON by ExtractionService::prepare: copied, not re-parsed.
  o.raw("params", e.params_json.empty() ? std::string_view("{}") : std::string_view(e.params_json));
  o.string("status", e.status);
  o.integer("pages", e.pages);
  o.integer("records", e.records);
  o.integer("bytes", e.bytes);
  o.integer("curated", curated.rows);
  o.integer("deadlettered", curated.deadlettered);
  o.time("created_at", e.created_us);
  if (e.finished_us) o.time("finished_at", e.finished_us);
  if (!e.error.empty()) o.string("error", e.error);
  o.close();
}
}  // namespace

ServerResponse Api::query(const ServerRequest& request) {
  ServerResponse error;
  auto body = parse_object(request.body, error);
  if (!body) return error;
  auto* sql = body->if_contains("sql");
  if (!sql || !sql->is_string() || sql->as_string().empty())
    return problem(400, "Bad Request", "\"sql\" is required and must be a non-empty string");
  try {
    // Written as text, not through a DOM: numbers keep DuckDB's exact digits (api/query_json.h).
    ServerResponse r;
    r.body = query_answer_json(deps_.query->run(std::string(sql->as_string())));
    return r;
  } catch (const QueryError& e) {
    const char* title = e.status == 408 ? "Request Timeout" : e.status == 400 ? "Bad Request" : "Internal Server Error";
    return problem(e.status, title, e.what());
  }
}

}  // namespace apilake
