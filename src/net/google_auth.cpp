#include "net/google_auth.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "net/base64.h"

namespace apilake {

namespace json = boost::json;

namespace {

std::string field(const json::object& o, const char* name, bool required) {
  const auto* v = o.if_contains(name);
  if (v && v->is_string()) return std::string(v->as_string());
  if (required) throw std::invalid_argument(fmt::format("service account key: missing \"{}\"", name));
  return {};
}

int64_t system_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

ServiceAccountKey parse_service_account_key(const std::string& json_text) {
  json::value doc;
  try {
    doc = json::parse(json_text);
  } catch (const std::exception&) {
    throw std::invalid_argument("service account key: not JSON");  // no excerpt: it holds a private key
  }
  if (!doc.is_object()) throw std::invalid_argument("service account key: not a JSON object");
  const auto& o = doc.as_object();
  if (field(o, "type", false) != "service_account")
    throw std::invalid_argument("service account key: \"type\" is not \"service_account\"");
  ServiceAccountKey k;
  k.client_email = field(o, "client_email", true);
  k.private_key = field(o, "private_key", true);
  k.private_key_id = field(o, "private_key_id", false);
  if (auto uri = field(o, "token_uri", false); !uri.empty()) k.token_uri = uri;
  return k;
}

std::string make_service_account_jwt(const ServiceAccountKey& key, const std::string& scope, int64_t now_s,
                                     int64_t lifetime_s) {
  json::object header{{"alg", "RS256"}, {"typ", "JWT"}};
  if (!key.private_key_id.empty()) header["kid"] = key.private_key_id;
  json::object claims{{"iss", key.client_email}, {"scope", scope}, {"aud", key.token_uri},
                      {"iat", now_s},            {"exp", now_s + lifetime_s}};
  const std::string signing_input = base64url_encode(json::serialize(header)) + "." + base64url_encode(json::serialize(claims));

  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(key.private_key.data(), static_cast<int>(key.private_key.size())),
                                                 &BIO_free);
  if (!bio) throw std::runtime_error("service account key: out of memory");
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
                                                            &EVP_PKEY_free);
  if (!pkey) throw std::invalid_argument("service account key: private_key is not a PEM private key");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1)
    throw std::runtime_error("service account key: cannot sign (is it an RSA key?)");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
    throw std::runtime_error("service account key: signing failed");
  sig.resize(len);
  return signing_input + "." + base64url_encode(sig);
}

GoogleTokenSource GoogleTokenSource::service_account(ServiceAccountKey key, std::string scope, GoogleTokenOptions options) {
  GoogleTokenSource s;
  s.key_ = std::move(key);
  s.scope_ = std::move(scope);
  s.options_ = std::move(options);
  return s;
}

GoogleTokenSource GoogleTokenSource::metadata_server(std::string host, GoogleTokenOptions options) {
  GoogleTokenSource s;
  s.metadata_ = true;
  if (host.empty()) {
    const char* env = std::getenv("GCE_METADATA_HOST");
    host = env && *env ? std::string("http://") + env : "http://metadata.google.internal";
  }
  while (!host.empty() && host.back() == '/') host.pop_back();
  s.host_ = std::move(host);
  s.options_ = std::move(options);
  return s;
}

GoogleTokenSource::GoogleTokenSource(GoogleTokenSource&& o) noexcept
    : metadata_(o.metadata_),
      key_(std::move(o.key_)),
      scope_(std::move(o.scope_)),
      host_(std::move(o.host_)),
      options_(std::move(o.options_)),
      token_(std::move(o.token_)),
      expires_at_s_(o.expires_at_s_) {}

std::string GoogleTokenSource::token() {
  std::lock_guard lock(mu_);
  const int64_t now = options_.now_s ? options_.now_s() : system_now_s();
  if (!token_.empty() && now < expires_at_s_ - options_.refresh_margin.count()) return token_;
  HttpOptions http;
  http.timeout = options_.timeout;
  http.max_redirects = 0;
  http.max_body_bytes = 1u << 20;
  HttpClient client(http);
  fetch(client, now);
  return token_;
}

void GoogleTokenSource::fetch(HttpClient& client, int64_t now) {
  HttpRequest req;
  const char* what = metadata_ ? "metadata server" : "token endpoint";
  if (metadata_) {
    req.url = host_ + "/computeMetadata/v1/instance/service-accounts/default/token";
    req.headers.emplace_back("Metadata-Flavor", "Google");
  } else {
    req.method = "POST";
    req.url = key_.token_uri;
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.body = "grant_type=" + url_encode("urn:ietf:params:oauth:grant-type:jwt-bearer") +
               "&assertion=" + url_encode(make_service_account_jwt(key_, scope_, now));
  }
  const auto r = client.perform(req);
  if (r.status != 200) {
    // OAuth error bodies ({"error":"invalid_grant",...}) hold no secrets; keep them short.
    throw std::runtime_error(fmt::format("google auth: {} answered HTTP {}: {}", what, r.status, r.body.substr(0, 200)));
  }
  try {
    const auto doc = json::parse(r.body).as_object();
    std::string token(doc.at("access_token").as_string());
    const int64_t expires_in = doc.at("expires_in").to_number<int64_t>();
    if (token.empty() || expires_in <= 0) throw std::runtime_error("empty token or non-positive expires_in");
    token_ = std::move(token);
    expires_at_s_ = now + expires_in;
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("google auth: unexpected answer from the {}: {}", what, e.what()));
  }
}

}  // namespace apilake
