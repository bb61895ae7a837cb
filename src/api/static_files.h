// Read-only static files for /docs (Swagger UI from the swagger-ui-dist npm package) and the dashboard
// at / (the repo's web/ folder, Chart.js from node_modules), served locally — no CDN: only regular
// files inside the root, no "..", content type by extension.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "net/http_server.h"

namespace apilake {

class StaticFiles {
 public:
  explicit StaticFiles(std::filesystem::path root);   // "" = unavailable
  bool available() const { return !root_.empty(); }
  // nullopt when rel names no file inside the root.
  std::optional<ServerResponse> serve(const std::string& rel) const;

 private:
  std::filesystem::path root_;
};

// The node_modules folder holding the npm web assets: $APILAKE_NODE_MODULES, else the first of
// <sources_dir>/../node_modules, the executable's ancestors' node_modules, ./node_modules that has
// `package` in it. "" when none.
std::filesystem::path find_node_modules(const std::filesystem::path& sources_dir, const std::string& package);

// The dashboard's folder (web/, holding index.html): $APILAKE_WEB_DIR, else the first of
// <sources_dir>/../web, the executable's ancestors' web/, ./web. "" when none.
std::filesystem::path find_web_dir(const std::filesystem::path& sources_dir);

// The dashboard's routes: GET / (web/index.html), /ui/{file} (its JS and CSS), /assets/chart.js
// (Chart.js's UMD build from node_modules). nullopt when the path is none of them; 503 when the
// files are not installed, 405 for other methods.
std::optional<ServerResponse> dashboard_route(const ServerRequest& request, const std::filesystem::path& web_dir,
                                              const std::filesystem::path& node_modules);

// The /docs page: Swagger UI (assets under /docs/) loading /openapi.json from the same origin.
std::string swagger_ui_page();

}  // namespace apilake
