// The source + schema model: what a YAML definition under sources/ declares. Pure data plus the
// loader; applying a schema to records is curate/'s job, fetching is source/'s.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "definition/schema_model.h"

namespace apilake {

// A definition that cannot be loaded. what() is "FILE:LINE:COL: message".
struct DefinitionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A ParamSpec's pattern, compiled once (definition.cpp; opaque here to keep <regex> out of this header).
struct CompiledPattern;

enum class ParamType { String, Integer, Number, Boolean, Date, Enum, List };
enum class ParamLocation { Query, Path };

struct ParamSpec {
  std::string name;          // name users give in POST /v1/extractions
  ParamType type = ParamType::String;
  ParamLocation in = ParamLocation::Query;
  std::string api_name;      // name sent upstream (query key or {placeholder}); defaults to name
  bool required = false;
  std::optional<std::string> default_value;
  std::string description;
  std::string format;        // Date: how the API wants it, e.g. "dd/MM/yyyy" (default yyyy-MM-dd)
  std::vector<std::string> values;    // Enum (and List of enum): the allowed values
  ParamType item_type = ParamType::String;  // List: type of each item (not List)
  std::string separator = ",";        // List: how items are joined in the URL
  bool explode = false;               // List: repeat the query key once per item instead (?k=a&k=b)
  std::optional<std::string> minimum; // Integer/Number/Date (and their lists): inclusive bounds,
  std::optional<std::string> maximum; //   normalised like a value
  std::string pattern;                // String (and List items): ECMAScript regex, whole value must match
  // `pattern` compiled by the loader, so a request never compiles a regex. Null in a hand-built
  // spec: validate_params then compiles `pattern` on each call.
  std::shared_ptr<const CompiledPattern> compiled_pattern;
};

struct Pagination {
  enum class Kind { None, PageNumber, OffsetLimit, Cursor, NextUrl, LinkHeader };
  Kind kind = Kind::None;
  std::string page_param = "page";     // PageNumber
  std::string size_param = "per_page"; // PageNumber; empty = don't send a size
  int start_page = 1;
  std::string offset_param = "offset"; // OffsetLimit
  std::string limit_param = "limit";
  int page_size = 100;                 // PageNumber / OffsetLimit: a shorter page ends the extraction
  std::string next_pointer;            // NextUrl: JSON pointer to the next page's URL (null/absent = last)
  std::string cursor_pointer;          // Cursor: JSON pointer to the next cursor (null/absent/"" = last)
  std::string cursor_param;            // Cursor: query parameter the cursor is sent in
  // Stop conditions, checked after every page in this order (any one ends the extraction):
  bool stop_on_empty = true;           // a page with no records is the last
  std::optional<bool> stop_on_short;   // fewer than page_size records; default: true for
                                       // PageNumber/OffsetLimit, not allowed for the others
  std::string total_pointer;           // JSON pointer to the total record count: stop once reached
  std::string has_more_pointer;        // JSON pointer to a boolean: false/null/absent = last page
  int max_pages = 1000;                // hard cap; reaching it fails the extraction

  bool stops_on_short() const {
    return stop_on_short.value_or(kind == Kind::PageNumber || kind == Kind::OffsetLimit);
  }
};

// How a page's selected value becomes records (see definition/records.h).
enum class RecordShape { Records, ParallelArrays };

// Per-source request pacing, shared by every extraction of the source in the process.
struct RateLimit {
  double requests_per_second = 0;  // 0 = unlimited
  int max_concurrent = 0;          // 0 = unlimited
};

// Incremental extraction: the highest `cursor_field` value fetched is remembered per (source,
// endpoint, other params) and, on an incremental run, sent as `param`.
struct Incremental {
  std::string cursor_field;  // JSON pointer inside a record ("/updated_at"); a bare name is "/name"
  std::string param;         // name of the endpoint parameter that takes the value
};

enum class AuthKind { None, ApiKeyHeader, ApiKeyQuery, Bearer, Basic };
struct Auth {
  AuthKind kind = AuthKind::None;
  std::string name;     // header or query parameter name (ApiKey*)
  std::string env;      // environment variable holding the secret (Basic: "user:password")
};

struct Endpoint {
  std::string name;
  std::string description;
  std::string path;                                  // template, e.g. "/dados/serie/bcdata.sgs.{series}/dados"
  std::map<std::string, std::string> fixed_query;    // always sent, e.g. formato=json
  std::vector<ParamSpec> params;
  std::map<std::string, std::string> example;        // example params (user-facing names)
  Pagination pagination;
  std::string records_pointer;                       // JSON pointer to the records array; "" = the body itself
  RecordShape record_shape = RecordShape::Records;
  std::vector<std::pair<std::string, std::string>> record_context;  // name -> page-level JSON pointer
  std::optional<Incremental> incremental;
  Schema schema;
  // Where and how curated files are written (docs/lake.md).
  enum class Layout { Seed, Hive };
  Layout layout = Layout::Seed;      // `layout: seed | hive`: YYYY/MM/DD/HH/ or year=/month=/day=/hour=/
  std::string partition_by;          // `partition_by: <field>` (date/timestamp); "" = ingestion hour
  struct Files {                     // `files: {max_rows, max_mb, row_group_rows}`
    int max_rows = 1000000;          // a batch's hour group above this splits into several files
    int max_mb = 256;                // ... or above this estimated (uncompressed) size
    int row_group_rows = 122880;     // Parquet ROW_GROUP_SIZE
  } files;

  const ParamSpec* param(std::string_view name) const;
};

// The bus carries one page per message; Pub/Sub's message limit is 10 MiB.
inline constexpr std::size_t kMaxPageBytes = 10u << 20;

struct Source {
  std::string name;
  std::string description;
  std::string base_url;          // scheme://host[:port][/prefix]; fetches go only to this host
  Auth auth;
  RateLimit rate_limit;
  std::size_t max_page_bytes = kMaxPageBytes;  // a larger page fails the extraction
  std::vector<Endpoint> endpoints;
  std::filesystem::path file;    // where it was loaded from
  std::filesystem::path dir;     // folder holding the definition (fixtures live beside it)

  const Endpoint* endpoint(std::string_view name) const;  // nullptr when unknown
};

// Loads one definition file; throws DefinitionError ("FILE:LINE:COL: ...") on any problem.
Source load_source_file(const std::filesystem::path& file);

// Loads every "*/source.yaml" and "*.yaml" directly under dir (sorted by name); throws on the first
// bad file. Duplicate source names are an error.
std::vector<Source> load_sources(const std::filesystem::path& dir);

// Every error in the file, for `apilake sources validate` (empty = valid).
std::vector<std::string> validate_source_file(const std::filesystem::path& file);

// Param values as users give them, after type checks and defaults, keyed by ParamSpec::name.
using Params = std::map<std::string, std::string>;

// A parameter that fails validation: unknown, missing, or of the wrong type.
struct ParamError : std::runtime_error {
  std::string param;
  ParamError(std::string p, const std::string& msg) : std::runtime_error(msg), param(std::move(p)) {}
};

// Checks user params against the endpoint: unknown names, required, types (Integer: optional '-' and
// digits; Number: a finite decimal; Boolean: true/false; Date: ISO yyyy-mm-dd, a real calendar day;
// Enum: one of values; List: comma-separated items, each checked as item_type), minimum/maximum,
// pattern; fills defaults. Returns normalised values (Date stays ISO, a List stays comma-joined;
// rendering is source/'s job).
Params validate_params(const Endpoint& endpoint, const Params& given);

const char* to_string(ParamType);

}  // namespace apilake
