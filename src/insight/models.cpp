#include "insight/models.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <system_error>

#include <boost/json.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "lake/lake.h"

namespace json = boost::json;

namespace apilake {
namespace {

namespace fs = std::filesystem;

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw InsightError(p.string() + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint64_t fnv1a(uint64_t h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h ^ 0xff;  // separator so ("ab","c") != ("a","bc")
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Writes bytes to a staged file, fsyncs it and renames it over `target` (atomic on one filesystem).
void atomic_write(const fs::path& staging, const fs::path& target, const std::string& bytes) {
  fs::path tmp = staging / ("insight-" + target.parent_path().filename().string() + "-" +
                            target.filename().string() + ".tmp");
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) throw InsightError("cannot write " + tmp.string());
  }
  fsync_file(tmp);
  fs::rename(tmp, target);
}

std::string csv_field(const std::optional<std::string>& v) {
  if (!v) return "";
  if (v->find_first_of(",\"\r\n") == std::string::npos) return *v;
  std::string out = "\"";
  for (char c : *v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string iso_utc(int64_t us) {
  int64_t secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  int64_t frac = us - secs * 1000000;
  return fmt::format("{:%FT%T}.{:06}Z", std::chrono::sys_seconds(std::chrono::seconds(secs)), frac);
}

InsightModel parse_model(const std::string& text, const fs::path& file,
                         const std::set<std::string>& known_datasets) {
  auto fail = [&](int line, const std::string& msg) -> InsightError {
    return InsightError(fmt::format("{}:{}: {}", file.string(), line, msg));
  };
  InsightModel m;
  m.file = file;
  std::set<std::string> seen;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  std::size_t body_start = 0, offset = 0;
  bool in_header = true;
  while (std::getline(in, line)) {
    ++lineno;
    std::size_t next = offset + line.size() + 1;
    std::string t = trim(line);
    if (in_header && t.empty()) {
      offset = next;
      continue;
    }
    if (in_header && t.rfind("--", 0) == 0) {
      std::string c = trim(t.substr(2));
      auto colon = c.find(':');
      std::string key = colon == std::string::npos ? "" : trim(c.substr(0, colon));
      bool is_key = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) {
        return std::islower(static_cast<unsigned char>(ch)) || ch == '_';
      });
      if (is_key) {
        std::string value = trim(c.substr(colon + 1));
        if (!seen.insert(key).second) throw fail(lineno, "duplicate header key '" + key + "'");
        if (key == "name") {
          if (!valid_name(value)) throw fail(lineno, "name must be 1-64 of [a-z0-9_], got '" + value + "'");
          m.name = value;
        } else if (key == "description") {
          m.description = value;
        } else if (key == "datasets") {
          std::stringstream ss(value);
          std::string d;
          while (std::getline(ss, d, ',')) {
            d = trim(d);
            if (d.empty()) continue;
            if (!known_datasets.count(d)) throw fail(lineno, "unknown dataset '" + d + "' (views are <source>_<endpoint>)");
            m.datasets.push_back(d);
          }
        } else if (key == "refresh") {
          if (value == "after_batch") {
            m.after_batch = true;
          } else if (value.rfind("every ", 0) == 0) {
            std::string n = trim(value.substr(6));
            int64_t unit = 0;
            if (!n.empty() && n.back() == 's') unit = 1;
            else if (!n.empty() && n.back() == 'm') unit = 60;
            else if (!n.empty() && n.back() == 'h') unit = 3600;
            std::string digits = unit ? n.substr(0, n.size() - 1) : "";
            if (!unit || digits.empty() || digits.size() > 6 ||
                !std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) ||
                std::stoll(digits) == 0)
              throw fail(lineno, "refresh 'every' needs a positive period like 30s, 5m or 1h, got '" + n + "'");
            m.after_batch = false;
            m.every = std::chrono::seconds(std::stoll(digits) * unit);
          } else {
            throw fail(lineno, "refresh must be 'after_batch' or 'every <N>s|m|h', got '" + value + "'");
          }
        } else {
          throw fail(lineno, "unknown header key '" + key + "' (name, description, datasets, refresh)");
        }
        offset = next;
        continue;
      }
      // A plain comment before the SQL: part of the body.
    }
    if (in_header) {
      in_header = false;
      body_start = offset;
    }
    offset = next;
  }
  if (!in_header) m.sql = trim(text.substr(std::min(body_start, text.size())));
  if (m.name.empty()) {
    std::string stem = file.stem().string();
    if (!valid_name(stem)) throw fail(1, "no '-- name:' header and the file name is not a valid name");
    m.name = stem;
  }
  if (m.description.empty()) throw fail(1, "missing '-- description:' header");
  if (m.datasets.empty()) throw fail(1, "missing '-- datasets:' header (the views the SQL reads)");
  while (!m.sql.empty() && (m.sql.back() == ';' || std::isspace(static_cast<unsigned char>(m.sql.back()))))
    m.sql.pop_back();
  if (m.sql.empty()) throw fail(lineno, "no SQL after the header");
  return m;
}

std::vector<InsightModel> load_models(const std::vector<Source>& sources) {
  std::set<std::string> known;
  for (const auto& s : sources)
    for (const auto& e : s.endpoints) known.insert(s.name + "_" + e.name);
  std::vector<InsightModel> out;
  std::map<std::string, fs::path> names;
  for (const auto& s : sources) {
    fs::path dir = s.dir / "insights";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".sql" && e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      InsightModel m = parse_model(slurp(f), f, known);
      auto [it, fresh] = names.emplace(m.name, f);
      if (!fresh) throw InsightError(fmt::format("{}:1: insight '{}' is already defined in {}", f.string(), m.name, it->second.string()));
      out.push_back(std::move(m));
    }
  }
  return out;
}

