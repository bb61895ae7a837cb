// Base64 (RFC 4648 §4, padded) and base64url (§5, unpadded) — the one implementation in the project
// (OpenSSL's EVP block coder underneath). Used by Pub/Sub (message data), Google auth (JWT) and any
// other wire format that needs it. Decoding rejects malformed input with std::invalid_argument.
#pragma once
#include <string>
#include <string_view>

namespace apilake {

std::string base64_encode(std::string_view bytes);
// Accepts padded input (whitespace-free); throws std::invalid_argument on anything else.
// spare_capacity: bytes reserved past the result's end (e.g. for a reader that parses in place).
std::string base64_decode(std::string_view text, std::size_t spare_capacity = 0);
// URL-safe alphabet ('-', '_'), no padding (JWT).
std::string base64url_encode(std::string_view bytes);
// Accepts base64url with or without padding.
std::string base64url_decode(std::string_view text);
// Length of base64_encode(n bytes): what a request body grows by.
constexpr std::size_t base64_encoded_size(std::size_t n) { return (n + 2) / 3 * 4; }

}  // namespace apilake
