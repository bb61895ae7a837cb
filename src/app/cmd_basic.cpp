// `apilake up`, `apilake sources validate`, `apilake query`, `apilake replay`.
#include <iostream>

#include "app/commands.h"
#include "app/pipeline.h"
#include "app/replay.h"
#include "definition/definition.h"
#include "insight/query.h"

namespace apilake {

void register_up(CLI::App& app, Config& config, Commands& out) {
  auto* up = app.add_subcommand("up", "run API, bus, archiver and curator in one process (embedded mode)");
  up->add_option("--data-dir", config.data_dir, "lake and state directory")->capture_default_str();
  up->add_option("--sources", config.sources_dir, "directory of source definitions")->capture_default_str();
  up->add_option("--host", config.host, "address to bind")->capture_default_str();
  up->add_option("--port", config.port, "API port (0 = any free port)")->capture_default_str();
  up->add_flag("--demo", config.demo, "also replay the bundled sources' recorded responses on loopback (offline)");
  up->add_option("--api-key", config.api_keys, "API key required on mutating and query endpoints (repeatable)");
  up->add_option("--batch-max-age-ms", config.batch_max_age_ms, "flush consumer batches after this long")
      ->capture_default_str();
  out.push_back({up, [&config] { return run_up(config); }});

  // Scale-out roles: the same pipeline, one role per process (see app/pipeline.h).
  struct Role {
    const char* name;
    const char* help;
    Roles roles;
  };
  for (const Role& r : {Role{"serve", "run the API and fetch workers (publish pages to the bus)", Roles{true, false, false}},
                        Role{"archive", "run one archiver (consumer of the 'archive' subscription)", Roles{false, true, false}},
                        Role{"curate", "run one curator (consumer of the 'curate' subscription)", Roles{false, false, true}}}) {
    auto* sub = app.add_subcommand(r.name, r.help);
    sub->add_option("--data-dir", config.data_dir, "lake: a directory, s3://bucket/prefix or gs://bucket/prefix");
    sub->add_option("--sources", config.sources_dir, "directory of source definitions");
    sub->add_option("--index", config.consumer_index,
                    "this process's number among the same role on this host (instance name <host>-<role>-<index>)");
    sub->add_option("--instance", config.consumer_instance, "stable instance name in the lake ledger (overrides --index)");
    if (r.roles.api) {
      sub->add_option("--host", config.host, "address to bind");
      sub->add_option("--port", config.port, "API port");
      sub->add_flag("--demo", config.demo, "replay the bundled sources' recorded responses on loopback");
      sub->add_option("--api-key", config.api_keys, "API key (repeatable)");
    }
    out.push_back({sub, [&config, roles = r.roles, name = r.name] {
                     return run_pipeline(config, roles, (std::string("apilake ") + name).c_str());
                   }});
  }
}

void register_sources(CLI::App& app, Config&, Commands& out) {
  auto* sources = app.add_subcommand("sources", "work with source definitions");
  sources->require_subcommand(1);
  auto files = std::make_shared<std::vector<std::string>>();
  auto* validate = sources->add_subcommand("validate", "check definition files; every error with file:line:column");
  validate->add_option("files", *files, "definition files")->required();
  out.push_back({validate, [files] {
                   int bad = 0;
                   for (const auto& f : *files) {
                     auto errors = validate_source_file(f);
                     for (const auto& e : errors) std::cerr << e << "\n";
                     if (errors.empty())
                       std::cout << f << ": ok\n";
                     else
                       ++bad;
                   }
                   return bad ? 1 : 0;
                 }});
}

void register_query(CLI::App& app, Config& config, Commands& out) {
  auto sql = std::make_shared<std::string>();
  auto* query = app.add_subcommand("query", "run a read-only SQL query over the lake's curated views");
  query->add_option("sql", *sql, "a single SELECT")->required();
  query->add_option("--data-dir", config.data_dir)->capture_default_str();
  query->add_option("--sources", config.sources_dir)->capture_default_str();
  out.push_back({query, [&config, sql] {
                   auto sources = load_sources(config.sources_dir);
                   QueryOptions qo;
                   qo.timeout = std::chrono::milliseconds(config.query_timeout_ms);
                   QueryService service(std::filesystem::absolute(config.data_dir).lexically_normal().string(),
                                        sources, qo);
                   try {
                     auto r = service.run(*sql);
                     for (std::size_t i = 0; i < r.columns.size(); ++i) std::cout << (i ? "\t" : "") << r.columns[i];
                     std::cout << "\n";
                     for (const auto& row : r.rows) {
                       for (std::size_t i = 0; i < row.size(); ++i)
                         std::cout << (i ? "\t" : "") << (row[i] ? *row[i] : "NULL");
                       std::cout << "\n";
                     }
                     return 0;
                   } catch (const QueryError& e) {
                     std::cerr << "query failed: " << e.what() << "\n";
                     return 1;
                   }
                 }});
}

void register_replay(CLI::App& app, Config& config, Commands& out) {
  auto port = std::make_shared<uint16_t>(0);
  auto* replay = app.add_subcommand("replay", "serve the bundled sources' recorded responses on loopback");
  replay->add_option("--sources", config.sources_dir)->capture_default_str();
  replay->add_option("--port", *port)->capture_default_str();
  out.push_back({replay, [&config, port] {
                   block_stop_signals();
                   auto sources = load_sources(config.sources_dir);
                   ReplayServer server(sources, *port);
                   server.start();
                   for (const auto& s : sources) std::cout << s.name << " " << server.base_url_for(s) << "\n" << std::flush;
                   wait_for_stop_signal();
                   return 0;
                 }});
}

}  // namespace apilake