InsightService::InsightService(std::string lake_root, const std::vector<Source>& sources,
                               std::vector<InsightModel> models, InsightOptions options)
    : root_(fs::absolute(fs::path(lake_root)).lexically_normal().string()),
      models_(std::move(models)),
      options_(options) {
  init(sources);
}

InsightService::InsightService(Lake& lake, const std::string& cache_dir, const std::vector<Source>& sources,
                               std::vector<InsightModel> models, InsightOptions options)
    : root_(fs::absolute(fs::path(lake.local_root().empty() ? cache_dir : lake.local_root())).lexically_normal().string()),
      models_(std::move(models)),
      options_(options) {
  if (lake.local_root().empty()) {
    if (cache_dir.empty()) throw InsightError("insights: an object-store lake needs a local cache directory");
    lake_ = &lake;
    // Leftovers of a previous run of this process (downloads or results cut short): the directory is
    // this service's alone, so every file in its staging folder is garbage now.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(root_) / "_staging", ec))
      if (e.is_regular_file(ec)) fs::remove(e.path(), ec);
    try {
      // Throttled for GET /v1/datasets; a refresh always syncs (force) so it sees the batch that
      // triggered it.
      lake_cache_ = std::make_unique<LakeCache>(lake, root_);
    } catch (const std::exception& e) {
      throw InsightError(std::string("insights: cannot set up the cache ") + root_ + ": " + e.what());
    }
  }
  init(sources);
}

