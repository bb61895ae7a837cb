// The archiver: a BatchHandler for the "archive" subscription. Stages every raw message into Avro
// object container files (avro-c, deflate), one per (source, endpoint, publish hour):
//   raw/<source>/<endpoint>/YYYY/MM/DD/HH/<first>-<last>.avro
// Record schema as Pub/Sub's Cloud Storage subscriptions write it with metadata:
//   subscription_name: string, message_id: string, publish_time: long (timestamp-micros),
//   attributes: map<string>, data: bytes.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "bus/consumer.h"

namespace apilake {

// Writes messages to one Avro container file at path (deflate) and fsyncs it. Throws on failure.
void write_avro(const std::filesystem::path& path, const std::string& subscription_name,
                const std::vector<Message>& messages);

class Archiver final : public BatchHandler {
 public:
  Archiver(std::string subscription_name, std::filesystem::path staging_dir);
  PreparedBatch stage(const std::vector<Message>& batch) override;

 private:
  std::string subscription_;
  std::filesystem::path staging_;
};

}  // namespace apilake
