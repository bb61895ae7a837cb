// `apilake extract SOURCE[.ENDPOINT] --param k=v ... [--example] [--incremental] [--demo]`: one
// extraction from the shell, in this process, with the same pieces as `apilake up` minus the HTTP
// API (Pipeline::start_without_api): the fetch worker publishes each page to the configured
// bus, and the archiver and curator run too, so when the command returns the pages are archived and
// the records are curated (or dead-lettered) and queryable with `apilake query`. What a user expects
// from "extract" is data they can query; publishing alone would leave the pages waiting in the bus
// until the next `apilake up`.
//
// The embedded bus belongs to one process at a time: do not point this at the data directory of a
// running `apilake up` (use POST /v1/extractions there).
//
// Progress goes to stderr: on a terminal one line redrawn in place (pages, records, bytes, rate, ETA
// when the endpoint declares a total), otherwise one plain line per page. The summary goes to stdout.
// Exit code: 0 succeeded, 1 failed (the error is printed), 2 bad arguments.
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "api/extraction_service.h"
#include "api/extraction_store.h"
#include "app/commands.h"
#include "app/pipeline.h"
#include "bus/ledger.h"
#include "definition/definition.h"
#include "source/source.h"

namespace apilake {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

struct ExtractArgs {
  std::string target;                 // SOURCE or SOURCE.ENDPOINT
  std::vector<std::string> params;    // k=v
  bool example = false;
  bool incremental = false;
};

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.1f} {}", b, units[u]);
}

std::string human_duration(double s) {
  if (s < 60) return fmt::format("{:.1f}s", s);
  auto total = static_cast<long long>(s + 0.5);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, total % 3600 / 60);
}


