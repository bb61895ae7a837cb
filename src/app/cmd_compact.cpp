// `apilake compact DATASET --hour YYYY-MM-DDTHH`: merges one curated hour's files atomically
// (curate/compact.h, docs/lake.md), on a local or object lake. Refuses inputs of batches the local
// ledger has not committed yet.
#include <iostream>
#include <set>

#include <fmt/format.h>

#include "app/commands.h"
#include "bus/sqlite_bus.h"
#include "curate/compact.h"
#include "definition/definition.h"
#include "duck/duck.h"
#include "lake/lake.h"
#include "lake/open_lake.h"

namespace apilake {

void register_compact(CLI::App& app, Config& config, Commands& out) {
  auto dataset = std::make_shared<std::string>();
  auto hour = std::make_shared<std::string>();
  auto* compact = app.add_subcommand("compact", "merge one hour's curated files into one, atomically");
  compact->add_option("dataset", *dataset, "<source>_<endpoint>")->required();
  compact->add_option("--hour", *hour, "the partition hour, YYYY-MM-DDTHH (UTC)")->required();
  compact->add_option("--data-dir", config.data_dir, "lake and state directory")->capture_default_str();
  compact->add_option("--sources", config.sources_dir, "directory of source definitions")->capture_default_str();
  out.push_back({compact, [&config, dataset, hour] {
                   auto sources = load_sources(config.sources_dir);
                   const Source* source = nullptr;
                   const Endpoint* endpoint = nullptr;
                   for (const auto& s : sources)
                     for (const auto& e : s.endpoints)
                       if (*dataset == s.name + "_" + e.name || *dataset == s.name + "/" + e.name) {
                         source = &s;
                         endpoint = &e;
                       }
                   if (!source) {
                     std::cerr << "unknown dataset '" << *dataset << "'\n";
                     return 1;
                   }
                   // Local directory or s3:// / gs:// (lake/open_lake.h).
                   const bool object_lake = is_object_store_uri(config.data_dir);
                   const auto root = object_lake ? std::filesystem::path()
                                                 : std::filesystem::absolute(config.data_dir).lexically_normal();
                   std::unique_ptr<Lake> lake_ptr;
                   try {
                     LakeOptions lo;
                     lo.endpoint = config.s3_endpoint;
                     lake_ptr = open_lake(object_lake ? config.data_dir : root.string(), lo);
                   } catch (const std::exception& e) {
                     std::cerr << "compact failed: " << e.what() << "\n";
                     return 1;
                   }
                   Lake& lake = *lake_ptr;
                   duck::Options o;
                   o.threads = 1;
                   o.memory_limit = "512MB";
                   o.temp_directory = (lake.staging_dir() / "duckdb_cli").string();
                   duck::Database db(o);
                   // Files of batches the ledger has prepared but not committed must stay where
                   // recovery expects them (see curate/compact.h).
                   std::set<std::string> pending;
                   // (Object lake: the ledger's batches belong to the curate processes; their
                   // batches commit within seconds — compact closed hours, docs/lake.md.)
                   const auto bus_db = root / "_state" / "bus.db";
                   if (!object_lake && std::filesystem::exists(bus_db)) {
                     SqliteBus bus(bus_db);
                     for (const auto& b : bus.pending("curate"))
                       for (const auto& f : b.files) pending.insert(f.final);
                   }
                   try {
                     auto r = compact_hour(lake, db, *source, *endpoint, *hour,
                                           [&](const std::string& p) { return pending.count(p) > 0; });
                     if (r.output.empty())
                       std::cout << fmt::format("{}: {} file(s), nothing to compact\n", r.dir, r.inputs);
                     else
                       std::cout << fmt::format("{}: {} files -> {} ({} rows)\n", r.dir, r.inputs, r.output, r.rows);
                     return 0;
                   } catch (const CompactError& e) {
                     std::cerr << "compact failed: " << e.what() << "\n";
                     return 1;
                   }
                 }});
}

}  // namespace apilake
