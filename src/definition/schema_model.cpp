#include "definition/schema_model.h"
#include "definition/yaml_reader.h"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <regex>
#include <set>
#include <string_view>

namespace apilake {

const char* to_string(FieldType t) {
  switch (t) {
    case FieldType::String: return "string";
    case FieldType::Int64: return "int64";
    case FieldType::Double: return "double";
    case FieldType::Bool: return "bool";
    case FieldType::Date: return "date";
    case FieldType::Timestamp: return "timestamp";
    case FieldType::Decimal: return "decimal";
    case FieldType::Enum: return "enum";
    case FieldType::Struct: return "struct";
    case FieldType::List: return "list";
  }
  return "unknown";
}

const char* to_string(Evolution e) {
  switch (e) {
    case Evolution::Ignore: return "ignore";
    case Evolution::Evolve: return "evolve";
    case Evolution::Freeze: return "freeze";
    case Evolution::DiscardValue: return "discard_value";
    case Evolution::DiscardRow: return "discard_row";
  }
  return "unknown";
}

namespace {

DefaultCheck g_default_check = nullptr;  // set once at start-up by app/ (see schema_model.h)

const std::regex& ident_re() {
  static const std::regex re("[A-Za-z_][A-Za-z0-9_]*");
  return re;
}

// JSON pointer (RFC 6901): "" or "/..." where '~' is only followed by 0 or 1.
bool valid_pointer(const std::string& p) {
  if (p.empty()) return true;
  if (p.front() != '/') return false;
  for (std::size_t i = 0; i < p.size(); ++i)
    if (p[i] == '~' && (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1'))) return false;
  return true;
}


// The schema part of the definition loader: same error style as definition.cpp's Loader.
class SchemaLoader : private YamlReader {
 public:
  SchemaLoader(const std::filesystem::path& file, std::vector<std::string>& errors) : YamlReader(file, errors) {}

  void load_schema(const YAML::Node& n, Schema& schema) {
    if (!n.IsMap()) {
      error(n, "schema must be a mapping (version, fields)");
      return;
    }
    check_keys(n, {"version", "evolution", "fields"}, "schema");
    if (auto v = integer(n, "version", 1)) schema.version = *v;
    if (auto e = choice<Evolution>(n, "evolution",
                                   {{"ignore", Evolution::Ignore},
                                    {"evolve", Evolution::Evolve},
                                    {"freeze", Evolution::Freeze},
                                    {"discard_value", Evolution::DiscardValue},
                                    {"discard_row", Evolution::DiscardRow}}))
      schema.evolution = *e;
    auto fs_node = child(n, "fields", true);
    if (!fs_node) return;
    if (!fs_node->IsSequence() || fs_node->size() == 0) {
      error(*fs_node, "schema fields must be a non-empty list");
      return;
    }
    std::set<std::string> names;
    for (const auto& fn : *fs_node) {
      FieldSpec f;
      const bool ok = load_field(fn, f);
      if (!f.name.empty() && !names.insert(f.name).second) {
        error(fn, fmt::format("duplicate field name '{}'", f.name));
        continue;
      }
      if (ok) schema.fields.push_back(std::move(f));
    }
  }

  // A struct's `fields:` (same rules as the schema's fields, names unique within the struct).
  void load_fields(const YAML::Node& n, std::vector<FieldSpec>& out) {
    if (!n.IsSequence() || n.size() == 0) {
      error(n, "struct fields must be a non-empty list");
      return;
    }
    std::set<std::string> names;
    for (const auto& fn : n) {
      FieldSpec f;
      const bool ok = load_field(fn, f);
      if (!f.name.empty() && !names.insert(f.name).second) {
        error(fn, fmt::format("duplicate field name '{}'", f.name));
        continue;
      }
      if (ok) out.push_back(std::move(f));
    }
  }

 private:
  int depth_ = 0;  // struct nesting of the field being loaded (0 = a top-level field)

  // One field; `element` = a list's `items:` mapping (no name, path or required).
  bool load_field(const YAML::Node& n, FieldSpec& f, bool element = false) {
    if (!n.IsMap()) {
      error(n, element ? "list items must be a mapping (type, ...)" : "each field must be a mapping (name, type, ...)");
      return false;
    }
    const std::size_t before = errors_.size();
    if (element)
      check_keys(n, {"type", "nullable", "format", "precision", "scale", "values", "fields", "items", "description"},
                 "list items");
    else
      check_keys(n,
                 {"name", "type", "path", "required", "nullable", "default", "format", "precision", "scale", "values",
                  "fields", "items", "description", "from_param"},
                 "a field");
    if (element) {
      f.name = "item";
    } else if (auto v = scalar(n, "name", true)) {
      f.name = v->Scalar();
      if (!std::regex_match(f.name, ident_re()))
        error(*v, fmt::format("field name '{}' must be an identifier ([A-Za-z_][A-Za-z0-9_]*)", f.name));
    }
    if (auto t = choice<FieldType>(n, "type",
                                   {{"string", FieldType::String},
                                    {"int64", FieldType::Int64},
                                    {"double", FieldType::Double},
                                    {"bool", FieldType::Bool},
                                    {"date", FieldType::Date},
                                    {"timestamp", FieldType::Timestamp},
                                    {"decimal", FieldType::Decimal},
                                    {"enum", FieldType::Enum},
                                    {"struct", FieldType::Struct},
                                    {"list", FieldType::List}}))
      f.type = *t;
    else if (!child(n, "type"))
      error(n, "missing required key 'type'");
    if (!element) {
      f.path = "/" + f.name;
      if (auto v = scalar(n, "path")) {
        f.path = v->Scalar();
        if (!valid_pointer(f.path) || f.path.empty())
          error(*v, fmt::format("field path must be a JSON pointer starting with '/', got '{}'", f.path));
      }
      if (auto r = boolean(n, "required")) f.required = *r;
      // from_param: the value is a request parameter of the extraction, not part of the record.
      if (auto v = scalar(n, "from_param")) {
        f.from_param = v->Scalar();
        if (depth_ > 0)
          error(*v, "from_param applies only to top-level fields (a struct's fields are read from the record)");
        else if (n["path"].IsDefined())
          error(*v, "a field takes either path or from_param, not both");
        else if (f.type == FieldType::Struct || f.type == FieldType::List)
          error(*v, fmt::format("a {} field cannot take from_param (a parameter is one value)", to_string(f.type)));
        else if (f.from_param.empty())
          error(*v, "from_param must name a parameter of the endpoint");
        f.path.clear();
      }
    }
    if (auto r = boolean(n, "nullable")) f.nullable = *r;
    if (auto v = scalar(n, "format")) {
      f.format = v->Scalar();
      switch (f.type) {
        case FieldType::Date:
          if (auto why = check_pattern(f.format, {"dd", "MM", "yyyy", "HH", "mm", "ss"}, true)) error(*v, *why);
          break;
        case FieldType::Timestamp:
          if (f.format != "iso8601" && f.format != "epoch_s" && f.format != "epoch_ms")
            if (auto why = check_pattern(f.format, {"dd", "MM", "yyyy", "HH", "mm", "ss"}, true))
              error(*v, "timestamp format must be iso8601, epoch_s, epoch_ms or a pattern: " + *why);
          break;
        case FieldType::Int64:
        case FieldType::Double:
        case FieldType::Decimal:
          if (f.format != "decimal_comma")
            error(*v, fmt::format("format of a {} field can only be decimal_comma, got '{}'", to_string(f.type),
                                  f.format));
          break;
        default:
          error(*v, fmt::format("format does not apply to a {} field", to_string(f.type)));
      }
    }
    // Type-specific keys: each belongs to one type, and is required there.
    auto only_for = [&](const char* key, FieldType t) {
      YAML::Node k = n[key];
      if (k.IsDefined() && f.type != t)
        error(k, fmt::format("'{}' applies only to {} fields, not {}", key, to_string(t), to_string(f.type)));
      return k.IsDefined() && f.type == t;
    };
    if (only_for("precision", FieldType::Decimal) || f.type == FieldType::Decimal) {
      if (auto p = integer(n, "precision", 1)) {
        if (*p > 38) error(n["precision"], fmt::format("decimal precision must be at most 38, got {}", *p));
        f.precision = *p;
      } else if (!child(n, "precision")) {
        error(n, "a decimal field needs 'precision' (1..38)");
      }
    }
    if (only_for("scale", FieldType::Decimal)) {
      if (auto sc = integer(n, "scale", 0)) {
        if (f.precision > 0 && *sc > f.precision)
          error(n["scale"], fmt::format("decimal scale {} exceeds precision {}", *sc, f.precision));
        f.scale = *sc;
      }
    }
    if (only_for("values", FieldType::Enum) || f.type == FieldType::Enum) {
      YAML::Node vs = n["values"];
      if (!vs.IsDefined() || !vs.IsSequence() || vs.size() == 0) {
        error(vs.IsDefined() ? vs : n, "an enum field needs 'values', a non-empty list of strings");
      } else {
        std::set<std::string> seen;
        for (const auto& v : vs) {
          if (!v.IsScalar()) {
            error(v, "enum values must be plain strings");
            continue;
          }
          if (!seen.insert(v.Scalar()).second) error(v, fmt::format("duplicate enum value '{}'", v.Scalar()));
          f.values.push_back(v.Scalar());
        }
      }
    }
    if (only_for("fields", FieldType::Struct) || f.type == FieldType::Struct) {
      if (auto fs_node = child(n, "fields", true)) {
        ++depth_;
        load_fields(*fs_node, f.fields);
        --depth_;
      }
    }
    if (only_for("items", FieldType::List) || f.type == FieldType::List) {
      if (auto it = child(n, "items", true)) {
        FieldSpec item;
        if (load_field(*it, item, true)) f.items.push_back(std::move(item));
      }
    }
    if (!element) {
      if (auto v = scalar(n, "default")) {
        if (f.type == FieldType::Struct || f.type == FieldType::List)
          error(*v, fmt::format("a {} field cannot have a default", to_string(f.type)));
        else if (f.required)
          error(*v, "a required field cannot have a default (it is never absent)");
        else if (f.type == FieldType::Enum && std::find(f.values.begin(), f.values.end(), v->Scalar()) == f.values.end())
          error(*v, fmt::format("default '{}' is not one of the enum values", v->Scalar()));
        f.default_value = v->Scalar();
        // The curator's own conversion (curate/), when app/ installed it: one set of coercion rules.
        if (g_default_check && errors_.size() == before)
          if (std::string why = g_default_check(f); !why.empty())
            error(*v, fmt::format("field '{}': invalid default '{}': {}", f.name, v->Scalar(), why));
      }
      if (!f.nullable && !f.required && !f.default_value && errors_.size() == before)
        error(n, fmt::format("field '{}' is nullable: false but neither required nor given a default, so an "
                             "absent value would have no value",
                             f.name));
    }
    return errors_.size() == before;
  }
};

}  // namespace

void set_default_check(DefaultCheck check) { g_default_check = check; }

void load_schema_yaml(const YAML::Node& node, Schema& schema, const std::filesystem::path& file,
                      std::vector<std::string>& errors) {
  SchemaLoader(file, errors).load_schema(node, schema);
}

}  // namespace apilake
