// Applying a schema to records. docs/schema.md is the rule book; every rule here is written there.
//
// How fields are read: the schema's JSON pointers are compiled into a tree of segments, and each
// record is walked once, in document order, with simdjson's on-demand API. On-demand values can be
// read only once and at_pointer() only once per document, so looking every field up separately
// would need rewinds (impossible for a value handed to apply(ondemand::value)) or the DOM parser (a
// second full parse). The single walk is correct for any set of pointers (shared prefixes, two
// fields on one pointer, array indices) and touches each byte of the record at most once. The
// price: atoms (numbers, literals) of values no field points at are skipped, not validated;
// the structure of the whole record is validated. A key that appears twice: the first one counts.
#include "curate/schema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <boost/json.hpp>

namespace apilake {

using namespace schema_detail;
namespace od = simdjson::ondemand;

namespace {

constexpr size_t kDetailMax = 100;

// Offending values are quoted in reasons; dead letters should stay small, so long values are cut
// (on a UTF-8 boundary, so the dead-letter JSON stays valid text).
std::string clip(std::string_view s) {
  if (s.size() <= kDetailMax) return std::string(s);
  size_t n = kDetailMax;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  std::string out(s.substr(0, n));
  out += "...";
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

size_t count_digits(std::string_view s, size_t i) {
  size_t n = 0;
  while (i + n < s.size() && is_digit(s[i + n])) ++n;
  return n;
}

enum class Fail { None, BadFormat, OutOfRange };

// A decimal number in the default notation: [+-]? (digits [. digits*] | . digits) [e [+-]? digits].
// On success, int_digits/frac_digits/exponent locate the parts (for exact scaling).
struct DecimalParts {
  bool negative = false;
  std::string_view int_digits;
  std::string_view frac_digits;
  long exponent = 0;
};

bool parse_decimal_grammar(std::string_view s, DecimalParts& out) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    out.negative = s[i] == '-';
    ++i;
  }
  size_t n = count_digits(s, i);
  out.int_digits = s.substr(i, n);
  i += n;
  out.frac_digits = {};
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t f = count_digits(s, i);
    out.frac_digits = s.substr(i, f);
    i += f;
  }
  if (out.int_digits.empty() && out.frac_digits.empty()) return false;
  out.exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool eneg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      eneg = s[i] == '-';
      ++i;
    }
    size_t e = count_digits(s, i);
    if (e == 0) return false;
    long exp = 0;
    for (size_t k = 0; k < e; ++k) exp = std::min(exp * 10 + (s[i + k] - '0'), 1000000L);  // saturate
    out.exponent = eneg ? -exp : exp;
    i += e;
  }
  return i == s.size();
}

// Digits with '.' thousands separators, checked strictly (d{1,3}(.ddd)+) so that a value written
// with a decimal point ("12.34") under decimal_comma is refused rather than read as 1234.
bool grouped_digits(std::string_view s, std::string& digits_out) {
  if (s.empty()) return false;
  size_t dot = s.find('.');
  if (dot == std::string_view::npos) {
    if (count_digits(s, 0) != s.size()) return false;
    digits_out.append(s);
    return true;
  }
  size_t first = count_digits(s, 0);
  if (first == 0 || first > 3 || first != dot) return false;
  digits_out.append(s.substr(0, first));
  size_t i = first;
  while (i < s.size()) {
    if (s[i] != '.' || count_digits(s, i + 1) != 3) return false;
    digits_out.append(s.substr(i + 1, 3));
    i += 4;
    if (i < s.size() && s[i] != '.') return false;
  }
  return true;
}

// Accumulates decimal digits into a magnitude no larger than limit.
bool accumulate(std::string_view digits, uint64_t limit, uint64_t& mag) {
  mag = 0;
  for (char c : digits) {
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (mag > (limit - d) / 10) return false;
    mag = mag * 10 + d;
  }
  return true;
}

constexpr uint64_t kInt64MaxMag = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

Fail signed_from_magnitude(bool negative, std::string_view digits, int64_t& out) {
  uint64_t mag = 0;
  if (!accumulate(digits, negative ? kInt64MaxMag + 1 : kInt64MaxMag, mag)) return Fail::OutOfRange;
  out = negative ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
  return Fail::None;
}

// An int64 written as a string: [+-]? digits; with decimal_comma '.' may group thousands.
Fail parse_int_text(std::string_view s, bool decimal_comma, int64_t& out) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return Fail::BadFormat;
  if (!decimal_comma) {
    if (count_digits(s, 0) != s.size()) return Fail::BadFormat;
    return signed_from_magnitude(negative, s, out);
  }
  std::string digits;
  if (!grouped_digits(s, digits)) return Fail::BadFormat;
  return signed_from_magnitude(negative, digits, out);
}

// from_chars on text already checked against the default grammar.
Fail chars_to_double(const char* first, const char* last, double& out) {
  auto [ptr, ec] = std::from_chars(first, last, out, std::chars_format::general);
  if (ec == std::errc::result_out_of_range) {
    // Too big is out_of_range; too small rounds to zero, as simdjson does for JSON numbers (1e-400).
    DecimalParts p;
    if (!parse_decimal_grammar(std::string_view(first, static_cast<size_t>(last - first)), p))
      return Fail::BadFormat;
    // order of magnitude of the first significant digit
    std::string_view int_part = p.int_digits;
    while (!int_part.empty() && int_part.front() == '0') int_part.remove_prefix(1);
    long order = 0;
    if (!int_part.empty()) {
      order = p.exponent + static_cast<long>(int_part.size()) - 1;
    } else {
      size_t zeros = 0;
      while (zeros < p.frac_digits.size() && p.frac_digits[zeros] == '0') ++zeros;
      order = p.exponent - static_cast<long>(zeros) - 1;
    }
    if (order >= 0) return Fail::OutOfRange;
    out = p.negative ? -0.0 : 0.0;
    return Fail::None;
  }
  if (ec != std::errc() || ptr != last) return Fail::BadFormat;
  if (!std::isfinite(out)) return Fail::OutOfRange;
  return Fail::None;
}

// A double written as a string. Default: '.' decimal point, optional exponent, no grouping.
// decimal_comma: ',' decimal point, '.' thousands separators, no exponent ("1.234,56").
// NaN and infinities are not numbers here (the grammar has no letters but the exponent's e).
Fail parse_double_text(std::string_view s, bool decimal_comma, double& out) {
  if (!decimal_comma) {
    DecimalParts parts;
    if (!parse_decimal_grammar(s, parts)) return Fail::BadFormat;
    if (s[0] == '+') s.remove_prefix(1);  // from_chars refuses a leading '+'
    return chars_to_double(s.data(), s.data() + s.size(), out);
  }
  std::string buf;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    if (s[0] == '-') buf.push_back('-');
    s.remove_prefix(1);
  }
  size_t comma = s.find(',');
  std::string_view int_part = s.substr(0, comma);
  if (!grouped_digits(int_part, buf)) return Fail::BadFormat;
  if (comma != std::string_view::npos) {
    std::string_view frac = s.substr(comma + 1);
    if (frac.empty() || count_digits(frac, 0) != frac.size()) return Fail::BadFormat;
    buf.push_back('.');
    buf.append(frac);
  }
  return chars_to_double(buf.data(), buf.data() + buf.size(), out);
}

// value * 10^scale as an int64, exactly (no binary floating point in between, so
// 1704153600.123456 keeps its microseconds); digits beyond the unit are dropped (toward zero).
Fail scaled_decimal(std::string_view s, int scale, int64_t& out) {
  DecimalParts p;
  if (!parse_decimal_grammar(s, p)) return Fail::BadFormat;
  std::string digits;
  digits.reserve(p.int_digits.size() + p.frac_digits.size());
  digits.append(p.int_digits);
  digits.append(p.frac_digits);
  size_t lead = 0;
  while (lead < digits.size() && digits[lead] == '0') ++lead;
  std::string_view sig = std::string_view(digits).substr(lead);
  if (sig.empty()) {
    out = 0;
    return Fail::None;
  }
  long shift = p.exponent - static_cast<long>(p.frac_digits.size()) + scale;
  uint64_t limit = p.negative ? kInt64MaxMag + 1 : kInt64MaxMag;
  uint64_t mag = 0;
  if (shift < 0) {
    long keep = static_cast<long>(sig.size()) + shift;
    if (keep <= 0) {
      out = 0;
      return Fail::None;
    }
    if (!accumulate(sig.substr(0, static_cast<size_t>(keep)), limit, mag)) return Fail::OutOfRange;
  } else {
    if (static_cast<long>(sig.size()) + shift > 20) return Fail::OutOfRange;
    if (!accumulate(sig, limit, mag)) return Fail::OutOfRange;
    for (long k = 0; k < shift; ++k) {
      if (mag > limit / 10) return Fail::OutOfRange;
      mag *= 10;
    }
  }
  out = p.negative ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
  return Fail::None;
}

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

