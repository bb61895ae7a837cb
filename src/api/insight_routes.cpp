#include "api/insight_routes.h"

#include <time.h>

#include <boost/json.hpp>
#include <iomanip>
#include <sstream>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "api/api.h"

namespace json = boost::json;

namespace apilake {
namespace {

ServerResponse json_ok(const json::value& v) {
  ServerResponse r;
  r.body = json::serialize(v);
  return r;
}

json::value time_or_null(int64_t us) { return us ? json::value(iso_utc(us)) : json::value(nullptr); }

std::string refresh_text(const InsightModel& m) {
  if (m.every.count() > 0) return fmt::format("every {}s", m.every.count());
  return "after_batch";
}

// True when an If-None-Match list names etag (or is "*"). Weak comparison, as RFC 9110 says for GET.
bool etag_matches(const std::string& header, const std::string& etag) {
  std::string bare = etag;
  std::size_t i = 0;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    std::size_t j = header.find(',', i);
    if (j == std::string::npos) j = header.size();
    std::string tag = header.substr(i, j - i);
    while (!tag.empty() && tag.back() == ' ') tag.pop_back();
    if (tag == "*") return true;
    if (tag.rfind("W/", 0) == 0) tag = tag.substr(2);
    if (tag == bare) return true;
    i = j + 1;
  }
  return false;
}

ServerResponse list_insights(InsightService& svc) {
  json::array out;
  for (const auto& info : svc.list()) {
    const InsightModel& m = *info.model;
    json::array datasets;
    for (const auto& d : m.datasets) datasets.push_back(json::string(d));
    json::object o{{"name", m.name},
                   {"description", m.description},
                   {"datasets", std::move(datasets)},
                   {"refresh", refresh_text(m)},
                   {"refreshed_at", info.state ? time_or_null(info.state->refreshed_us) : json::value(nullptr)},
                   {"data_through", info.state ? time_or_null(info.state->data_through_us) : json::value(nullptr)},
                   {"rows", info.state ? json::value(info.state->rows) : json::value(nullptr)},
                   {"error", info.last_error.empty() ? json::value(nullptr) : json::value(info.last_error)}};
    json::array cols;
    if (info.state)
      for (const auto& c : info.state->columns) cols.push_back(json::object{{"name", c.name}, {"type", c.type}});
    o["columns"] = std::move(cols);
    o["links"] = json::object{{"json", "/v1/insights/" + m.name + "?format=json"},
                              {"csv", "/v1/insights/" + m.name + "?format=csv"},
                              {"parquet", "/v1/insights/" + m.name + "?format=parquet"}};
    out.push_back(std::move(o));
  }
  return json_ok(json::object{{"insights", std::move(out)}});
}

ServerResponse get_insight(const ServerRequest& request, InsightService& svc, const std::string& name) {
  std::string format = request.query_param("format");
  if (format.empty()) format = "json";
  if (format != "json" && format != "csv" && format != "parquet")
    return problem(400, "Bad Request", "format must be json, csv or parquet, got '" + format + "'");
  if (!svc.model(name)) return problem(404, "Not Found", "no such insight: " + name + " (see GET /v1/insights)");
  std::optional<RenderedInsight> r;
  try {
    r = svc.render(name, format);
  } catch (const std::exception& e) {
    return problem(500, "Internal Server Error", e.what());
  }
  if (!r) return problem(404, "Not Found", "insight " + name + " has no data yet: its datasets hold no curated rows");

  // The file name carries the data version; the format makes each representation's tag distinct.
  const std::string etag = "\"" + r->state.file + "." + format + "\"";
  const std::string last_modified = http_date(r->state.refreshed_us);
  ServerResponse out;
  out.headers.emplace_back("ETag", etag);
  out.headers.emplace_back("Last-Modified", last_modified);
  out.headers.emplace_back("Cache-Control", "no-cache");
  std::string inm = request.header("if-none-match");
  bool not_modified = false;
  if (!inm.empty()) {
    not_modified = etag_matches(inm, etag);
  } else if (auto ims = parse_http_date(request.header("if-modified-since"))) {
    not_modified = r->state.refreshed_us / 1000000 <= *ims / 1000000;  // HTTP dates have 1 s resolution
  }
  if (not_modified) {
    out.status = 304;
    out.content_type.clear();
    return out;
  }
  out.content_type = r->content_type;
  if (format != "json")
    out.headers.emplace_back("Content-Disposition", "inline; filename=\"" + name + "." + format + "\"");
  out.body = std::move(r->body);
  return out;
}

ServerResponse list_datasets(InsightService& svc, const std::vector<Source>& sources) {
  json::array out;
  for (const auto& d : svc.dataset_stats()) {
    json::object schema;
    for (const auto& s : sources) {
      if (s.name != d.source) continue;
      if (const Endpoint* e = s.endpoint(d.endpoint)) {
        json::array fields;
        for (const auto& f : e->schema.fields)
          fields.push_back(json::object{{"name", f.name}, {"type", to_string(f.type)}, {"required", f.required}});
        schema = json::object{{"version", e->schema.version}, {"fields", std::move(fields)}};
      }
    }
    json::array hours;
    for (const auto& h : d.hours) hours.push_back(json::string(h));
    out.push_back(json::object{{"name", d.name},
                               {"source", d.source},
                               {"endpoint", d.endpoint},
                               {"schema", std::move(schema)},
                               {"rows", d.rows},
                               {"files", d.files},
                               {"bytes", d.bytes},
                               {"hours", std::move(hours)},
                               {"last_update", time_or_null(d.last_update_us)},
                               {"deadletters", d.deadletters},
                               {"deadletter_bytes", d.deadletter_bytes}});
  }
  return json_ok(json::object{{"datasets", std::move(out)}});
}

}  // namespace

