// OAuth2 access tokens for Google APIs (Pub/Sub, GCS JSON API), two ways:
//  - a service-account key file: a JWT (RS256, signed with OpenSSL) is exchanged at the key's
//    token_uri (grant_type urn:ietf:params:oauth:grant-type:jwt-bearer);
//  - the metadata server (GCE, GKE, Cloud Run): GET
//    {host}/computeMetadata/v1/instance/service-accounts/default/token with Metadata-Flavor: Google.
// GoogleTokenSource::token() caches the token until refresh_margin (60 s) before it expires and is
// thread-safe (one fetch at a time). Errors are std::runtime_error without secrets (never the key,
// the assertion or a token).
#pragma once
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "net/http_client.h"

namespace apilake {

struct ServiceAccountKey {
  std::string client_email;
  std::string private_key;     // PEM (PKCS#8)
  std::string private_key_id;  // JWT "kid"
  std::string token_uri = "https://oauth2.googleapis.com/token";
};

// Parses a key file's JSON ("type": "service_account"); throws std::invalid_argument when fields miss.
ServiceAccountKey parse_service_account_key(const std::string& json_text);

// The signed assertion: base64url(header).base64url(claims).base64url(RS256 signature).
std::string make_service_account_jwt(const ServiceAccountKey& key, const std::string& scope, int64_t now_s,
                                     int64_t lifetime_s = 3600);

inline constexpr const char* kCloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform";

struct GoogleTokenOptions {
  std::chrono::seconds refresh_margin{60};
  std::chrono::milliseconds timeout{10000};
  std::function<int64_t()> now_s;  // seconds since the epoch; empty = the system clock (tests inject)
};

class GoogleTokenSource {
 public:
  static GoogleTokenSource service_account(ServiceAccountKey key, std::string scope = kCloudPlatformScope,
                                           GoogleTokenOptions options = {});
  // host: "http://metadata.google.internal" in production ($GCE_METADATA_HOST overrides it there too).
  static GoogleTokenSource metadata_server(std::string host = "", GoogleTokenOptions options = {});

  GoogleTokenSource(GoogleTokenSource&& other) noexcept;
  std::string token();  // a valid access token, fetched when the cached one is (nearly) expired

 private:
  GoogleTokenSource() = default;
  void fetch(HttpClient& client, int64_t now);
  bool metadata_ = false;
  ServiceAccountKey key_;
  std::string scope_;
  std::string host_;
  GoogleTokenOptions options_;
  std::mutex mu_;
  std::string token_;
  int64_t expires_at_s_ = 0;
};

}  // namespace apilake
