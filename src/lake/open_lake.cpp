#include "lake/open_lake.h"

#include "lake/s3_lake.h"

namespace apilake {

bool is_object_store_uri(const std::string& uri_or_dir) {
  return uri_or_dir.rfind("s3://", 0) == 0 || uri_or_dir.rfind("gs://", 0) == 0;
}

std::unique_ptr<Lake> open_lake(const std::string& uri_or_dir, const LakeOptions& options) {
  if (!is_object_store_uri(uri_or_dir)) return std::make_unique<LocalLake>(uri_or_dir);
  S3Config c = s3_config_from_uri(uri_or_dir);
  if (!options.endpoint.empty()) {
    c.endpoint = options.endpoint;
    c.path_style = true;
  }
  if (!options.staging_dir.empty()) c.staging_dir = options.staging_dir;
  if (options.multipart_threshold) c.multipart_threshold = options.multipart_threshold;
  return std::make_unique<S3Lake>(std::move(c));
}

}  // namespace apilake
