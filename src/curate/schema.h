// Applying a declared Schema to one record: a typed Row, or the reason it is refused.
// Pure, no I/O. Rules (docs/schema.md): each field is read at its JSON pointer; absent or null is
// NULL unless required (missing_required). Strings holding numbers/bools are coerced; dates and
// timestamps follow the field's format. Anything else is type_mismatch / bad_format / out_of_range.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "curate/row.h"
#include "definition/definition.h"

namespace apilake {

struct Reason {
  std::string code;     // parse_error | missing_required | type_mismatch | bad_format | out_of_range
  std::string field;    // "" for record-level problems
  std::string detail;   // human-readable, e.g. "expected int64, got \"abc\""
};

struct Outcome {
  std::optional<Row> row;      // set when valid
  std::optional<Reason> reason;
};

class RecordValidator {
 public:
  explicit RecordValidator(const Schema& schema);
  // The record as raw JSON text (one element of the records array).
  Outcome apply(std::string_view record_json);
  // The record as an on-demand value already positioned by the caller's parser.
  Outcome apply(simdjson::ondemand::value record);
  const Schema& schema() const { return schema_; }

 private:
  Schema schema_;
  simdjson::ondemand::parser parser_;
  simdjson::padded_string buffer_;
};

// Parses "dd/MM/yyyy"-style patterns (dd, MM, yyyy, HH, mm, ss literals elsewhere) — exposed for tests.
std::optional<DateDays> parse_date(std::string_view text, std::string_view pattern);
std::optional<TimestampUs> parse_timestamp(std::string_view text, std::string_view format);
int32_t days_from_civil(int y, unsigned m, unsigned d);

}  // namespace apilake