void InsightService::init(const std::vector<Source>& sources) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  if (root_ == "/" || root_.empty()) throw InsightError("insights: the lake root must not be /");
  for (const auto& s : sources)
    for (const auto& e : s.endpoints)
    {
      views_.emplace_back(s.name + "_" + e.name, root_ + "/curated/" + s.name + "/" + e.name);
      dataset_ids_.emplace_back(s.name, e.name);
    }
  try {
    fs::create_directories(fs::path(root_) / "_staging" / "duckdb_insight");
    fs::create_directories(insights_dir());
    duck::Options o;
    o.threads = 1;
    o.memory_limit = "512MB";
    o.temp_directory = root_ + "/_staging/duckdb_insight";
    db_ = std::make_unique<duck::Database>(o);
    con_ = std::make_unique<duck::Connection>(*db_);
    // The same lock-down as QueryService: model SQL can read (and COPY can write) only inside the
    // lake; nothing can be reconfigured afterwards.
    con_->execute("SET GLOBAL TimeZone='UTC'");
    con_->execute("SET allowed_directories=[" + duck::quote_literal(root_ + "/") + "]");
    con_->execute("SET enable_external_access=false");
    con_->execute("SET lock_configuration=true");
  } catch (const duck::Error& e) {
    throw InsightError(std::string("insights: ") + e.what());
  } catch (const fs::filesystem_error& e) {
    throw InsightError(std::string("insights: ") + e.what());
  }
}

InsightService::~InsightService() { stop(); }

const InsightModel* InsightService::model(const std::string& name) const {
  for (const auto& m : models_)
    if (m.name == name) return &m;
  return nullptr;
}

void InsightService::ensure_views(const std::vector<std::string>& datasets) {
  for (auto& v : views_)
    if (std::find(datasets.begin(), datasets.end(), v.name()) != datasets.end()) v.sync(*con_);
}

bool InsightService::has_view(const std::string& name) const {
  for (const auto& v : views_)
    if (v.name() == name) return v.exists();
  return false;
}

std::string InsightService::input_version(const InsightModel& m) {
  uint64_t h = fnv1a(1469598103934665603ull, m.sql);
  for (const auto& d : m.datasets) {
    h = fnv1a(h, d);
    for (const auto& v : views_) {
      if (v.name() != d) continue;
      const std::string& dir = v.dir();
      std::vector<std::pair<std::string, uintmax_t>> files;
      std::error_code ec;
      fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
      for (; !ec && it != end; it.increment(ec)) {
        if (it->path().extension() != ".parquet" || !it->is_regular_file(ec)) continue;
        files.emplace_back(it->path().lexically_relative(dir).string(), it->file_size(ec));
      }
      std::sort(files.begin(), files.end());
      for (const auto& [p, size] : files) h = fnv1a(fnv1a(h, p), std::to_string(size));
    }
  }
  return fmt::format("{:016x}", h);
}

namespace {

InsightState parse_pointer(const std::string& text) {
  json::object o = json::parse(text).as_object();
  InsightState s;
  s.file = json::value_to<std::string>(o.at("file"));
  s.rows = o.at("rows").to_number<int64_t>();
  s.refreshed_us = o.at("refreshed_us").to_number<int64_t>();
  s.data_through_us = o.at("data_through_us").to_number<int64_t>();
  s.version = json::value_to<std::string>(o.at("version"));
  if (auto* p = o.if_contains("previous"); p && p->is_string()) s.previous = json::value_to<std::string>(*p);
  for (const auto& c : o.at("columns").as_array())
    s.columns.push_back({json::value_to<std::string>(c.at("name")), json::value_to<std::string>(c.at("type"))});
  // The pointer names a file in its own folder, nothing else (a damaged or hostile pointer must not
  // make a reader open another path).
  if (s.file.empty() || s.file.find('/') != std::string::npos || s.file.find("..") != std::string::npos ||
      !s.file.ends_with(".parquet"))
    throw std::runtime_error("bad file name '" + s.file + "'");
  return s;
}

std::string lake_dir(const std::string& name) { return "insights/" + name + "/"; }

std::string pointer_json(const InsightState& s) {
  json::array cols;
  for (const auto& c : s.columns) cols.push_back(json::object{{"name", c.name}, {"type", c.type}});
  json::object ptr{{"file", s.file},
                   {"rows", s.rows},
                   {"refreshed_us", s.refreshed_us},
                   {"refreshed_at", iso_utc(s.refreshed_us)},
                   {"data_through_us", s.data_through_us},
                   {"data_through", s.data_through_us ? json::value(iso_utc(s.data_through_us)) : json::value(nullptr)},
                   {"version", s.version},
                   {"previous", s.previous},
                   {"columns", std::move(cols)}};
  return json::serialize(ptr);
}

}  // namespace

