#include "curate/schema_registry.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "curate/schema.h"
#include "lake/lake.h"

namespace apilake {

namespace {

std::string prefix(const std::string& source, const std::string& endpoint) {
  return fmt::format("_schemas/{}/{}/", source, endpoint);
}

// "v12.json" -> 12; 0 for any other name (a stray file is not a version).
int version_of(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.size() < 7 || name[0] != 'v' || name.substr(name.size() - 5) != ".json") return 0;
  const std::string digits = name.substr(1, name.size() - 6);
  if (digits.empty() || digits.size() > 9 || digits[0] == '0' ||
      !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return 0;
  return std::stoi(digits);
}

bool same_name(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

}  // namespace

std::string schema_registry_path(const std::string& source, const std::string& endpoint, int version) {
  return prefix(source, endpoint) + fmt::format("v{}.json", version);
}

RegisteredSchema latest_registered_schema(Lake& lake, const std::string& source, const std::string& endpoint) {
  std::vector<std::pair<int, std::string>> versions;
  for (const std::string& path : lake.list(prefix(source, endpoint)))
    if (int v = version_of(path); v > 0) versions.emplace_back(v, path);
  std::sort(versions.begin(), versions.end(), std::greater<>());
  RegisteredSchema out;
  if (!versions.empty()) out.latest_version = versions.front().first;
  for (const auto& [v, path] : versions) {
    auto bytes = lake.get(path);
    if (!bytes) continue;
    try {
      Schema s = schema_from_json(*bytes);
      s.version = v;  // the name is the registry's key
      out.schema = std::move(s);
      break;
    } catch (const std::exception& e) {
      // Keep going with an older version; numbering still continues past the broken file.
      spdlog::error("schema registry: {} cannot be read ({}); using an older version", path, e.what());
    }
  }
  return out;
}

Schema current_schema(const Schema& declared, const RegisteredSchema& registered) {
  Schema out = declared;
  out.version = std::max(declared.version, registered.latest_version);
  if (!registered.schema) return out;
  for (const FieldSpec& f : registered.schema->fields) {
    const bool declared_too = std::any_of(out.fields.begin(), out.fields.end(),
                                          [&](const FieldSpec& g) { return same_name(g.name, f.name); });
    if (!declared_too) out.fields.push_back(f);
  }
  return out;
}

Schema current_schema(Lake& lake, const std::string& source, const std::string& endpoint, const Schema& declared) {
  return current_schema(declared, latest_registered_schema(lake, source, endpoint));
}

bool claim_schema_version(Lake& lake, const std::string& source, const std::string& endpoint, Schema& schema) {
  for (;; ++schema.version) {
    const auto existing = lake.get(schema_registry_path(source, endpoint, schema.version));
    if (!existing) return true;
    if (*existing == schema_json(schema)) return false;  // registered already (e.g. a redelivered batch)
  }
}

}  // namespace apilake