struct Civil {
  int year = -1;
  unsigned month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

// Why a date/time text is refused. The parsers return this code (no string on the hot path: three
// timestamps per record); time_fail_text() words it only when a value is refused.
enum class TimeFail : uint8_t {
  None, Shape, Pattern, Month, Day, Clock, Fraction, BadOffset, OffsetRange, AfterSeconds, AfterZone
};

// The reason's text for `f`; `c` is what the parser read (Month, Day and Clock quote it).
std::string time_fail_text(TimeFail f, const Civil& c) {
  char buf[96];
  switch (f) {
    case TimeFail::None: return {};
    case TimeFail::Shape: return "does not match YYYY-MM-DDTHH:MM:SS";
    case TimeFail::Pattern: return "does not match the pattern";
    case TimeFail::Month: std::snprintf(buf, sizeof buf, "month %02u does not exist", c.month); return buf;
    case TimeFail::Day:
      std::snprintf(buf, sizeof buf, "day %02u does not exist in %04d-%02u", c.day, c.year, c.month);
      return buf;
    case TimeFail::Clock:
      std::snprintf(buf, sizeof buf, "time %02u:%02u:%02u does not exist", c.hour, c.minute, c.second);
      return buf;
    case TimeFail::Fraction: return "fraction must have 1 to 9 digits";
    case TimeFail::BadOffset: return "bad UTC offset (expected Z, +HH:MM or +HHMM)";
    case TimeFail::OffsetRange: return "UTC offset out of range";
    case TimeFail::AfterSeconds: return "unexpected text after the seconds";
    case TimeFail::AfterZone: return "unexpected text after the zone";
  }
  return {};
}

// Checks a calendar day and time of day.
TimeFail check_civil(const Civil& c) {
  if (c.month < 1 || c.month > 12) return TimeFail::Month;
  if (c.day < 1 || c.day > days_in_month(c.year, c.month)) return TimeFail::Day;
  if (c.hour > 23 || c.minute > 59 || c.second > 59) return TimeFail::Clock;
  return TimeFail::None;
}

int64_t civil_seconds(const Civil& c) {
  return int64_t{days_from_civil(c.year, c.month, c.day)} * 86400 + int64_t{c.hour} * 3600 +
         int64_t{c.minute} * 60 + c.second;
}

unsigned read_digits(std::string_view s, size_t i, size_t n) {
  unsigned v = 0;
  for (size_t k = 0; k < n; ++k) v = v * 10 + static_cast<unsigned>(s[i + k] - '0');
  return v;
}

// Compiles a pattern. Runs of the letters y M d H m s must be one of the tokens; other characters
// are literals. Date patterns may not hold time tokens.
std::optional<std::vector<PatternItem>> compile_pattern(std::string_view p, bool allow_time,
                                                        std::string& why) {
  std::vector<PatternItem> items;
  bool seen[7] = {};
  for (size_t i = 0; i < p.size();) {
    char c = p[i];
    if (std::string_view("yMdHms").find(c) == std::string_view::npos) {
      items.push_back({Token::Literal, c});
      ++i;
      continue;
    }
    size_t n = 1;
    while (i + n < p.size() && p[i + n] == c) ++n;
    std::string run(n, c);
    Token t;
    if (run == "yyyy") t = Token::Year4;
    else if (run == "MM") t = Token::Month2;
    else if (run == "dd") t = Token::Day2;
    else if (run == "HH") t = Token::Hour2;
    else if (run == "mm") t = Token::Minute2;
    else if (run == "ss") t = Token::Second2;
    else {
      why = "unknown token '" + run + "' (tokens: yyyy MM dd HH mm ss)";
      return std::nullopt;
    }
    bool is_time = t == Token::Hour2 || t == Token::Minute2 || t == Token::Second2;
    if (is_time && !allow_time) {
      why = "a date pattern cannot hold '" + run + "'";
      return std::nullopt;
    }
    if (seen[static_cast<int>(t)]) {
      why = "token '" + run + "' appears twice";
      return std::nullopt;
    }
    seen[static_cast<int>(t)] = true;
    items.push_back({t, 0});
    i += n;
  }
  if (!seen[static_cast<int>(Token::Year4)] || !seen[static_cast<int>(Token::Month2)] ||
      !seen[static_cast<int>(Token::Day2)]) {
    why = "a pattern needs yyyy, MM and dd";
    return std::nullopt;
  }
  return items;
}

// Matches text against a compiled pattern.
TimeFail match_pattern(std::string_view s, const std::vector<PatternItem>& items, Civil& c) {
  size_t i = 0;
  for (const PatternItem& it : items) {
    if (it.token == Token::Literal) {
      if (i >= s.size() || s[i] != it.literal) return TimeFail::Pattern;
      ++i;
      continue;
    }
    size_t width = it.token == Token::Year4 ? 4 : 2;
    if (i + width > s.size() || count_digits(s, i) < width) return TimeFail::Pattern;
    unsigned v = read_digits(s, i, width);
    switch (it.token) {
      case Token::Year4: c.year = static_cast<int>(v); break;
      case Token::Month2: c.month = v; break;
      case Token::Day2: c.day = v; break;
      case Token::Hour2: c.hour = v; break;
      case Token::Minute2: c.minute = v; break;
      case Token::Second2: c.second = v; break;
      case Token::Literal: break;
    }
    i += width;
  }
  if (i != s.size()) return TimeFail::Pattern;
  return check_civil(c);
}

// YYYY-MM-DD(T|t| )HH:MM:SS[.fraction(1-9 digits)][Z|z|±HH:MM|±HHMM]. `c` is what was read (for
// time_fail_text()).
TimeFail parse_iso8601(std::string_view s, int64_t& micros, Civil& c) {
  // The shape "dddd-dd-ddXdd:dd:dd" (X: T, t or space), read without a loop: this runs three times per
  // record. A byte outside '0'..'9' gives a digit value above 9 (unsigned wrap).
  constexpr size_t kShapeSize = 19;
  if (s.size() < kShapeSize) return TimeFail::Shape;
  auto digit = [&](size_t i) { return static_cast<unsigned>(static_cast<unsigned char>(s[i])) - '0'; };
  auto two = [&](size_t i) { return digit(i) * 10 + digit(i + 1); };
  const unsigned d[14] = {digit(0), digit(1), digit(2),  digit(3),  digit(5),  digit(6),  digit(8),
                          digit(9), digit(11), digit(12), digit(14), digit(15), digit(17), digit(18)};
  bool not_digit = false;
  for (unsigned x : d) not_digit |= x > 9;
  if (not_digit) return TimeFail::Shape;
  const char t = s[10];
  if (s[4] != '-' || s[7] != '-' || (t != 'T' && t != 't' && t != ' ') || s[13] != ':' || s[16] != ':')
    return TimeFail::Shape;
  c.year = static_cast<int>(d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]);
  c.month = two(5);
  c.day = two(8);
  c.hour = two(11);
  c.minute = two(14);
  c.second = two(17);
  if (TimeFail bad = check_civil(c); bad != TimeFail::None) return bad;
  size_t i = kShapeSize;
  int64_t frac_us = 0;
  if (i < s.size() && s[i] == '.') {
    size_t n = count_digits(s, i + 1);
    if (n == 0 || n > 9) return TimeFail::Fraction;
    for (size_t k = 0; k < 6; ++k) frac_us = frac_us * 10 + (k < n ? s[i + 1 + k] - '0' : 0);
    i += 1 + n;
  }
  int64_t offset_s = 0;
  if (i < s.size()) {
    char z = s[i];
    if (z == 'Z' || z == 'z') {
      ++i;
    } else if (z == '+' || z == '-') {
      std::string_view rest = s.substr(i + 1);
      unsigned oh, om;
      if (rest.size() == 5 && count_digits(rest, 0) == 2 && rest[2] == ':' && count_digits(rest, 3) == 2) {
        oh = read_digits(rest, 0, 2);
        om = read_digits(rest, 3, 2);
      } else if (rest.size() == 4 && count_digits(rest, 0) == 4) {
        oh = read_digits(rest, 0, 2);
        om = read_digits(rest, 2, 2);
      } else {
        return TimeFail::BadOffset;
      }
      if (oh > 23 || om > 59) return TimeFail::OffsetRange;
      offset_s = (z == '-' ? -1 : 1) * (int64_t{oh} * 3600 + int64_t{om} * 60);
      i = s.size();
    } else {
      return TimeFail::AfterSeconds;
    }
  }
  if (i != s.size()) return TimeFail::AfterZone;
  micros = (civil_seconds(c) - offset_s) * 1000000 + frac_us;
  return TimeFail::None;
}

// Splits a pointer into unescaped segments; false on a bad escape or a missing leading '/'.
bool split_pointer(std::string_view p, std::vector<std::string>& out, std::string& why) {
  if (p.empty() || p[0] != '/') {
    why = "path must be a JSON pointer starting with '/'";
    return false;
  }
  size_t i = 1;
  while (true) {
    size_t end = p.find('/', i);
    std::string_view raw = p.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
    std::string seg;
    for (size_t k = 0; k < raw.size(); ++k) {
      if (raw[k] != '~') {
        seg.push_back(raw[k]);
        continue;
      }
      if (k + 1 < raw.size() && (raw[k + 1] == '0' || raw[k + 1] == '1')) {
        seg.push_back(raw[k + 1] == '0' ? '~' : '/');
        ++k;
      } else {
        why = "bad escape in JSON pointer (only ~0 and ~1)";
        return false;
      }
    }
    out.push_back(std::move(seg));
    if (end == std::string_view::npos) break;
    i = end + 1;
  }
  return true;
}

std::string escape_segment(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out.push_back(c);
  }
  return out;
}

int64_t array_index(std::string_view seg) {
  if (seg.empty() || seg.size() > 18 || count_digits(seg, 0) != seg.size()) return -1;
  if (seg.size() > 1 && seg[0] == '0') return -1;  // RFC 6901: no leading zeros
  int64_t v = 0;
  for (char c : seg) v = v * 10 + (c - '0');
  return v;
}

std::string field_path(const FieldSpec& f) {
  return f.path.empty() ? "/" + escape_segment(f.name) : f.path;
}

std::string plan_element(const FieldSpec& f, FieldPlan& plan, const std::string& label);

// Builds the plan of one field; "" when fine, else the problem. `label` names it in reasons.
std::string plan_field(const FieldSpec& f, FieldPlan& plan, const std::string& label) {
  plan.name = label;
  plan.path = field_path(f);
  plan.required = f.required;
  plan.nullable = f.nullable;
  return plan_element(f, plan, label);
}

