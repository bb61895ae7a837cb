// SigV4 against the worked examples of AWS's S3 API reference, "Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk" (credentials AKIAIOSFODNN7EXAMPLE /
// wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, bucket examplebucket, 20130524T000000Z, us-east-1).
// s3rver does not verify signatures, so these documented values are what proves the signing.
#include "net/sigv4.h"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>

namespace apilake::sigv4 {
namespace {

const Credentials kCreds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr std::string_view kDate = "20130524T000000Z";
constexpr std::string_view kHost = "examplebucket.s3.amazonaws.com";

std::string authorization_of(const Headers& h) {
  for (const auto& [k, v] : h)
    if (k == "Authorization") return v;
  return "";
}

TEST(SigV4, GetObjectExample) {
  Request r;
  r.method = "GET";
  r.canonical_uri = "/test.txt";
  r.headers = {{"Host", std::string(kHost)},
               {"Range", "bytes=0-9"},
               {"x-amz-content-sha256", std::string(kEmptySha256)},
               {"x-amz-date", std::string(kDate)}};
  r.payload_hash = std::string(kEmptySha256);
  const std::string cr = canonical_request(r);
  EXPECT_EQ(cr,
            "GET\n/test.txt\n\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "range:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(string_to_sign(kDate, "us-east-1", "s3", cr),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(signature(kCreds, kDate, "us-east-1", "s3", cr),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");

  // sign() adds x-amz-date and x-amz-content-sha256 itself and yields the documented header.
  Request bare;
  bare.method = "GET";
  bare.canonical_uri = "/test.txt";
  bare.headers = {{"host", std::string(kHost)}, {"range", "bytes=0-9"}};
  bare.payload_hash = std::string(kEmptySha256);
  EXPECT_EQ(authorization_of(sign(bare, kCreds, "us-east-1", "s3", kDate)),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, PutObjectExample) {
  const std::string body = "Welcome to Amazon S3.";
  const std::string hash = sha256_hex(body);
  EXPECT_EQ(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  Request r;
  r.method = "PUT";
  r.canonical_uri = "/" + uri_encode("test$file.text", false);
  EXPECT_EQ(r.canonical_uri, "/test%24file.text");
  r.headers = {{"Host", std::string(kHost)},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  r.payload_hash = hash;
  const Headers signed_headers = sign(r, kCreds, "us-east-1", "s3", kDate);
  Request full = r;
  full.headers = signed_headers;
  full.headers.pop_back();  // Authorization is not part of what is signed
  const std::string cr = canonical_request(full);
  EXPECT_EQ(cr,
            "PUT\n/test%24file.text\n\n"
            "date:Fri, 24 May 2013 00:00:00 GMT\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
            "x-amz-date:20130524T000000Z\n"
            "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(string_to_sign(kDate, "us-east-1", "s3", cr),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(authorization_of(signed_headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4, GetBucketLifecycleExampleBareQueryName) {
  Request r;
  r.method = "GET";
  r.canonical_uri = "/";
  r.query = {{"lifecycle", ""}};
  r.headers = {{"host", std::string(kHost)}};
  r.payload_hash = std::string(kEmptySha256);
  Request full = r;
  full.headers = sign(r, kCreds, "us-east-1", "s3", kDate);
  const std::string auth = authorization_of(full.headers);
  full.headers.pop_back();
  EXPECT_EQ(canonical_request(full).substr(0, 17), "GET\n/\nlifecycle=\n");
  EXPECT_EQ(auth.substr(auth.find("Signature=")),
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4, ListObjectsExampleSortsQuery) {
  Request r;
  r.method = "GET";
  r.canonical_uri = "/";
  r.query = {{"prefix", "J"}, {"max-keys", "2"}};  // out of order on purpose
  r.headers = {{"host", std::string(kHost)}};
  r.payload_hash = std::string(kEmptySha256);
  EXPECT_EQ(canonical_query(r.query), "max-keys=2&prefix=J");
  const std::string auth = authorization_of(sign(r, kCreds, "us-east-1", "s3", kDate));
  EXPECT_EQ(auth.substr(auth.find("Signature=")),
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, UriEncodeFollowsTheSpec) {
  EXPECT_EQ(uri_encode("a-b_c.d~e", true), "a-b_c.d~e");
  EXPECT_EQ(uri_encode("a b/c+d=é*", true), "a%20b%2Fc%2Bd%3D%C3%A9%2A");
  EXPECT_EQ(uri_encode("dir/a b+c.parquet", false), "dir/a%20b%2Bc.parquet");
  EXPECT_EQ(canonical_query({{"uploadId", "a/b+c=="}, {"partNumber", "2"}}), "partNumber=2&uploadId=a%2Fb%2Bc%3D%3D");
  EXPECT_EQ(canonical_query({}), "");
}

TEST(SigV4, HeaderValuesAreTrimmedAndSpacesCollapsed) {
  Request r;
  r.method = "GET";
  r.canonical_uri = "/";
  r.headers = {{"Host", "  h  "}, {"X-B", " a   b  c "}};
  r.payload_hash = "UNSIGNED-PAYLOAD";
  EXPECT_EQ(canonical_request(r), "GET\n/\n\nhost:h\nx-b:a b c\n\nhost;x-b\nUNSIGNED-PAYLOAD");
}

TEST(SigV4, SessionTokenIsSigned) {
  Request r;
  r.method = "HEAD";
  r.canonical_uri = "/k";
  r.headers = {{"host", "h"}};
  r.payload_hash = std::string(kUnsignedPayload);
  Credentials c = kCreds;
  c.session_token = "TOKEN";
  const Headers h = sign(r, c, "us-east-1", "s3", kDate);
  const std::string auth = authorization_of(h);
  EXPECT_NE(auth.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"), std::string::npos);
  EXPECT_NE(auth, authorization_of(sign(r, kCreds, "us-east-1", "s3", kDate)));
}

TEST(SigV4, RejectsMissingHostAndBadDate) {
  Request r;
  r.method = "GET";
  r.canonical_uri = "/";
  r.payload_hash = std::string(kEmptySha256);
  EXPECT_THROW(sign(r, kCreds, "us-east-1", "s3", kDate), std::invalid_argument);
  r.headers = {{"host", "h"}};
  EXPECT_THROW(sign(r, kCreds, "us-east-1", "s3", "2013-05-24"), std::invalid_argument);
  EXPECT_THROW(sign(r, kCreds, "us-east-1", "s3", "20130524X000000Z"), std::invalid_argument);
}

TEST(SigV4, AmzDateIsUtc) {
  EXPECT_EQ(amz_date(std::chrono::system_clock::time_point{std::chrono::seconds{1369353600}}), "20130524T000000Z");
  EXPECT_EQ(amz_date(std::chrono::system_clock::time_point{std::chrono::seconds{951782400 + 3661}}),
            "20000229T010101Z");
}

}  // namespace
}  // namespace apilake::sigv4
