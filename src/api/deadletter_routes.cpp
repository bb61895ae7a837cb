// Dead-letter routes (docs/lake.md):
//   GET  /v1/deadletters                      counts by dataset, hour, reason (+ replayed / pending)
//   GET  /v1/deadletters/{dataset}?reason=&limit=   the lines (limit 1..1000, default 100)
//   POST /v1/deadletters/{dataset}:replay     body {"from": "YYYY-MM-DDTHH", "to": ...} (both optional)
#include <boost/json.hpp>

#include "api/api.h"
#include "curate/deadletters.h"

namespace json = boost::json;

namespace apilake {

std::optional<ServerResponse> deadletter_route(const ServerRequest& request, DeadLetters* deadletters,
                                               bool authorized) {
  static constexpr std::string_view kBase = "/v1/deadletters";
  const std::string& path = request.path;
  if (path.rfind(kBase, 0) != 0) return std::nullopt;
  if (path.size() > kBase.size() && path[kBase.size()] != '/') return std::nullopt;
  if (!deadletters) return problem(503, "Service Unavailable", "dead letters are not available in this process");
  auto method_not_allowed = [&](const char* allow) {
    auto r = problem(405, "Method Not Allowed", request.method + " is not allowed on " + path);
    r.headers.emplace_back("Allow", allow);
    return r;
  };
  auto ok = [](const json::value& v) {
    ServerResponse r;
    r.body = json::serialize(v);
    return r;
  };
  try {
    if (path == kBase || path == std::string(kBase) + "/") {
      if (request.method != "GET") return method_not_allowed("GET");
      json::array rows;
      for (const auto& c : deadletters->counts())
        rows.push_back(json::object{{"dataset", c.dataset},
                                    {"hour", c.hour},
                                    {"reason", c.reason},
                                    {"count", c.count},
                                    {"replayed", c.replayed},
                                    {"pending", c.pending}});
      return ok(json::object{{"datasets", std::move(rows)}});
    }
    std::string rest = path.substr(kBase.size() + 1);
    static constexpr std::string_view kReplay = ":replay";
    if (rest.size() > kReplay.size() && rest.compare(rest.size() - kReplay.size(), kReplay.size(), kReplay) == 0) {
      const std::string dataset = rest.substr(0, rest.size() - kReplay.size());
      if (request.method != "POST") return method_not_allowed("POST");
      if (!authorized) {
        auto r = problem(401, "Unauthorized", "an API key is required (Authorization: Bearer <key> or X-API-Key)");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return r;
      }
      std::string from, to;
      if (!request.body.empty()) {
        json::error_code ec;
        json::value v = json::parse(request.body, ec);
        if (ec || !v.is_object()) return problem(400, "Bad Request", "body must be a JSON object {\"from\", \"to\"}");
        for (const char* key : {"from", "to"}) {
          auto* x = v.as_object().if_contains(key);
          if (!x || x->is_null()) continue;
          if (!x->is_string() || !DeadLetters::valid_hour(std::string(x->as_string())))
            return problem(400, "Bad Request", std::string("\"") + key + "\" must be an hour YYYY-MM-DDTHH");
          (std::string(key) == "from" ? from : to) = std::string(x->as_string());
        }
      }
      const ReplayResult r = deadletters->replay(dataset, from, to);
      json::array written;
      for (const auto& w : r.written) written.push_back(json::string(w));
      return ok(json::object{{"dataset", dataset},
                             {"files", r.files},
                             {"replayed", r.replayed},
                             {"rows", r.rows},
                             {"still_failing", r.still_failing},
                             {"written", std::move(written)}});
    }
    if (rest.empty() || rest.find('/') != std::string::npos)
      return problem(404, "Not Found", "no route for " + request.method + " " + path);
    if (request.method != "GET") return method_not_allowed("GET");
    std::size_t limit = 100;
    if (auto l = request.query_param("limit"); !l.empty()) {
      std::size_t n = 0;
      bool digits = l.size() <= 4;
      for (char c : l) digits = digits && c >= '0' && c <= '9';
      if (digits) n = std::stoul(l);
      if (!digits || n < 1 || n > 1000) return problem(400, "Bad Request", "limit must be an integer 1..1000");
      limit = n;
    }
    const std::string reason = request.query_param("reason");
    // The sample lines are spliced in as the text they are (no DOM): a record's numbers stay as fetched.
    std::string body = json::serialize(json::object{{"dataset", rest}, {"reason", reason}});
    body.pop_back();
    body += ",\"deadletters\":[";
    bool first = true;
    for (const auto& s : deadletters->samples(rest, reason, limit)) {
      if (!first) body += ',';
      first = false;
      body += s;
    }
    body += "]}";
    ServerResponse r;
    r.body = std::move(body);
    return r;
  } catch (const UnknownDataset& e) {
    return problem(404, "Not Found", e.what());
  } catch (const std::invalid_argument& e) {
    return problem(409, "Conflict", std::string("the dataset's schema cannot be applied: ") + e.what());
  }
}

}  // namespace apilake