// The type part of a plan (shared by fields and list elements).
std::string plan_element(const FieldSpec& f, FieldPlan& plan, const std::string& label) {
  plan.type = f.type;
  plan.name = label;
  plan.nullable = f.nullable;
  plan.format_text = f.format;
  std::string why;
  switch (f.type) {
    case FieldType::String:
    case FieldType::Bool:
    case FieldType::Enum:
    case FieldType::Struct:
    case FieldType::List:
      if (!f.format.empty()) return std::string("a ") + to_string(f.type) + " field takes no format";
      break;
    case FieldType::Int64:
    case FieldType::Double:
    case FieldType::Decimal:
      if (f.format == "decimal_comma") plan.decimal_comma = true;
      else if (!f.format.empty()) return "unknown number format '" + f.format + "' (only decimal_comma)";
      break;
    case FieldType::Date: {
      std::string pattern = f.format.empty() || f.format == "iso8601" ? std::string("yyyy-MM-dd") : f.format;
      plan.format_text = pattern;
      auto items = compile_pattern(pattern, false, why);
      if (!items) return "bad date format '" + f.format + "': " + why;
      plan.pattern = std::move(*items);
      break;
    }
    case FieldType::Timestamp:
      if (f.format.empty() || f.format == "iso8601") {
        plan.time_format = TimeFormat::Iso8601;
        plan.format_text = "iso8601";
      } else if (f.format == "epoch_s") {
        plan.time_format = TimeFormat::EpochS;
      } else if (f.format == "epoch_ms") {
        plan.time_format = TimeFormat::EpochMs;
      } else {
        plan.time_format = TimeFormat::Pattern;
        auto items = compile_pattern(f.format, true, why);
        if (!items) return "bad timestamp format '" + f.format + "': " + why;
        plan.pattern = std::move(*items);
      }
      break;
  }
  switch (f.type) {
    case FieldType::Decimal:
      if (f.precision < 1 || f.precision > 38) return "decimal precision must be 1..38";
      if (f.scale < 0 || f.scale > f.precision) return "decimal scale must be 0..precision";
      plan.precision = f.precision;
      plan.scale = f.scale;
      break;
    case FieldType::Enum:
      if (f.values.empty()) return "an enum needs values";
      plan.values = f.values;
      break;
    case FieldType::Struct: {
      if (f.fields.empty()) return "a struct needs fields";
      for (size_t i = 0; i < f.fields.size(); ++i) {
        for (size_t j = 0; j < i; ++j)
          if (f.fields[j].name == f.fields[i].name) return "duplicate struct field '" + f.fields[i].name + "'";
        std::vector<std::string> segments;
        if (!split_pointer(field_path(f.fields[i]), segments, why)) return f.fields[i].name + ": " + why;
        FieldPlan child;
        if (std::string p = plan_field(f.fields[i], child, label + "." + f.fields[i].name); !p.empty()) return p;
        plan.children.push_back(std::move(child));
        if (segments.size() == 1) plan.member_keys.push_back(std::move(segments[0]));
      }
      // In place only when every member is one distinct key (see FieldPlan::member_keys).
      if (plan.member_keys.size() == plan.children.size()) {
        std::vector<std::string> keys = plan.member_keys;
        std::sort(keys.begin(), keys.end());
        if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) plan.member_keys.clear();
      } else {
        plan.member_keys.clear();
      }
      for (const std::string& key : plan.member_keys)
        if (key.find('\\') != std::string::npos) plan.unescape_keys = true;
      break;
    }
    case FieldType::List: {
      if (f.items.size() != 1) return "a list needs exactly one items spec";
      FieldPlan child;
      if (std::string p = plan_element(f.items[0], child, label + "[]"); !p.empty()) return p;
      plan.children.push_back(std::move(child));
      break;
    }
    default: break;
  }
  return {};
}

bool is_json_number(std::string_view s) {
  // RFC 8259: -? (0 | [1-9]digits) [. digits+] [(e|E) [+-]? digits+]
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  size_t n = count_digits(s, i);
  if (n == 0 || (n > 1 && s[i] == '0')) return false;
  i += n;
  if (i < s.size() && s[i] == '.') {
    size_t f = count_digits(s, i + 1);
    if (f == 0) return false;
    i += 1 + f;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t e = count_digits(s, i);
    if (e == 0) return false;
    i += e;
  }
  return i == s.size();
}

// An object member's key as written (between its quotes, escapes not decoded). Its end is the last
// quote before the value (only whitespace and ':' lie between), found without scanning the key.
std::string_view raw_key(od::field& field) {
  const char* start = field.key().raw();
  const char* end = field.value().raw_json_token().data();
  while (*--end != '"') {
  }
  return std::string_view(start, static_cast<size_t>(end - start));
}

// Keys are matched raw first: a raw key equal to a declared key that holds no backslash is that key
// (no escape in it, nothing to decode), so the usual key costs no unescaping and no copy. Only a key
// that matched nothing and holds a backslash is decoded and matched again (`{"caf\u00e9": 1}`); a
// declared key with a backslash could equal an escaped raw key (`\n`), so objects with such keys are
// always decoded (see unescape_keys).
bool has_backslash(std::string_view key) { return std::memchr(key.data(), '\\', key.size()) != nullptr; }

// n bytes of a and b equal. Keys are short (most under 16 bytes): two overlapping word loads each
// instead of a call to memcmp, which cost more than the compare itself on this path.
inline bool same_bytes(const char* a, const char* b, size_t n) {
  auto load8 = [](const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  };
  auto load4 = [](const char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  };
  if (n >= 8) {
    if (n > 16) return std::memcmp(a, b, n) == 0;
    return load8(a) == load8(b) && load8(a + n - 8) == load8(b + n - 8);
  }
  if (n >= 4) return load4(a) == load4(b) && load4(a + n - 4) == load4(b + n - 4);
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

// Length and first byte first: most keys differ from a candidate there.
bool same_key(std::string_view a, const std::string& b) {
  return a.size() == b.size() && (a.empty() || (a[0] == b[0] && same_bytes(a.data(), b.data(), a.size())));
}

Reason parse_error(simdjson::error_code e) {
  return Reason{"parse_error", "", std::string("invalid JSON: ") + simdjson::error_message(e)};
}

}  // namespace

namespace {
// Where convert_value() puts a value: a Value (a field's default, compiled once) ...
struct ValueOut {
  Value& v;
  void put(std::string_view s) { v = std::string(s); }
  void put(int64_t x) { v = x; }
  void put(double x) { v = x; }
  void put(bool x) { v = x; }
  void put(DateDays x) { v = x; }
  void put(TimestampUs x) { v = x; }
  void put(const Decimal& x) { v = x; }
  ColumnBatch::Data* nested() { return nullptr; }  // a default is text: never a struct or list
};
// ... or the last entry of a batch column (a record's field, a struct member, a list element): no
// Value, no std::string per cell.
struct DataOut {
  ColumnBatch::Data& d;
  void put(std::string_view s) { d.put_string(s); }
  void put(int64_t x) { d.put_int64(x); }
  void put(double x) { d.put_double(x); }
  void put(bool x) { d.put_bool(x); }
  void put(DateDays x) { d.put_date(x); }
  void put(TimestampUs x) { d.put_timestamp(x); }
  void put(const Decimal& x) { d.put_decimal(x.unscaled); }
  ColumnBatch::Data* nested() { return &d; }
};
}  // namespace

// What a field's value is, read once from the on-demand value, then converted per field.
struct RecordValidator::Scalar {
  enum class Kind { Bool, Number, String, Object, Array } kind = Kind::String;
  bool boolean = false;
  std::string_view text;  // String: unescaped content
  std::string_view json;  // the value as JSON text (for numbers/bools: their token), for reasons
  bool number_ok = false; // false: valid JSON number that simdjson cannot represent (e.g. 1e400)
  od::number_type ntype = od::number_type::signed_integer;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
};

int32_t days_from_civil(int y, unsigned m, unsigned d) {
  // Howard Hinnant's days_from_civil (proleptic Gregorian), valid for any year.
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int32_t>(doe) - 719468;
}

std::optional<DateDays> parse_date(std::string_view text, std::string_view pattern) {
  std::string why;
  auto items = compile_pattern(pattern.empty() ? "yyyy-MM-dd" : pattern, false, why);
  if (!items) return std::nullopt;
  Civil c;
  if (match_pattern(text, *items, c) != TimeFail::None) return std::nullopt;
  return DateDays{days_from_civil(c.year, c.month, c.day)};
}

std::optional<TimestampUs> parse_timestamp(std::string_view text, std::string_view format) {
  int64_t us = 0;
  if (format.empty() || format == "iso8601") {
    Civil c;
    if (parse_iso8601(text, us, c) != TimeFail::None) return std::nullopt;
    return TimestampUs{us};
  }
  if (format == "epoch_s" || format == "epoch_ms") {
    if (scaled_decimal(text, format == "epoch_s" ? 6 : 3, us) != Fail::None) return std::nullopt;
    return TimestampUs{us};
  }
  std::string why;
  auto items = compile_pattern(format, true, why);
  if (!items) return std::nullopt;
  Civil c;
  if (match_pattern(text, *items, c) != TimeFail::None) return std::nullopt;
  return TimestampUs{civil_seconds(c) * 1000000};
}

