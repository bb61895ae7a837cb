// Process configuration: defaults, then environment variables (APILAKE_<KEY>), then command-line
// flags (applied by app/). One struct, one loader; every stage gets only the fields it needs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace apilake {

struct Config {
  std::string data_dir = "./data";         // APILAKE_DATA_DIR
  std::string sources_dir = "sources";     // APILAKE_SOURCES
  std::string host = "127.0.0.1";          // APILAKE_HOST
  uint16_t port = 8080;                    // APILAKE_PORT
  bool demo = false;                       // APILAKE_DEMO=1
  std::vector<std::string> api_keys;       // APILAKE_API_KEYS=k1,k2
  int http_threads = 2;                    // APILAKE_HTTP_THREADS
  int fetch_workers = 4;                   // APILAKE_FETCH_WORKERS
  std::size_t batch_max_messages = 500;    // APILAKE_BATCH_MAX_MESSAGES
  int batch_max_age_ms = 1000;             // APILAKE_BATCH_MAX_AGE_MS
  int ack_deadline_s = 60;                 // APILAKE_ACK_DEADLINE_S
  int max_delivery_attempts = 5;           // APILAKE_MAX_DELIVERY_ATTEMPTS
  int query_timeout_ms = 10000;            // APILAKE_QUERY_TIMEOUT_MS
  std::string log_level = "info";          // APILAKE_LOG_LEVEL
};

// Applies APILAKE_* environment variables over `config`; throws std::invalid_argument naming the
// variable when a value does not parse.
void apply_env(Config& config);

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string& host);

}  // namespace apilake
