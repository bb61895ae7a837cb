// slurp(): a file's whole content, byte for byte ("" when it cannot be opened: callers compare it
// with what they expect, so a missing file fails there with both sides shown).
#pragma once
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace apilake::test {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace apilake::test
