// Reading definition YAML with positions, shared by the source loader (definition.cpp) and the
// schema loader (schema_model.cpp): every problem becomes "FILE:LINE:COL: message" in `errors` and
// reading goes on, so `apilake sources validate` reports them all at once. Internal to definition/.
#pragma once
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace apilake {

// True for keys that name a credential (token, password, apiKey, client_secret, ...): a definition
// never holds a secret, only the name of the environment variable holding it.
bool secret_like(const std::string& key);

// Checks a date/time pattern (e.g. "dd/MM/yyyy", "yyyy-MM-ddTHH:mm"): runs of the letters y M d H m s
// must be among `tokens`, each at most once; every other character is a literal. nullopt = valid,
// else the problem.
std::optional<std::string> check_pattern(const std::string& pattern, std::initializer_list<std::string_view> tokens,
                                         bool need_year);

class YamlReader {
 protected:
  // Both are stored as references: the reader may be constructed before they are.
  YamlReader(const std::filesystem::path& file, std::vector<std::string>& errors) : file_(file), errors_(errors) {}

  void error(const YAML::Mark& m, const std::string& msg) {
    // yaml-cpp marks are 0-based (and -1 for "no position"); editors count from 1.
    errors_.push_back(fmt::format("{}:{}:{}: {}", file_.string(), std::max(m.line, 0) + 1,
                                  std::max(m.column, 0) + 1, msg));
  }
  void error(const YAML::Node& n, const std::string& msg) { error(n.Mark(), msg); }

  // The value under `key`, or nullopt when absent or null (a bare `key:` counts as absent).
  std::optional<YAML::Node> child(const YAML::Node& map, const char* key, bool required = false) {
    YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) {
      if (required) error(map, fmt::format("missing required key '{}'", key));
      return std::nullopt;
    }
    return n;
  }

  std::optional<YAML::Node> scalar(const YAML::Node& map, const char* key, bool required = false) {
    auto n = child(map, key, required);
    if (n && !n->IsScalar()) {
      error(*n, fmt::format("'{}' must be a single value", key));
      return std::nullopt;
    }
    return n;
  }

  std::optional<bool> boolean(const YAML::Node& map, const char* key) {
    auto n = scalar(map, key);
    if (!n) return std::nullopt;
    const std::string& v = n->Scalar();
    if (v == "true") return true;
    if (v == "false") return false;
    error(*n, fmt::format("'{}' must be true or false, got '{}'", key, v));
    return std::nullopt;
  }

  std::optional<int> integer(const YAML::Node& map, const char* key, int min) {
    auto n = scalar(map, key);
    if (!n) return std::nullopt;
    const std::string& v = n->Scalar();
    int x = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc() || p != v.data() + v.size()) {
      error(*n, fmt::format("'{}' must be an integer, got '{}'", key, v));
      return std::nullopt;
    }
    if (x < min) {
      error(*n, fmt::format("'{}' must be at least {}, got {}", key, min, x));
      return std::nullopt;
    }
    return x;
  }

  // Every key of `map` must be known; duplicates are reported (yaml-cpp silently keeps the first).
  void check_keys(const YAML::Node& map, std::initializer_list<std::string_view> known, const char* where) {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node k = it->first;  // a copy: it->first is a proxy temporary (g++ 12 -Wdangling-pointer)
      if (!k.IsScalar()) {
        error(k, fmt::format("keys in {} must be plain names", where));
        continue;
      }
      const std::string& key = k.Scalar();
      if (!seen.insert(key).second) error(k, fmt::format("duplicate key '{}' in {}", key, where));
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      if (secret_like(key) && it->second.IsScalar()) {
        error(k, fmt::format("'{}' looks like a secret: definitions never hold secrets; put it in an "
                             "environment variable and name that variable with auth.env",
                             key));
        continue;
      }
      std::string list;
      for (auto s : known) list += (list.empty() ? "" : ", ") + std::string(s);
      error(k, fmt::format("unknown key '{}' in {} (expected one of: {})", key, where, list));
    }
  }

  template <class E>
  std::optional<E> choice(const YAML::Node& map, const char* key,
                          std::initializer_list<std::pair<std::string_view, E>> options) {
    auto n = scalar(map, key);
    if (!n) return std::nullopt;
    for (const auto& [name, value] : options)
      if (n->Scalar() == name) return value;
    std::string list;
    for (const auto& [name, value] : options) list += (list.empty() ? "" : " | ") + std::string(name);
    error(*n, fmt::format("unknown {} '{}' (expected {})", key, n->Scalar(), list));
    return std::nullopt;
  }

  const std::filesystem::path& file_;
  std::vector<std::string>& errors_;
};

}  // namespace apilake
