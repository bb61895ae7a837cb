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

enum class FieldType { String, Int64, Double, Bool, Date, Timestamp, Decimal, Enum, Struct, List };

struct FieldSpec {
  std::string name;          // column name in Parquet ("item" for a list's element)
  FieldType type = FieldType::String;
  std::string path;          // JSON pointer inside the record (inside the parent object for a struct's
                             // fields); defaults to "/" + name. Unused for a list's element.
  bool required = false;     // absent or null -> dead letter (missing_required)
  bool nullable = true;      // false: an explicit null is refused (type_mismatch); absent takes the default
  std::optional<std::string> default_value;  // used when the value is absent (not when null); the text is
                                             // coerced like a JSON string of the field's type
  std::string format;        // Date/Timestamp: e.g. "dd/MM/yyyy", "iso8601", "epoch_s", "epoch_ms";
                             // Double/Int64/Decimal given as strings: "decimal_comma" = "1.234,56"
  int precision = 0;         // Decimal: total digits 1..38
  int scale = 0;             // Decimal: digits after the point, 0..precision
  std::vector<std::string> values;  // Enum: the allowed values (case-sensitive), stored as string
  std::vector<FieldSpec> fields;    // Struct: its fields, in order
  std::vector<FieldSpec> items;     // List: exactly one element spec
  std::string from_param;    // top-level fields only: the value is the extraction's request parameter of
                             // this name (the message's `params` attribute), not read from the record;
                             // coerced like a JSON string of the field's type (docs/schema.md "from_param")
};

// What happens to a record's top-level keys that no field reads (docs/schema.md "Evolution").
enum class Evolution {
  Ignore,        // (default) the schema is a projection: other keys are not part of the dataset
  Evolve,        // unknown keys become new nullable columns, recorded as a new schema version
  Freeze,        // a record with an unknown key -> dead letter (unknown_field)
  DiscardValue,  // the unknown value -> dead letter (unknown_field); the rest of the row is curated
  DiscardRow,    // same as Freeze, named as dlt names it
};

struct Schema {
  int version = 1;
  Evolution evolution = Evolution::Ignore;
  std::vector<FieldSpec> fields;
};

const char* to_string(Evolution);
const char* to_string(FieldType);

// Reads a `schema:` YAML mapping into `schema`. Every problem is appended to `errors` as
// "FILE:LINE:COL: message" (file = the definition being loaded); nothing throws.
void load_schema_yaml(const YAML::Node& node, Schema& schema, const std::filesystem::path& file,
                      std::vector<std::string>& errors);

// The schema compiler (coercion rules) is curate/'s, a floor above. app/ installs curate's check of a
// field's `default` at start-up (set_default_check(&default_problem)), so loading a definition and
// `apilake sources validate` refuse, at the default's FILE:LINE:COL, a default the curator would refuse
// (wrong type, bad date, decimal out of range...). Returns "" when fine. Not installed: model checks only.
using DefaultCheck = std::string (*)(const FieldSpec& field);
void set_default_check(DefaultCheck check);

}  // namespace apilake
