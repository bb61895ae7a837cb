// The source + schema model: what a YAML definition under sources/ declares. Pure data plus the
// loader; applying a schema to records is curate/'s job, fetching is source/'s.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace apilake {

// A definition that cannot be loaded. what() is "FILE:LINE:COL: message".
struct DefinitionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class ParamType { String, Integer, Number, Boolean, Date };
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
};

enum class FieldType { String, Int64, Double, Bool, Date, Timestamp };

struct FieldSpec {
  std::string name;          // column name in Parquet
  FieldType type = FieldType::String;
  std::string path;          // JSON pointer inside the record; defaults to "/" + name
  bool required = false;     // absent or null -> dead letter (missing_required)
  std::string format;        // Date/Timestamp: e.g. "dd/MM/yyyy", "iso8601", "epoch_s", "epoch_ms";
                             // Double/Int64 given as strings: decimal separator "," if format == "decimal_comma"
};

struct Schema {
  int version = 1;
  std::vector<FieldSpec> fields;
};

struct Pagination {
  enum class Kind { None, PageNumber, OffsetLimit, NextUrl };
  Kind kind = Kind::None;
  std::string page_param = "page";     // PageNumber
  std::string size_param = "per_page"; // PageNumber; empty = don't send a size
  int start_page = 1;
  std::string offset_param = "offset"; // OffsetLimit
  std::string limit_param = "limit";
  int page_size = 100;                 // PageNumber / OffsetLimit: a shorter page ends the extraction
  std::string next_pointer;            // NextUrl: JSON pointer to the next page's URL (null/absent = last)
  int max_pages = 1000;                // hard cap; reaching it fails the extraction
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
  Schema schema;

  const ParamSpec* param(std::string_view name) const;
};

struct Source {
  std::string name;
  std::string description;
  std::string base_url;          // scheme://host[:port][/prefix]; fetches go only to this host
  Auth auth;
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
// digits; Number: a finite decimal; Boolean: true/false; Date: ISO yyyy-mm-dd, a real calendar day),
// fills defaults. Returns normalised values (Date stays ISO here; rendering is source/'s job).
Params validate_params(const Endpoint& endpoint, const Params& given);

const char* to_string(ParamType);
const char* to_string(FieldType);

}  // namespace apilake
