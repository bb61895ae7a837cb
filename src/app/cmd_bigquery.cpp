// `apilake bigquery ddl DATASET --bucket gs://bucket[/prefix] [--project P] [--dataset D] [--table T]`:
// prints the CREATE EXTERNAL TABLE statement for one curated dataset (curate/bigquery.h,
// docs/bigquery.md). DATASET is "source.endpoint", "source/endpoint", the SQL view name
// "source_endpoint", or just "source" when it has a single endpoint.
#include <iostream>
#include <memory>
#include <utility>

#include "app/commands.h"
#include "curate/bigquery.h"
#include "definition/definition.h"
#include "lake/open_lake.h"

namespace apilake {

namespace {

std::pair<const Source*, const Endpoint*> find_dataset(const std::vector<Source>& sources, const std::string& name) {
  for (const auto& s : sources) {
    if (name == s.name && s.endpoints.size() == 1) return {&s, &s.endpoints.front()};
    for (const auto& e : s.endpoints)
      if (name == s.name + "." + e.name || name == s.name + "/" + e.name || name == s.name + "_" + e.name)
        return {&s, &e};
  }
  std::string known;
  for (const auto& s : sources)
    for (const auto& e : s.endpoints) known += (known.empty() ? "" : ", ") + s.name + "." + e.name;
  throw std::invalid_argument("unknown dataset '" + name + "' (known: " + known + ")");
}

}  // namespace

void register_bigquery(CLI::App& app, Config& config, Commands& out) {
  auto* bq = app.add_subcommand("bigquery", "BigQuery over a GCS copy of the lake");
  bq->require_subcommand(1);
  auto dataset = std::make_shared<std::string>();
  auto target = std::make_shared<BigQueryTarget>();
  auto* ddl = bq->add_subcommand("ddl", "print CREATE EXTERNAL TABLE for a curated dataset (its layout's partitioning)");
  ddl->add_option("dataset", *dataset, "source.endpoint (or the view name source_endpoint)")->required();
  ddl->add_option("--bucket", target->bucket, "the lake root in GCS: gs://bucket[/prefix]")->required();
  ddl->add_option("--project", target->project, "BigQuery project (optional)");
  ddl->add_option("--dataset", target->dataset, "BigQuery dataset")->default_str("apilake");
  ddl->add_option("--table", target->table, "table name (default: source_endpoint, as the SQL view)");
  ddl->add_option("--sources", config.sources_dir, "directory of source definitions")->capture_default_str();
  ddl->add_option("--data-dir", config.data_dir, "the lake (its schema registry has the evolved columns)")
      ->capture_default_str();
  out.push_back({ddl, [&config, dataset, target] {
                   auto sources = load_sources(config.sources_dir);
                   auto [source, endpoint] = find_dataset(sources, *dataset);
                   // Columns added by schema evolution are in the lake's schema registry; a local lake
                   // that does not exist yet has none (and is not created just to print a statement).
                   if (is_object_store_uri(config.data_dir) || std::filesystem::is_directory(config.data_dir)) {
                     auto lake = open_lake(config.data_dir);
                     std::cout << bigquery_ddl(*source, *endpoint, *target, *lake);
                   } else {
                     std::cout << bigquery_ddl(*source, *endpoint, *target);
                   }
                   return 0;
                 }});
}

}  // namespace apilake
