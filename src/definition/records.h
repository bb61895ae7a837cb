// Record selection: the one place that turns a page body into records, used by the fetcher (to
// count records and read incremental cursors) and by the curator (to produce them), so both always
// agree. Rules, per endpoint:
//   records: ""|/json/pointer  -> an array (each element a record) or an object (one record);
//   record_shape: parallel_arrays -> the value must be an object of equal-length arrays, zipped into
//                                    one record per index ({"time":[..],"t":[..]} -> {"time":..,"t":..});
//   record_context: {name: /ptr} -> each record (an object) gains `name` = the page's value at /ptr.
// Anything else (not JSON, truncated, pointer reaching nothing or a scalar, unequal arrays, missing
// context) throws RecordError with a precise message; nothing here ever crashes on input.
// Integers beyond 64 bits are valid JSON and taken as written (records' text keeps their digits),
// though simdjson's DOM alone refuses them: the validator decides per field (double, decimal: yes).
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "definition/definition.h"

namespace apilake {

struct RecordError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Every record of the page as compact JSON text, in order.
std::vector<std::string> select_records(std::string_view body, const Endpoint& endpoint);

class DomParse;  // records.cpp

// A DOM parse of a page or record that takes what select_records takes: integers beyond 64 bits
// (simdjson's DOM alone refuses the whole text) stand in as numbers, and text() prints a value with
// each such integer as the page wrote it. For readers of other parts of a page (pagination fields,
// cursors, dead-letter pages), so they accept exactly the pages the records came from.
class PageDom {
 public:
  PageDom();
  ~PageDom();
  PageDom(const PageDom&) = delete;
  PageDom& operator=(const PageDom&) = delete;
  // root: valid until the next parse with this object. The error is simdjson's for the text as given.
  simdjson::error_code parse(std::string_view text, simdjson::dom::element& root);
  // Compact JSON of a value of the last parse (simdjson::minify, big integers as written).
  std::string text(simdjson::dom::element value) const;
  // A number of the last parse as a double (an integer beyond 64 bits: the nearest double, not its
  // stand-in); nullopt for anything that is not a number.
  std::optional<double> number(simdjson::dom::element value) const;

 private:
  std::unique_ptr<DomParse> impl_;
};

// One record handed to visit_records' callback.
class PageRecord {
 public:
  // The record as an on-demand value positioned inside the page itself (no copy, no second parse
  // of the record); for synthesised records (parallel_arrays, record_context), inside a parse of
  // text(). Valid only during the callback; read it at most once.
  simdjson::ondemand::value value;
  std::size_t index = 0;  // 1-based, in page order
  // Exactly the element select_records returns for this record (compact JSON), built only when
  // asked (e.g. for a dead letter or a second validation), whether or not `value` was read.
  std::string text() const;
  // The record's bytes as the page sent them (numbers, escapes and spacing untouched; whitespace at
  // the ends trimmed) — what a dead letter keeps. text() for records that were not read from the
  // page's bytes (synthesised, or pages checked by the DOM).
  std::string raw_text() const;

 private:
  friend std::size_t visit_records(simdjson::padded_string_view, const Endpoint&,
                                   const std::function<void(PageRecord&)>&);
  std::string_view raw_;             // plain records checked on demand: the record's bytes in the page
  simdjson::dom::element dom_;       // plain records checked by the DOM: the page's DOM element
  const std::string* synthesised_ = nullptr;
};

// The hot-path form of select_records (the curator's): the same records, in the same order, with
// the same errors, each as a PageRecord. Returns the record count. A page it refuses is refused
// (RecordError) before the callback is called at all: the whole page is checked first.
// How (plain records; synthesised ones are select_records' texts parsed one by one): one stage 1,
// a first pass over its token index alone that checks everything the DOM parse would (structure,
// numbers and their range, atoms, string escapes, nothing after the document) and locates each
// record's tokens, then each record handed out as an on-demand value started at its first token
// (nothing skipped between records, whatever the callback left unread). Whatever that check
// refuses or is unsure of (e.g. nesting deeper than 256, an escaped key on the pointer's path, a
// float near the largest double) goes to select_records' own DOM code, which throws its error or,
// if the page is valid after all, is followed by the records as before (DOM check + on-demand read).
// The callback must not call select_records, count_selected_records or visit_records (they share
// this thread's parsers).
std::size_t visit_records(std::string_view body, const Endpoint& endpoint,
                          const std::function<void(PageRecord&)>& on_record);
// The same, reading the page in place (no padded copy) when `body.padding()` is at least
// SIMDJSON_PADDING: e.g. simdjson::padded_string_view(message.data) for a std::string with that much
// spare capacity (simdjson reads up to that many bytes past the end, whatever they hold). Less
// padding: copied, exactly as above.
std::size_t visit_records(simdjson::padded_string_view body, const Endpoint& endpoint,
                          const std::function<void(PageRecord&)>& on_record);

// The number of records select_records would return (same checks, no copies). With `fingerprint`,
// also a hash of the selected value (records_pointer's target): equal hashes on consecutive pages
// mean the same records again, whatever else changed (the fetcher's repeat check). It hashes the
// values, not the bytes: pages differing only in spacing, string escapes or number spelling (1.50 vs
// 1.5) hold the same records and hash equally; member order counts.
std::size_t count_selected_records(std::string_view body, const Endpoint& endpoint,
                                   std::size_t* fingerprint = nullptr);

// "not JSON: <reason> at byte N" for a body that is not one complete JSON document; "" when it is.
std::string describe_json_error(std::string_view body);

}  // namespace apilake