namespace {
// A schema the validator refuses; `problems` one per field (schema_problems() lists them).
struct InvalidSchema : std::invalid_argument {
  std::vector<std::string> problems;
  InvalidSchema(const std::string& what, std::vector<std::string> p)
      : std::invalid_argument(what), problems(std::move(p)) {}
};

std::string joined(const std::vector<std::string>& problems) {
  std::string msg = "invalid schema:";
  for (const auto& p : problems) msg += " " + p + ";";
  msg.pop_back();
  return msg;
}

// Everything but the defaults (those need the compiled plans, see the constructor).
std::vector<std::string> structure_problems(const Schema& schema) {
  std::vector<std::string> problems;
  for (size_t i = 0; i < schema.fields.size(); ++i) {
    const FieldSpec& f = schema.fields[i];
    std::string label = "field " + std::to_string(i + 1) + " '" + f.name + "': ";
    if (f.name.empty()) problems.push_back(label + "empty name");
    for (size_t j = 0; j < i; ++j)
      if (schema.fields[j].name == f.name) problems.push_back(label + "duplicate name");
    std::vector<std::string> segments;
    std::string why;
    if (!split_pointer(field_path(f), segments, why)) problems.push_back(label + why);
    FieldPlan plan;
    if (std::string p = plan_field(f, plan, f.name); !p.empty()) problems.push_back(label + p);
    // A struct or list is read whole from its JSON text, so no other field may read inside it.
    if (f.type == FieldType::Struct || f.type == FieldType::List) {
      const std::string prefix = field_path(f) + "/";
      for (const FieldSpec& g : schema.fields)
        if (field_path(g).rfind(prefix, 0) == 0)
          problems.push_back(label + "field '" + g.name + "' reads inside this " + to_string(f.type) +
                             "; declare it as one of its fields instead");
    }
    if (!f.from_param.empty() && (f.type == FieldType::Struct || f.type == FieldType::List))
      problems.push_back(label + "a " + to_string(f.type) + " field cannot take from_param");
  }
  return problems;
}
}  // namespace

std::vector<std::string> schema_problems(const Schema& schema) {
  std::vector<std::string> problems = structure_problems(schema);
  if (!problems.empty()) return problems;
  // Defaults are checked by compiling the schema: the very conversion records go through.
  try {
    RecordValidator v(schema);
  } catch (const InvalidSchema& e) {
    return e.problems;
  }
  return problems;
}

std::string default_problem(const FieldSpec& field) {
  if (!field.default_value) return {};
  Schema one;
  one.fields.push_back(field);
  one.fields[0].required = false;  // the model refuses required + default on its own
  if (!structure_problems(one).empty()) return {};  // not about the default; reported elsewhere
  try {
    RecordValidator v(one);
  } catch (const InvalidSchema& e) {
    std::string out;
    for (const auto& p : e.problems) out += (out.empty() ? "" : "; ") + p;
    return out;
  }
  return {};
}

RecordValidator::RecordValidator(const Schema& schema) : schema_(schema) {
  if (auto problems = structure_problems(schema_); !problems.empty()) throw InvalidSchema(joined(problems), problems);
  nodes_.push_back(PointerNode{});
  for (uint32_t f = 0; f < schema_.fields.size(); ++f) {
    const FieldSpec& spec = schema_.fields[f];
    FieldPlan plan;
    plan_field(spec, plan, spec.name);
    plan.from_param = spec.from_param;
    plans_.push_back(std::move(plan));
    if (!spec.from_param.empty()) {  // not read from the record (set_params())
      param_fields_.push_back(f);
      continue;
    }
    std::vector<std::string> segments;
    std::string why;
    split_pointer(field_path(spec), segments, why);
    uint32_t node = 0;
    for (std::string& seg : segments) {
      uint32_t next = 0;
      for (uint32_t child : nodes_[node].children)
        if (nodes_[child].key == seg) next = child;
      if (next == 0) {
        next = static_cast<uint32_t>(nodes_.size());
        int64_t index = array_index(seg);
        nodes_.push_back(PointerNode{std::move(seg), index, {}, {}, false, {}, {}});
        nodes_[node].children.push_back(next);
        nodes_[node].child_tags.push_back(key_tag(nodes_[next].key));
        if (nodes_[next].key.find('\\') != std::string::npos) nodes_[node].unescape_keys = true;
      }
      node = next;
    }
    nodes_[node].fields.push_back(f);
  }
  // Defaults are converted once, by the field's own rules, as if the JSON held that string.
  std::vector<std::string> bad_default;
  auto compile_defaults = [&](auto& self, const std::vector<FieldSpec>& specs, std::vector<FieldPlan>& plans) -> void {
    for (size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].type == FieldType::Struct) self(self, specs[i].fields, plans[i].children);
      if (!specs[i].default_value) continue;
      Scalar s;
      s.kind = Scalar::Kind::String;
      s.text = *specs[i].default_value;
      s.json = *specs[i].default_value;
      Value v;
      ValueOut out{v};
      Reason why;
      if (convert_value(plans[i], s, out, why, 0)) plans[i].default_value = std::move(v);
      else bad_default.push_back("field '" + plans[i].name + "': default " + why.detail);
    }
  };
  compile_defaults(compile_defaults, schema_.fields, plans_);
  if (!bad_default.empty()) throw InvalidSchema(joined(bad_default), bad_default);
  slots_.resize(plans_.size());
  std::vector<Column> columns;
  for (const FieldSpec& f : schema_.fields) columns.push_back({f.name, f.type, f});
  scratch_.reset(std::move(columns));
  failures_.resize(plans_.size());
  visited_.resize(nodes_.size());
}

// The record in progress is written into out_'s last row, begun here and taken back if it is refused
// (or if reading it throws).
template <typename Read>
Outcome RecordValidator::apply_into(ColumnBatch& batch, Read&& read) {
  batch.begin_row();
  out_ = &batch;
  struct Done {
    RecordValidator* v;
    ~Done() { v->out_ = nullptr; }
  } done{this};
  Outcome outcome;
  try {
    outcome = read();
  } catch (...) {
    batch.rollback_row();
    throw;
  }
  if (!outcome.valid()) batch.rollback_row();
  return outcome;
}

Outcome RecordValidator::apply(std::string_view record_json, ColumnBatch& batch) {
  return apply_into(batch, [&] { return apply_text(record_json); });
}

Outcome RecordValidator::apply(od::value record, ColumnBatch& batch) {
  return apply_into(batch, [&] { return apply_value(record); });
}

Outcome RecordValidator::apply(std::string_view record_json) {
  scratch_.clear();
  Outcome outcome = apply(record_json, scratch_);
  if (outcome.valid()) outcome.row = scratch_.row(0);
  return outcome;
}

Outcome RecordValidator::apply(od::value record) {
  scratch_.clear();
  Outcome outcome = apply(record, scratch_);
  if (outcome.valid()) outcome.row = scratch_.row(0);
  return outcome;
}

Outcome RecordValidator::apply_text(std::string_view record_json) {
  // Copy into a reused padded buffer (simdjson reads past the end); zero the padding so bytes of an
  // earlier, longer record can never be read as part of this one.
  if (buffer_.size() < record_json.size()) buffer_ = simdjson::padded_string(record_json.size() * 2);
  std::memcpy(buffer_.data(), record_json.data(), record_json.size());
  std::memset(buffer_.data() + record_json.size(), 0, simdjson::SIMDJSON_PADDING);
  od::document doc;
  if (auto e = parser_.iterate(buffer_.data(), record_json.size(), buffer_.size() + simdjson::SIMDJSON_PADDING)
                   .get(doc))
    return Outcome{std::nullopt, parse_error(e), {}};
  od::object object;
  if (auto e = doc.get_object().get(object)) {
    if (e != simdjson::INCORRECT_TYPE) return Outcome{std::nullopt, parse_error(e), {}};
    // Not an object; but "not json" also starts like a literal, so tell garbage from valid JSON.
    doc.rewind();
    od::json_type t;
    simdjson::error_code ve = doc.type().get(t);
    if (!ve) {
      switch (t) {
        case od::json_type::null: {
          bool n = false;
          ve = doc.is_null().get(n);
          if (!ve && !n) ve = simdjson::N_ATOM_ERROR;
          break;
        }
        case od::json_type::boolean: ve = doc.get_bool().error(); break;
        case od::json_type::number: ve = doc.get_number().error(); break;
        case od::json_type::string: ve = doc.get_string().error(); break;
        case od::json_type::array: {
          od::array array;
          ve = doc.get_array().get(array);
          if (!ve) {
            for (auto item : array) {
              if ((ve = item.error())) break;
            }
          }
          break;
        }
        case od::json_type::object: break;  // unreachable: get_object succeeded for objects
      }
    }
    const char* where = nullptr;
    if (!ve && doc.current_location().get(where) != simdjson::OUT_OF_BOUNDS) ve = simdjson::TAPE_ERROR;
    if (ve) return Outcome{std::nullopt, parse_error(ve), {}};
    return Outcome{std::nullopt, Reason{"type_mismatch", "", "record is not an object"}, {}};
  }
  std::fill(slots_.begin(), slots_.end(), Slot::Absent);
  std::fill(visited_.begin(), visited_.end(), 0);
  unknown_.clear();
  if (auto e = walk_object(object, 0)) return Outcome{std::nullopt, parse_error(e), {}};
  const char* where = nullptr;
  if (doc.current_location().get(where) != simdjson::OUT_OF_BOUNDS)  // e.g. {"a":1} x
    return Outcome{std::nullopt, Reason{"parse_error", "", "invalid JSON: content after the record"}, {}};
  return finish();
}

Outcome RecordValidator::apply_value(od::value record) {
  od::object object;
  if (auto e = record.get_object().get(object)) {
    if (e == simdjson::INCORRECT_TYPE)
      return Outcome{std::nullopt, Reason{"type_mismatch", "", "record is not an object"}, {}};
    return Outcome{std::nullopt, parse_error(e), {}};
  }
  std::fill(slots_.begin(), slots_.end(), Slot::Absent);
  std::fill(visited_.begin(), visited_.end(), 0);
  unknown_.clear();
  if (auto e = walk_object(object, 0)) return Outcome{std::nullopt, parse_error(e), {}};
  return finish();
}

