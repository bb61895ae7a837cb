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

// One object's members, commas placed: Object o(out); o.string("id", id); o.integer("n", 3); o.close();
class Object {
 public:
  explicit Object(std::string& out) : out_(out) { out_ += '{'; }
  void string(std::string_view k, std::string_view v) { json_write::string(next(k), v); }
  void integer(std::string_view k, int64_t v) { json_write::integer(next(k), v); }
  void time(std::string_view k, int64_t us) { iso_time(next(k), us); }
  void raw(std::string_view k, std::string_view json) { next(k) += json; }  // `json` is already JSON text
  void close() { out_ += '}'; }

 private:
  std::string& next(std::string_view k) {
    if (!first_) out_ += ',';
    first_ = false;
    json_write::string(out_, k);  // escaped: params' keys come from requests
    out_ += ':';
    return out_;
  }
  std::string& out_;
  bool first_ = true;
};

}  // namespace apilake::json_write
