// The lake on an object store through the S3 API with SigV4: AWS S3, and Google Cloud Storage through
// its XML API at https://storage.googleapis.com with HMAC keys (same code, gs:// URLs), MinIO, R2,
// s3rver in tests. Lake paths map to keys "<prefix>/<path>" in one bucket.
// Contract:
// - The object name is the commit point: put() is one PUT, commit_staged() one PUT or a multipart
//   upload completed in one call; S3 makes either appear whole or not at all. A failed multipart
//   upload is aborted, so no partial object ever exists under the lake's prefix.
// - staging_dir() is a local directory (writers stage files on disk); commit_staged() uploads the
//   staged file then deletes it, and is idempotent: staged file gone and object present -> no-op.
// - local_root() is "": DuckDB reads such a lake through insight/lake_cache.h.
// - Thread-safe: each call borrows an HttpClient from a small pool. Transient failures (5xx, 429,
//   timeouts, connection errors) are retried with backoff; anything else throws std::runtime_error
//   naming the operation, key and S3 error code, never a credential.
#pragma once
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lake/lake.h"
#include "net/http_client.h"
#include "net/retry.h"
#include "net/sigv4.h"

namespace apilake {

struct S3Config {
  std::string bucket;
  std::string prefix;          // key prefix without leading/trailing '/'; "" = bucket root
  std::string endpoint;        // scheme://host[:port], no path; "" = AWS S3 for `region`
  std::string region = "us-east-1";
  sigv4::Credentials credentials;
  // Path-style URLs (endpoint/bucket/key) — what custom endpoints, s3rver and GCS need; false gives
  // virtual-hosted URLs (bucket.host/key), what AWS S3 prefers.
  bool path_style = true;
  std::size_t multipart_threshold = 16u << 20;  // staged files above this go up in parts
  std::size_t part_size = 16u << 20;            // S3's minimum is 5 MiB (except the last part)
  std::filesystem::path staging_dir;            // local; created on construction
  // Called after each uploaded part of a multipart upload (progress); an exception thrown from it
  // aborts the upload like any other failure (the tests use that to fail an upload midway).
  std::function<void(int part_number, std::size_t bytes_done)> on_part;
  // Timeouts and the largest object get() may return (whole objects are read into memory).
  HttpOptions http = [] {
    HttpOptions o;
    o.timeout = std::chrono::minutes(5);      // one request: a part or a whole object
    o.max_body_bytes = std::size_t{2} << 30;
    return o;
  }();
  RetryPolicy retry;
};

// Parses "s3://bucket/prefix" or "gs://bucket/prefix" into bucket and prefix, filling the endpoint,
// region and credentials from the environment the AWS tools use: AWS_ENDPOINT_URL, AWS_REGION
// (or AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. gs:// defaults
// to https://storage.googleapis.com, region "auto". Throws std::invalid_argument on a bad URI.
S3Config s3_config_from_uri(const std::string& uri);

// The minimal XML reading S3's responses need (exposed for tests): text of every <tag>…</tag>,
// entities (&amp; &lt; &gt; &quot; &apos; &#N; &#xH;) decoded. Throws std::runtime_error when malformed.
namespace s3xml {
std::string unescape(std::string_view s);
std::vector<std::string> all(std::string_view xml, std::string_view tag);
std::optional<std::string> first(std::string_view xml, std::string_view tag);
}  // namespace s3xml

class S3Lake final : public Lake {
 public:
  explicit S3Lake(S3Config config);  // throws std::invalid_argument on an incomplete config
  ~S3Lake() override;

  std::filesystem::path staging_dir() const override;
  void commit_staged(const std::filesystem::path& staged, const std::string& final_path) override;
  bool exists(const std::string& path) override;
  void put(const std::string& path, const std::string& bytes) override;
  std::optional<std::string> get(const std::string& path) override;
  std::vector<std::string> list(const std::string& prefix) override;
  void remove(const std::string& path) override;
  std::string local_root() const override { return ""; }

  const S3Config& config() const { return config_; }
  // Keys per ListObjectsV2 page (S3's maximum and default is 1000); small values test paging.
  void set_list_page_size(int n) { page_size_ = n; }

 private:
  HttpResponse call(const std::string& method, const std::string& key,
                    std::vector<std::pair<std::string, std::string>> query, const std::string& body,
                    bool sign_payload);
  std::string key_of(const std::string& checked_path) const;
  void upload_multipart(const std::filesystem::path& file, std::size_t size, const std::string& key);
  std::unique_ptr<HttpClient> borrow();
  void give_back(std::unique_ptr<HttpClient> client);

  S3Config config_;
  std::string host_;       // Host header value (with port when not default)
  std::string base_url_;   // scheme://host[:port]
  int page_size_ = 1000;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<HttpClient>> pool_;
};

}  // namespace apilake