simdjson::error_code RecordValidator::walk_object(od::object& object, uint32_t node) {
  size_t position = 0;
  for (auto item : object) {
    // The field is used where the iterator built it: copying it out (get(field)) reloads it as one
    // 16-byte word right after it was stored in pieces, a store-forwarding stall once per key that
    // perf showed as half of this function's time.
    if (auto e = item.error()) return e;
    od::field& field = item.value_unsafe();
    // nodes_ does not grow while records are read: `here` stays valid across visit() below.
    PointerNode& here = nodes_[node];
    std::string_view key = raw_key(field);
    const size_t at = position++;
    uint32_t child = 0;  // the child node the key names (keys are unique among children), 0 = none
    if (at < here.key_memo.size() && same_key(key, here.key_memo[at].key)) {
      child = here.key_memo[at].match;  // the previous record's key at this place: same resolution
    } else {
      bool decoded = false;
      if (here.unescape_keys && has_backslash(key)) {
        if (auto e = field.unescaped_key().get(key)) return e;
        decoded = true;
      }
      for (int pass = 0; pass < 2 && child == 0; ++pass) {
        if (pass == 1) {  // nothing matched raw: decode an escaped key and try again (an unknown key is
                          // then kept decoded too)
          if (decoded || !has_backslash(key)) break;
          if (auto e = field.unescaped_key().get(key)) return e;
          decoded = true;
        }
        const uint64_t tag = key_tag(key);
        for (size_t c = 0; c < here.children.size(); ++c) {
          if (here.child_tags[c] == tag && same_key(key, nodes_[here.children[c]].key)) {
            child = here.children[c];
            break;
          }
        }
      }
      if (!decoded && at < kKeyMemoPositions) {  // not decoded = no backslash: safe to remember raw
        if (at >= here.key_memo.size()) here.key_memo.resize(at + 1);
        here.key_memo[at].key.assign(key);
        here.key_memo[at].match = child;
      }
    }
    const bool known = child != 0;
    if (node == 0 && !known && schema_.evolution != Evolution::Ignore) {
      // A key no field reads: kept whole (it may go to the dead letters or become a column).
      std::string_view raw;
      od::value v = field.value();
      od::json_type t;
      if (auto e = v.type().get(t)) return e;
      if (t == od::json_type::object) {
        od::object o;
        if (auto e = v.get_object().get(o)) return e;
        if (auto e = o.raw_json().get(raw)) return e;
      } else if (t == od::json_type::array) {
        od::array a;
        if (auto e = v.get_array().get(a)) return e;
        if (auto e = a.raw_json().get(raw)) return e;
      } else {
        raw = v.raw_json_token();
        if (t == od::json_type::null) {  // validate the atom (the iterator would skip it unchecked)
          bool is_null = false;
          if (auto e = v.is_null().get(is_null)) return e;
          if (!is_null) return simdjson::N_ATOM_ERROR;
        } else if (t == od::json_type::boolean) {
          if (auto e = v.get_bool().error()) return e;
        } else if (t == od::json_type::string) {
          if (auto e = v.get_string().error()) return e;
        }
      }
      while (!raw.empty() && is_space(raw.back())) raw.remove_suffix(1);
      unknown_.push_back(UnknownField{std::string(key), std::string(raw)});
      continue;
    }
    if (child == 0 || visited_[child]) continue;  // not wanted (or a repeated key): skipped by the iterator
    visited_[child] = 1;
    if (auto e = visit(field.value(), child)) return e;
  }
  return simdjson::SUCCESS;
}

simdjson::error_code RecordValidator::walk_array(od::array& array, uint32_t node) {
  int64_t index = 0;
  for (auto item : array) {
    if (auto e = item.error()) return e;
    od::value& value = item.value_unsafe();
    for (uint32_t child : nodes_[node].children) {
      if (!visited_[child] && nodes_[child].index == index) {
        visited_[child] = 1;
        if (auto e = visit(value, child)) return e;
        break;
      }
    }
    ++index;
  }
  return simdjson::SUCCESS;
}

simdjson::error_code RecordValidator::visit(od::value& value, uint32_t node_id) {
  const PointerNode& node = nodes_[node_id];
  od::json_type type;
  if (auto e = value.type().get(type)) return e;
  Scalar s;
  switch (type) {
    case od::json_type::null: {
      bool is_null = false;
      if (auto e = value.is_null().get(is_null)) return e;
      if (!is_null) return simdjson::N_ATOM_ERROR;
      for (uint32_t f : node.fields) slots_[f] = Slot::Null;
      return simdjson::SUCCESS;
    }
    case od::json_type::object: {
      s.kind = Scalar::Kind::Object;
      auto result = value.get_object();
      if (auto e = result.error()) return e;
      od::object& object = result.value_unsafe();  // in place (see read_struct's declaration)
      if (!node.children.empty()) {
        s.json = "an object";
        for (uint32_t f : node.fields) convert(f, s);
        return walk_object(object, node_id);
      }
      if (node.fields.size() == 1 && plans_[node.fields[0]].type == FieldType::Struct &&
          !plans_[node.fields[0]].member_keys.empty()) {
        const uint32_t f = node.fields[0];
        bool ok = true;
        if (auto e = read_struct(plans_[f], object, out_->column(f), ok, failures_[f], 0)) return e;
        slots_[f] = ok ? Slot::Set : Slot::Failed;
        return simdjson::SUCCESS;
      }
      if (auto e = object.raw_json().get(s.json)) return e;
      break;
    }
    case od::json_type::array: {
      s.kind = Scalar::Kind::Array;
      auto result = value.get_array();
      if (auto e = result.error()) return e;
      od::array& array = result.value_unsafe();
      if (!node.children.empty()) {
        s.json = "an array";
        for (uint32_t f : node.fields) convert(f, s);
        return walk_array(array, node_id);
      }
      if (node.fields.size() == 1 && plans_[node.fields[0]].type == FieldType::List) {
        const uint32_t f = node.fields[0];
        bool ok = true;
        if (auto e = read_list(plans_[f], array, out_->column(f), ok, failures_[f], 0)) return e;
        slots_[f] = ok ? Slot::Set : Slot::Failed;
        return simdjson::SUCCESS;
      }
      if (auto e = array.raw_json().get(s.json)) return e;
      break;
    }
    case od::json_type::boolean:
    case od::json_type::number:
    case od::json_type::string: {
      if (node.fields.empty()) return simdjson::SUCCESS;  // the pointer goes deeper: absent
      s.json = value.raw_json_token();
      while (!s.json.empty() && is_space(s.json.back())) s.json.remove_suffix(1);
      if (type == od::json_type::boolean) {
        s.kind = Scalar::Kind::Bool;
        if (auto e = value.get_bool().get(s.boolean)) return e;
      } else if (type == od::json_type::string) {
        s.kind = Scalar::Kind::String;
        if (auto e = value.get_string().get(s.text)) return e;
      } else {
        s.kind = Scalar::Kind::Number;
        od::number n;
        if (auto e = value.get_number().get(n)) {
          // simdjson refuses numbers it cannot hold (1e400); those are valid JSON, just too big.
          if (!is_json_number(s.json)) return e;
          s.number_ok = false;
        } else {
          s.number_ok = true;
          s.ntype = n.get_number_type();
          if (n.is_int64()) s.i = n.get_int64();
          else if (n.is_uint64()) s.u = n.get_uint64();
          else s.d = n.get_double();
        }
      }
      break;
    }
  }
  for (uint32_t f : node.fields) convert(f, s);
  return simdjson::SUCCESS;
}

void RecordValidator::convert(uint32_t f, const Scalar& s) {
  DataOut out{out_->column(f)};
  slots_[f] = convert_value(plans_[f], s, out, failures_[f], 0) ? Slot::Set : Slot::Failed;
}