// The total record count a page declares at the endpoint's total_pointer, if any.
std::optional<int64_t> total_of(const Endpoint& endpoint, const std::string& body) {
  if (endpoint.pagination.total_pointer.empty()) return std::nullopt;
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec) return std::nullopt;
  const json::value* t = v.find_pointer(endpoint.pagination.total_pointer, ec);
  if (!t || ec) return std::nullopt;
  if (t->is_int64()) return t->as_int64();
  if (t->is_uint64()) return static_cast<int64_t>(t->as_uint64());
  if (t->is_double()) return static_cast<int64_t>(t->as_double());
  if (t->is_string()) {
    try {
      return std::stoll(std::string(t->as_string()));
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

// What the fetch worker reports; read by the main thread, which does all the printing.
struct Progress {
  std::mutex mu;
  std::condition_variable cv;
  int64_t pages = 0, records = 0, bytes = 0;
  std::optional<int64_t> total;
  std::deque<std::string> lines;  // plain per-page lines (non-terminal output)
};

std::string progress_line(const std::string& what, int64_t pages, int64_t records, int64_t bytes,
                          std::optional<int64_t> total, double elapsed_s) {
  std::string s = fmt::format("{}: page {} · {} records", what, pages, records);
  if (total) s += fmt::format(" of {}", *total);
  s += fmt::format(" · {}", human_bytes(static_cast<double>(bytes)));
  if (elapsed_s > 0.05) {
    s += fmt::format(" · {:.1f} pages/s, {:.0f} records/s", pages / elapsed_s, records / elapsed_s);
    if (total && records > 0 && *total > records)
      s += " · ETA " + human_duration((static_cast<double>(*total - records)) * elapsed_s / records);
  }
  return s;
}

int run_extract(CLI::App& app, Config config, const ExtractArgs& args) {
  // The pipeline's info logs would tear the progress line: warn unless the user asked otherwise.
  if (app.get_option("--log-level")->count() == 0 && !std::getenv("APILAKE_LOG_LEVEL"))
    spdlog::set_level(spdlog::level::warn);
  // Nothing is served: the bind address is irrelevant (and must not trip the no-keys check).
  config.host = "127.0.0.1";
  config.api_keys.clear();

  const auto dot = args.target.find('.');
  const std::string source_name = args.target.substr(0, dot);
  std::string endpoint_name = dot == std::string::npos ? "" : args.target.substr(dot + 1);

  Params given;
  for (const auto& kv : args.params) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "apilake extract: --param takes NAME=VALUE, got '" << kv << "'\n";
      return 2;
    }
    given[kv.substr(0, eq)] = kv.substr(eq + 1);
  }

  Pipeline pipeline(config);
  const Source* source = nullptr;
  for (const auto& s : pipeline.sources())
    if (s.name == source_name) source = &s;
  if (!source) {
    std::string names;
    for (const auto& s : pipeline.sources()) names += (names.empty() ? "" : ", ") + s.name;
    std::cerr << "apilake extract: unknown source '" << source_name << "' (defined in " << config.sources_dir
              << ": " << names << ")\n";
    return 2;
  }
  const Endpoint* endpoint = nullptr;
  if (!endpoint_name.empty()) {
    endpoint = source->endpoint(endpoint_name);
  } else if (source->endpoints.size() == 1) {
    endpoint = &source->endpoints.front();
  }
  if (!endpoint) {
    std::string names;
    for (const auto& e : source->endpoints) names += (names.empty() ? "" : ", ") + e.name;
    std::cerr << "apilake extract: "
              << (endpoint_name.empty() ? "source '" + source_name + "' has several endpoints"
                                        : "source '" + source_name + "' has no endpoint '" + endpoint_name + "'")
              << "; name one as " << source_name << ".ENDPOINT: " << names << "\n";
    return 2;
  }
  const std::string what = source->name + "." + endpoint->name;
  if (args.example)
    for (const auto& [k, v] : endpoint->example) given.emplace(k, v);  // explicit --param wins
  Params params;
  try {
    params = validate_params(*endpoint, given);
  } catch (const ParamError& e) {
    std::cerr << "apilake extract: " << what << ": " << e.what() << "\n";
    return 2;
  }
  // Same rule as POST /v1/extractions with "incremental": true (ExtractionService::prepare).
  ExtractionService::NewExtraction prepared;
  try {
    prepared = pipeline.extractions().prepare(*source, *endpoint, std::move(params), args.incremental);
  } catch (const std::invalid_argument& e) {
    std::cerr << "apilake extract: " << e.what() << "; --incremental needs one\n";
    return 2;
  } catch (const IncrementalStateError& e) {
    std::cerr << "apilake extract: " << e.what() << "\n";
    return 1;
  }
  const Extraction& ex = prepared.record;
  const auto& incremental_from = prepared.incremental_from;

  const bool tty = ::isatty(STDERR_FILENO) == 1;
  Progress progress;
  pipeline.extractions().set_page_observer([&](const std::string& id, const Endpoint& ep, const Page& page) {
    if (id != ex.id) return;  // extractions of earlier runs resumed by start() report nothing here
    auto total = total_of(ep, page.body);
    std::lock_guard lock(progress.mu);
    progress.pages = page.number;
    progress.records += static_cast<int64_t>(page.records);
    progress.bytes += static_cast<int64_t>(page.body.size());
    if (total) progress.total = total;
    if (!tty)
      progress.lines.push_back(fmt::format("{}: page {}: {} records, {} (so far {} records, {})", what, page.number,
                                           page.records, human_bytes(static_cast<double>(page.body.size())),
                                           progress.records, human_bytes(static_cast<double>(progress.bytes))));
    progress.cv.notify_one();
  });

  pipeline.start_without_api();
  const auto started = Clock::now();
  if (!pipeline.extractions().submit(ex)) {
    std::cerr << "apilake extract: the extraction queue is full\n";
    return 1;
  }
  std::cerr << what << ": extraction " << ex.id
            << (incremental_from ? " (incremental from " + *incremental_from + ")"
                                 : args.incremental ? " (incremental: no stored cursor yet, full run)" : "")
            << "\n";

  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - started).count(); };
  auto draw = [&](bool final_line) {
    std::unique_lock lock(progress.mu);
    if (tty) {
      std::cerr << "\r\033[K"
                << progress_line(what, progress.pages, progress.records, progress.bytes, progress.total, elapsed())
                << (final_line ? "\n" : "") << std::flush;
    } else {
      while (!progress.lines.empty()) {
        std::cerr << progress.lines.front() << "\n";
        progress.lines.pop_front();
      }
    }
  };

  // 1. Fetch: until the extraction is finished (the store is the truth; the observer only paints).
  std::optional<Extraction> done;
  for (;;) {
    {
      std::unique_lock lock(progress.mu);
      progress.cv.wait_for(lock, std::chrono::milliseconds(200));
    }
    draw(false);
    auto e = pipeline.extraction_store().get(ex.id);
    if (e && (e->status == "succeeded" || e->status == "failed")) {
      done = e;
      break;
    }
  }
  draw(tty);
  const double fetch_s = elapsed();
  if (done->status == "failed") {
    std::cout << what << ": failed after " << done->pages << " pages, " << done->records << " records: " << done->error
              << "\n";
    return 1;
  }

  // 2. Curate: every page is in the bus; wait until the curator has accounted for every record, or
  // has nothing left to take (a page the bus dead-lettered after repeated curator failures).
  ExtractionCounts counts;
  for (;;) {
    counts = pipeline.ledger().counts("curate", ex.id);
    if (counts.rows + counts.deadlettered >= done->records) break;
    if (pipeline.curate_backlog() == 0) {
      counts = pipeline.ledger().counts("curate", ex.id);
      break;
    }
    if (tty)
      std::cerr << "\r\033[K" << what << ": curating · " << counts.rows + counts.deadlettered << " of " << done->records
                << " records" << std::flush;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (tty) std::cerr << "\r\033[K" << std::flush;
  pipeline.stop();

  const bool complete = counts.rows + counts.deadlettered == done->records;
  std::cout << fmt::format("{}: succeeded: {} pages, {} records, {} in {:.1f}s; curated {}, dead-lettered {}", what,
                           done->pages, done->records, human_bytes(static_cast<double>(done->bytes)), fetch_s,
                           counts.rows, counts.deadlettered);
  if (counts.deadlettered > 0)
    std::cout << fmt::format(" (reasons under {}/deadletter/{}/{}/)", config.data_dir, source->name, endpoint->name);
  std::cout << fmt::format("; query: apilake query \"SELECT * FROM {}_{} LIMIT 10\"\n", source->name, endpoint->name);
  if (!complete) {
    std::cout << what << ": " << done->records - counts.rows - counts.deadlettered
              << " records were not curated: the curator gave up on their pages (see the log)\n";
    return 1;
  }
  return 0;
}

}  // namespace

void register_extract(CLI::App& app, Config& config, Commands& out) {
  auto args = std::make_shared<ExtractArgs>();
  auto* cmd = app.add_subcommand("extract",
                                 "run one extraction in this process (fetch, archive, curate) with a progress line");
  cmd->add_option("target", args->target, "SOURCE or SOURCE.ENDPOINT (the endpoint may be omitted if there is one)")
      ->required();
  cmd->add_option("--param,-p", args->params, "NAME=VALUE (repeatable)");
  cmd->add_flag("--incremental", args->incremental, "start from the highest cursor value of earlier runs");
  cmd->add_flag("--example", args->example, "start from the endpoint's example params (--param overrides)");
  cmd->add_option("--data-dir", config.data_dir, "lake and state directory")->capture_default_str();
  cmd->add_option("--sources", config.sources_dir, "directory of source definitions")->capture_default_str();
  cmd->add_flag("--demo", config.demo, "fetch from the bundled sources' recorded responses (offline replay)");
  out.push_back({cmd, [&app, &config, args] { return run_extract(app, config, *args); }});
}

}  // namespace apilake
