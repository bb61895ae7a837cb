// `apilake deadletters list | show DATASET | replay DATASET [--from --to]` — offline tools over a
// data dir (docs/lake.md).
// They load the definitions from --sources at start, so a fixed definition is what replay uses.
// --data-dir may be an object store (s3://bucket/prefix; endpoint from the config's s3.endpoint, else AWS_ENDPOINT_URL).
#include <iostream>

#include <fmt/format.h>

#include "app/commands.h"
#include "curate/deadletters.h"
#include "definition/definition.h"
#include "duck/duck.h"
#include "lake/lake.h"
#include "lake/open_lake.h"

namespace apilake {

namespace {

// --data-dir is a directory or an object store (s3://, gs://): the dead letters, their replay marks and
// the replayed files all go through the Lake seam, so both work alike; the Parquet writer stages on
// local disk (the lake's staging dir) and the lake commits the file.
std::unique_ptr<Lake> open_data_lake(const Config& c) {
  if (is_object_store_uri(c.data_dir)) {
    LakeOptions o;
    o.endpoint = c.s3_endpoint;
    return open_lake(c.data_dir, o);
  }
  return std::make_unique<LocalLake>(std::filesystem::absolute(c.data_dir).lexically_normal());
}

duck::Options small_db(Lake& lake) {
  duck::Options o;
  o.threads = 1;
  o.memory_limit = "512MB";
  o.temp_directory = (lake.staging_dir() / "duckdb_cli").string();
  return o;
}

}  // namespace

void register_deadletters(CLI::App& app, Config& config, Commands& out) {
  auto* dl = app.add_subcommand("deadletters", "count, inspect and replay dead letters");
  dl->require_subcommand(1);
  auto common = [&config](CLI::App* sub) {
    sub->add_option("--data-dir", config.data_dir, "lake and state directory")->capture_default_str();
    sub->add_option("--sources", config.sources_dir, "directory of source definitions")->capture_default_str();
  };

  auto* list = dl->add_subcommand("list", "counts by dataset, hour and reason (replayed / pending)");
  common(list);
  out.push_back({list, [&config] {
                   auto sources = load_sources(config.sources_dir);
                   auto lake = open_data_lake(config);
                   duck::Database db(small_db(*lake));
                   DeadLetters dl(sources, *lake, db);
                   std::cout << "dataset\thour\treason\tcount\treplayed\tpending\n";
                   for (const auto& c : dl.counts())
                     std::cout << fmt::format("{}\t{}\t{}\t{}\t{}\t{}\n", c.dataset, c.hour, c.reason, c.count,
                                              c.replayed, c.pending);
                   return 0;
                 }});

  auto dataset = std::make_shared<std::string>();
  auto reason = std::make_shared<std::string>();
  auto limit = std::make_shared<std::size_t>(20);
  auto* show = dl->add_subcommand("show", "print a dataset's dead-letter lines (JSON, one per line)");
  common(show);
  show->add_option("dataset", *dataset, "<source>_<endpoint>")->required();
  show->add_option("--reason", *reason, "only this reason");
  show->add_option("--limit", *limit, "at most this many lines")->capture_default_str()->check(CLI::Range(1, 100000));
  out.push_back({show, [&config, dataset, reason, limit] {
                   auto sources = load_sources(config.sources_dir);
                   auto lake = open_data_lake(config);
                   duck::Database db(small_db(*lake));
                   DeadLetters dl(sources, *lake, db);
                   try {
                     for (const auto& line : dl.samples(*dataset, *reason, *limit)) std::cout << line << "\n";
                   } catch (const UnknownDataset& e) {
                     std::cerr << e.what() << "\n";
                     return 1;
                   }
                   return 0;
                 }});

  auto from = std::make_shared<std::string>();
  auto to = std::make_shared<std::string>();
  auto* replay = dl->add_subcommand("replay", "re-curate a dataset's pending dead letters with the current definition");
  common(replay);
  replay->add_option("dataset", *dataset, "<source>_<endpoint>")->required();
  replay->add_option("--from", *from, "first ingestion hour, YYYY-MM-DDTHH");
  replay->add_option("--to", *to, "last ingestion hour, YYYY-MM-DDTHH");
  out.push_back({replay, [&config, dataset, from, to] {
                   for (const auto* h : {from.get(), to.get()}) {
                     if (!h->empty() && !DeadLetters::valid_hour(*h)) {
                       std::cerr << "--from/--to must be YYYY-MM-DDTHH, got '" << *h << "'\n";
                       return 2;
                     }
                   }
                   auto sources = load_sources(config.sources_dir);
                   auto lake = open_data_lake(config);
                   duck::Database db(small_db(*lake));
                   DeadLetters dl(sources, *lake, db);
                   try {
                     const ReplayResult r = dl.replay(*dataset, *from, *to);
                     std::cout << fmt::format("replayed {} dead letter(s) into {} row(s); {} still failing\n",
                                              r.replayed, r.rows, r.still_failing);
                     for (const auto& w : r.written) std::cout << w << "\n";
                     return 0;
                   } catch (const UnknownDataset& e) {
                     std::cerr << e.what() << "\n";
                     return 1;
                   } catch (const std::invalid_argument& e) {
                     std::cerr << "the dataset's schema cannot be applied: " << e.what() << "\n";
                     return 1;
                   }
                 }});
}

}  // namespace apilake
