#include "app/cli.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>

#include "app/commands.h"
#include "curate/schema.h"

namespace apilake {

void block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_stop_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

int run_cli(int argc, char** argv) {
  // Loading a definition checks each `default` with the curator's own conversion (schema_model.h).
  set_default_check(&default_problem);
  CLI::App app{"apilake: public HTTP/JSON APIs into a queryable lake (raw Avro, curated Parquet, SQL)"};
  app.require_subcommand(1);
  app.fallthrough();  // global options (--log-level) are accepted after the subcommand too
  // Precedence: defaults < --config file < APILAKE_* environment < flags. The file must be read before
  // CLI11 applies the flags, so it is found by a pre-scan of argv.
  Config config;
  std::string config_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) config_file = argv[i + 1];
    if (a.rfind("--config=", 0) == 0) config_file = a.substr(9);
  }
  if (config_file.empty())
    if (const char* f = std::getenv("APILAKE_CONFIG")) config_file = f;
  try {
    if (!config_file.empty()) apply_file(config, config_file);
    apply_env(config);
  } catch (const std::exception& e) {
    std::cerr << "apilake: " << e.what() << "\n";
    return 2;
  }
  app.add_option("--config", config_file, "YAML config file (or APILAKE_CONFIG); see docs/configuration.md");
  app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error")->capture_default_str();

  Commands commands;
  register_up(app, config, commands);
  register_sources(app, config, commands);
  register_query(app, config, commands);
  register_replay(app, config, commands);
  register_deadletters(app, config, commands);
  register_compact(app, config, commands);
  register_extract(app, config, commands);
  register_bigquery(app, config, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  try {
    for (const auto& c : commands)
      if (c.sub->parsed()) return c.run();
  } catch (const std::exception& e) {
    std::cerr << "apilake: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "apilake: no command given (see --help)\n";
  return 2;
}

}  // namespace apilake
