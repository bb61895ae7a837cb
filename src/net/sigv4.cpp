#include "net/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

namespace apilake::sigv4 {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Trim() plus the spec's "sequential spaces collapse to one" for canonical header values.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// Sorted lower-case name -> value; repeated names are joined with ',' as the spec says.
std::map<std::string, std::string> canonical_headers(const Headers& headers) {
  std::map<std::string, std::string> m;
  for (const auto& [k, v] : headers) {
    auto [it, fresh] = m.emplace(lower(k), canonical_value(v));
    if (!fresh) it->second += "," + canonical_value(v);
  }
  return m;
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

}  // namespace

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  return hex(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len))
    throw std::runtime_error("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string uri_encode(std::string_view s, bool encode_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
  }
  return out;
}

std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) enc.emplace_back(uri_encode(k, true), uri_encode(v, true));
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out += '&';
    out += k + "=" + v;
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string signed_header_names(const Headers& headers) {
  std::string out;
  for (const auto& [k, v] : canonical_headers(headers)) {
    if (!out.empty()) out += ';';
    out += k;
  }
  return out;
}

std::string canonical_request(const Request& r) {
  std::string out = r.method + "\n" + (r.canonical_uri.empty() ? "/" : r.canonical_uri) + "\n" +
                    canonical_query(r.query) + "\n";
  for (const auto& [k, v] : canonical_headers(r.headers)) out += k + ":" + v + "\n";
  out += "\n" + signed_header_names(r.headers) + "\n" + r.payload_hash;
  return out;
}

std::string string_to_sign(std::string_view amz_date, std::string_view region, std::string_view service,
                           std::string_view canonical_request) {
  return fmt::format("AWS4-HMAC-SHA256\n{}\n{}/{}/{}/aws4_request\n{}", amz_date, amz_date.substr(0, 8), region,
                     service, sha256_hex(canonical_request));
}

std::string signing_key(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service) {
  std::string k = hmac_sha256("AWS4" + std::string(secret), date);
  k = hmac_sha256(k, region);
  k = hmac_sha256(k, service);
  return hmac_sha256(k, "aws4_request");
}

std::string signature(const Credentials& c, std::string_view amz_date, std::string_view region,
                      std::string_view service, std::string_view canonical_request) {
  const std::string key = signing_key(c.secret_access_key, amz_date.substr(0, 8), region, service);
  return hex(hmac_sha256(key, string_to_sign(amz_date, region, service, canonical_request)));
}

Headers sign(Request r, const Credentials& c, std::string_view region, std::string_view service,
             std::string_view date) {
  if (date.size() != 16 || date[8] != 'T' || date[15] != 'Z' || !all_digits(date.substr(0, 8)) ||
      !all_digits(date.substr(9, 6)))
    throw std::invalid_argument(fmt::format("sigv4: malformed x-amz-date '{}'", date));
  const bool has_host = std::any_of(r.headers.begin(), r.headers.end(),
                                    [](const auto& h) { return lower(h.first) == "host"; });
  if (!has_host) throw std::invalid_argument("sigv4: the host header must be signed");
  if (r.payload_hash.empty()) throw std::invalid_argument("sigv4: payload hash missing");
  r.headers.emplace_back("x-amz-date", std::string(date));
  r.headers.emplace_back("x-amz-content-sha256", r.payload_hash);
  if (!c.session_token.empty()) r.headers.emplace_back("x-amz-security-token", c.session_token);
  const std::string sig = signature(c, date, region, service, canonical_request(r));
  Headers out = std::move(r.headers);
  out.emplace_back("Authorization",
                   fmt::format("AWS4-HMAC-SHA256 Credential={}/{}/{}/{}/aws4_request,SignedHeaders={},Signature={}",
                               c.access_key_id, date.substr(0, 8), region, service, signed_header_names(out), sig));
  return out;
}

}  // namespace apilake::sigv4