std::optional<InsightState> InsightService::read_lake_pointer(const std::string& name) {
  std::optional<std::string> text;
  try {
    text = lake_->get(lake_dir(name) + "current.json");
  } catch (const std::exception& e) {
    throw InsightError(fmt::format("insight {}: cannot read its pointer from the lake: {}", name, e.what()));
  }
  if (!text) return std::nullopt;
  try {
    return parse_pointer(*text);
  } catch (const std::exception& e) {
    spdlog::warn("insight {}: unreadable current.json in the lake: {}", name, e.what());
    return std::nullopt;
  }
}

std::optional<InsightState> InsightService::read_pointer(const std::string& name, bool with_file) {
  if (lake_) {
    auto s = read_lake_pointer(name);
    if (!s || !with_file) return s;
    const fs::path local = fs::path(insights_dir()) / name / s->file;
    std::error_code ec;
    if (fs::exists(local, ec)) return s;
    // Names are versions: a file downloaded once stays valid, so only a new name is fetched.
    std::optional<std::string> bytes;
    try {
      bytes = lake_->get(lake_dir(name) + s->file);
    } catch (const std::exception& e) {
      throw InsightError(fmt::format("insight {}: cannot download {}: {}", name, s->file, e.what()));
    }
    if (!bytes) return std::nullopt;  // removed after being replaced twice: the pointer moved on
    try {
      fs::create_directories(local.parent_path());
      atomic_write(fs::path(root_) / "_staging", local, *bytes);
      // Older local copies are no longer named by the pointer (the caller holds duck_mu_: nothing
      // is reading them).
      for (const auto& e : fs::directory_iterator(local.parent_path(), ec))
        if (e.path().extension() == ".parquet" && e.path().filename() != s->file) fs::remove(e.path(), ec);
    } catch (const fs::filesystem_error& e) {
      throw InsightError(fmt::format("insight {}: cannot cache {}: {}", name, s->file, e.what()));
    }
    return s;
  }
  fs::path p = fs::path(insights_dir()) / name / "current.json";
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::nullopt;
  try {
    InsightState s = parse_pointer(slurp(p));
    if (!fs::exists(fs::path(insights_dir()) / name / s.file, ec)) return std::nullopt;
    return s;
  } catch (const std::exception& e) {
    // A damaged pointer is rewritten by the next refresh; until then the model reads as missing.
    spdlog::warn("insight {}: unreadable current.json: {}", name, e.what());
    return std::nullopt;
  }
}

bool InsightService::publish_to_lake(const std::string& name, const fs::path& staged, InsightState s) {
  const std::string object = lake_dir(name) + s.file;
  try {
    // The data first, the pointer second: a pointer never names an object that is not whole.
    lake_->commit_staged(staged, object);
    // Another process may have published meanwhile; never replace newer data with older.
    auto latest = read_lake_pointer(name);
    if (latest && latest->file != s.file && latest->data_through_us > s.data_through_us) {
      spdlog::info("insight {}: a newer version ({}) was published meanwhile; keeping it", name, latest->file);
      if (latest->previous != s.file) lake_->remove(object);
      return false;
    }
    // The pointer replaced is the one read now (another process may have moved it since).
    s.previous = latest && latest->file != s.file ? latest->file : "";
    lake_->put(lake_dir(name) + "current.json", pointer_json(s));
    // Only a file two pointers old goes: one a reader may have just read stays (see the header).
    if (latest && !latest->previous.empty() && latest->previous != s.file && latest->previous != latest->file)
      lake_->remove(lake_dir(name) + latest->previous);
  } catch (const InsightError&) {
    throw;
  } catch (const std::exception& e) {
    throw InsightError(fmt::format("insight {}: cannot publish to the lake: {}", name, e.what()));
  }
  return true;
}

