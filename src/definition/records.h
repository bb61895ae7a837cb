// Record selection: the one place that turns a page body into records, used by the fetcher (to
// count records and read incremental cursors) and by the curator (to produce them), so both always
// agree. Rules, per endpoint:
//   records: ""|/json/pointer  -> an array (each element a record) or an object (one record);
//   record_shape: parallel_arrays -> the value must be an object of equal-length arrays, zipped into
//                                    one record per index ({"time":[..],"t":[..]} -> {"time":..,"t":..});
//   record_context: {name: /ptr} -> each record (an object) gains `name` = the page's value at /ptr.
// Anything else (not JSON, truncated, pointer reaching nothing or a scalar, unequal arrays, missing
// context) throws RecordError with a precise message; nothing here ever crashes on input.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "definition/definition.h"

namespace apilake {

struct RecordError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Every record of the page as compact JSON text, in order.
std::vector<std::string> select_records(std::string_view body, const Endpoint& endpoint);

// The number of records select_records would return (same checks, no copies). With `fingerprint`,
// also a hash of the selected value (records_pointer's target): equal hashes on consecutive pages
// mean the same records again, whatever else changed (the fetcher's repeat check).
std::size_t count_selected_records(std::string_view body, const Endpoint& endpoint,
                                   std::size_t* fingerprint = nullptr);

// "not JSON: <reason> at byte N" for a body that is not one complete JSON document; "" when it is.
std::string describe_json_error(std::string_view body);

}  // namespace apilake
