// AWS Signature Version 4 for the S3 API (AWS S3, Google Cloud Storage's XML API with HMAC keys, MinIO,
// R2, s3rver ...). Pure functions over strings: no clock, no I/O, so every step is checked against
// the worked examples of AWS's documentation (tests/net/sigv4_test.cpp).
// Contract: sign() adds x-amz-date, x-amz-content-sha256 (+ x-amz-security-token) and Authorization
// to the headers it is given, signing every header it was given (host must be among them).
// The canonical URI is passed already encoded (S3 encodes each path segment once, keeps '/').
#pragma once
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/http_client.h"

namespace apilake::sigv4 {

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only ("" = none)
};

struct Request {
  std::string method;                                        // "GET", "PUT", ...
  std::string canonical_uri;                                 // encoded path, e.g. "/bucket/a%20b.txt"
  std::vector<std::pair<std::string, std::string>> query;    // raw (not encoded) names and values
  Headers headers;                                           // headers to sign; must include host
  std::string payload_hash;                                  // hex SHA-256 of the body or UNSIGNED-PAYLOAD
};

// Lower-case hex SHA-256 of data.
std::string sha256_hex(std::string_view data);
// Raw (binary) HMAC-SHA256.
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string hex(std::string_view bytes);

// UriEncode() of the SigV4 spec: every byte but A-Z a-z 0-9 - _ . ~ as %XY (upper-case hex);
// '/' is kept when encode_slash is false (object key paths).
std::string uri_encode(std::string_view s, bool encode_slash);
// Parameters sorted by encoded name (then value), "name=value" joined by '&'; a bare name gets "=".
std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query);
// "YYYYMMDDTHHMMSSZ" (UTC) of a time point.
std::string amz_date(std::chrono::system_clock::time_point t);

// The steps, exposed for the tests against AWS's worked examples.
std::string canonical_request(const Request& r);
std::string signed_header_names(const Headers& headers);      // "host;range;x-amz-date"
std::string string_to_sign(std::string_view amz_date, std::string_view region, std::string_view service,
                           std::string_view canonical_request);
std::string signing_key(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service);             // raw bytes
std::string signature(const Credentials& c, std::string_view amz_date, std::string_view region,
                      std::string_view service, std::string_view canonical_request);

// Adds x-amz-date, x-amz-content-sha256 (= r.payload_hash), x-amz-security-token when there is a
// session token, then signs all of r.headers and returns them with Authorization appended.
// Throws std::invalid_argument when host is missing or amz_date is malformed.
Headers sign(Request r, const Credentials& c, std::string_view region, std::string_view service,
             std::string_view amz_date);

}  // namespace apilake::sigv4
