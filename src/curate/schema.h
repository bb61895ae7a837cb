// Applying a declared Schema to one record: a typed Row, or the reason it is refused.
// Pure, no I/O. Rules (docs/schema.md): each field is read at its JSON pointer; absent or null is
// NULL unless required (missing_required). Strings holding numbers/bools are coerced; dates and
// timestamps follow the field's format. Anything else is type_mismatch / bad_format / out_of_range.
// The first failing field in schema order names the reason; a malformed record is parse_error.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "curate/column_batch.h"
#include "curate/row.h"
#include "definition/definition.h"

namespace apilake {

struct Reason {
  std::string code;     // parse_error | missing_required | type_mismatch | bad_format | out_of_range |
                        // unknown_field
  std::string field;    // "" for record-level problems
  std::string detail;   // human-readable, e.g. "expected int64, got \"abc\""
};

// A top-level key of the record that no field reads (see Schema::evolution).
struct UnknownField {
  std::string key;
  std::string json;     // its value, as JSON text (whole, not clipped: it is kept in the dead letters)
};

struct Outcome {
  std::optional<Row> row;      // set when valid (the Row-returning apply() only; "row is set" below
                               // means valid() for the batch entry points)
  std::optional<Reason> reason;
  // Unknown top-level keys, in record order. Filled only when schema.evolution != Ignore.
  //   Freeze / DiscardRow: row is unset and reason is unknown_field (naming the first key) when the
  //     record is otherwise valid (a type error wins: it is the first thing to fix).
  //   DiscardValue: row is set; each unknown value is to be dead-lettered (reason unknown_field).
  //   Evolve: row is set; the caller turns them into new columns (see evolved_row()).
  std::vector<UnknownField> unknown;
  bool valid() const { return !reason; }  // the record gave a row (Row or batch entry point)
};

namespace schema_detail {
// A compiled date/time pattern: tokens dd MM yyyy HH mm ss, every other character a literal.
enum class Token : uint8_t { Literal, Year4, Month2, Day2, Hour2, Minute2, Second2 };
struct PatternItem {
  Token token;
  char literal;
};
enum class TimeFormat : uint8_t { Iso8601, EpochS, EpochMs, Pattern };
// The key found at one position of an object in the previous record, and what it resolved to. Records
// of one endpoint nearly always list their keys in the same order, so the key at position i is first
// compared with the previous record's key at i (one compare) and resolved without the candidate scan.
// Only keys without a backslash are kept: their raw text is their decoded text, so the memo resolves
// exactly as the scan does. A cache only: a miss takes the scan and replaces the entry.
struct KeyMemo {
  std::string key;
  uint32_t match = 0;  // PointerNode: the child node (0 = no child has this key); FieldPlan: member index
};
constexpr size_t kKeyMemoPositions = 128;  // keys remembered per object (later ones always scan)
struct FieldPlan {
  FieldType type = FieldType::String;
  std::string name;                  // for reasons: "parent.child", "list[]"
  std::string path;                  // JSON pointer (inside the parent object for struct fields)
  bool required = false;
  bool nullable = true;
  std::optional<Value> default_value;  // converted once, when the schema is compiled
  bool decimal_comma = false;
  TimeFormat time_format = TimeFormat::Iso8601;
  std::vector<PatternItem> pattern;  // Date (always) and Timestamp with TimeFormat::Pattern
  std::string format_text;           // the pattern as declared, for reasons
  int precision = 0, scale = 0;      // Decimal
  std::vector<std::string> values;   // Enum
  std::vector<FieldPlan> children;   // Struct: its fields; List: one element plan
  // Struct: each field's pointer as its one (unescaped) key, so the struct is read in place from the
  // record; empty when a pointer has several segments or two fields share a key (the struct is then
  // re-read from its JSON text).
  std::vector<std::string> member_keys;
  bool unescape_keys = false;        // a member key holds a backslash: record keys are decoded first
  // Struct read in place: the previous entry's keys by position (member index; member_keys.size() =
  // not a member). Mutable: a cache, filled while records are read through the const plan.
  mutable std::vector<KeyMemo> key_memo;
  std::string from_param;            // top-level: the value comes from set_params(), not the record
};
// One JSON-pointer segment; the schema's pointers form a tree walked once per record.
struct PointerNode {
  std::string key;                  // unescaped segment ("" for the root)
  int64_t index = -1;               // the segment as an array index, -1 when it is not one
  std::vector<uint32_t> fields;     // fields whose pointer ends here
  std::vector<uint32_t> children;   // node ids
  bool unescape_keys = false;       // a child's key holds a backslash: record keys are decoded first
  // The children's keys as (length | first byte << 32) tags, same order: the per-key scan compares
  // one word per child and touches a child's node only when the tag matches.
  std::vector<uint64_t> child_tags;
  std::vector<KeyMemo> key_memo;    // the previous record's keys of this object, by position
};
// The tag PointerNode::child_tags holds for a key.
inline uint64_t key_tag(std::string_view key) {
  return key.size() | (key.empty() ? 0 : uint64_t{static_cast<unsigned char>(key[0])} << 32);
}
}  // namespace schema_detail

// Problems in a schema that make it unusable (bad pointer, unknown format, bad pattern, a default its
// field's own conversion refuses); empty = ok. Each names the field.
std::vector<std::string> schema_problems(const Schema& schema);

// Why `field`'s default would be refused by the conversion records go through ("" = fine, or no default
// or a problem that is not the default's). Installed into definition/ by app/ (set_default_check).
std::string default_problem(const FieldSpec& field);

class RecordValidator {
 public:
  // Throws std::invalid_argument listing schema_problems() when the schema is unusable.
  explicit RecordValidator(const Schema& schema);
  // The record as raw JSON text (one element of the records array).
  Outcome apply(std::string_view record_json);
  // The record as an on-demand value already positioned by the caller's parser. The value is
  // consumed (iterated to its end) unless it is not an object.
  Outcome apply(simdjson::ondemand::value record);
  // The same, writing a valid record straight into `batch` as a new last row: columns [0, fields) are
  // the schema's fields in order, any further column (lineage) is left NULL for the caller to set. An
  // invalid record leaves the batch as it was. outcome.row stays unset. The Row-returning overloads
  // above are these into a one-row scratch batch (one conversion path).
  Outcome apply(std::string_view record_json, ColumnBatch& batch);
  Outcome apply(simdjson::ondemand::value record, ColumnBatch& batch);
  const Schema& schema() const { return schema_; }
  // The extraction's request params (the message's `params` attribute) that from_param fields take;
  // set once per message before apply(). A param not given is absent for its field.
  void set_params(std::map<std::string, std::string> params);

