// The "record" member of a dead-letter line, kept as the record's own JSON text. A dead letter must
// hold the record as it was fetched: a DOM round trip (Boost.JSON) rewrites numbers — 1.50 becomes
// 1.5E0 and a 30-digit id becomes 1.2345678901234568E29, losing digits — so the record's text is
// written minified (numbers, escapes and key order as fetched) and read back raw, never through a DOM.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

namespace apilake {

// `text` minified when it is one JSON value, else `text` as a JSON string (nothing is dropped).
std::string record_json(std::string_view text);
// record_json(text) for `text` already known to be one JSON value (a record of a page that
// visit_records accepted: PageRecord::raw_text()): the same text, without the validity parse (a
// Boost.JSON DOM per dead letter, ~30k instructions, 4 % of the curate stage at 5 % invalid records).
std::string valid_record_json(std::string_view text);

// The line {"record":<record_json>,<the members of rest>}: `record_json` must be JSON text (from
// record_json() or raw_record()); `rest` must not hold "record".
std::string line_with_record(std::string_view record_json, const boost::json::object& rest);

// The raw JSON text of the top-level "record" member of a dead-letter line; nullopt when the line
// is not a JSON object or has no "record".
std::optional<std::string> raw_record(std::string_view line);

}  // namespace apilake
