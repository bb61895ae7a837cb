#include "app/replay.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <boost/url.hpp>
#include <cctype>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "net/http_server.h"

namespace apilake {

namespace {

constexpr std::string_view kBasePlaceholder = "{{base}}";

struct Entry {
  std::string path;                                        // decoded, after the source's base path
  std::vector<std::pair<std::string, std::string>> query;  // must all be present with these values
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool has_placeholder = false;
};

struct SourceReplay {
  std::string name;
  std::string prefix_encoded;  // base_url's path as written, no trailing '/', e.g. "/v1" or ""
  std::string prefix;          // the same, decoded, for matching request paths
  std::vector<Entry> entries;
};

[[noreturn]] void fail_at(const std::filesystem::path& file, const YAML::Mark& mark, const std::string& msg) {
  if (mark.is_null()) throw DefinitionError(fmt::format("{}: {}", file.string(), msg));
  throw DefinitionError(fmt::format("{}:{}:{}: {}", file.string(), mark.line + 1, mark.column + 1, msg));
}

std::string scalar_of(const std::filesystem::path& file, const YAML::Node& n, const std::string& what) {
  if (!n.IsScalar()) fail_at(file, n.Mark(), what + " must be a scalar");
  return n.Scalar();
}


bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

// The path part of a base_url, both as written and decoded, without a trailing '/'.
std::pair<std::string, std::string> base_path_of(const Source& source) {
  auto url = boost::urls::parse_uri(source.base_url);
  if (!url)
    throw DefinitionError(fmt::format("{}: source {}: base_url '{}' is not a URL", source.file.string(), source.name,
                                      source.base_url));
  std::string encoded(url->encoded_path());
  std::string decoded(url->path());
  while (!encoded.empty() && encoded.back() == '/') encoded.pop_back();
  while (!decoded.empty() && decoded.back() == '/') decoded.pop_back();
  return {encoded, decoded};
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw std::runtime_error("cannot read " + p.string());
  return ss.str();
}

std::vector<Entry> load_entries(const std::filesystem::path& file) {
  const auto dir = file.parent_path();
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::BadFile&) {
    throw DefinitionError(fmt::format("{}: cannot open", file.string()));
  } catch (const YAML::Exception& e) {
    fail_at(file, e.mark, e.msg);
  }
  if (!root.IsMap()) fail_at(file, root.Mark(), "expected a mapping with 'responses'");
  for (auto it = root.begin(); it != root.end(); ++it)
    if (it->first.Scalar() != "responses")
      fail_at(file, it->first.Mark(), fmt::format("unknown key '{}' (expected: responses)", it->first.Scalar()));
  YAML::Node list = root["responses"];
  if (!list || !list.IsSequence()) fail_at(file, root.Mark(), "'responses' must be a list");

  static const std::set<std::string> kKeys = {"path", "query", "status", "headers", "body_file"};
  std::vector<Entry> entries;
  for (const auto& n : list) {
    if (!n.IsMap()) fail_at(file, n.Mark(), "each response must be a mapping");
    for (auto it = n.begin(); it != n.end(); ++it)
      if (!kKeys.count(it->first.Scalar()))
        fail_at(file, it->first.Mark(),
                fmt::format("unknown key '{}' (expected: path, query, status, headers, body_file)",
                            it->first.Scalar()));
    Entry e;
    if (!n["path"]) fail_at(file, n.Mark(), "response without 'path'");
    e.path = scalar_of(file, n["path"], "path");
    if (e.path.empty() || e.path.front() != '/') fail_at(file, n["path"].Mark(), "path must start with '/'");
    if (auto q = n["query"]) {
      if (!q.IsMap()) fail_at(file, q.Mark(), "query must be a mapping of parameter: value");
      for (auto it = q.begin(); it != q.end(); ++it)
        e.query.emplace_back(scalar_of(file, it->first, "query key"), scalar_of(file, it->second, "query value"));
    }
    if (auto s = n["status"]) {
      int status = 0;
      try {
        status = s.as<int>();
      } catch (const YAML::Exception&) {
        fail_at(file, s.Mark(), "status must be an integer");
      }
      if (status < 100 || status > 599) fail_at(file, s.Mark(), fmt::format("status {} is not an HTTP status", status));
      e.status = status;
    }
    if (auto h = n["headers"]) {
      if (!h.IsMap()) fail_at(file, h.Mark(), "headers must be a mapping of name: value");
      for (auto it = h.begin(); it != h.end(); ++it) {
        auto name = scalar_of(file, it->first, "header name");
        auto value = scalar_of(file, it->second, "header value");
        // Header values end up on the wire verbatim: refuse anything that could split the response.
        if (value.find_first_of("\r\n") != std::string::npos || name.find_first_of("\r\n: ") != std::string::npos)
          fail_at(file, it->first.Mark(), fmt::format("header '{}' has characters not allowed in HTTP", name));
        if (iequals(name, "content-type"))
          e.content_type = value;
        else
          e.headers.emplace_back(std::move(name), std::move(value));
      }
    }
    if (!n["body_file"]) fail_at(file, n.Mark(), "response without 'body_file'");
    const auto body_name = scalar_of(file, n["body_file"], "body_file");
    auto body_path = (dir / body_name).lexically_normal();
    // Recordings belong to this source: a body_file may not reach outside fixtures/.
    auto rel = body_path.lexically_relative(dir.lexically_normal());
    if (body_name.empty() || std::filesystem::path(body_name).is_absolute() || rel.empty() ||
        *rel.begin() == "..")
      fail_at(file, n["body_file"].Mark(), fmt::format("body_file '{}' must be a file inside {}", body_name,
                                                       dir.string()));
    if (!std::filesystem::is_regular_file(body_path))
      fail_at(file, n["body_file"].Mark(), fmt::format("body_file {} does not exist or is not a file", body_path.string()));
    try {
      e.body = read_file(body_path);
    } catch (const std::exception& ex) {
      fail_at(file, n["body_file"].Mark(), ex.what());
    }
    e.has_placeholder = e.body.find(kBasePlaceholder) != std::string::npos;
    entries.push_back(std::move(e));
  }
  return entries;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (std::size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
}

// "rest" when `path` is `prefix` followed by "/rest" or nothing (then "/"); nullopt otherwise.
std::optional<std::string> strip_prefix(std::string_view path, std::string_view prefix) {
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  auto rest = path.substr(prefix.size());
  if (rest.empty()) return std::string("/");
  if (rest.front() != '/') return std::nullopt;
  return std::string(rest);
}

}  // namespace

struct ReplayServer::Impl {
  std::map<std::string, SourceReplay, std::less<>> sources;  // every source given, fixtures or not
  std::unique_ptr<HttpServer> server;
  std::atomic<bool> started{false};