// One value of one plan (a field, a struct's field, a list element). false = refused, `why` set.
template <typename Out>
bool RecordValidator::convert_value(const FieldPlan& plan, const Scalar& s, Out& out, Reason& why,
                                    size_t depth) {
  bool ok = true;
  auto fail = [&](const char* code, std::string detail) {
    ok = false;
    why = Reason{code, plan.name, std::move(detail)};
    return false;
  };
  auto got = [&]() { return clip(s.json); };
  auto expected = [&]() {
    std::string e = std::string("expected ") + to_string(plan.type);
    if (plan.type == FieldType::Date || (plan.type == FieldType::Timestamp))
      e += " (" + plan.format_text + ")";
    return e;
  };
  auto mismatch = [&]() { return fail("type_mismatch", expected() + ", got " + got()); };
  auto from_fail = [&](Fail f) {
    if (f == Fail::OutOfRange) return fail("out_of_range", std::string(to_string(plan.type)) + " out of range: " + got());
    return fail("bad_format", expected() + ", got " + got());
  };
  auto set = [&](auto v) {
    out.put(std::move(v));
    return true;
  };
  using K = Scalar::Kind;
  if (plan.type == FieldType::Struct) {
    if (s.kind != K::Object) return mismatch();
    ColumnBatch::Data* target = out.nested();
    if (!target) return mismatch();
    return convert_nested(plan, s.json, *target, why, depth);
  }
  if (plan.type == FieldType::List) {
    if (s.kind != K::Array) return mismatch();
    ColumnBatch::Data* target = out.nested();
    if (!target) return mismatch();
    return convert_nested(plan, s.json, *target, why, depth);
  }
  if (s.kind == K::Object || s.kind == K::Array) return mismatch();

  switch (plan.type) {
    case FieldType::Struct:
    case FieldType::List:
      break;  // handled above

    case FieldType::Enum: {
      const std::string_view v = s.kind == K::String ? s.text : s.json;
      if (std::find(plan.values.begin(), plan.values.end(), v) != plan.values.end()) return set(v);
      std::string list;
      for (const auto& x : plan.values) list += (list.empty() ? "" : ", ") + x;
      return fail("out_of_range", "not one of the enum values (" + clip(list) + "): " + got());
    }

    case FieldType::Decimal: {
      if (s.kind == K::Bool) return mismatch();
      // Numbers are read from their JSON text, never through a double: 0.1 stays exactly 0.1.
      std::string_view text = s.kind == K::String ? trim(s.text) : s.json;
      Int128 unscaled = 0;
      std::string code =
          parse_decimal(text, s.kind == K::String && plan.decimal_comma, plan.precision, plan.scale, unscaled);
      if (code == "bad_format")
        return fail("bad_format", "expected decimal(" + std::to_string(plan.precision) + "," +
                                      std::to_string(plan.scale) + "), got " + got());
      if (!code.empty())
        return fail("out_of_range", "does not fit decimal(" + std::to_string(plan.precision) + "," +
                                        std::to_string(plan.scale) + ") exactly: " + got());
      return set(Decimal{unscaled, plan.scale});
    }

    case FieldType::String:
      if (s.kind == K::String) return set(s.text);
      return set(s.json);  // number or bool: its JSON text

    case FieldType::Int64: {
      if (s.kind == K::Bool) return mismatch();
      if (s.kind == K::String) {
        int64_t v = 0;
        if (Fail bad = parse_int_text(trim(s.text), plan.decimal_comma, v); bad != Fail::None)
          return from_fail(bad);
        return set(v);
      }
      if (!s.number_ok || s.ntype == od::number_type::unsigned_integer) return from_fail(Fail::OutOfRange);
      if (s.ntype == od::number_type::signed_integer) return set(s.i);
      if (s.d != std::trunc(s.d)) return fail("type_mismatch", "expected int64, got non-integral " + got());
      // 2^63 is exactly representable; anything at or beyond it (or below -2^63) does not fit.
      if (s.d >= 9223372036854775808.0 || s.d < -9223372036854775808.0) return from_fail(Fail::OutOfRange);
      return set(static_cast<int64_t>(s.d));
    }

    case FieldType::Double: {
      if (s.kind == K::Bool) return mismatch();
      if (s.kind == K::String) {
        double v = 0;
        if (Fail bad = parse_double_text(trim(s.text), plan.decimal_comma, v); bad != Fail::None)
          return from_fail(bad);
        return set(v);
      }
      if (!s.number_ok) {
        // simdjson 3.0.1 refuses integers beyond 64 bits that a double holds well (1e29 written out)
        double v = 0;
        if (Fail bad = parse_double_text(s.json, false, v); bad != Fail::None) return from_fail(bad);
        return set(v);
      }
      if (s.ntype == od::number_type::signed_integer) return set(static_cast<double>(s.i));
      if (s.ntype == od::number_type::unsigned_integer) return set(static_cast<double>(s.u));
      return set(s.d);
    }

    case FieldType::Bool: {
      if (s.kind == K::Bool) return set(s.boolean);
      if (s.kind == K::String) {
        std::string_view t = trim(s.text);
        if (iequals(t, "true") || t == "1") return set(true);
        if (iequals(t, "false") || t == "0") return set(false);
        return fail("bad_format", "expected bool (true/false/1/0), got " + got());
      }
      // Numbers: only the integers 0 and 1 (as written: 0, 1; not 1.0, 1e0).
      if (s.json == "0") return set(false);
      if (s.json == "1") return set(true);
      return fail("type_mismatch", "expected bool, got number " + got() + " (only 0 and 1 coerce)");
    }

    case FieldType::Date: {
      if (s.kind != K::String) return mismatch();
      Civil c;
      if (TimeFail bad = match_pattern(trim(s.text), plan.pattern, c); bad != TimeFail::None)
        return fail("bad_format", expected() + ", got " + got() + ": " + time_fail_text(bad, c));
      return set(DateDays{days_from_civil(c.year, c.month, c.day)});
    }

    case FieldType::Timestamp: {
      int64_t us = 0;
      switch (plan.time_format) {
        case TimeFormat::EpochS:
        case TimeFormat::EpochMs: {
          if (s.kind == K::Bool) return mismatch();
          std::string_view text = s.kind == K::String ? trim(s.text) : s.json;
          Fail bad = scaled_decimal(text, plan.time_format == TimeFormat::EpochS ? 6 : 3, us);
          if (bad != Fail::None) return from_fail(bad);
          return set(TimestampUs{us});
        }
        case TimeFormat::Iso8601: {
          if (s.kind != K::String) return mismatch();
          Civil c;
          if (TimeFail bad = parse_iso8601(trim(s.text), us, c); bad != TimeFail::None)
            return fail("bad_format", expected() + ", got " + got() + ": " + time_fail_text(bad, c));
          return set(TimestampUs{us});
        }
        case TimeFormat::Pattern: {
          if (s.kind != K::String) return mismatch();
          Civil c;
          if (TimeFail bad = match_pattern(trim(s.text), plan.pattern, c); bad != TimeFail::None)
            return fail("bad_format", expected() + ", got " + got() + ": " + time_fail_text(bad, c));
          return set(TimestampUs{civil_seconds(c) * 1000000});
        }
      }
      break;
    }
  }
  return ok;
}

