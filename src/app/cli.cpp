#include "app/cli.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "app/embedded.h"
#include "app/replay.h"
#include "config/config.h"
#include "definition/definition.h"
#include "insight/query.h"

namespace apilake {
namespace {

int validate_sources(const std::vector<std::string>& files) {
  int bad = 0;
  for (const auto& f : files) {
    auto errors = validate_source_file(f);
    for (const auto& e : errors) std::cerr << e << "\n";
    if (errors.empty())
      std::cout << f << ": ok\n";
    else
      ++bad;
  }
  return bad ? 1 : 0;
}

int run_query(const Config& c, const std::string& sql) {
  auto sources = load_sources(c.sources_dir);
  QueryOptions qo;
  qo.timeout = std::chrono::milliseconds(c.query_timeout_ms);
  QueryService service(std::filesystem::absolute(c.data_dir).lexically_normal().string(), sources, qo);
  try {
    auto r = service.run(sql);
    for (std::size_t i = 0; i < r.columns.size(); ++i) std::cout << (i ? "\t" : "") << r.columns[i];
    std::cout << "\n";
    for (const auto& row : r.rows) {
      for (std::size_t i = 0; i < row.size(); ++i) std::cout << (i ? "\t" : "") << (row[i] ? *row[i] : "NULL");
      std::cout << "\n";
    }
    return 0;
  } catch (const QueryError& e) {
    std::cerr << "query failed: " << e.what() << "\n";
    return 1;
  }
}

int run_replay(const Config& c, uint16_t port) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto sources = load_sources(c.sources_dir);
  ReplayServer replay(sources, port);
  replay.start();
  for (const auto& s : sources) std::cout << s.name << " " << replay.base_url_for(s) << "\n" << std::flush;
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"apilake: public HTTP/JSON APIs into a queryable lake (raw Avro, curated Parquet, SQL)"};
  app.require_subcommand(1);
  Config config;
  try {
    apply_env(config);
  } catch (const std::exception& e) {
    std::cerr << "apilake: " << e.what() << "\n";
    return 2;
  }

  auto* up = app.add_subcommand("up", "run API, bus, archiver and curator in one process (embedded mode)");
  up->add_option("--data-dir", config.data_dir, "lake and state directory")->capture_default_str();
  up->add_option("--sources", config.sources_dir, "directory of source definitions")->capture_default_str();
  up->add_option("--host", config.host, "address to bind")->capture_default_str();
  up->add_option("--port", config.port, "API port (0 = any free port)")->capture_default_str();
  up->add_flag("--demo", config.demo, "also replay the bundled sources' recorded responses on loopback (offline)");
  up->add_option("--api-key", config.api_keys, "API key required on mutating and query endpoints (repeatable)");
  up->add_option("--batch-max-age-ms", config.batch_max_age_ms, "flush consumer batches after this long")
      ->capture_default_str();
  up->add_option("--log-level", config.log_level)->capture_default_str();

  auto* sources = app.add_subcommand("sources", "work with source definitions");
  sources->require_subcommand(1);
  std::vector<std::string> files;
  auto* validate = sources->add_subcommand("validate", "check definition files; every error with file:line:column");
  validate->add_option("files", files, "definition files")->required();

  std::string sql;
  auto* query = app.add_subcommand("query", "run a read-only SQL query over the lake's curated views");
  query->add_option("sql", sql, "a single SELECT")->required();
  query->add_option("--data-dir", config.data_dir)->capture_default_str();
  query->add_option("--sources", config.sources_dir)->capture_default_str();

  uint16_t replay_port = 0;
  auto* replay = app.add_subcommand("replay", "serve the bundled sources' recorded responses on loopback");
  replay->add_option("--sources", config.sources_dir)->capture_default_str();
  replay->add_option("--port", replay_port)->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));

  try {
    if (*up) return run_up(config);
    if (*validate) return validate_sources(files);
    if (*query) return run_query(config, sql);
    if (*replay) return run_replay(config, replay_port);
  } catch (const std::exception& e) {
    std::cerr << "apilake: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace apilake
