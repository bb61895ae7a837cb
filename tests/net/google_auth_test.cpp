// Google OAuth2 tokens against a local token endpoint / metadata server (net/http_server.h): the JWT
// is verified with the public half of a key pair generated here with OpenSSL.
#include "net/google_auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <atomic>
#include <memory>
#include <mutex>

#include <boost/json.hpp>

#include "net/base64.h"
#include "net/http_server.h"

namespace apilake {
namespace {

namespace json = boost::json;

struct KeyPair {
  std::string private_pem;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey{nullptr, &EVP_PKEY_free};
};

KeyPair generate_key() {
  KeyPair k;
  k.pkey.reset(EVP_RSA_gen(2048));
  if (!k.pkey) throw std::runtime_error("EVP_RSA_gen failed");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), k.pkey.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  k.private_pem.assign(data, static_cast<std::size_t>(n));
  return k;
}

bool verify_rs256(EVP_PKEY* pkey, const std::string& input, const std::string& sig) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
}

std::string form_value(const std::string& body, const std::string& name) {
  for (std::size_t pos = 0; pos < body.size();) {
    auto amp = body.find('&', pos);
    if (amp == std::string::npos) amp = body.size();
    const auto pair = body.substr(pos, amp - pos);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      std::string v = pair.substr(eq + 1), out;
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '%' && i + 2 < v.size()) {
          out.push_back(static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16)));
          i += 2;
        } else {
          out.push_back(v[i] == '+' ? ' ' : v[i]);
        }
      }
      return out;
    }
    pos = amp + 1;
  }
  return {};
}

// A token endpoint that checks everything a real one would and records the verified claims.
class TokenEndpoint {
 public:
  explicit TokenEndpoint(EVP_PKEY* pub) : pub_(pub) {
    ServerOptions o;
    o.port = 0;
    server_ = std::make_unique<HttpServer>(o, [this](const ServerRequest& r) { return handle(r); });
    server_->start();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(server_->port()) + path; }
  std::atomic<int> requests{0};
  std::atomic<int> expires_in{3600};
  std::mutex mu;
  json::object last_header, last_claims;
  std::string last_flavor;

 private:
  ServerResponse handle(const ServerRequest& r) {
    const int n = ++requests;
    ServerResponse ok;
    ok.body = json::serialize(json::object{{"access_token", "tok-" + std::to_string(n)},
                                           {"expires_in", expires_in.load()},
                                           {"token_type", "Bearer"}});
    if (r.path == "/computeMetadata/v1/instance/service-accounts/default/token") {
      std::lock_guard lock(mu);
      last_flavor = r.header("metadata-flavor");
      if (last_flavor != "Google") return {403, "text/plain", {}, "missing Metadata-Flavor"};
      return ok;
    }
    if (r.path != "/token" || r.method != "POST") return {404, "text/plain", {}, "no"};
    if (r.header("content-type") != "application/x-www-form-urlencoded") return {400, "text/plain", {}, "form expected"};
    if (form_value(r.body, "grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer")
      return {400, "application/json", {}, R"({"error":"unsupported_grant_type"})"};
    const std::string jwt = form_value(r.body, "assertion");
    const auto d1 = jwt.find('.'), d2 = jwt.rfind('.');
    if (d1 == std::string::npos || d1 == d2) return {400, "application/json", {}, R"({"error":"invalid_grant"})"};
    if (!verify_rs256(pub_, jwt.substr(0, d2), base64url_decode(jwt.substr(d2 + 1))))
      return {400, "application/json", {}, R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})"};
    std::lock_guard lock(mu);
    last_header = json::parse(base64url_decode(jwt.substr(0, d1))).as_object();
    last_claims = json::parse(base64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1))).as_object();
    return ok;
  }
  EVP_PKEY* pub_;
  std::unique_ptr<HttpServer> server_;
};

class GoogleAuthTest : public ::testing::Test {
 protected:
  KeyPair key = generate_key();
  TokenEndpoint endpoint{key.pkey.get()};
  int64_t clock = 1'800'000'000;
  GoogleTokenOptions options() {
    GoogleTokenOptions o;
    o.now_s = [this] { return clock; };
    return o;
  }
  ServiceAccountKey sa() {
    return parse_service_account_key(json::serialize(json::object{{"type", "service_account"},
                                                                  {"client_email", "lake@proj.iam.gserviceaccount.com"},
                                                                  {"private_key", key.private_pem},
                                                                  {"private_key_id", "kid-1"},
                                                                  {"token_uri", endpoint.url("/token")}}));
  }
};

