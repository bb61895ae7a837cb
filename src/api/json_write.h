// Appending JSON text without building a DOM, for the API's hot answers (POST /v1/extractions'
// 202, GET /v1/extractions/{id}) and the stored params. Strings are escaped by boost::json::serialize,
// so text written here and text serialised from a DOM are the same bytes.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace apilake::json_write {

// `s` as a JSON string literal, quotes included, escaped by Boost.JSON itself (the project's one JSON
// writer): only the document around it is composed here, without a DOM.
inline void string(std::string& out, std::string_view s) { out += boost::json::serialize(boost::json::string_view(s)); }

// `"key":` (key is trusted: no escaping).
inline void key(std::string& out, std::string_view k) {
  out += '"';
  out += k;
  out += "\":";
}

inline void integer(std::string& out, int64_t v) { fmt::format_to(std::back_inserter(out), "{}", v); }

// RFC 3339 UTC to the second, e.g. "2026-11-26T08:53:47Z" (quotes included): what fmt 9's
// "{:%FT%T}Z" makes of a sys_time<microseconds> (it drops the fraction), without its locale-aware
// formatting path.
inline void iso_time(std::string& out, int64_t us) {
  using namespace std::chrono;
  const sys_time<microseconds> t{microseconds(us)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<seconds> hms{floor<seconds>(t - day)};
  fmt::format_to(std::back_inserter(out), "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z\"", static_cast<int>(ymd.year()),
                 static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hms.hours().count(),
                 hms.minutes().count(), hms.seconds().count());
}

}  // namespace apilake::json_write