bool InsightService::refresh(const std::string& name, bool force) {
  const InsightModel* m = model(name);
  if (!m) throw InsightError("no such insight: " + name);
  std::lock_guard lk(duck_mu_);
  try {
    // Object lake: the inputs as the lake holds them now (after the batch that triggered this).
    if (lake_cache_) lake_cache_->refresh(true);
    ensure_views(m->datasets);   // only its own: an unreadable file elsewhere must not stop this model
    for (const auto& d : m->datasets)
      if (!has_view(d)) return false;  // an input has no data yet: nothing to compute
    std::string version = input_version(*m);
    auto current = read_pointer(name, false);
    if (!force && current && current->version == version) return false;
    refreshes_.fetch_add(1, std::memory_order_relaxed);   // from here on the inputs are read

    // The model must be one SELECT: a file under sources/ must not be able to run anything else.
    {
      duckdb_prepared_statement p = nullptr;
      bool ok = duckdb_prepare(con_->raw(), m->sql.c_str(), &p) == DuckDBSuccess;
      std::string err = ok ? "" : (duckdb_prepare_error(p) ? duckdb_prepare_error(p) : "prepare failed");
      bool select = ok && duckdb_prepared_statement_type(p) == DUCKDB_STATEMENT_TYPE_SELECT;
      duckdb_destroy_prepare(&p);
      if (!ok) throw InsightError(fmt::format("insight {} ({}): {}", name, m->file.string(), err));
      if (!select) throw InsightError(fmt::format("insight {} ({}): the SQL must be a single SELECT", name, m->file.string()));
    }

    const fs::path dir = fs::path(insights_dir()) / name;
    fs::create_directories(dir);
    const std::string file = name + "-" + version + ".parquet";
    const fs::path staged = fs::path(root_) / "_staging" / ("insight-" + file);
    const std::string copy_sql = fmt::format("COPY ({}) TO {} (FORMAT parquet, COMPRESSION zstd)", m->sql,
                                             duck::quote_literal(staged.string()));
    auto run_copy = [&]() -> duck::Result {
      try {
        return con_->query(copy_sql);
      } catch (const duck::Error& e) {
        // A curated file removed (compaction) or rewritten since ensure_views(): list the inputs again, once.
        if (!stale_view_error(e.what())) throw;
        ensure_views(m->datasets);
        return con_->query(copy_sql);
      }
    };
    auto copied = run_copy();
    InsightState s;
    s.rows = copied.row_count() ? copied.int64(0, 0) : 0;
    fsync_file(staged);
    if (lake_) {
      // A local copy to describe and serve; the staged file itself goes up to the lake below.
      const fs::path copy = fs::path(root_) / "_staging" / ("insight-copy-" + file);
      fs::copy_file(staged, copy, fs::copy_options::overwrite_existing);
      fs::rename(copy, dir / file);
    } else {
      fs::rename(staged, dir / file);
    }

    auto desc = con_->query("DESCRIBE SELECT * FROM read_parquet(" + duck::quote_literal((dir / file).string()) + ")");
    for (std::size_t r = 0; r < desc.row_count(); ++r)
      s.columns.push_back({desc.text(0, r).value_or(""), desc.text(1, r).value_or("")});
    for (const auto& d : m->datasets) {
      // Datasets written by the curator carry _ingested_at; one that does not simply adds nothing.
      try {
        auto r = con_->query("SELECT epoch_us(max(_ingested_at)) FROM " + duck::quote_ident(d));
        if (r.row_count() && !r.is_null(0, 0)) s.data_through_us = std::max(s.data_through_us, r.int64(0, 0));
      } catch (const duck::Error&) {
      }
    }
    s.file = file;
    s.version = version;
    s.refreshed_us = now_us();
    s.previous = current && current->file != file ? current->file : "";

    if (lake_) {
      const bool published = publish_to_lake(name, staged, s);
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        std::string fn = e.path().filename().string();
        if (e.path().extension() == ".parquet" && fn != file) fs::remove(e.path(), ec);
      }
      if (!published) fs::remove(dir / file, ec);
      {
        std::lock_guard sl(state_mu_);
        errors_.erase(name);
      }
      spdlog::debug("insight {}: {} rows -> {} (lake)", name, s.rows, file);
      return published;
    }
    atomic_write(fs::path(root_) / "_staging", dir / "current.json", pointer_json(s));

    // Keep the new file and the one current.json named before: a reader that read the old pointer
    // an instant ago still finds its file. Everything older goes.
    std::string previous = current ? current->file : "";
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      std::string fn = e.path().filename().string();
      if (e.path().extension() == ".parquet" && fn != file && fn != previous) fs::remove(e.path(), ec);
    }
    {
      std::lock_guard sl(state_mu_);
      errors_.erase(name);
    }
    spdlog::debug("insight {}: {} rows -> {}", name, s.rows, file);
    return true;
  } catch (const duck::Error& e) {
    std::string msg = fmt::format("insight {}: {}", name, e.what());
    std::lock_guard sl(state_mu_);
    errors_[name] = msg;
    throw InsightError(msg);
  } catch (const fs::filesystem_error& e) {
    std::string msg = fmt::format("insight {}: {}", name, e.what());
    std::lock_guard sl(state_mu_);
    errors_[name] = msg;
    throw InsightError(msg);
  } catch (const InsightError& e) {
    std::lock_guard sl(state_mu_);
    errors_[name] = e.what();
    throw;
  } catch (const std::exception& e) {   // the object lake (listing, downloads) or the local disk
    std::string msg = fmt::format("insight {}: {}", name, e.what());
    std::lock_guard sl(state_mu_);
    errors_[name] = msg;
    throw InsightError(msg);
  }
}

