// One entry point for the app: a lake from `--data-dir`: a local directory, or s3://bucket/prefix /
// gs://bucket/prefix (S3 API; credentials and endpoint from the AWS_* environment, see s3_lake.h).
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "lake/lake.h"

namespace apilake {

struct LakeOptions {
  // Object stores only: where writers stage files (local disk). "" = a stable directory under the
  // system temp dir derived from the bucket and prefix (stable so a restarted process finds the
  // staged files its ledger names).
  std::filesystem::path staging_dir;
  std::string endpoint;                 // overrides AWS_ENDPOINT_URL
  std::size_t multipart_threshold = 0;  // 0 = S3Lake's default (16 MiB)
};

// True for s3:// and gs:// URIs.
bool is_object_store_uri(const std::string& uri_or_dir);

// LocalLake for a directory, S3Lake for s3:// or gs://. Throws std::invalid_argument for a bad URI
// or missing credentials.
std::unique_ptr<Lake> open_lake(const std::string& uri_or_dir, const LakeOptions& options = {});

}  // namespace apilake
