// POST /v1/pubsub/push: Pub/Sub push deliveries (bus/push.h). Authenticated by the push receiver's
// own shared token (?token=… in the push endpoint URL, or Authorization: Bearer …), not by the API
// keys: Pub/Sub cannot send an X-API-Key.
#include "api/api.h"
#include "bus/push.h"

namespace apilake {

std::optional<ServerResponse> pubsub_push_route(const ServerRequest& request, PushReceiver* push) {
  if (request.path != "/v1/pubsub/push") return std::nullopt;
  if (!push) return problem(404, "Not Found", "push mode is not enabled on this process");
  if (request.method != "POST") {
    auto r = problem(405, "Method Not Allowed", request.method + " is not allowed on /v1/pubsub/push");
    r.headers.emplace_back("Allow", "POST");
    return r;
  }
  std::string presented = request.query_param("token");
  if (presented.empty()) {
    const std::string auth = request.header("authorization");
    if (auth.rfind("Bearer ", 0) == 0) presented = auth.substr(7);
  }
  if (!push->authorized(presented)) return problem(401, "Unauthorized", "a valid push token is required");
  const PushResult result = push->handle(request.body);
  if (result.status >= 200 && result.status < 300) {
    ServerResponse r;
    r.status = result.status;
    return r;
  }
  const char* title = result.status == 400 ? "Bad Request" : result.status == 404 ? "Not Found" : "Service Unavailable";
  return problem(result.status, title, result.detail);
}

}  // namespace apilake
