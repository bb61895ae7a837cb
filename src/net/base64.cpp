#include "net/base64.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace apilake {

std::string base64_encode(std::string_view bytes) {
  std::string out(base64_encoded_size(bytes.size()) + 1, '\0');  // EVP writes a trailing NUL
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_decode(std::string_view text, std::size_t spare_capacity) {
  if (text.empty()) {
    std::string out;
    out.reserve(spare_capacity);
    return out;
  }
  if (text.size() % 4 != 0) throw std::invalid_argument("base64: length is not a multiple of 4");
  // EVP_DecodeBlock accepts some whitespace and does not report padding: check the alphabet here so
  // garbage is an error rather than silently decoded bytes.
  std::size_t pad = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (c == '=' && i + 2 >= text.size()) {
      ++pad;
      continue;
    }
    if (!alpha || pad > 0) throw std::invalid_argument("base64: invalid character");
  }
  std::string out;
  out.reserve(text.size() / 4 * 3 + spare_capacity);
  out.resize(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) throw std::invalid_argument("base64: malformed input");
  out.resize(static_cast<std::size_t>(n) - pad);  // EVP counts padding as zero bytes
  return out;
}

std::string base64url_encode(std::string_view bytes) {
  std::string s = base64_encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (auto& c : s) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return s;
}

std::string base64url_decode(std::string_view text) {
  std::string s(text);
  for (auto& c : s) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
    else if (c == '+' || c == '/') throw std::invalid_argument("base64url: invalid character");
  }
  while (s.size() % 4 != 0) s.push_back('=');
  return base64_decode(s);
}

}  // namespace apilake