std::vector<InsightInfo> InsightService::list() {
  std::vector<InsightInfo> out;
  for (const auto& m : models_) {
    InsightInfo info{&m, std::nullopt, ""};
    {
      std::lock_guard lk(duck_mu_);
      try {
        info.state = read_pointer(m.name, false);
      } catch (const InsightError& e) {
        info.last_error = e.what();   // the lake is unreachable: listed with the reason
      }
    }
    std::lock_guard sl(state_mu_);
    if (auto it = errors_.find(m.name); it != errors_.end() && info.last_error.empty()) info.last_error = it->second;
    out.push_back(std::move(info));
  }
  return out;
}

std::optional<InsightState> InsightService::state(const std::string& name) {
  if (!model(name)) return std::nullopt;
  std::lock_guard lk(duck_mu_);
  return read_pointer(name);
}

std::optional<RenderedInsight> InsightService::render(const std::string& name, const std::string& format) {
  if (format != "json" && format != "csv" && format != "parquet")
    throw std::invalid_argument("format must be json, csv or parquet, got '" + format + "'");
  if (!model(name)) return std::nullopt;
  // Under duck_mu_ the current file cannot be replaced mid-read, so pointer and bytes agree.
  std::lock_guard lk(duck_mu_);
  auto s = read_pointer(name);
  if (!s) return std::nullopt;
  const std::string key = name + "\n" + format;
  if (auto it = cache_.find(key); it != cache_.end() && it->second.state.file == s->file &&
                                  it->second.state.refreshed_us == s->refreshed_us)
    return it->second;
  const fs::path file = fs::path(insights_dir()) / name / s->file;
  RenderedInsight out;
  out.state = *s;
  try {
    if (format == "parquet") {
      out.content_type = "application/vnd.apache.parquet";
      out.body = slurp(file);
    } else if (format == "json") {
      out.content_type = "application/json";
      // DuckDB's own to_json keeps numbers numbers and renders dates/timestamps as ISO strings.
      auto r = con_->query("SELECT CAST(to_json(t) AS VARCHAR) FROM read_parquet(" +
                           duck::quote_literal(file.string()) + ") t");
      json::array cols;
      for (const auto& c : s->columns) cols.push_back(json::object{{"name", c.name}, {"type", c.type}});
      json::object head{{"name", name},
                        {"refreshed_at", iso_utc(s->refreshed_us)},
                        {"data_through", s->data_through_us ? json::value(iso_utc(s->data_through_us)) : json::value(nullptr)},
                        {"columns", std::move(cols)}};
      std::string h = json::serialize(head);
      h.pop_back();  // splice the rows in without re-parsing each row
      out.body = h + ",\"rows\":[";
      for (std::size_t i = 0; i < r.row_count(); ++i) {
        if (i) out.body += ',';
        out.body += r.text(0, i).value_or("null");
      }
      out.body += "]}";
    } else {
      out.content_type = "text/csv; charset=utf-8";
      auto r = con_->query("SELECT CAST(COLUMNS(*) AS VARCHAR) FROM read_parquet(" +
                           duck::quote_literal(file.string()) + ")");
      for (std::size_t c = 0; c < s->columns.size(); ++c)
        out.body += (c ? "," : "") + csv_field(s->columns[c].name);
      out.body += "\r\n";
      for (std::size_t i = 0; i < r.row_count(); ++i) {
        for (std::size_t c = 0; c < r.column_count(); ++c) out.body += (c ? "," : "") + csv_field(r.text(c, i));
        out.body += "\r\n";
      }
    }
  } catch (const duck::Error& e) {
    throw InsightError(fmt::format("insight {}: cannot render {}: {}", name, format, e.what()));
  }
  cache_[key] = out;
  return out;
}

