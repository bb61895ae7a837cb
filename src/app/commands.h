// Every `apilake` subcommand registers itself here: one file per command (cmd_*.cpp) adds its
// CLI11 subcommand and the action to run when it was chosen. cli.cpp only parses and dispatches.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

#include "config/config.h"

namespace apilake {

struct Command {
  CLI::App* sub;                 // nested subcommands: the innermost one
  std::function<int()> run;      // exit code
};
using Commands = std::vector<Command>;

// `config` is filled by defaults and APILAKE_* variables before flags are parsed; actions read it.
void register_up(CLI::App& app, Config& config, Commands& out);
void register_sources(CLI::App& app, Config& config, Commands& out);
void register_query(CLI::App& app, Config& config, Commands& out);
void register_replay(CLI::App& app, Config& config, Commands& out);
void register_deadletters(CLI::App& app, Config& config, Commands& out);
void register_compact(CLI::App& app, Config& config, Commands& out);
void register_extract(CLI::App& app, Config& config, Commands& out);  // cmd_extract.cpp
void register_bigquery(CLI::App& app, Config& config, Commands& out);  // cmd_bigquery.cpp

// Blocks SIGINT/SIGTERM in the calling thread (call before starting threads) and waits for one.
void block_stop_signals();
int wait_for_stop_signal();

}  // namespace apilake