// Reads one on-demand value (of a struct or list) into a Scalar, as visit() does for top-level fields.
simdjson::error_code RecordValidator::read_scalar(od::value& value, Scalar& s, bool& is_null) {
  is_null = false;
  od::json_type type;
  if (auto e = value.type().get(type)) return e;
  switch (type) {
    case od::json_type::null: {
      if (auto e = value.is_null().get(is_null)) return e;
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
    case od::json_type::object: {
      s.kind = Scalar::Kind::Object;
      od::object object;
      if (auto e = value.get_object().get(object)) return e;
      return object.raw_json().get(s.json);
    }
    case od::json_type::array: {
      s.kind = Scalar::Kind::Array;
      od::array array;
      if (auto e = value.get_array().get(array)) return e;
      return array.raw_json().get(s.json);
    }
    case od::json_type::boolean:
      s.kind = Scalar::Kind::Bool;
      s.json = value.raw_json_token();
      break;
    case od::json_type::string:
      s.kind = Scalar::Kind::String;
      s.json = value.raw_json_token();
      break;
    case od::json_type::number:
      s.kind = Scalar::Kind::Number;
      s.json = value.raw_json_token();
      break;
  }
  while (!s.json.empty() && is_space(s.json.back())) s.json.remove_suffix(1);
  if (type == od::json_type::boolean) return value.get_bool().get(s.boolean);
  if (type == od::json_type::string) return value.get_string().get(s.text);
  od::number n;
  if (auto e = value.get_number().get(n)) {
    if (!is_json_number(s.json)) return e;
    s.number_ok = false;
    return simdjson::SUCCESS;
  }
  s.number_ok = true;
  s.ntype = n.get_number_type();
  if (n.is_int64()) s.i = n.get_int64();
  else if (n.is_uint64()) s.u = n.get_uint64();
  else s.d = n.get_double();
  return simdjson::SUCCESS;
}

// Absent (is_null = false) or null: required -> missing_required; null where nullable: false ->
// type_mismatch; absent -> the default, else NULL (missing_required when nullable: false).
bool RecordValidator::fill_missing(const FieldPlan& plan, bool is_null, ColumnBatch::Data& out, Reason& why) {
  const char* what = is_null ? "null" : "absent";
  if (plan.required) {
    why = Reason{"missing_required", plan.name, std::string("required field is ") + what + " at " + clip(plan.path)};
    return false;
  }
  if (is_null && !plan.nullable) {
    why = Reason{"type_mismatch", plan.name, "null is not allowed (nullable: false)"};
    return false;
  }
  if (!is_null && plan.default_value) {
    out.put_value(*plan.default_value);  // converted by this field's own rules: the right kind
    return true;
  }
  if (!plan.nullable) {
    why = Reason{"missing_required", plan.name, std::string("field is absent at ") + clip(plan.path) +
                                                    " and is nullable: false with no default"};
    return false;
  }
  // NULL: the entry already is
  return true;
}

namespace {
constexpr size_t kMaxDepth = 64;
}  // namespace

simdjson::error_code RecordValidator::read_into(const FieldPlan& plan, od::value& value, ColumnBatch::Data& out,
                                                bool& is_null, bool& ok, Reason& why, size_t depth) {
  is_null = false;
  ok = true;
  od::json_type t;
  if (auto e = value.type().get(t)) return e;
  if (t == od::json_type::object && plan.type == FieldType::Struct && !plan.member_keys.empty()) {
    auto object = value.get_object();
    if (auto e = object.error()) return e;
    return read_struct(plan, object.value_unsafe(), out, ok, why, depth);
  }
  if (t == od::json_type::array && plan.type == FieldType::List) {
    auto array = value.get_array();
    if (auto e = array.error()) return e;
    return read_list(plan, array.value_unsafe(), out, ok, why, depth);
  }
  Scalar s;
  if (auto e = read_scalar(value, s, is_null)) return e;
  if (is_null) return simdjson::SUCCESS;  // the caller applies the null rules
  DataOut to{out};
  ok = convert_value(plan, s, to, why, depth);
  return simdjson::SUCCESS;
}

// One pass over the object's members in record order; the verdict is then taken in schema order, as
// convert_nested does (first failing member names the reason; absent/null members get their default
// or NULL). A repeated key counts once, first occurrence (at_pointer's rule); other keys are skipped.
simdjson::error_code RecordValidator::read_struct(const FieldPlan& plan, od::object& object, ColumnBatch::Data& out,
                                                  bool& ok, Reason& why, size_t depth) {
  ok = true;
  if (depth >= kMaxDepth) {
    why = Reason{"out_of_range", plan.name, "nesting deeper than 64 levels"};
    ok = false;
    return simdjson::SUCCESS;
  }
  if (member_slots_.size() <= depth) {
    member_slots_.resize(depth + 1);
    member_why_.resize(depth + 1);
  }
  const size_t n = plan.children.size();
  member_slots_[depth].assign(n, Slot::Absent);
  if (member_why_[depth].size() < n) member_why_[depth].resize(n);
  out.begin_nested();
  size_t position = 0;
  for (auto item : object) {
    if (auto e = item.error()) return e;
    od::field& field = item.value_unsafe();  // in place, as walk_object (no store-forwarding stall)
    std::string_view key = raw_key(field);
    const size_t at = position++;
    size_t i = 0;
    if (at < plan.key_memo.size() && same_key(key, plan.key_memo[at].key)) {  // as walk_object's memo
      i = plan.key_memo[at].match;
    } else {
      bool decoded = false;
      if (plan.unescape_keys && has_backslash(key)) {
        if (auto e = field.unescaped_key().get(key)) return e;
        decoded = true;
      }
      while (i < n && !same_key(key, plan.member_keys[i])) ++i;
      if (i == n && !plan.unescape_keys && has_backslash(key)) {  // as walk_object: decode, match again
        if (auto e = field.unescaped_key().get(key)) return e;
        decoded = true;
        i = 0;
        while (i < n && !same_key(key, plan.member_keys[i])) ++i;
      }
      if (!decoded && at < kKeyMemoPositions) {
        if (at >= plan.key_memo.size()) plan.key_memo.resize(at + 1);
        plan.key_memo[at].key.assign(key);
        plan.key_memo[at].match = static_cast<uint32_t>(i);
      }
    }
    if (i == n || member_slots_[depth][i] != Slot::Absent) continue;  // not a member, or repeated
    bool is_null = false, member_ok = true;
    od::value& value = field.value();  // in place (see read_struct's declaration)
    // member_why_[depth] is not resized below this level (deeper levels have their own vectors).
    if (auto e = read_into(plan.children[i], value, out.children[i], is_null, member_ok, member_why_[depth][i],
                           depth + 1))
      return e;
    member_slots_[depth][i] = is_null ? Slot::Null : member_ok ? Slot::Set : Slot::Failed;
  }
  for (size_t i = 0; i < n; ++i) {
    const Slot slot = member_slots_[depth][i];
    if (slot == Slot::Failed) {
      why = std::move(member_why_[depth][i]);
      ok = false;
      return simdjson::SUCCESS;
    }
    if (slot != Slot::Set && !fill_missing(plan.children[i], slot == Slot::Null, out.children[i], why)) {
      ok = false;
      return simdjson::SUCCESS;
    }
  }
  return simdjson::SUCCESS;
}

simdjson::error_code RecordValidator::read_list(const FieldPlan& plan, od::array& array, ColumnBatch::Data& out,
                                                bool& ok, Reason& why, size_t depth) {
  ok = true;
  if (depth >= kMaxDepth) {
    why = Reason{"out_of_range", plan.name, "nesting deeper than 64 levels"};
    ok = false;
    return simdjson::SUCCESS;
  }
  out.begin_nested();
  const FieldPlan& item = plan.children.front();
  ColumnBatch::Data& elements = out.children[0];
  size_t index = 0;
  for (auto element : array) {
    if (auto e = element.error()) return e;
    od::value& value = element.value_unsafe();
    elements.push_null();
    bool is_null = false;
    if (auto e = read_into(item, value, elements, is_null, ok, why, depth + 1)) return e;
    if (is_null && !item.nullable) {
      why = Reason{"type_mismatch", plan.name, "null is not allowed (nullable: false)"};
      ok = false;
    }
    if (!ok) {
      // name the element: "tags[2]" rather than "tags[]" (as convert_nested)
      std::string at = plan.name + "[" + std::to_string(index) + "]";
      if (why.field.rfind(item.name, 0) == 0) why.field = at + why.field.substr(item.name.size());
      else why.field = at;
      return simdjson::SUCCESS;
    }
    ++index;
  }
  out.end_list();
  return simdjson::SUCCESS;
}

bool RecordValidator::convert_nested(const FieldPlan& plan, std::string_view json, ColumnBatch::Data& out,
                                     Reason& why, size_t depth) {
  if (depth >= kMaxDepth) {
    why = Reason{"out_of_range", plan.name, "nesting deeper than 64 levels"};
    return false;
  }
  if (nested_parsers_.size() <= depth) {
    nested_parsers_.resize(depth + 1);
    nested_buffers_.resize(depth + 1);
  }
  if (!nested_parsers_[depth]) nested_parsers_[depth] = std::make_unique<od::parser>();
  // A copy: `json` points into the parent level's buffer, which stays alive meanwhile. The buffer is
  // reused (grown, never shrunk): one allocation per level, not one per nested value.
  simdjson::padded_string& buffer = nested_buffers_[depth];
  if (buffer.size() < json.size()) buffer = simdjson::padded_string(json.size() * 2);
  std::memcpy(buffer.data(), json.data(), json.size());
  std::memset(buffer.data() + json.size(), 0, simdjson::SIMDJSON_PADDING);
  auto bad_json = [&](simdjson::error_code e) {
    why = Reason{"parse_error", plan.name, std::string("invalid JSON: ") + simdjson::error_message(e)};
    return false;
  };
  od::document doc;
  if (auto e = nested_parsers_[depth]->iterate(buffer.data(), json.size(), buffer.size() + simdjson::SIMDJSON_PADDING)
                   .get(doc))
    return bad_json(e);
  // Members and elements go straight into the child columns; a failure leaves partial entries, which
  // the refused record's rollback_row() removes.
  out.begin_nested();
  if (plan.type == FieldType::Struct) {
    for (size_t i = 0; i < plan.children.size(); ++i) {
      const FieldPlan& child = plan.children[i];
      ColumnBatch::Data& member = out.children[i];
      od::value v;
      simdjson::error_code e = doc.at_pointer(child.path).get(v);
      if (e == simdjson::NO_SUCH_FIELD || e == simdjson::INDEX_OUT_OF_BOUNDS || e == simdjson::INCORRECT_TYPE) {
        if (!fill_missing(child, false, member, why)) return false;
        continue;
      }
      if (e) return bad_json(e);
      Scalar s;
      bool is_null = false;
      if (auto re = read_scalar(v, s, is_null)) return bad_json(re);
      if (is_null) {
        if (!fill_missing(child, true, member, why)) return false;
        continue;
      }
      DataOut to{member};
      if (!convert_value(child, s, to, why, depth + 1)) return false;
    }
    return true;
  }
  // List
  const FieldPlan& item = plan.children.front();
  od::array array;
  if (auto e = doc.get_array().get(array)) return bad_json(e);
  ColumnBatch::Data& elements = out.children[0];
  size_t index = 0;
  for (auto element : array) {
    od::value v;
    if (auto e = element.get(v)) return bad_json(e);
    Scalar s;
    bool is_null = false;
    if (auto re = read_scalar(v, s, is_null)) return bad_json(re);
    elements.push_null();
    bool ok = true;
    if (is_null) {
      if (!item.nullable) {
        why = Reason{"type_mismatch", plan.name, "null is not allowed (nullable: false)"};
        ok = false;
      }
    } else {
      DataOut to{elements};
      ok = convert_value(item, s, to, why, depth + 1);
    }
    if (!ok) {
      // name the element: "tags[2]" rather than "tags[]"
      std::string at = plan.name + "[" + std::to_string(index) + "]";
      if (why.field.rfind(item.name, 0) == 0) why.field = at + why.field.substr(item.name.size());
      else why.field = at;
      return false;
    }
    ++index;
  }
  out.end_list();
  return true;
}

void RecordValidator::set_params(std::map<std::string, std::string> params) { params_ = std::move(params); }

Outcome RecordValidator::finish() {
  // from_param fields: the message's params, converted as JSON strings of the field's type; a param the
  // extraction did not have is absent (default, NULL or missing_required, as for a record's key).
  for (uint32_t f : param_fields_) {
    auto it = params_.find(plans_[f].from_param);
    if (it == params_.end()) continue;
    Scalar s;
    s.kind = Scalar::Kind::String;
    s.text = it->second;
    s.json = it->second;
    convert(f, s);
  }
  for (size_t f = 0; f < plans_.size(); ++f) {
    if (slots_[f] == Slot::Failed) return Outcome{std::nullopt, std::move(failures_[f]), std::move(unknown_)};
    if (slots_[f] == Slot::Absent || slots_[f] == Slot::Null) {
      // The batch's cell is NULL already; only a default is written.
      if (!fill_missing(plans_[f], slots_[f] == Slot::Null, out_->column(f), failures_[f]))
        return Outcome{std::nullopt, std::move(failures_[f]), std::move(unknown_)};
      slots_[f] = Slot::Set;
    }
  }
  if (!unknown_.empty() &&
      (schema_.evolution == Evolution::Freeze || schema_.evolution == Evolution::DiscardRow)) {
    const UnknownField& u = unknown_.front();
    std::string detail = "unknown field (schema.evolution: " + std::string(to_string(schema_.evolution)) +
                         "), value " + clip(u.json);
    if (unknown_.size() > 1) detail += " (and " + std::to_string(unknown_.size() - 1) + " more unknown fields)";
    return Outcome{std::nullopt, Reason{"unknown_field", u.key, std::move(detail)}, std::move(unknown_)};
  }
  return Outcome{std::nullopt, std::nullopt, std::move(unknown_)};
}

std::string parse_decimal(std::string_view text, bool decimal_comma, int precision, int scale, Int128& out) {
  std::string buf;
  if (decimal_comma) {
    // "1.234,56" -> "1234.56"; '.' groups thousands strictly, no exponent.
    std::string_view s = text;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
      if (s[0] == '-') buf.push_back('-');
      s.remove_prefix(1);
    }
    size_t comma = s.find(',');
    if (!grouped_digits(s.substr(0, comma), buf)) return "bad_format";
    if (comma != std::string_view::npos) {
      std::string_view frac = s.substr(comma + 1);
      if (frac.empty() || count_digits(frac, 0) != frac.size()) return "bad_format";
      buf.push_back('.');
      buf.append(frac);
    }
    text = buf;
  }
  DecimalParts p;
  if (!parse_decimal_grammar(text, p)) return "bad_format";
  std::string digits;
  digits.append(p.int_digits);
  digits.append(p.frac_digits);
  size_t lead = 0;
  while (lead < digits.size() && digits[lead] == '0') ++lead;
  std::string_view sig = std::string_view(digits).substr(lead);
  // value = sig * 10^(exponent - frac_digits); unscaled = value * 10^scale
  long shift = p.exponent - static_cast<long>(p.frac_digits.size()) + scale;
  if (shift < 0) {
    // Digits below the scale must be zeros: 1.50 fits decimal(3,1), 1.55 does not (no silent rounding).
    long drop = -shift;
    if (drop >= static_cast<long>(sig.size())) {
      if (sig.find_first_not_of('0') != std::string_view::npos) return "out_of_range";
      sig = {};
    } else {
      std::string_view tail = sig.substr(sig.size() - static_cast<size_t>(drop));
      if (tail.find_first_not_of('0') != std::string_view::npos) return "out_of_range";
      sig.remove_suffix(static_cast<size_t>(drop));
    }
    shift = 0;
  }
  if (sig.empty()) {
    out = 0;
    return {};
  }
  if (static_cast<long>(sig.size()) + shift > precision) return "out_of_range";
  Int128 v = 0;
  for (char c : sig) v = v * 10 + (c - '0');
  for (long k = 0; k < shift; ++k) v *= 10;
  out = p.negative ? -v : v;
  return {};
}

