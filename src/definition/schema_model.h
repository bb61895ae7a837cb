// The schema model: what an endpoint's `schema:` mapping declares (docs/schema.md), and its YAML
// loader. Pure data; applying it to records is curate/'s job.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace apilake {

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

const char* to_string(FieldType);

// Reads a `schema:` YAML mapping into `schema`. Every problem is appended to `errors` as
// "FILE:LINE:COL: message" (file = the definition being loaded); nothing throws.
void load_schema_yaml(const YAML::Node& node, Schema& schema, const std::filesystem::path& file,
                      std::vector<std::string>& errors);

}  // namespace apilake