  std::string base_url(const SourceReplay& s) const {
    return fmt::format("http://127.0.0.1:{}/{}{}", server->port(), s.name, s.prefix_encoded);
  }

  ServerResponse handle(const ServerRequest& req) const {
    ServerResponse r = respond(req);
    spdlog::debug("replay: {} {} -> {}", req.method, req.target, r.status);
    return r;
  }

  ServerResponse respond(const ServerRequest& req) const {
    const auto not_found = [&] {
      return problem(404, "Not Found", "no recorded response for " + req.target);
    };
    if (req.method != "GET") {
      auto r = problem(405, "Method Not Allowed", "the replay serves recorded GET responses only");
      r.headers.emplace_back("Allow", "GET");
      return r;
    }
    // "/<name>/..." -> the source, then its base path.
    if (req.path.size() < 2 || req.path.front() != '/') return not_found();
    auto slash = req.path.find('/', 1);
    std::string_view name = std::string_view(req.path).substr(1, slash == std::string::npos ? std::string::npos : slash - 1);
    auto it = sources.find(name);
    if (it == sources.end()) return not_found();
    const SourceReplay& s = it->second;
    auto after_name = strip_prefix(req.path, "/" + s.name);
    if (!after_name) return not_found();
    auto path = strip_prefix(*after_name, s.prefix);
    if (!path) return not_found();

    for (const auto& e : s.entries) {
      if (e.path != *path) continue;
      bool match = std::all_of(e.query.begin(), e.query.end(), [&](const auto& kv) {
        return std::any_of(req.query.begin(), req.query.end(),
                           [&](const auto& q) { return q.first == kv.first && q.second == kv.second; });
      });
      if (!match) continue;
      ServerResponse r;
      r.status = e.status;
      r.content_type = e.content_type;
      r.headers = e.headers;
      r.body = e.body;
      if (e.has_placeholder) replace_all(r.body, kBasePlaceholder, base_url(s));
      // Header values too: a Link header's next URL must point back at the replay.
      for (auto& h : r.headers) replace_all(h.second, kBasePlaceholder, base_url(s));
      return r;
    }
    return not_found();
  }
};

ReplayServer::ReplayServer(const std::vector<Source>& sources, uint16_t port) : impl_(std::make_unique<Impl>()) {
  for (const auto& source : sources) {
    SourceReplay s;
    s.name = source.name;
    std::tie(s.prefix_encoded, s.prefix) = base_path_of(source);
    auto file = source.dir / "fixtures" / "replay.yaml";
    if (!source.dir.empty() && std::filesystem::exists(file)) s.entries = load_entries(file);
    if (!impl_->sources.emplace(s.name, std::move(s)).second)
      throw DefinitionError(fmt::format("{}: duplicate source name '{}'", source.file.string(), source.name));
  }
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  // Impl outlives the server (the server is a member of it and is destroyed first in ~ReplayServer).
  const Impl* impl = impl_.get();
  impl_->server = std::make_unique<HttpServer>(options, [impl](const ServerRequest& req) { return impl->handle(req); });
}

ReplayServer::~ReplayServer() {
  if (impl_ && impl_->server) impl_->server->stop();
}

void ReplayServer::start() {
  impl_->server->start();
  impl_->started = true;
  std::size_t recorded = 0;
  for (const auto& [name, s] : impl_->sources) recorded += s.entries.size();
  spdlog::info("replay: {} recorded responses of {} sources on http://127.0.0.1:{}", recorded,
               impl_->sources.size(), impl_->server->port());
}

uint16_t ReplayServer::port() const { return impl_->server->port(); }

std::string ReplayServer::base_url_for(const Source& source) const {
  if (!impl_->started) throw std::logic_error("ReplayServer::base_url_for before start()");
  // Known sources use the base path recorded at construction, so asking again with a Source whose
  // base_url was already pointed here still gives the same answer.
  if (auto it = impl_->sources.find(source.name); it != impl_->sources.end()) return impl_->base_url(it->second);
  SourceReplay s;
  s.name = source.name;
  std::tie(s.prefix_encoded, s.prefix) = base_path_of(source);
  return impl_->base_url(s);
}

}  // namespace apilake
