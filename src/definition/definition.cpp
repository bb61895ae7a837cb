#include "definition/definition.h"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <regex>
#include <set>
#include <string_view>
#include <system_error>

namespace apilake {
namespace fs = std::filesystem;

const ParamSpec* Endpoint::param(std::string_view n) const {
  for (const auto& p : params)
    if (p.name == n) return &p;
  return nullptr;
}

const Endpoint* Source::endpoint(std::string_view n) const {
  for (const auto& e : endpoints)
    if (e.name == n) return &e;
  return nullptr;
}

const char* to_string(ParamType t) {
  switch (t) {
    case ParamType::String: return "string";
    case ParamType::Integer: return "integer";
    case ParamType::Number: return "number";
    case ParamType::Boolean: return "boolean";
    case ParamType::Date: return "date";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Parameter values
// ---------------------------------------------------------------------------------------------
namespace {

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Returns the normalised value, or nullopt with `why` set.
std::optional<std::string> normalise_value(ParamType type, const std::string& v, std::string& why) {
  switch (type) {
    case ParamType::String:
      return v;
    case ParamType::Integer: {
      std::string_view s = v;
      std::string_view digits = s;
      if (!s.empty() && s.front() == '+') {
        s.remove_prefix(1);  // from_chars does not take '+'
        digits = s;
      } else if (!s.empty() && s.front() == '-') {
        digits = s.substr(1);
      }
      if (!all_digits(digits)) {
        why = "expected an integer";
        return std::nullopt;
      }
      long long n = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec != std::errc() || p != s.data() + s.size()) {
        why = "integer out of range";
        return std::nullopt;
      }
      return std::to_string(n);
    }
    case ParamType::Number: {
      // A plain decimal with an optional exponent; no hex, inf or nan, which strtod would accept.
      static const std::regex re(R"([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)");
      if (!std::regex_match(v, re)) {
        why = "expected a decimal number";
        return std::nullopt;
      }
      if (!std::isfinite(std::strtod(v.c_str(), nullptr))) {
        why = "number out of range";
        return std::nullopt;
      }
      return v.front() == '+' ? v.substr(1) : v;
    }
    case ParamType::Boolean: {
      std::string l = v;
      std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
      if (l == "true" || l == "false") return l;
      why = "expected true or false";
      return std::nullopt;
    }
    case ParamType::Date: {
      if (v.size() != 10 || v[4] != '-' || v[7] != '-' || !all_digits(std::string_view(v).substr(0, 4)) ||
          !all_digits(std::string_view(v).substr(5, 2)) || !all_digits(std::string_view(v).substr(8, 2))) {
        why = "expected a date yyyy-mm-dd";
        return std::nullopt;
      }
      const int y = std::stoi(v.substr(0, 4)), m = std::stoi(v.substr(5, 2)), d = std::stoi(v.substr(8, 2));
      static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
      const bool ok = y >= 1 && m >= 1 && m <= 12 && d >= 1 &&
                      d <= kDays[m - 1] + ((m == 2 && is_leap(y)) ? 1 : 0);
      if (!ok) {
        why = "not a calendar date";
        return std::nullopt;
      }
      return v;
    }
  }
  why = "unknown type";
  return std::nullopt;
}

}  // namespace

Params validate_params(const Endpoint& endpoint, const Params& given) {
  for (const auto& [k, v] : given)
    if (!endpoint.param(k)) throw ParamError(k, fmt::format("unknown parameter '{}'", k));
  Params out;
  for (const auto& spec : endpoint.params) {
    auto it = given.find(spec.name);
    const std::string* raw = nullptr;
    if (it != given.end())
      raw = &it->second;
    else if (spec.default_value)
      raw = &*spec.default_value;
    if (!raw) {
      if (spec.required)
        throw ParamError(spec.name, fmt::format("missing required parameter '{}'", spec.name));
      continue;
    }
    std::string why;
    auto v = normalise_value(spec.type, *raw, why);
    if (!v)
      throw ParamError(spec.name, fmt::format("parameter '{}': {}, got '{}'", spec.name, why, *raw));
    out[spec.name] = std::move(*v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------
namespace {

const std::regex& name_re() {
  static const std::regex re("[a-z][a-z0-9_]*");
  return re;
}
const std::regex& ident_re() {
  static const std::regex re("[A-Za-z_][A-Za-z0-9_]*");
  return re;
}

// scheme://host[:port][/path]: no userinfo (a credential in a URL would be a secret in the YAML),
// no query or fragment (fixed query parameters belong to the endpoint's `query:`).
bool valid_base_url(const std::string& s) {
  static const std::regex re(
      R"(https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?)",
      std::regex::icase);
  return std::regex_match(s, re);
}

// JSON pointer (RFC 6901): "" or "/..." where '~' is only followed by 0 or 1.
bool valid_pointer(const std::string& p) {
  if (p.empty()) return true;
  if (p.front() != '/') return false;
  for (std::size_t i = 0; i < p.size(); ++i)
    if (p[i] == '~' && (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1'))) return false;
  return true;
}

// Splits a date/time pattern into letter runs; every run must be one of `tokens`, each at most once.
// Anything that is not a letter is a literal separator.
std::optional<std::string> check_pattern(const std::string& pattern, std::initializer_list<std::string_view> tokens,
                                         bool need_year) {
  std::set<std::string> seen;
  for (std::size_t i = 0; i < pattern.size();) {
    if (!std::isalpha(static_cast<unsigned char>(pattern[i]))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < pattern.size() && pattern[j] == pattern[i]) ++j;
    std::string tok = pattern.substr(i, j - i);
    if (std::find(tokens.begin(), tokens.end(), tok) == tokens.end()) {
      std::string list;
      for (auto t : tokens) list += (list.empty() ? "" : ", ") + std::string(t);
      return fmt::format("unknown token '{}' in format '{}' (known: {})", tok, pattern, list);
    }
    if (!seen.insert(tok).second) return fmt::format("token '{}' appears twice in format '{}'", tok, pattern);
    i = j;
  }
  if (need_year && !seen.count("yyyy")) return fmt::format("format '{}' has no yyyy", pattern);
  return std::nullopt;
}

// Names that hold credentials. Compared word by word (split on '_', '-', '.', and camelCase), so
// "api_key", "apiKey", "X-Api-Key", "access_token" match and "monkey" or "keyword" don't.
bool secret_like(const std::string& key) {
  static const std::set<std::string> kWords = {"key",    "apikey",   "token",      "secret",
                                                "password", "passwd", "pwd",       "credential",
                                                "credentials", "auth_token", "privatekey", "accesskey"};
  std::vector<std::string> words;
  std::string cur;
  for (std::size_t i = 0; i < key.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(key[i]);
    if (!std::isalnum(c)) {
      if (!cur.empty()) words.push_back(cur);
      cur.clear();
      continue;
    }
    if (std::isupper(c) && !cur.empty() && std::islower(static_cast<unsigned char>(cur.back()))) {
      words.push_back(cur);
      cur.clear();
    }
    cur += static_cast<char>(std::tolower(c));
  }
  if (!cur.empty()) words.push_back(cur);
  for (const auto& w : words)
    if (kWords.count(w)) return true;
  std::string joined;
  for (const auto& w : words) joined += w;
  return kWords.count(joined) > 0;
}

struct Loaded {
  Source source;
  YAML::Mark name_mark;
};

class Loader {
 public:
  explicit Loader(fs::path file) : file_(std::move(file)) {}

  std::vector<std::string> errors;

  Loaded load() {
    Loaded out;
    out.source.file = file_;
    out.source.dir = file_.parent_path();
    YAML::Node root;
    try {
      root = YAML::LoadFile(file_.string());
    } catch (const YAML::BadFile&) {
      std::error_code ec;
      const bool exists = fs::exists(file_, ec);
      error(YAML::Mark(), exists ? "cannot read the file" : "no such file");
      return out;
    } catch (const YAML::Exception& e) {
      error(e.mark, e.msg);
      return out;
    }
    if (!root.IsMap()) {
      error(root.IsDefined() && !root.IsNull() ? root.Mark() : YAML::Mark(),
            "a source definition must be a mapping (name, base_url, endpoints, ...)");
      return out;
    }
    check_keys(root, {"name", "description", "base_url", "auth", "endpoints"}, "the source");
    Source& s = out.source;
    if (auto n = scalar(root, "name", true)) {
      s.name = n->Scalar();
      out.name_mark = n->Mark();
      if (!std::regex_match(s.name, name_re()))
        error(*n, fmt::format("source name '{}' must match [a-z][a-z0-9_]*", s.name));
    } else {
      out.name_mark = root.Mark();
    }
    if (auto n = scalar(root, "description")) s.description = n->Scalar();
    if (auto n = scalar(root, "base_url", true)) {
      s.base_url = n->Scalar();
      if (!valid_base_url(s.base_url))
        error(*n, fmt::format("base_url '{}' must be an absolute http(s) URL with a host and no "
                              "credentials, query or fragment",
                              s.base_url));
      while (s.base_url.size() > 1 && s.base_url.back() == '/') s.base_url.pop_back();
    }
    if (auto n = child(root, "auth")) load_auth(*n, s.auth);
    if (auto n = child(root, "endpoints", true)) {
      if (!n->IsSequence() || n->size() == 0) {
        error(*n, "endpoints must be a non-empty list");
      } else {
        std::map<std::string, YAML::Mark> names;
        for (const auto& en : *n) {
          Endpoint e;
          YAML::Mark mark = en.Mark();
          if (!load_endpoint(en, e, mark)) continue;
          if (!e.name.empty() && !names.emplace(e.name, mark).second)
            error(mark, fmt::format("duplicate endpoint name '{}' (first defined at line {})", e.name,
                                    names[e.name].line + 1));
          s.endpoints.push_back(std::move(e));
        }
      }
    }
    return out;
  }

 private:
  fs::path file_;

  void error(const YAML::Mark& m, const std::string& msg) {
    // yaml-cpp marks are 0-based (and -1 for "no position"); editors count from 1.
    errors.push_back(fmt::format("{}:{}:{}: {}", file_.string(), std::max(m.line, 0) + 1,
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
      const YAML::Node& k = it->first;
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

  void load_auth(const YAML::Node& n, Auth& auth) {
    if (!n.IsMap()) {
      error(n, "auth must be a mapping (kind, name, env)");
      return;
    }
    check_keys(n, {"kind", "name", "env"}, "auth");
    if (auto k = choice<AuthKind>(n, "kind",
                                  {{"none", AuthKind::None},
                                   {"api_key_header", AuthKind::ApiKeyHeader},
                                   {"api_key_query", AuthKind::ApiKeyQuery},
                                   {"bearer", AuthKind::Bearer},
                                   {"basic", AuthKind::Basic}}))
      auth.kind = *k;
    else if (!child(n, "kind"))
      error(n, "missing required key 'kind'");
    const bool needs_name = auth.kind == AuthKind::ApiKeyHeader || auth.kind == AuthKind::ApiKeyQuery;
    if (auto v = scalar(n, "name", needs_name)) {
      auth.name = v->Scalar();
      static const std::regex token_re("[A-Za-z0-9!#$%&'*+.^_`|~-]+");
      if (!needs_name)
        error(*v, "auth.name applies only to api_key_header and api_key_query");
      else if (!std::regex_match(auth.name, token_re))
        error(*v, fmt::format("auth.name '{}' is not a valid header or parameter name", auth.name));
    }
    if (auto v = scalar(n, "env", auth.kind != AuthKind::None)) {
      auth.env = v->Scalar();
      static const std::regex env_re("[A-Za-z_][A-Za-z0-9_]*");
      if (auth.kind == AuthKind::None)
        error(*v, "auth.env given but auth.kind is none");
      else if (!std::regex_match(auth.env, env_re))
        error(*v, fmt::format("auth.env must name an environment variable ([A-Za-z_][A-Za-z0-9_]*), got '{}'",
                              auth.env));
    }
  }

  bool load_endpoint(const YAML::Node& n, Endpoint& e, YAML::Mark& name_mark) {
    if (!n.IsMap()) {
      error(n, "each endpoint must be a mapping (name, path, params, ...)");
      return false;
    }
    check_keys(n,
               {"name", "description", "path", "query", "params", "example", "pagination", "records", "schema"},
               "an endpoint");
    if (auto v = scalar(n, "name", true)) {
      e.name = v->Scalar();
      name_mark = v->Mark();
      if (!std::regex_match(e.name, name_re()))
        error(*v, fmt::format("endpoint name '{}' must match [a-z][a-z0-9_]*", e.name));
    }
    if (auto v = scalar(n, "description")) e.description = v->Scalar();

    std::vector<std::pair<std::string, YAML::Mark>> placeholders;
    YAML::Mark path_mark = n.Mark();
    if (auto v = scalar(n, "path", true)) {
      e.path = v->Scalar();
      path_mark = v->Mark();
      placeholders = parse_path(e.path, path_mark);
    }
    if (auto q = child(n, "query")) {
      if (!q->IsMap()) {
        error(*q, "query must be a mapping of fixed query parameters");
      } else {
        for (auto it = q->begin(); it != q->end(); ++it) {
          if (!it->first.IsScalar() || !it->second.IsScalar()) {
            error(it->first, "fixed query parameters must be name: value");
            continue;
          }
          const std::string& key = it->first.Scalar();
          if (secret_like(key)) {
            error(it->first, fmt::format("fixed query parameter '{}' looks like a secret: definitions never "
                                         "hold secrets; use auth kind api_key_query with env",
                                         key));
            continue;
          }
          if (!e.fixed_query.emplace(key, it->second.Scalar()).second)
            error(it->first, fmt::format("duplicate fixed query parameter '{}'", key));
        }
      }
    }
    bool params_ok = true;
    if (auto ps = child(n, "params")) {
      if (!ps->IsSequence()) {
        error(*ps, "params must be a list");
        params_ok = false;
      } else {
        std::set<std::string> names;
        for (const auto& pn : *ps) {
          ParamSpec p;
          const bool ok = load_param(pn, p);
          // A name is taken even by a parameter with other errors, so duplicates are still reported.
          if (!p.name.empty() && !names.insert(p.name).second) {
            error(pn, fmt::format("duplicate parameter name '{}'", p.name));
            params_ok = false;
            continue;
          }
          if (!ok) {
            params_ok = false;
            continue;
          }
          e.params.push_back(std::move(p));
        }
      }
    }
    // Placeholders name the upstream spelling (api_name), which defaults to the param name.
    for (const auto& [ph, mark] : placeholders) {
      auto it = std::find_if(e.params.begin(), e.params.end(), [&](const ParamSpec& p) {
        return p.api_name == ph && p.in == ParamLocation::Path;
      });
      if (it == e.params.end())
        error(mark, fmt::format("path placeholder '{{{}}}' has no parameter with in: path", ph));
    }
    for (const auto& p : e.params) {
      if (p.in != ParamLocation::Path) continue;
      const bool used = std::any_of(placeholders.begin(), placeholders.end(),
                                    [&](const auto& ph) { return ph.first == p.api_name; });
      if (!used && !e.path.empty())
        error(path_mark, fmt::format("path parameter '{}' has no {{{}}} in the path", p.name, p.api_name));
      // A path parameter with no value would leave a hole in the URL.
      if (!p.required && !p.default_value)
        error(path_mark, fmt::format("path parameter '{}' must be required or have a default", p.name));
    }
    if (auto pg = child(n, "pagination")) load_pagination(*pg, e.pagination);
    if (auto v = scalar(n, "records")) {
      e.records_pointer = v->Scalar();
      if (!valid_pointer(e.records_pointer))
        error(*v, fmt::format("records must be \"\" or a JSON pointer starting with '/', got '{}'",
                              e.records_pointer));
    }
    if (auto sc = child(n, "schema", true)) load_schema(*sc, e.schema);
    if (auto ex = child(n, "example")) {
      if (!ex->IsMap()) {
        error(*ex, "example must be a mapping of parameter values");
      } else {
        std::map<std::string, YAML::Mark> marks;
        bool ok = true;
        for (auto it = ex->begin(); it != ex->end(); ++it) {
          if (!it->first.IsScalar() || !it->second.IsScalar()) {
            error(it->first, "example values must be name: value");
            ok = false;
            continue;
          }
          e.example[it->first.Scalar()] = it->second.Scalar();
          marks[it->first.Scalar()] = it->first.Mark();
        }
        // Only meaningful when the params themselves loaded; otherwise it repeats their errors.
        if (ok && params_ok) {
          try {
            validate_params(e, e.example);
          } catch (const ParamError& pe) {
            auto m = marks.find(pe.param);
            error(m != marks.end() ? m->second : ex->Mark(), fmt::format("example: {}", pe.what()));
          }
        }
      }
    }
    return true;
  }

  // Placeholders in a path template with their (approximate) position; reports malformed templates.
  std::vector<std::pair<std::string, YAML::Mark>> parse_path(const std::string& path, YAML::Mark mark) {
    std::vector<std::pair<std::string, YAML::Mark>> out;
    if (path.empty() || path.front() != '/') {
      error(mark, fmt::format("path '{}' must start with '/'", path));
      return out;
    }
    if (path.find_first_of("?# ") != std::string::npos) {
      error(mark, fmt::format("path '{}' must not contain '?', '#' or spaces (use query: for fixed parameters)",
                              path));
      return out;
    }
    for (std::size_t i = 0; i < path.size(); ++i) {
      if (path[i] == '}') {
        error(mark, fmt::format("unbalanced '}}' in path '{}'", path));
        return out;
      }
      if (path[i] != '{') continue;
      const auto close = path.find('}', i);
      if (close == std::string::npos) {
        error(mark, fmt::format("unclosed '{{' in path '{}'", path));
        return out;
      }
      std::string name = path.substr(i + 1, close - i - 1);
      if (!std::regex_match(name, ident_re())) {
        error(mark, fmt::format("placeholder '{{{}}}' in path must be an identifier", name));
      } else if (std::any_of(out.begin(), out.end(), [&](const auto& p) { return p.first == name; })) {
        error(mark, fmt::format("placeholder '{{{}}}' appears twice in the path", name));
      } else {
        out.emplace_back(std::move(name), mark);
      }
      i = close;
    }
    return out;
  }

  bool load_param(const YAML::Node& n, ParamSpec& p) {
    if (!n.IsMap()) {
      error(n, "each parameter must be a mapping (name, type, ...)");
      return false;
    }
    const std::size_t before = errors.size();
    check_keys(n, {"name", "type", "in", "api_name", "required", "default", "description", "format"},
               "a parameter");
    if (auto v = scalar(n, "name", true)) {
      p.name = v->Scalar();
      if (!std::regex_match(p.name, ident_re()))
        error(*v, fmt::format("parameter name '{}' must be an identifier ([A-Za-z_][A-Za-z0-9_]*)", p.name));
    }
    if (auto t = choice<ParamType>(n, "type",
                                   {{"string", ParamType::String},
                                    {"integer", ParamType::Integer},
                                    {"number", ParamType::Number},
                                    {"boolean", ParamType::Boolean},
                                    {"date", ParamType::Date}}))
      p.type = *t;
    if (auto in = choice<ParamLocation>(n, "in", {{"query", ParamLocation::Query}, {"path", ParamLocation::Path}}))
      p.in = *in;
    p.api_name = p.name;
    if (auto v = scalar(n, "api_name")) {
      p.api_name = v->Scalar();
      if (p.api_name.empty()) error(*v, "api_name must not be empty");
    }
    if (auto r = boolean(n, "required")) p.required = *r;
    if (auto v = scalar(n, "description")) p.description = v->Scalar();
    if (auto v = scalar(n, "format")) {
      p.format = v->Scalar();
      if (p.type != ParamType::Date)
        error(*v, "format applies only to date parameters");
      else if (auto why = check_pattern(p.format, {"dd", "MM", "yyyy"}, true))
        error(*v, *why);
    }
    if (auto v = scalar(n, "default")) {
      std::string why;
      if ((secret_like(p.name) || secret_like(p.api_name)))
        error(*v, fmt::format("parameter '{}' looks like a secret: definitions never hold secrets; use auth "
                              "with env instead of a default",
                              p.name));
      else if (!normalise_value(p.type, v->Scalar(), why))
        error(*v, fmt::format("default of '{}': {}, got '{}'", p.name, why, v->Scalar()));
      else
        p.default_value = v->Scalar();
    }
    return errors.size() == before;
  }

  void load_pagination(const YAML::Node& n, Pagination& pg) {
    if (!n.IsMap()) {
      error(n, "pagination must be a mapping (kind, ...)");
      return;
    }
    check_keys(n,
               {"kind", "page_param", "size_param", "start_page", "offset_param", "limit_param", "page_size",
                "next_pointer", "max_pages"},
               "pagination");
    using K = Pagination::Kind;
    if (auto k = choice<K>(n, "kind",
                           {{"none", K::None},
                            {"page_number", K::PageNumber},
                            {"offset_limit", K::OffsetLimit},
                            {"next_url", K::NextUrl}}))
      pg.kind = *k;
    else if (!child(n, "kind"))
      error(n, "missing required key 'kind'");
    // A key that does not apply to the kind is almost always a mistake (e.g. a typo in kind).
    auto only_for = [&](const char* key, std::initializer_list<K> kinds, const char* kinds_text) {
      YAML::Node v = n[key];
      if (v.IsDefined() && std::find(kinds.begin(), kinds.end(), pg.kind) == kinds.end()) {
        error(v, fmt::format("'{}' applies only to pagination kind {}", key, kinds_text));
        return false;
      }
      return true;
    };
    auto name_param = [&](const char* key, std::string& out, bool allow_empty) {
      YAML::Node v = n[key];
      if (!v.IsDefined()) return;
      if (!v.IsScalar() && !v.IsNull()) {
        error(v, fmt::format("'{}' must be a single value", key));
        return;
      }
      out = v.IsNull() ? "" : v.Scalar();
      if (out.empty() && !allow_empty) error(v, fmt::format("'{}' must not be empty", key));
    };
    if (only_for("page_param", {K::PageNumber}, "page_number")) name_param("page_param", pg.page_param, false);
    if (only_for("size_param", {K::PageNumber}, "page_number")) name_param("size_param", pg.size_param, true);
    if (only_for("start_page", {K::PageNumber}, "page_number"))
      if (auto v = integer(n, "start_page", 0)) pg.start_page = *v;
    if (only_for("offset_param", {K::OffsetLimit}, "offset_limit"))
      name_param("offset_param", pg.offset_param, false);
    if (only_for("limit_param", {K::OffsetLimit}, "offset_limit")) name_param("limit_param", pg.limit_param, false);
    if (only_for("page_size", {K::PageNumber, K::OffsetLimit}, "page_number or offset_limit"))
      if (auto v = integer(n, "page_size", 1)) pg.page_size = *v;
    if (only_for("next_pointer", {K::NextUrl}, "next_url")) {
      if (auto v = scalar(n, "next_pointer", pg.kind == K::NextUrl)) {
        pg.next_pointer = v->Scalar();
        if (pg.next_pointer.empty() || !valid_pointer(pg.next_pointer))
          error(*v, fmt::format("next_pointer must be a JSON pointer starting with '/', got '{}'", pg.next_pointer));
      }
    }
    if (auto v = integer(n, "max_pages", 1)) pg.max_pages = *v;
  }

  // The schema model has its own loader (definition/schema_model.cpp); same error format.
  void load_schema(const YAML::Node& n, Schema& schema) { load_schema_yaml(n, schema, file_, errors); }
};

std::string first_error(const fs::path& file, std::vector<std::string> errors) {
  if (errors.size() == 1) return errors.front();
  return fmt::format("{} (and {} more; run `apilake sources validate {}` for all)", errors.front(),
                     errors.size() - 1, file.string());
}

Loaded load_checked(const fs::path& file) {
  Loader loader(file);
  Loaded l = loader.load();
  if (!loader.errors.empty()) throw DefinitionError(first_error(file, loader.errors));
  return l;
}

}  // namespace

Source load_source_file(const fs::path& file) { return load_checked(file).source; }

std::vector<std::string> validate_source_file(const fs::path& file) {
  Loader loader(file);
  loader.load();
  return loader.errors;
}

std::vector<Source> load_sources(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw DefinitionError(fmt::format("{}:1:1: not a directory of source definitions", dir.string()));
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory()) {
      auto f = entry.path() / "source.yaml";
      if (fs::is_regular_file(f)) files.push_back(f);
    } else if (entry.is_regular_file() && entry.path().extension() == ".yaml") {
      files.push_back(entry.path());
    }
  }
  if (ec) throw DefinitionError(fmt::format("{}:1:1: cannot list: {}", dir.string(), ec.message()));
  std::sort(files.begin(), files.end());
  std::vector<Source> out;
  std::map<std::string, fs::path> names;
  for (const auto& f : files) {
    Loaded l = load_checked(f);
    auto [it, fresh] = names.emplace(l.source.name, f);
    if (!fresh)
      throw DefinitionError(fmt::format("{}:{}:{}: source name '{}' is already defined in {}", f.string(),
                                        l.name_mark.line + 1, l.name_mark.column + 1, l.source.name,
                                        it->second.string()));
    out.push_back(std::move(l.source));
  }
  return out;
}

}  // namespace apilake
