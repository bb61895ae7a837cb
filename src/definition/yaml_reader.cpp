#include "definition/yaml_reader.h"

#include <cctype>

namespace apilake {

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

}  // namespace apilake