std::vector<DatasetStats> InsightService::dataset_stats() {
  std::vector<DatasetStats> out;
  std::lock_guard lk(duck_mu_);
  try {
    if (lake_cache_) lake_cache_->refresh();   // object lake: count the curated objects as they are
  } catch (const std::exception& e) {
    spdlog::warn("datasets: {}", e.what());
  }
  for (auto& v : views_) {
    try {
      v.sync(*con_);
    } catch (const duck::Error& e) {
      spdlog::warn("datasets: cannot read {}: {}", v.name(), e.what());   // counted as of its last good sync
    }
  }
  for (std::size_t i = 0; i < views_.size(); ++i) {
    const std::string& view = views_[i].name();
    const std::string& dir = views_[i].dir();
    DatasetStats d;
    d.name = view;
    d.source = dataset_ids_[i].first;
    d.endpoint = dataset_ids_[i].second;
    std::set<std::string> hours;
    std::error_code ec;
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() != ".parquet" || !it->is_regular_file(ec)) continue;
      ++d.files;
      d.bytes += static_cast<int64_t>(it->file_size(ec));
      auto mtime = std::chrono::file_clock::to_sys(it->last_write_time(ec));
      d.last_update_us = std::max<int64_t>(
          d.last_update_us, std::chrono::duration_cast<std::chrono::microseconds>(mtime.time_since_epoch()).count());
      // The hour folders, seed (2026/11/26/08) or hive (year=2026/month=11/...): the last four
      // components of the parent path with any "key=" stripped.
      std::vector<std::string> parts;
      for (const auto& c : it->path().parent_path().lexically_relative(dir)) {
        std::string v = c.string();
        if (auto eq = v.find('='); eq != std::string::npos) v = v.substr(eq + 1);
        parts.push_back(v);
      }
      if (parts.size() >= 4) {
        auto n = parts.size();
        hours.insert(parts[n - 4] + "-" + parts[n - 3] + "-" + parts[n - 2] + "T" + parts[n - 1]);
      }
    }
    d.hours.assign(hours.begin(), hours.end());
    if (has_view(view)) {
      try {
        auto r = con_->query("SELECT count(*) FROM " + duck::quote_ident(view));
        d.rows = r.int64(0, 0);
      } catch (const duck::Error& e) {
        spdlog::warn("datasets: cannot count {}: {}", view, e.what());
      }
    }
    const fs::path dl = fs::path(root_) / "deadletter" / d.source / d.endpoint;
    ec.clear();
    fs::recursive_directory_iterator di(dl, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && di != end; di.increment(ec)) {
      if (di->path().extension() != ".jsonl" || !di->is_regular_file(ec)) continue;
      d.deadletter_bytes += static_cast<int64_t>(di->file_size(ec));
      std::ifstream f(di->path(), std::ios::binary);
      std::string line;
      while (std::getline(f, line))
        if (!line.empty()) ++d.deadletters;
    }
    out.push_back(std::move(d));
  }
  return out;
}