std::string http_date(int64_t us) {
  return fmt::format("{:%a, %d %b %Y %H:%M:%S} GMT", std::chrono::sys_seconds(std::chrono::seconds(us / 1000000)));
}

std::optional<int64_t> parse_http_date(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::tm tm{};
  std::istringstream in(text);
  in.imbue(std::locale::classic());
  in >> std::get_time(&tm, "%a, %d %b %Y %H:%M:%S GMT");
  if (in.fail()) return std::nullopt;
  return static_cast<int64_t>(::timegm(&tm)) * 1000000;
}

std::optional<ServerResponse> insight_routes(const ServerRequest& request, InsightService& insights,
                                             const std::vector<Source>& sources) {
  const std::string& path = request.path;
  auto only_get = [&]() -> std::optional<ServerResponse> {
    if (request.method == "GET" || request.method == "HEAD") return std::nullopt;
    auto r = problem(405, "Method Not Allowed", request.method + " is not allowed on " + path);
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  };
  if (path == "/v1/insights") {
    if (auto r = only_get()) return r;
    return list_insights(insights);
  }
  static constexpr std::string_view kOne = "/v1/insights/";
  if (path.rfind(kOne, 0) == 0) {
    if (auto r = only_get()) return r;
    std::string name = path.substr(kOne.size());
    return get_insight(request, insights, name);
  }
  if (path == "/v1/datasets") {
    if (auto r = only_get()) return r;
    return list_datasets(insights, sources);
  }
  return std::nullopt;
}

}  // namespace apilake

// ---- the Api's routes for insights, datasets, the OpenAPI document, Swagger UI and metrics ----------
#include "api/static_files.h"

namespace apilake {

std::optional<ServerResponse> Api::insight_docs_metrics(const ServerRequest& request) {
  const std::string& path = request.path;
  const bool get = request.method == "GET" || request.method == "HEAD";
  auto not_allowed = [&] {
    auto r = problem(405, "Method Not Allowed", request.method + " is not allowed on " + path);
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  };
  if (path.rfind("/v1/insights", 0) == 0 || path == "/v1/datasets") {
    if (!deps_.insights) return problem(404, "Not Found", "insights are not enabled in this process");
    return insight_routes(request, *deps_.insights, *deps_.sources);
  }
  if (path == "/openapi.json") {
    if (!get) return not_allowed();
    ServerResponse r;
    r.body = openapi_json_;
    return r;
  }
  if (path == "/docs" || path == "/docs/" || path.rfind("/docs/", 0) == 0) {
    if (!get) return not_allowed();
    StaticFiles files(deps_.node_modules.empty() ? std::filesystem::path() : deps_.node_modules / "swagger-ui-dist");
    if (!files.available())
      return problem(503, "Service Unavailable",
                     "Swagger UI assets are not installed (npm package swagger-ui-dist; run scripts/setup.sh "
                     "or set APILAKE_NODE_MODULES)");
    if (path == "/docs" || path == "/docs/" || path == "/docs/index.html") {
      ServerResponse r;
      r.content_type = "text/html; charset=utf-8";
      r.body = swagger_ui_page();
      return r;
    }
    if (auto r = files.serve(path.substr(6))) return r;
    return problem(404, "Not Found", "no such file: " + path);
  }
  if (path == "/metrics") {
    if (!deps_.metrics) return std::nullopt;
    if (!get) return not_allowed();
    ServerResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = deps_.metrics->render();
    return r;
  }
  return std::nullopt;
}

}  // namespace apilake