TEST_F(GoogleAuthTest, ExchangesAVerifiableRs256JwtForAToken) {
  auto source = GoogleTokenSource::service_account(sa(), kCloudPlatformScope, options());
  EXPECT_EQ(source.token(), "tok-1");
  std::lock_guard lock(endpoint.mu);
  EXPECT_EQ(endpoint.last_header.at("alg").as_string(), "RS256");
  EXPECT_EQ(endpoint.last_header.at("typ").as_string(), "JWT");
  EXPECT_EQ(endpoint.last_header.at("kid").as_string(), "kid-1");
  EXPECT_EQ(endpoint.last_claims.at("iss").as_string(), "lake@proj.iam.gserviceaccount.com");
  EXPECT_EQ(endpoint.last_claims.at("aud").as_string(), endpoint.url("/token"));
  EXPECT_EQ(endpoint.last_claims.at("scope").as_string(), kCloudPlatformScope);
  EXPECT_EQ(endpoint.last_claims.at("iat").to_number<int64_t>(), clock);
  EXPECT_EQ(endpoint.last_claims.at("exp").to_number<int64_t>(), clock + 3600);
}

TEST_F(GoogleAuthTest, CachesUntilAMinuteBeforeExpiryThenRefreshes) {
  auto source = GoogleTokenSource::service_account(sa(), kCloudPlatformScope, options());
  EXPECT_EQ(source.token(), "tok-1");
  clock += 3539;  // 61 s left: still good
  EXPECT_EQ(source.token(), "tok-1");
  EXPECT_EQ(endpoint.requests.load(), 1);
  clock += 1;  // 60 s left: refresh
  EXPECT_EQ(source.token(), "tok-2");
  EXPECT_EQ(endpoint.requests.load(), 2);
  std::lock_guard lock(endpoint.mu);
  EXPECT_EQ(endpoint.last_claims.at("iat").to_number<int64_t>(), clock) << "a fresh assertion for the refresh";
}

TEST_F(GoogleAuthTest, ASignatureFromAnotherKeyIsRejectedAndTheErrorHoldsNoSecret) {
  auto other = generate_key();
  auto k = sa();
  k.private_key = other.private_pem;  // signs with a key the endpoint does not know
  auto source = GoogleTokenSource::service_account(k, kCloudPlatformScope, options());
  try {
    source.token();
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("HTTP 400"), std::string::npos) << msg;
    EXPECT_NE(msg.find("invalid_grant"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("PRIVATE KEY"), std::string::npos);
    EXPECT_EQ(msg.find("eyJ"), std::string::npos) << "no assertion in errors";
  }
}

TEST_F(GoogleAuthTest, MetadataServerWithTheFlavorHeaderAndCaching) {
  auto source = GoogleTokenSource::metadata_server(endpoint.url(""), options());
  EXPECT_EQ(source.token(), "tok-1");
  EXPECT_EQ(source.token(), "tok-1");
  EXPECT_EQ(endpoint.requests.load(), 1);
  {
    std::lock_guard lock(endpoint.mu);
    EXPECT_EQ(endpoint.last_flavor, "Google");
  }
  clock += 3600;
  EXPECT_EQ(source.token(), "tok-2");
}

TEST_F(GoogleAuthTest, ShortLivedTokensAreFetchedEachTime) {
  endpoint.expires_in = 30;  // under the refresh margin: never served from the cache
  auto source = GoogleTokenSource::metadata_server(endpoint.url("/"), options());
  EXPECT_EQ(source.token(), "tok-1");
  EXPECT_EQ(source.token(), "tok-2");
}

TEST(ServiceAccountKeyFile, RejectsWhatIsNotAKey) {
  EXPECT_THROW(parse_service_account_key("nope"), std::invalid_argument);
  EXPECT_THROW(parse_service_account_key(R"({"type":"authorized_user"})"), std::invalid_argument);
  EXPECT_THROW(parse_service_account_key(R"({"type":"service_account","client_email":"a@b"})"), std::invalid_argument);
  const auto k = parse_service_account_key(R"({"type":"service_account","client_email":"a@b","private_key":"x"})");
  EXPECT_EQ(k.token_uri, "https://oauth2.googleapis.com/token");
  EXPECT_THROW(make_service_account_jwt(k, kCloudPlatformScope, 0), std::invalid_argument);
}

}  // namespace
}  // namespace apilake
