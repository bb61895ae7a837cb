#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <stdexcept>

namespace apilake {
namespace {

// One row per key: how to set it from text (env) and from a YAML node (file).
struct Key {
  const char* name;
  std::function<void(Config&, const std::string&)> from_text;
};

template <class T>
T parse_number(const std::string& s) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) throw std::invalid_argument("not a number: '" + s + "'");
  return v;
}

bool parse_bool(const std::string& s) {
  std::string l(s);
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "1" || l == "true" || l == "yes" || l == "on") return true;
  if (l == "0" || l == "false" || l == "no" || l == "off") return false;
  throw std::invalid_argument("not a boolean: '" + s + "'");
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t start = 0; start <= s.size();) {
    auto end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

#define STR(key, field) Key{key, [](Config& c, const std::string& v) { c.field = v; }}
#define NUM(key, field) Key{key, [](Config& c, const std::string& v) { c.field = parse_number<decltype(c.field)>(v); }}
#define BOOL(key, field) Key{key, [](Config& c, const std::string& v) { c.field = parse_bool(v); }}

const std::vector<Key>& keys() {
  static const std::vector<Key> k = {
      STR("data_dir", data_dir),
      STR("sources", sources_dir),
      STR("host", host),
      NUM("port", port),
      BOOL("demo", demo),
      Key{"api_keys", [](Config& c, const std::string& v) { c.api_keys = split_list(v); }},
      NUM("http_threads", http_threads),
      NUM("fetch_workers", fetch_workers),
      NUM("batch_max_messages", batch_max_messages),
      NUM("batch_max_age_ms", batch_max_age_ms),
      NUM("ack_deadline_s", ack_deadline_s),
      NUM("max_delivery_attempts", max_delivery_attempts),
      STR("consumer.instance", consumer_instance),
      NUM("consumer.index", consumer_index),
      NUM("query_timeout_ms", query_timeout_ms),
      NUM("compact.interval", compact_interval_s),
      NUM("compact.grace", compact_grace_s),
      NUM("insights.min_interval_ms", insights_min_interval_ms),
      STR("log_level", log_level),
      STR("bus.kind", bus_kind),
      STR("bus.topic", bus_topic),
      STR("pubsub.project", pubsub_project),
      STR("pubsub.endpoint", pubsub_endpoint),
      STR("pubsub.credentials", pubsub_credentials),
      BOOL("pubsub.ordering", pubsub_ordering),
      STR("push.token", push_token),
      STR("s3.endpoint", s3_endpoint),
      STR("s3.region", s3_region),
      STR("cache_dir", cache_dir),
  };
  return k;
}

#undef STR
#undef NUM
#undef BOOL

std::string env_name(const std::string& key) {
  std::string e = "APILAKE_";
  for (char ch : key) e += ch == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return e;
}

const Key* find_key(const std::string& name) {
  for (const auto& k : keys())
    if (name == k.name) return &k;
  return nullptr;
}

std::string where(const std::string& path, const YAML::Node& n) {
  return path + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1) + ": ";
}

void walk(Config& c, const std::string& path, const YAML::Node& map, const std::string& prefix) {
  for (const auto& kv : map) {
    std::string name = prefix + kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    if (v.IsMap()) {
      walk(c, path, v, name + ".");
      continue;
    }
    const Key* key = find_key(name);
    if (!key) throw std::invalid_argument(where(path, kv.first) + "unknown key '" + name + "'");
    std::string text;
    if (v.IsSequence()) {
      for (const auto& item : v) text += (text.empty() ? "" : ",") + item.as<std::string>();
    } else if (v.IsScalar()) {
      text = v.as<std::string>();
    } else if (!v.IsNull()) {
      throw std::invalid_argument(where(path, v) + "'" + name + "' needs a value");
    }
    try {
      key->from_text(c, text);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where(path, v) + name + ": " + e.what());
    }
  }
}

}  // namespace

void apply_file(Config& c, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw std::invalid_argument(path + ":1:1: cannot read the config file");
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(path + ":" + std::to_string(e.mark.line + 1) + ":" +
                                std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (root.IsNull()) return;
  if (!root.IsMap()) throw std::invalid_argument(where(path, root) + "the config file must be a mapping");
  walk(c, path, root, "");
}

void apply_env(Config& c) {
  for (const auto& k : keys()) {
    std::string var = env_name(k.name);
    const char* v = std::getenv(var.c_str());
    if (!v || !*v) continue;
    try {
      k.from_text(c, v);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(var + ": " + e.what());
    }
  }
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

}  // namespace apilake
