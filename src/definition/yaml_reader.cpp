#include "definition/yaml_reader.h"

#include <cctype>
#include <set>

namespace apilake {

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

// Runs of the letters y M d H m s must be known tokens, each at most once; every other character
// (including other letters, e.g. the 'T' of "yyyy-MM-ddTHH:mm") is a literal, as the curator reads
// it (docs/schema.md).
std::optional<std::string> check_pattern(const std::string& pattern, std::initializer_list<std::string_view> tokens,
                                         bool need_year) {
  std::set<std::string> seen;
  for (std::size_t i = 0; i < pattern.size();) {
    if (std::string_view("yMdHms").find(pattern[i]) == std::string_view::npos) {
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

}  // namespace apilake
