#include "definition/definition.h"
#include "definition/yaml_reader.h"

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

struct CompiledPattern {
  std::regex re;
};
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
    case ParamType::Enum: return "enum";
    case ParamType::List: return "list";
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
    case ParamType::Enum:
    case ParamType::List:
      return v;  // checked by normalise_param, which knows the spec
  }
  why = "unknown type";
  return std::nullopt;
}

// Orders two normalised values of a type with bounds: numerically for Integer/Number, as text for
// ISO dates (yyyy-mm-dd sorts as text).
int compare_values(ParamType type, const std::string& a, const std::string& b) {
  if (type == ParamType::Integer || type == ParamType::Number) {
    const double x = std::strtod(a.c_str(), nullptr), y = std::strtod(b.c_str(), nullptr);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

// One value (a whole param, or one item of a list) against type, enum values, bounds and pattern.
std::optional<std::string> normalise_one(const ParamSpec& spec, ParamType type, const std::string& raw,
                                         std::string& why) {
  auto v = normalise_value(type, raw, why);
  if (!v) return std::nullopt;
  if (type == ParamType::Enum) {
    if (std::find(spec.values.begin(), spec.values.end(), *v) == spec.values.end()) {
      std::string list;
      for (const auto& x : spec.values) list += (list.empty() ? "" : ", ") + x;
      why = fmt::format("expected one of {}", list);
      return std::nullopt;
    }
  }
  if (spec.minimum && compare_values(type, *v, *spec.minimum) < 0) {
    why = fmt::format("must be at least {}", *spec.minimum);
    return std::nullopt;
  }
  if (spec.maximum && compare_values(type, *v, *spec.maximum) > 0) {
    why = fmt::format("must be at most {}", *spec.maximum);
    return std::nullopt;
  }
  if (!spec.pattern.empty()) {
    // The loader compiled it once (compiled_pattern); only a hand-built spec compiles it here, and a
    // bad pattern can only come from one.
    try {
      const bool match = spec.compiled_pattern
                             ? std::regex_match(*v, spec.compiled_pattern->re)
                             : std::regex_match(*v, std::regex(spec.pattern, std::regex::ECMAScript));
      if (!match) {
        why = fmt::format("does not match the pattern {}", spec.pattern);
        return std::nullopt;
      }
    } catch (const std::regex_error&) {
      why = fmt::format("the pattern {} is not a valid regular expression", spec.pattern);
      return std::nullopt;
    }
  }
  return v;
}

// A whole parameter value. Lists arrive comma-separated ("a,b,c"); empty items are refused.
std::optional<std::string> normalise_param(const ParamSpec& spec, const std::string& raw, std::string& why) {
  if (spec.type != ParamType::List) return normalise_one(spec, spec.type, raw, why);
  std::string out;
  std::size_t start = 0, index = 0;
  for (;;) {
    const auto comma = raw.find(',', start);
    const std::string item = raw.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    ++index;
    if (item.empty()) {
      why = fmt::format("item {} of the list is empty", index);
      return std::nullopt;
    }
    std::string item_why;
    auto v = normalise_one(spec, spec.item_type, item, item_why);
    if (!v) {
      why = fmt::format("item {} ('{}'): {}", index, item, item_why);
      return std::nullopt;
    }
    out += (out.empty() ? "" : ",") + *v;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
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
    auto v = normalise_param(spec, *raw, why);
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


struct Loaded {
  Source source;
  YAML::Mark name_mark;
};

class Loader : private YamlReader {
 public:
  // The reader keeps references to file_ and errors (bound before they are constructed: only stored).
  explicit Loader(fs::path file) : YamlReader(file_, errors), file_(std::move(file)) {}

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
    check_keys(root, {"name", "description", "base_url", "auth", "rate_limit", "max_page_bytes", "endpoints"},
               "the source");
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
    if (auto n = child(root, "rate_limit")) load_rate_limit(*n, s.rate_limit);
    if (auto v = integer(root, "max_page_bytes", 1)) {
      // Raising it past the bus's message limit would only move the failure to publish time.
      if (static_cast<std::size_t>(*v) > kMaxPageBytes)
        error(root["max_page_bytes"], fmt::format("max_page_bytes can be at most {} (the bus message limit)",
                                                  kMaxPageBytes));
      else
        s.max_page_bytes = static_cast<std::size_t>(*v);
    }
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

  // layout, partition_by and files (docs/lake.md); partition_by must name a date/timestamp field.
  void load_lake_keys(const YAML::Node& n, Endpoint& e) {
    if (auto v = scalar(n, "layout")) {
      if (v->Scalar() == "seed")
        e.layout = Endpoint::Layout::Seed;
      else if (v->Scalar() == "hive")
        e.layout = Endpoint::Layout::Hive;
      else
        error(*v, fmt::format("layout must be seed or hive, got '{}'", v->Scalar()));
    }
    if (auto v = scalar(n, "partition_by")) {
      e.partition_by = v->Scalar();
      auto it = std::find_if(e.schema.fields.begin(), e.schema.fields.end(),
                             [&](const FieldSpec& f) { return f.name == e.partition_by; });
      if (it == e.schema.fields.end())
        error(*v, fmt::format("partition_by '{}' is not a field of the schema", e.partition_by));
      else if (it->type != FieldType::Date && it->type != FieldType::Timestamp)
        error(*v, fmt::format("partition_by '{}' must be a date or timestamp field, not {}", e.partition_by,
                              to_string(it->type)));
    }
    if (auto f = child(n, "files")) {
      if (!f->IsMap()) {
        error(*f, "files must be a mapping (max_rows, max_mb, row_group_rows)");
        return;
      }
      check_keys(*f, {"max_rows", "max_mb", "row_group_rows"}, "files");
      if (auto x = integer(*f, "max_rows", 1)) e.files.max_rows = *x;
      if (auto x = integer(*f, "max_mb", 1)) e.files.max_mb = *x;
      if (auto x = integer(*f, "row_group_rows", 1)) e.files.row_group_rows = *x;
    }
  }

  bool load_endpoint(const YAML::Node& n, Endpoint& e, YAML::Mark& name_mark) {
    if (!n.IsMap()) {
      error(n, "each endpoint must be a mapping (name, path, params, ...)");
      return false;
    }
    check_keys(n,
               {"name", "description", "path", "query", "params", "example", "pagination", "records", "schema",
                "layout", "partition_by", "files", "record_shape", "record_context", "incremental"},
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
    if (auto rs = choice<RecordShape>(n, "record_shape",
                                      {{"records", RecordShape::Records},
                                       {"parallel_arrays", RecordShape::ParallelArrays}}))
      e.record_shape = *rs;
    if (auto rc = child(n, "record_context")) load_record_context(*rc, e);
    if (auto inc = child(n, "incremental")) load_incremental(*inc, e);
    if (auto sc = child(n, "schema", true)) {
      load_schema(*sc, e.schema);
      check_from_params(*sc, e);
    }
    load_lake_keys(n, e);
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
    check_keys(n,
               {"name", "type", "in", "api_name", "required", "default", "description", "format", "values",
                "item_type", "separator", "explode", "minimum", "maximum", "pattern"},
               "a parameter");
    if (auto v = scalar(n, "name", true)) {
      p.name = v->Scalar();
      if (!std::regex_match(p.name, ident_re()))
        error(*v, fmt::format("parameter name '{}' must be an identifier ([A-Za-z_][A-Za-z0-9_]*)", p.name));
    }
    const std::initializer_list<std::pair<std::string_view, ParamType>> scalar_types = {
        {"string", ParamType::String}, {"integer", ParamType::Integer}, {"number", ParamType::Number},
        {"boolean", ParamType::Boolean}, {"date", ParamType::Date}, {"enum", ParamType::Enum}};
    if (auto t = choice<ParamType>(n, "type",
                                   {{"string", ParamType::String},
                                    {"integer", ParamType::Integer},
                                    {"number", ParamType::Number},
                                    {"boolean", ParamType::Boolean},
                                    {"date", ParamType::Date},
                                    {"enum", ParamType::Enum},
                                    {"list", ParamType::List}}))
      p.type = *t;
    const bool is_list = p.type == ParamType::List;
    if (auto t = choice<ParamType>(n, "item_type", scalar_types)) {
      if (!is_list) error(n["item_type"], "item_type applies only to list parameters");
      p.item_type = *t;
    }
    // The type each value (or list item) is checked as.
    const ParamType vt = is_list ? p.item_type : p.type;
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
      if (vt != ParamType::Date)
        error(*v, "format applies only to date parameters (or lists of dates)");
      else if (auto why = check_pattern(p.format, {"dd", "MM", "yyyy"}, true))
        error(*v, *why);
    }
    if (auto v = child(n, "values")) {
      if (vt != ParamType::Enum) {
        error(*v, "values applies only to enum parameters (or lists of enums)");
      } else if (!v->IsSequence() || v->size() == 0) {
        error(*v, "values must be a non-empty list");
      } else {
        for (const auto& x : *v) {
          if (!x.IsScalar() || x.Scalar().empty()) {
            error(x, "each enum value must be a non-empty single value");
            continue;
          }
          if (std::find(p.values.begin(), p.values.end(), x.Scalar()) != p.values.end())
            error(x, fmt::format("duplicate enum value '{}'", x.Scalar()));
          p.values.push_back(x.Scalar());
        }
      }
    } else if (vt == ParamType::Enum) {
      error(n, fmt::format("enum parameter '{}' needs values: [...]", p.name));
    }
    if (auto v = scalar(n, "separator")) {
      if (!is_list) error(*v, "separator applies only to list parameters");
      else if (v->Scalar().empty()) error(*v, "separator must not be empty");
      else p.separator = v->Scalar();
    }
    if (auto r = boolean(n, "explode")) {
      if (!is_list) error(n["explode"], "explode applies only to list parameters");
      else if (*r && p.in == ParamLocation::Path) error(n["explode"], "explode applies only to query parameters");
      else p.explode = *r;
    }
    for (const char* key : {"minimum", "maximum"}) {
      auto v = scalar(n, key);
      if (!v) continue;
      if (vt != ParamType::Integer && vt != ParamType::Number && vt != ParamType::Date) {
        error(*v, fmt::format("{} applies only to integer, number and date parameters", key));
        continue;
      }
      std::string why;
      auto norm = normalise_value(vt, v->Scalar(), why);
      if (!norm) {
        error(*v, fmt::format("{} of '{}': {}, got '{}'", key, p.name, why, v->Scalar()));
        continue;
      }
      (std::string_view(key) == "minimum" ? p.minimum : p.maximum) = *norm;
    }
    if (p.minimum && p.maximum && compare_values(vt, *p.minimum, *p.maximum) > 0)
      error(n["maximum"], fmt::format("maximum {} is below minimum {}", *p.maximum, *p.minimum));
    if (auto v = scalar(n, "pattern")) {
      if (vt != ParamType::String) {
        error(*v, "pattern applies only to string parameters (or lists of strings)");
      } else {
        try {
          // Compiled here, once, and kept: compiling per request was the accept path's top cost.
          p.compiled_pattern = std::make_shared<const CompiledPattern>(
              CompiledPattern{std::regex(v->Scalar(), std::regex::ECMAScript)});
          p.pattern = v->Scalar();
        } catch (const std::regex_error& e) {
          error(*v, fmt::format("pattern '{}' is not a valid regular expression: {}", v->Scalar(), e.what()));
        }
      }
    }
    if (auto v = child(n, "default")) {
      // A list default may be written as a YAML list; it is stored comma-joined like a given value.
      std::string text;
      bool ok = true;
      if (v->IsSequence() && is_list) {
        for (const auto& x : *v) {
          if (!x.IsScalar()) ok = false;
          else text += (text.empty() ? "" : ",") + x.Scalar();
        }
      } else if (v->IsScalar()) {
        text = v->Scalar();
      } else {
        ok = false;
      }
      std::string why;
      if (!ok)
        error(*v, "default must be a single value (or, for a list, a list of values)");
      else if ((secret_like(p.name) || secret_like(p.api_name)))
        error(*v, fmt::format("parameter '{}' looks like a secret: definitions never hold secrets; use auth "
                              "with env instead of a default",
                              p.name));
      else if (errors.size() == before && !normalise_param(p, text, why))
        error(*v, fmt::format("default of '{}': {}, got '{}'", p.name, why, text));
      else
        p.default_value = text;
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
                "next_pointer", "cursor_pointer", "cursor_param", "stop_on_empty", "stop_on_short",
                "total_pointer", "has_more_pointer", "max_pages"},
               "pagination");
    using K = Pagination::Kind;
    if (auto k = choice<K>(n, "kind",
                           {{"none", K::None},
                            {"page_number", K::PageNumber},
                            {"offset_limit", K::OffsetLimit},
                            {"cursor", K::Cursor},
                            {"next_url", K::NextUrl},
                            {"link_header", K::LinkHeader}}))
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
    if (only_for("cursor_pointer", {K::Cursor}, "cursor")) {
      if (auto v = scalar(n, "cursor_pointer", pg.kind == K::Cursor)) {
        pg.cursor_pointer = v->Scalar();
        if (pg.cursor_pointer.empty() || !valid_pointer(pg.cursor_pointer))
          error(*v, fmt::format("cursor_pointer must be a JSON pointer starting with '/', got '{}'",
                                pg.cursor_pointer));
      }
    }
    if (only_for("cursor_param", {K::Cursor}, "cursor")) {
      if (pg.kind == K::Cursor && !n["cursor_param"].IsDefined())
        error(n, "missing required key 'cursor_param'");
      name_param("cursor_param", pg.cursor_param, false);
    }
    if (auto b = boolean(n, "stop_on_empty")) pg.stop_on_empty = *b;
    if (only_for("stop_on_short", {K::PageNumber, K::OffsetLimit}, "page_number or offset_limit"))
      if (auto b = boolean(n, "stop_on_short")) pg.stop_on_short = *b;
    for (auto [key, out] : {std::pair<const char*, std::string*>{"total_pointer", &pg.total_pointer},
                            std::pair<const char*, std::string*>{"has_more_pointer", &pg.has_more_pointer}}) {
      if (!only_for(key, {K::PageNumber, K::OffsetLimit, K::Cursor, K::NextUrl, K::LinkHeader},
                    "other than none"))
        continue;
      if (auto v = scalar(n, key)) {
        *out = v->Scalar();
        if (out->empty() || !valid_pointer(*out))
          error(*v, fmt::format("{} must be a JSON pointer starting with '/', got '{}'", key, *out));
      }
    }
    if (auto v = integer(n, "max_pages", 1)) pg.max_pages = *v;
  }

  void load_rate_limit(const YAML::Node& n, RateLimit& rl) {
    if (!n.IsMap()) {
      error(n, "rate_limit must be a mapping (requests_per_second, max_concurrent)");
      return;
    }
    check_keys(n, {"requests_per_second", "max_concurrent"}, "rate_limit");
    if (auto v = scalar(n, "requests_per_second")) {
      static const std::regex re(R"(\d+(\.\d+)?)");
      const double x = std::regex_match(v->Scalar(), re) ? std::strtod(v->Scalar().c_str(), nullptr) : -1;
      if (!(x > 0) || x > 1e6)
        error(*v, fmt::format("requests_per_second must be a positive number, got '{}'", v->Scalar()));
      else
        rl.requests_per_second = x;
    }
    if (auto v = integer(n, "max_concurrent", 1)) rl.max_concurrent = *v;
  }

  void load_record_context(const YAML::Node& n, Endpoint& e) {
    if (!n.IsMap()) {
      error(n, "record_context must be a mapping of name: /json/pointer");
      return;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar() || !it->second.IsScalar()) {
        error(it->first, "record_context entries must be name: /json/pointer");
        continue;
      }
      const std::string& name = it->first.Scalar();
      const std::string& ptr = it->second.Scalar();
      if (!std::regex_match(name, ident_re()))
        error(it->first, fmt::format("record_context name '{}' must be an identifier", name));
      else if (ptr.empty() || !valid_pointer(ptr))
        error(it->second, fmt::format("record_context '{}' must be a JSON pointer starting with '/', got '{}'",
                                      name, ptr));
      else if (std::any_of(e.record_context.begin(), e.record_context.end(),
                           [&](const auto& c) { return c.first == name; }))
        error(it->first, fmt::format("duplicate record_context name '{}'", name));
      else
        e.record_context.emplace_back(name, ptr);
    }
  }

  void load_incremental(const YAML::Node& n, Endpoint& e) {
    if (!n.IsMap()) {
      error(n, "incremental must be a mapping (cursor_field, param)");
      return;
    }
    check_keys(n, {"cursor_field", "param"}, "incremental");
    Incremental inc;
    bool ok = true;
    if (auto v = scalar(n, "cursor_field", true)) {
      inc.cursor_field = v->Scalar();
      if (!inc.cursor_field.empty() && inc.cursor_field.front() != '/') inc.cursor_field = "/" + inc.cursor_field;
      if (inc.cursor_field.size() < 2 || !valid_pointer(inc.cursor_field)) {
        error(*v, fmt::format("cursor_field must be a field name or JSON pointer, got '{}'", v->Scalar()));
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto v = scalar(n, "param", true)) {
      inc.param = v->Scalar();
      const ParamSpec* spec = e.param(inc.param);
      if (!spec) {
        error(*v, fmt::format("incremental param '{}' is not a parameter of this endpoint", inc.param));
        ok = false;
      } else if (spec->type != ParamType::String && spec->type != ParamType::Integer &&
                 spec->type != ParamType::Number && spec->type != ParamType::Date) {
        error(*v, fmt::format("incremental param '{}' must be a string, integer, number or date", inc.param));
        ok = false;
      }
    } else {
      ok = false;
    }
    if (ok) e.incremental = std::move(inc);
  }

  // from_param must name one of the endpoint's params (the schema loader does not know them).
  void check_from_params(const YAML::Node& schema, const Endpoint& e) {
    if (!schema.IsMap()) return;
    const YAML::Node fields = schema["fields"];
    if (!fields.IsDefined() || !fields.IsSequence()) return;
    for (const auto& fn : fields) {
      if (!fn.IsMap()) continue;
      const YAML::Node p = fn["from_param"];  // an absent key is an invalid node: ask IsDefined first
      if (!p.IsDefined() || !p.IsScalar()) continue;
      const std::string name = p.Scalar();
      if (!name.empty() && !e.param(name))
        error(p, fmt::format("from_param '{}' is not a parameter of this endpoint", name));
    }
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