 private:
  struct Scalar;
  static simdjson::error_code read_scalar(simdjson::ondemand::value& value, Scalar& s, bool& is_null);
  // An absent or null value: the default into `out`'s last entry (NULL already), or the reason.
  static bool fill_missing(const schema_detail::FieldPlan& plan, bool is_null, ColumnBatch::Data& out, Reason& why);
  // Out: where a converted value goes (a Value, or a cell of the batch being written); schema.cpp.
  template <typename Out>
  bool convert_value(const schema_detail::FieldPlan& plan, const Scalar& s, Out& out, Reason& why, size_t depth);
  // Struct and list values read in place from the record's on-demand value (no re-parse), by the same
  // rules as convert_nested: `ok` false and `why` set when refused; an error is malformed JSON.
  simdjson::error_code read_into(const schema_detail::FieldPlan& plan, simdjson::ondemand::value& value,
                                 ColumnBatch::Data& out, bool& is_null, bool& ok, Reason& why, size_t depth);
  // Objects, arrays and values are taken by reference and used where simdjson built them: copying a
  // freshly built on-demand result reloads it as one wide word right after it was stored in pieces (a
  // store-forwarding stall per value, measured as a large share of the walk).
  simdjson::error_code read_struct(const schema_detail::FieldPlan& plan, simdjson::ondemand::object& object,
                                   ColumnBatch::Data& out, bool& ok, Reason& why, size_t depth);
  simdjson::error_code read_list(const schema_detail::FieldPlan& plan, simdjson::ondemand::array& array,
                                 ColumnBatch::Data& out, bool& ok, Reason& why, size_t depth);
  // A struct/list value (its JSON text) into `out`'s last entry and its child columns.
  bool convert_nested(const schema_detail::FieldPlan& plan, std::string_view json, ColumnBatch::Data& out,
                      Reason& why, size_t depth);
  Outcome apply_text(std::string_view record_json);
  Outcome apply_value(simdjson::ondemand::value record);
  template <typename Read>
  Outcome apply_into(ColumnBatch& batch, Read&& read);
  simdjson::error_code walk_object(simdjson::ondemand::object& object, uint32_t node);
  simdjson::error_code walk_array(simdjson::ondemand::array& array, uint32_t node);
  simdjson::error_code visit(simdjson::ondemand::value& value, uint32_t node);
  void convert(uint32_t field, const Scalar& scalar);
  Outcome finish();

