// Read-only static files for /docs (Swagger UI from the swagger-ui-dist npm package, served locally —
// no CDN): only regular files inside the root, no "..", content type by extension.
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

// The /docs page: Swagger UI (assets under /docs/) loading /openapi.json from the same origin.
std::string swagger_ui_page();

}  // namespace apilake