std::string to_string(const Decimal& d) {
  Int128 v = d.unscaled;
  bool negative = v < 0;
  std::string digits;
  // magnitude digit by digit (works for the most negative value too: digits of -(v % 10))
  do {
    int r = static_cast<int>(v % 10);
    digits.push_back(static_cast<char>('0' + (r < 0 ? -r : r)));
    v /= 10;
  } while (v != 0);
  while (static_cast<int>(digits.size()) <= d.scale) digits.push_back('0');
  std::string out = negative ? "-" : "";
  for (size_t i = digits.size(); i-- > 0;) {
    out.push_back(digits[i]);
    if (d.scale > 0 && i == static_cast<size_t>(d.scale)) out.push_back('.');
  }
  return out;
}

FieldSpec evolved_field(const UnknownField& unknown) {
  FieldSpec f;
  for (char c : unknown.key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    f.name += ok ? c : '_';
  }
  // "_..." names are the curator's lineage columns (_extraction_id ...): an API key never takes them.
  if (f.name.empty() || is_digit(f.name[0]) || f.name[0] == '_') f.name = "f_" + f.name;
  f.path = "/" + escape_segment(unknown.key);
  std::string_view j = trim(unknown.json);
  if (j == "true" || j == "false") f.type = FieldType::Bool;
  else if (!j.empty() && j[0] == '"') f.type = FieldType::String;
  else if (is_json_number(j)) {
    bool integral = j.find_first_of(".eE") == std::string_view::npos;
    int64_t tmp = 0;
    // integers beyond int64 are doubles (an int64 column would refuse them)
    f.type = integral && parse_int_text(j, false, tmp) == Fail::None ? FieldType::Int64 : FieldType::Double;
  } else {
    f.type = FieldType::String;  // object, array (kept as JSON text) or null (no better guess)
  }
  return f;
}

std::size_t evolve_schema(Schema& schema, const std::vector<UnknownField>& unknown) {
  std::size_t added = 0;
  for (const UnknownField& u : unknown) {
    FieldSpec f = evolved_field(u);
    bool exists = false;
    // DuckDB column names are case-insensitive: "Name" next to "name" would clash.
    for (const FieldSpec& g : schema.fields) exists = exists || iequals(g.name, f.name);
    if (exists) continue;
    schema.fields.push_back(std::move(f));
    ++added;
  }
  if (added) ++schema.version;
  return added;
}

namespace {
void field_json(std::string& out, const FieldSpec& f) {
  auto q = [](const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') o += '\\';
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
        o += buf;
        continue;
      }
      o += c;
    }
    return o + "\"";
  };
  out += "{\"name\":" + q(f.name) + ",\"type\":" + q(to_string(f.type));
  if (!f.path.empty()) out += ",\"path\":" + q(f.path);
  if (!f.from_param.empty()) out += ",\"from_param\":" + q(f.from_param);
  out += std::string(",\"required\":") + (f.required ? "true" : "false");
  out += std::string(",\"nullable\":") + (f.nullable ? "true" : "false");
  if (!f.format.empty()) out += ",\"format\":" + q(f.format);
  if (f.type == FieldType::Decimal)
    out += ",\"precision\":" + std::to_string(f.precision) + ",\"scale\":" + std::to_string(f.scale);
  if (f.default_value) out += ",\"default\":" + q(*f.default_value);
  if (!f.values.empty()) {
    out += ",\"values\":[";
    for (size_t i = 0; i < f.values.size(); ++i) out += (i ? "," : "") + q(f.values[i]);
    out += "]";
  }
  if (!f.fields.empty()) {
    out += ",\"fields\":[";
    for (size_t i = 0; i < f.fields.size(); ++i) {
      if (i) out += ",";
      field_json(out, f.fields[i]);
    }
    out += "]";
  }
  if (!f.items.empty()) {
    out += ",\"items\":";
    field_json(out, f.items[0]);
  }
  out += "}";
}
}  // namespace

std::string schema_json(const Schema& schema) {
  std::string out = "{\"version\":" + std::to_string(schema.version) + ",\"evolution\":\"" +
                    to_string(schema.evolution) + "\",\"fields\":[";
  for (size_t i = 0; i < schema.fields.size(); ++i) {
    if (i) out += ",";
    field_json(out, schema.fields[i]);
  }
  return out + "]}\n";
}

namespace {
namespace bj = boost::json;

const bj::value& member(const bj::object& o, const char* key, const std::string& where) {
  const bj::value* v = o.if_contains(key);
  if (!v) throw std::invalid_argument(where + ": missing \"" + key + "\"");
  return *v;
}

std::string text(const bj::object& o, const char* key, const std::string& where) {
  const bj::value* v = o.if_contains(key);
  if (!v) return {};
  if (!v->is_string()) throw std::invalid_argument(where + ": \"" + key + "\" must be a string");
  return std::string(v->get_string());
}

FieldSpec field_from_json(const bj::value& v, const std::string& where) {
  if (!v.is_object()) throw std::invalid_argument(where + ": a field must be an object");
  const bj::object& o = v.get_object();
  FieldSpec f;
  f.name = text(o, "name", where);
  const std::string here = where + " '" + f.name + "'";
  const std::string type = text(o, "type", here);
  static const FieldType all[] = {FieldType::String, FieldType::Int64, FieldType::Double, FieldType::Bool,
                                  FieldType::Date,   FieldType::Timestamp, FieldType::Decimal, FieldType::Enum,
                                  FieldType::Struct, FieldType::List};
  bool known = false;
  for (FieldType t : all)
    if (type == to_string(t)) f.type = t, known = true;
  if (!known) throw std::invalid_argument(here + ": unknown type '" + type + "'");
  f.path = text(o, "path", here);
  f.from_param = text(o, "from_param", here);
  if (const auto* r = o.if_contains("required"); r && r->is_bool()) f.required = r->get_bool();
  if (const auto* n = o.if_contains("nullable"); n && n->is_bool()) f.nullable = n->get_bool();
  f.format = text(o, "format", here);
  if (o.contains("default")) f.default_value = text(o, "default", here);
  if (f.type == FieldType::Decimal) {
    const auto& p = member(o, "precision", here);
    const auto& sc = member(o, "scale", here);
    if (!p.is_int64() || !sc.is_int64()) throw std::invalid_argument(here + ": precision/scale must be integers");
    f.precision = static_cast<int>(p.get_int64());
    f.scale = static_cast<int>(sc.get_int64());
  }
  if (const auto* vs = o.if_contains("values")) {
    if (!vs->is_array()) throw std::invalid_argument(here + ": values must be an array");
    for (const auto& e : vs->get_array()) {
      if (!e.is_string()) throw std::invalid_argument(here + ": values must be strings");
      f.values.emplace_back(e.get_string());
    }
  }
  if (const auto* fs = o.if_contains("fields")) {
    if (!fs->is_array()) throw std::invalid_argument(here + ": fields must be an array");
    for (const auto& e : fs->get_array()) f.fields.push_back(field_from_json(e, here + ".field"));
  }
  if (const auto* it = o.if_contains("items")) f.items.push_back(field_from_json(*it, here + ".items"));
  return f;
}
}  // namespace

Schema schema_from_json(std::string_view json) {
  boost::system::error_code ec;
  bj::value v = bj::parse(json, ec);
  if (ec) throw std::invalid_argument("schema JSON: " + ec.message());
  if (!v.is_object()) throw std::invalid_argument("schema JSON: not an object");
  const bj::object& o = v.get_object();
  Schema s;
  const auto& version = member(o, "version", "schema JSON");
  if (!version.is_int64() || version.get_int64() < 1 || version.get_int64() > 1000000000)
    throw std::invalid_argument("schema JSON: version must be a positive integer");
  s.version = static_cast<int>(version.get_int64());
  const std::string evolution = text(o, "evolution", "schema JSON");
  static const Evolution all[] = {Evolution::Ignore, Evolution::Evolve, Evolution::Freeze, Evolution::DiscardValue,
                                  Evolution::DiscardRow};
  for (Evolution e : all)
    if (evolution == to_string(e)) s.evolution = e;
  const auto& fields = member(o, "fields", "schema JSON");
  if (!fields.is_array()) throw std::invalid_argument("schema JSON: fields must be an array");
  for (const auto& f : fields.get_array()) s.fields.push_back(field_from_json(f, "schema JSON: field"));
  return s;
}

std::map<std::string, std::string> message_params(std::string_view json) {
  std::map<std::string, std::string> out;
  boost::system::error_code ec;
  bj::value v = bj::parse(json, ec);
  if (ec || !v.is_object()) return out;
  for (const auto& [k, val] : v.get_object()) {
    if (val.is_string()) out.emplace(std::string(k), std::string(val.get_string()));
    else if (!val.is_null()) out.emplace(std::string(k), bj::serialize(val));
  }
  return out;
}

}  // namespace apilake