  Schema schema_;
  std::vector<schema_detail::FieldPlan> plans_;
  std::vector<schema_detail::PointerNode> nodes_;  // nodes_[0] is the record itself
  std::vector<uint32_t> param_fields_;             // the from_param fields, in schema order
  simdjson::ondemand::parser parser_;
  simdjson::padded_string buffer_;
  // Per-record scratch, reused to avoid allocations.
  enum class Slot : uint8_t { Absent, Null, Set, Failed };
  std::vector<Slot> slots_;
  std::vector<std::vector<Slot>> member_slots_;   // read_struct's per-member state, one per nesting level
  std::vector<std::vector<Reason>> member_why_;
  ColumnBatch* out_ = nullptr;   // the batch the record in progress is written to (its last row)
  ColumnBatch scratch_;          // the Row-returning apply()'s one-row batch
  std::vector<Reason> failures_;
  std::vector<uint8_t> visited_;
  std::vector<UnknownField> unknown_;
  std::map<std::string, std::string> params_;
  // Struct and list values are re-read from their JSON text, one parser per nesting level (a
  // parser's document must stay alive while its children are read).
  std::vector<std::unique_ptr<simdjson::ondemand::parser>> nested_parsers_;
  std::vector<simdjson::padded_string> nested_buffers_;
};

// schema.evolution: evolve — the nullable column an unknown key becomes: the key as its name (characters
// outside [A-Za-z0-9_] become '_', a leading digit gets a '_' prefix), path "/<key>" (escaped), type
// inferred from the JSON value: integer -> int64, other number -> double, true/false -> bool,
// string -> string, object/array -> string holding the JSON text, null -> string.
FieldSpec evolved_field(const UnknownField& unknown);

// Adds a column for every unknown key not yet in the schema (by name) and bumps schema.version once.
// Returns the number of columns added (0: nothing changed, version kept).
std::size_t evolve_schema(Schema& schema, const std::vector<UnknownField>& unknown);

// The schema as JSON for the schema registry (_schemas/<source>/<endpoint>/v<N>.json).
std::string schema_json(const Schema& schema);
// Its inverse: throws std::invalid_argument naming what is wrong (not JSON, unknown type, ...).
Schema schema_from_json(std::string_view json);

// A message's `params` attribute (a compact JSON object of the extraction's params) as a map: strings
// kept, numbers/bools as their JSON text. Empty for "" or anything that is not such an object.
std::map<std::string, std::string> message_params(std::string_view json);

// Exact decimal text -> unscaled integer at `scale` (docs/schema.md "decimal"). Default notation
// ("-1234.5", "1e3") or, with decimal_comma, "1.234,5". BadFormat-like failures return "bad_format",
// more digits than precision or non-zero digits beyond scale return "out_of_range"; "" = ok.
std::string parse_decimal(std::string_view text, bool decimal_comma, int precision, int scale, Int128& out);

// Parses "dd/MM/yyyy"-style patterns (dd, MM, yyyy, HH, mm, ss literals elsewhere) — exposed for tests.
// Empty pattern = yyyy-MM-dd. nullopt for text not matching, an impossible calendar day or a bad pattern.
std::optional<DateDays> parse_date(std::string_view text, std::string_view pattern);
// format: "" or "iso8601", "epoch_s", "epoch_ms", or a pattern (UTC). nullopt when it does not parse.
std::optional<TimestampUs> parse_timestamp(std::string_view text, std::string_view format);
int32_t days_from_civil(int y, unsigned m, unsigned d);

}  // namespace apilake
