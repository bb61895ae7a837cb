#include "curate/bigquery.h"

#include "curate/schema_registry.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <fmt/format.h>

#include "curate/layout.h"

namespace apilake {

namespace {

// Hive keys of the hive layout (curate/layout.h hour_dir), in path order.
constexpr const char* kHiveKeys[] = {"year", "month", "day", "hour"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// BigQuery column names: quoted with backticks, so only a backtick, control characters and overlong
// names can break them.
std::string column_name(const std::string& name) {
  if (name.empty() || name.size() > 300)
    throw std::invalid_argument(fmt::format("column name '{}' cannot be a BigQuery column (1-300 characters)", name));
  for (unsigned char c : name)
    if (c == '`' || c < 0x20)
      throw std::invalid_argument(fmt::format("column name '{}' has a character BigQuery cannot take", name));
  return "`" + name + "`";
}

// A project, dataset or table name: letters, digits, '_' and '-' (projects).
std::string plain_name(const std::string& what, const std::string& name) {
  if (name.empty() || name.size() > 1024)
    throw std::invalid_argument(fmt::format("BigQuery {} name must be 1-1024 characters", what));
  for (unsigned char c : name)
    if (!std::isalnum(c) && c != '_' && c != '-')
      throw std::invalid_argument(
          fmt::format("BigQuery {} name '{}' may only hold letters, digits, '_' and '-'", what, name));
  return name;
}

// "gs://bucket[/prefix]" without a trailing '/'; refuses what would break a SQL string literal or add
// a second wildcard.
std::string bucket_root(std::string bucket) {
  if (bucket.rfind("gs://", 0) != 0)
    throw std::invalid_argument(fmt::format("--bucket must be a gs:// URI (got '{}')", bucket));
  while (bucket.size() > 5 && bucket.back() == '/') bucket.pop_back();
  const std::string rest = bucket.substr(5);
  if (rest.empty() || rest.front() == '/') throw std::invalid_argument("--bucket must name a bucket: gs://BUCKET[/prefix]");
  if (rest.find("//") != std::string::npos)
    throw std::invalid_argument("--bucket must not hold '//': BigQuery folds consecutive slashes");
  for (unsigned char c : rest)
    if (c == '\'' || c == '\\' || c == '*' || c == '?' || c == '[' || c < 0x20 || c == 0x7f)
      throw std::invalid_argument(fmt::format("--bucket '{}' holds a character not allowed here (quote, "
                                              "backslash, wildcard or control character)", bucket));
  return bucket;
}

bool has_list(const FieldSpec& f) {
  if (f.type == FieldType::List) return true;
  for (const auto& c : f.fields)
    if (has_list(c)) return true;
  return false;
}

}  // namespace

std::string bigquery_type(const FieldSpec& field) {
  // How BigQuery reads the Parquet type parquet_sink writes for each FieldType (docs/bigquery.md).
  switch (field.type) {
    case FieldType::String: return "STRING";     // BYTE_ARRAY (STRING)
    case FieldType::Enum: return "STRING";       // stored as its string value
    case FieldType::Int64: return "INT64";       // INT64
    case FieldType::Double: return "FLOAT64";    // DOUBLE
    case FieldType::Bool: return "BOOL";         // BOOLEAN
    case FieldType::Date: return "DATE";         // INT32 (DATE)
    case FieldType::Timestamp: return "TIMESTAMP";  // INT64 (TIMESTAMP, isAdjustedToUTC, MICROS)
    case FieldType::Decimal:
      // DECIMAL(p,s): NUMERIC holds scale <= 9 with <= 29 integer digits; anything else needs
      // BIGNUMERIC (scale <= 38, <= 38 integer digits, so every decimal(p<=38,s) fits).
      if (field.precision < 1 || field.precision > 38 || field.scale < 0 || field.scale > field.precision)
        throw std::invalid_argument(fmt::format("field '{}': decimal({},{}) is not a valid decimal", field.name,
                                                field.precision, field.scale));
      return field.scale <= 9 && field.precision - field.scale <= 29 ? "NUMERIC" : "BIGNUMERIC";
    case FieldType::Struct: {
      if (field.fields.empty())
        throw std::invalid_argument(fmt::format("field '{}': a struct without fields has no BigQuery type", field.name));
      std::string out = "STRUCT<";
      for (std::size_t i = 0; i < field.fields.size(); ++i)
        out += (i ? ", " : "") + column_name(field.fields[i].name) + " " + bigquery_type(field.fields[i]);
      return out + ">";
    }
    case FieldType::List: {
      if (field.items.size() != 1)
        throw std::invalid_argument(fmt::format("field '{}': a list needs exactly one item spec", field.name));
      // BigQuery has no ARRAY<ARRAY<…>>; a list of lists must be wrapped in a struct by the schema.
      if (field.items[0].type == FieldType::List)
        throw std::invalid_argument(fmt::format("field '{}': BigQuery cannot hold a list of lists (ARRAY<ARRAY>); "
                                                "declare the inner list inside a struct",
                                                field.name));
      return "ARRAY<" + bigquery_type(field.items[0]) + ">";
    }
  }
  throw std::invalid_argument(fmt::format("field '{}': unknown field type", field.name));
}

std::vector<BigQueryColumn> bigquery_columns(const Endpoint& endpoint) {
  std::vector<BigQueryColumn> out;
  for (const auto& f : endpoint.schema.fields) out.push_back({f.name, bigquery_type(f)});
  std::vector<Column> lineage;
  append_lineage_columns(lineage);
  for (const auto& c : lineage) {
    FieldSpec f;
    f.name = c.name;
    f.type = c.type;
    out.push_back({c.name, bigquery_type(f)});
  }
  return out;
}

std::string bigquery_ddl(const Source& source, const Endpoint& endpoint, const BigQueryTarget& target) {
  const std::string root = bucket_root(target.bucket);
  const std::string dataset = plain_name("dataset", target.dataset.empty() ? "apilake" : target.dataset);
  const std::string table =
      plain_name("table", target.table.empty() ? source.name + "_" + endpoint.name : target.table);
  std::string name = dataset + "." + table;
  if (!target.project.empty()) name = plain_name("project", target.project) + "." + name;
  const std::string dir = root + "/curated/" + source.name + "/" + endpoint.name;
  const bool hive = endpoint.layout == Endpoint::Layout::Hive;

  const auto columns = bigquery_columns(endpoint);
  if (hive)
    for (const auto& c : columns)
      for (const char* key : kHiveKeys)
        if (lower(c.name) == key)
          throw std::invalid_argument(fmt::format("column '{}' clashes with the hive partition key '{}' of the hive "
                                                  "layout; rename the field (its `name:`) for BigQuery",
                                                  c.name, key));
  bool lists = false;
  for (const auto& f : endpoint.schema.fields) lists |= has_list(f);

  std::string out;
  if (hive) {
    out += fmt::format(
        "-- {}.{}: hive layout (year=YYYY/month=MM/day=DD/hour=HH/). BigQuery prunes files by the partition\n"
        "-- columns: filter on year/month/day/hour (zero-padded strings, so '08' < '10' orders as numbers).\n",
        source.name, endpoint.name);
  } else {
    out += fmt::format(
        "-- {}.{}: seed layout (YYYY/MM/DD/HH/). The paths carry no hive keys, so BigQuery cannot prune:\n"
        "-- every query lists and reads every file. Filter on _FILE_NAME to skip hours, or set\n"
        "-- `layout: hive` on the endpoint for partition pruning.\n",
        source.name, endpoint.name);
  }
  out += fmt::format("CREATE EXTERNAL TABLE `{}` (\n", name);
  for (std::size_t i = 0; i < columns.size(); ++i)
    out += fmt::format("  {} {}{}\n", column_name(columns[i].name), columns[i].type, i + 1 < columns.size() ? "," : "");
  out += ")\n";
  if (hive) out += "WITH PARTITION COLUMNS (year STRING, month STRING, day STRING, hour STRING)\n";
  out += "OPTIONS (\n  format = 'PARQUET',\n";
  if (hive) {
    out += fmt::format("  uris = ['{}/*'],\n", dir);
    out += fmt::format("  hive_partition_uri_prefix = '{}',\n", dir);
    out += "  require_hive_partition_filter = false";
  } else {
    out += fmt::format("  uris = ['{}/*.parquet']", dir);
  }
  // Parquet LIST columns read as ARRAY<item> instead of STRUCT<list ARRAY<STRUCT<element>>>.
  if (lists) out += ",\n  enable_list_inference = true";
  out += "\n);\n";
  return out;
}

std::string bigquery_ddl(const Source& source, const Endpoint& endpoint, const BigQueryTarget& target, Lake& lake) {
  Endpoint current = endpoint;
  current.schema = current_schema(lake, source.name, endpoint.name, endpoint.schema);
  return bigquery_ddl(source, current, target);
}

}  // namespace apilake
