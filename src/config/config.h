// Process configuration. One struct, one loader, one precedence:
//   defaults < config file (YAML) < environment (APILAKE_<KEY>) < command-line flags (app/).
// Every key has a dotted name used in the file (nested maps: `bus: {kind: pubsub}` is "bus.kind")
// and an environment variable (APILAKE_ + the name upper-cased with '.' → '_': APILAKE_BUS_KIND).
// The table of keys is in config.cpp; docs/configuration.md lists them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace apilake {

struct Config {
  // where things are
  std::string data_dir = "./data";         // data_dir: a directory, or s3://bucket/prefix, gs://bucket/prefix
  std::string sources_dir = "sources";     // sources
  // API
  std::string host = "127.0.0.1";          // host
  uint16_t port = 8080;                    // port
  bool demo = false;                       // demo
  std::vector<std::string> api_keys;       // api_keys (file: a list; env: k1,k2)
  int http_threads = 2;                    // http_threads
  int fetch_workers = 4;                   // fetch_workers
  // consumers
  std::size_t batch_max_messages = 500;    // batch_max_messages
  int batch_max_age_ms = 1000;             // batch_max_age_ms
  int ack_deadline_s = 60;                 // ack_deadline_s
  int max_delivery_attempts = 5;           // max_delivery_attempts
  // consumer.instance: this process's stable name in the lake ledger (scale-out); a restart under the
  // same name rolls its predecessor's prepared batches forward. "" = <host>-<role>-<consumer.index>.
  std::string consumer_instance;
  int consumer_index = 0;                  // consumer.index (--index): tells processes on one host apart
  int query_timeout_ms = 10000;            // query_timeout_ms
  // compaction of closed curated hours by the curate role (docs/lake.md): every compact.interval
  // seconds (0 = off), hours that ended more than compact.grace seconds ago and hold > 1 file.
  int compact_interval_s = 60;             // compact.interval
  int compact_grace_s = 300;               // compact.grace
  // after_batch insight models are materialised at most once per this many ms under load (a lone
  // batch is still reflected at once; insight/models.h)
  int insights_min_interval_ms = 2000;     // insights.min_interval_ms
  std::string log_level = "info";          // log_level
  // bus
  std::string bus_kind = "sqlite";         // bus.kind: sqlite | pubsub
  std::string bus_topic = "pages";         // bus.topic
  std::string pubsub_project = "apilake";  // pubsub.project
  std::string pubsub_endpoint;             // pubsub.endpoint ("" = http://$PUBSUB_EMULATOR_HOST if set, else Google's)
  std::string pubsub_credentials;          // pubsub.credentials: service-account key file ("" = metadata server)
  bool pubsub_ordering = true;             // pubsub.ordering: ordering key = extraction id
  std::string push_token;                  // push.token: shared token required on POST /v1/pubsub/push
  // object-store lake (credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION)
  std::string s3_endpoint;                 // s3.endpoint ("" = AWS_ENDPOINT_URL, else the provider's)
  std::string s3_region = "us-east-1";     // s3.region
  std::string cache_dir;                   // cache_dir: local cache of curated objects ("" = a temp dir)
};

// Reads a YAML config file over `config`; throws std::invalid_argument "FILE:LINE:COL: ..." for an
// unknown key or a value of the wrong type.
void apply_file(Config& config, const std::string& path);

// Applies APILAKE_* environment variables over `config`; throws std::invalid_argument naming the
// variable when a value does not parse.
void apply_env(Config& config);

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string& host);

}  // namespace apilake