void InsightService::notify_batch(const std::vector<std::string>& datasets) {
  bool any = false;
  {
    std::lock_guard lk(loop_mu_);
    for (const auto& m : models_) {
      if (!m.after_batch) continue;
      for (const auto& d : m.datasets)
        if (std::find(datasets.begin(), datasets.end(), d) != datasets.end()) {
          dirty_.insert(m.name);
          any = true;
        }
    }
  }
  if (any) loop_cv_.notify_all();
}

void InsightService::start() {
  std::lock_guard lk(loop_mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  for (const auto& m : models_) dirty_.insert(m.name);  // whatever the lake holds now
  thread_ = std::thread([this] { loop(); });
}

void InsightService::stop() {
  {
    std::lock_guard lk(loop_mu_);
    stopping_ = true;
  }
  loop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void InsightService::loop() {
  using clock = std::chrono::steady_clock;
  std::map<std::string, clock::time_point> due;      // periodic models: next period
  std::map<std::string, clock::time_point> pending;  // models to refresh: when they became dirty
  std::map<std::string, clock::time_point> last;     // end of each model's latest materialisation
  for (const auto& m : models_)
    if (m.every.count() > 0) due[m.name] = clock::now() + m.every;
  // When a pending model may run: after the gather pause, and (after_batch) min_interval after its
  // previous materialisation ended. Periodic models keep their own schedule.
  auto ready_at = [&](const std::string& n, clock::time_point since) {
    auto at = since + options_.gather;
    auto l = last.find(n);
    if (l != last.end() && model(n)->after_batch) at = std::max(at, l->second + options_.min_interval);
    return at;
  };
  std::unique_lock lk(loop_mu_);
  while (!stopping_) {
    auto now = clock::now();
    for (auto& [n, t] : due) {
      if (t <= now) {
        dirty_.insert(n);
        t = now + model(n)->every;
      }
    }
    for (const auto& n : dirty_) pending.emplace(n, now);   // keeps the earliest time
    dirty_.clear();
    auto next = now + std::chrono::hours(1);
    for (const auto& [n, t] : due) next = std::min(next, t);
    std::vector<std::string> work;
    for (const auto& [n, since] : pending) {
      auto at = ready_at(n, since);
      if (at <= now) work.push_back(n);
      else next = std::min(next, at);
    }
    if (work.empty()) {
      loop_cv_.wait_until(lk, next, [this] { return stopping_ || !dirty_.empty(); });
      continue;
    }
    // Taken off before the refresh: a batch committed while it runs marks the model dirty again, so
    // it is covered by the following refresh.
    for (const auto& n : work) pending.erase(n);
    lk.unlock();
    for (const auto& n : work) {
      const uint64_t before = refreshes();
      try {
        refresh(n);
      } catch (const std::exception& e) {
        spdlog::warn("{}", e.what());  // kept in errors_ and shown by GET /v1/insights
      }
      // Only a refresh that read the inputs counts for the debounce: one that found nothing new
      // (or no data yet) leaves the next batch free to be reflected at once.
      if (refreshes() != before) last[n] = clock::now();
    }
    lk.lock();
  }
}

}  // namespace apilake
