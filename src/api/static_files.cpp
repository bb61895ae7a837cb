#include "api/static_files.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

namespace apilake {
namespace fs = std::filesystem;

namespace {
std::string content_type_of(const fs::path& p) {
  static const std::map<std::string, std::string> types = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".json", "application/json"}, {".map", "application/json"},
      {".png", "image/png"}, {".svg", "image/svg+xml"}, {".txt", "text/plain; charset=utf-8"},
      {".ico", "image/x-icon"}};
  auto it = types.find(p.extension().string());
  return it == types.end() ? "application/octet-stream" : it->second;
}
}  // namespace

StaticFiles::StaticFiles(fs::path root) {
  std::error_code ec;
  if (!root.empty() && fs::is_directory(root, ec)) root_ = fs::canonical(root, ec);
  if (ec) root_.clear();
}

std::optional<ServerResponse> StaticFiles::serve(const std::string& rel) const {
  if (root_.empty() || rel.empty() || rel.find('\0') != std::string::npos) return std::nullopt;
  fs::path p = fs::path(rel).lexically_normal();
  if (p.is_absolute() || p.empty() || *p.begin() == "..") return std::nullopt;
  std::error_code ec;
  fs::path full = fs::canonical(root_ / p, ec);  // resolves symlinks: the result must stay inside
  if (ec || !fs::is_regular_file(full, ec)) return std::nullopt;
  auto [a, b] = std::mismatch(root_.begin(), root_.end(), full.begin(), full.end());
  if (a != root_.end()) return std::nullopt;
  std::ifstream f(full, std::ios::binary);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  ServerResponse r;
  r.content_type = content_type_of(full);
  r.headers.emplace_back("Cache-Control", "public, max-age=3600");
  r.body = ss.str();
  return r;
}

fs::path find_node_modules(const fs::path& sources_dir, const std::string& package) {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("APILAKE_NODE_MODULES"); env && *env) return fs::path(env);
  std::error_code ec;
  if (!sources_dir.empty()) candidates.push_back(fs::absolute(sources_dir, ec).parent_path() / "node_modules");
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path())
      candidates.push_back(d / "node_modules");
  candidates.push_back(fs::current_path(ec) / "node_modules");
  for (const auto& c : candidates)
    if (fs::is_directory(c / package, ec)) return c;
  return {};
}

fs::path find_web_dir(const fs::path& sources_dir) {
  if (const char* env = std::getenv("APILAKE_WEB_DIR"); env && *env) return fs::path(env);
  // Same search as find_node_modules: web/ sits next to sources/ and node_modules/ in the repo.
  std::vector<fs::path> candidates;
  std::error_code ec;
  if (!sources_dir.empty()) candidates.push_back(fs::absolute(sources_dir, ec).parent_path() / "web");
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path())
      candidates.push_back(d / "web");
  candidates.push_back(fs::current_path(ec) / "web");
  for (const auto& c : candidates)
    if (fs::is_regular_file(c / "index.html", ec)) return c;
  return {};
}

std::optional<ServerResponse> dashboard_route(const ServerRequest& request, const fs::path& web_dir,
                                              const fs::path& node_modules) {
  const std::string& path = request.path;
  const bool chart = path == "/assets/chart.js";
  if (path != "/" && path.rfind("/ui/", 0) != 0 && !chart) return std::nullopt;
  if (request.method != "GET" && request.method != "HEAD") {
    auto r = problem(405, "Method Not Allowed", request.method + " is not allowed on " + path);
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  if (chart) {
    StaticFiles files(node_modules.empty() ? fs::path() : node_modules / "chart.js" / "dist");
    if (auto r = files.serve("chart.umd.js")) return r;
    return problem(503, "Service Unavailable",
                   "Chart.js is not installed (npm package chart.js; run scripts/setup.sh or set APILAKE_NODE_MODULES)");
  }
  StaticFiles files(web_dir);
  if (!files.available())
    return problem(503, "Service Unavailable", "the dashboard's files (web/) are not found; set APILAKE_WEB_DIR");
  auto r = files.serve(path.rfind("/ui/", 0) == 0 ? path.substr(4) : "index.html");
  if (!r) return problem(404, "Not Found", "no such file: " + path);
  // The page and its scripts change with the binary: revalidate rather than cache for an hour.
  for (auto& [name, value] : r->headers)
    if (name == "Cache-Control") value = "no-cache";
  return r;
}

std::string swagger_ui_page() {
  return R"(<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>apilake API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    });
  </script>
</body>
</html>
)";
}

}  // namespace apilake
