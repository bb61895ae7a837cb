// The schema rules of docs/schema.md, one TEST per rule family: accepted inputs with their exact
// values, refused inputs with their exact reason code and field. Expected day and microsecond
// counts were computed independently (Python's datetime), not with the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "curate/schema.h"
#include "support/curate_fixtures.h"

namespace apilake {
namespace {

FieldSpec field(std::string name, FieldType type, std::string path = "", bool required = false,
                std::string format = "") {
  return test::field_at(std::move(name), type, std::move(path), required, std::move(format));
}

Schema schema_of(std::vector<FieldSpec> fields) {
  Schema s;
  s.fields = std::move(fields);
  return s;
}

// One field "v" of the given type/format; the record is {"v": <json_value>}.
Outcome one(FieldType type, const std::string& json_value, const std::string& format = "") {
  RecordValidator v(schema_of({field("v", type, "", false, format)}));
  return v.apply("{\"v\": " + json_value + "}");
}

template <class T>
T value(const Outcome& o, size_t i = 0) {
  if (!o.row) {
    ADD_FAILURE() << "refused: " << o.reason->code << " / " << o.reason->field << " / " << o.reason->detail;
    return T{};
  }
  if (!std::holds_alternative<T>((*o.row)[i])) {
    ADD_FAILURE() << "field " << i << " holds another type (index " << (*o.row)[i].index() << ")";
    return T{};
  }
  return std::get<T>((*o.row)[i]);
}

bool is_null(const Outcome& o, size_t i = 0) {
  return o.row && std::holds_alternative<std::monostate>((*o.row)[i]);
}

// "code field" of a refusal, or "accepted" — one string so failures print both at once.
std::string refusal(const Outcome& o) {
  if (o.row) return "accepted";
  return o.reason->code + " " + o.reason->field;
}

// A struct cell's members joined by '|' (ints and strings; NULL as "-"), or what went wrong.
std::string show_struct(const Outcome& o, size_t i = 0) {
  if (!o.row) return "refused: " + o.reason->code + " " + o.reason->field;
  const auto* sv = std::get_if<StructValue>(&(*o.row)[i]);
  if (!sv) return "not a struct";
  std::string out;
  for (const Value& m : sv->fields) {
    if (!out.empty()) out += '|';
    if (const auto* x = std::get_if<int64_t>(&m)) out += std::to_string(*x);
    else if (const auto* t = std::get_if<std::string>(&m)) out += *t;
    else out += '-';
  }
  return out;
}

int64_t int_of(const std::string& json, const std::string& format = "") {
  return value<int64_t>(one(FieldType::Int64, json, format));
}
double dbl_of(const std::string& json, const std::string& format = "") {
  return value<double>(one(FieldType::Double, json, format));
}
int32_t days_of(const std::string& json, const std::string& format = "") {
  return value<DateDays>(one(FieldType::Date, json, format)).days;
}
int64_t us_of(const std::string& json, const std::string& format = "") {
  return value<TimestampUs>(one(FieldType::Timestamp, json, format)).micros;
}

TEST(Schema, BcbSgsShape) {
  RecordValidator v(schema_of({field("date", FieldType::Date, "/data", true, "dd/MM/yyyy"),
                               field("value", FieldType::Double, "/valor", true)}));
  Outcome o = v.apply(R"({"data":"02/01/2024","valor":"11.65"})");
  ASSERT_TRUE(o.row) << o.reason->detail;
  EXPECT_FALSE(o.reason);
  ASSERT_EQ(o.row->size(), 2u);
  EXPECT_EQ(value<DateDays>(o, 0).days, 19724);
  EXPECT_EQ(value<double>(o, 1), 11.65);

  Outcome bad = v.apply(R"({"data":"31/02/2024","valor":"11.65"})");
  EXPECT_EQ(refusal(bad), "bad_format date");
  EXPECT_NE(bad.reason->detail.find("31/02/2024"), std::string::npos) << bad.reason->detail;
  EXPECT_NE(bad.reason->detail.find("day 31"), std::string::npos) << bad.reason->detail;

  EXPECT_EQ(refusal(v.apply(R"({"data":"02/01/2024"})")), "missing_required value");
  EXPECT_EQ(refusal(v.apply(R"({"data":"02/01/2024","valor":""})")), "bad_format value");
}

TEST(Schema, StringField) {
  EXPECT_EQ(value<std::string>(one(FieldType::String, R"("abc")")), "abc");
  EXPECT_EQ(value<std::string>(one(FieldType::String, R"("  x ")")), "  x ");  // kept as is
  EXPECT_EQ(value<std::string>(one(FieldType::String, R"("a\"b\u00e9\n")")), "a\"b\xC3\xA9\n");
  EXPECT_EQ(value<std::string>(one(FieldType::String, R"("")")), "");
  // numbers and bools become their JSON text, exactly as written
  EXPECT_EQ(value<std::string>(one(FieldType::String, "12.50")), "12.50");
  EXPECT_EQ(value<std::string>(one(FieldType::String, "1e5")), "1e5");
  EXPECT_EQ(value<std::string>(one(FieldType::String, "-0")), "-0");
  EXPECT_EQ(value<std::string>(one(FieldType::String, "123456789012345678901234567890")),
            "123456789012345678901234567890");
  EXPECT_EQ(value<std::string>(one(FieldType::String, "true")), "true");
  EXPECT_EQ(value<std::string>(one(FieldType::String, "false  ")), "false");
  EXPECT_TRUE(is_null(one(FieldType::String, "null")));
  EXPECT_EQ(refusal(one(FieldType::String, R"({"a":1})")), "type_mismatch v");
  EXPECT_EQ(refusal(one(FieldType::String, "[1,2]")), "type_mismatch v");
}

TEST(Schema, Int64Accepted) {
  EXPECT_EQ(int_of("42"), 42);
  EXPECT_EQ(int_of("-7"), -7);
  EXPECT_EQ(int_of("0"), 0);
  EXPECT_EQ(int_of("9223372036854775807"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(int_of("-9223372036854775808"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(int_of("3.0"), 3);    // integral doubles
  EXPECT_EQ(int_of("-2.0"), -2);
  EXPECT_EQ(int_of("1e3"), 1000);
  EXPECT_EQ(int_of("-0.0"), 0);
  EXPECT_EQ(int_of(R"("123")"), 123);  // strings holding an integer
  EXPECT_EQ(int_of(R"("  -123 ")"), -123);
  EXPECT_EQ(int_of(R"("+5")"), 5);
  EXPECT_EQ(int_of(R"("007")"), 7);
  EXPECT_EQ(int_of(R"("-9223372036854775808")"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(int_of(R"("1.234.567")", "decimal_comma"), 1234567);
  EXPECT_EQ(int_of(R"("-1.234")", "decimal_comma"), -1234);
  EXPECT_EQ(int_of(R"("999")", "decimal_comma"), 999);
  EXPECT_EQ(int_of("1234", "decimal_comma"), 1234);  // the format only concerns strings
}

TEST(Schema, Int64Refused) {
  auto r = [](const std::string& json, const std::string& format = "") {
    return refusal(one(FieldType::Int64, json, format));
  };
  EXPECT_EQ(r("3.5"), "type_mismatch v");
  EXPECT_EQ(r("-0.1"), "type_mismatch v");
  EXPECT_EQ(r("true"), "type_mismatch v");
  EXPECT_EQ(r("{}"), "type_mismatch v");
  EXPECT_EQ(r("[]"), "type_mismatch v");
  EXPECT_EQ(r("9223372036854775808"), "out_of_range v");
  EXPECT_EQ(r("-9223372036854775809"), "out_of_range v");
  EXPECT_EQ(r("18446744073709551616"), "out_of_range v");
  EXPECT_EQ(r("1e19"), "out_of_range v");
  EXPECT_EQ(r("-1e19"), "out_of_range v");
  EXPECT_EQ(r("1e400"), "out_of_range v");
  EXPECT_EQ(r(R"("abc")"), "bad_format v");
  EXPECT_EQ(r(R"("3.0")"), "bad_format v");
  EXPECT_EQ(r(R"("")"), "bad_format v");
  EXPECT_EQ(r(R"("   ")"), "bad_format v");
  EXPECT_EQ(r(R"("1 2")"), "bad_format v");
  EXPECT_EQ(r(R"("12a")"), "bad_format v");
  EXPECT_EQ(r(R"("+")"), "bad_format v");
  EXPECT_EQ(r(R"("1e3")"), "bad_format v");
  EXPECT_EQ(r(R"("9223372036854775808")"), "out_of_range v");
  EXPECT_EQ(r(R"("-9223372036854775809")"), "out_of_range v");
  EXPECT_EQ(r(R"("99999999999999999999999x")"), "bad_format v");  // format is checked before range
  EXPECT_EQ(r(R"("1.234")"), "bad_format v");                    // no grouping by default
  EXPECT_EQ(r(R"("12.34")", "decimal_comma"), "bad_format v");   // groups are of three
  EXPECT_EQ(r(R"("1234.567")", "decimal_comma"), "bad_format v");
  EXPECT_EQ(r(R"("1.234,5")", "decimal_comma"), "bad_format v");  // no fraction for int64
  EXPECT_EQ(r(R"(".123")", "decimal_comma"), "bad_format v");
  EXPECT_EQ(r(R"("1..234")", "decimal_comma"), "bad_format v");

  Outcome o = one(FieldType::Int64, R"("abc")");
  EXPECT_EQ(o.reason->detail, "expected int64, got \"abc\"");
  o = one(FieldType::Int64, "3.5");
  EXPECT_EQ(o.reason->detail, "expected int64, got non-integral 3.5");
  o = one(FieldType::Int64, "9223372036854775808");
  EXPECT_EQ(o.reason->detail, "int64 out of range: 9223372036854775808");
}

TEST(Schema, DoubleAccepted) {
  EXPECT_EQ(dbl_of("11.65"), 11.65);
  EXPECT_EQ(dbl_of("3"), 3.0);
  EXPECT_EQ(dbl_of("-2.5e-3"), -2.5e-3);
  EXPECT_EQ(dbl_of("18446744073709551615"), 18446744073709551615.0);
  EXPECT_EQ(dbl_of("1e308"), 1e308);
  EXPECT_EQ(dbl_of(R"("11.65")"), 11.65);
  EXPECT_EQ(dbl_of(R"(" 1e3 ")"), 1000.0);
  EXPECT_EQ(dbl_of(R"("-1.5E+2")"), -150.0);
  EXPECT_EQ(dbl_of(R"("+.5")"), 0.5);
  EXPECT_EQ(dbl_of(R"("5.")"), 5.0);
  EXPECT_EQ(dbl_of(R"("-0.001")"), -0.001);
  EXPECT_EQ(dbl_of(R"("1.234,56")", "decimal_comma"), 1234.56);
  EXPECT_EQ(dbl_of(R"("1234,56")", "decimal_comma"), 1234.56);
  EXPECT_EQ(dbl_of(R"("-0,5")", "decimal_comma"), -0.5);
  EXPECT_EQ(dbl_of(R"("1.000.000")", "decimal_comma"), 1000000.0);
  EXPECT_EQ(dbl_of(R"(" 12 ")", "decimal_comma"), 12.0);
  EXPECT_EQ(dbl_of("1.5", "decimal_comma"), 1.5);  // JSON numbers are not affected by the format
  // beyond 64-bit integers, still a double
  EXPECT_EQ(dbl_of("123456789012345678901234567890"), 123456789012345678901234567890.0);
  // too small to represent rounds to zero, as text or as a JSON number
  EXPECT_EQ(dbl_of("1e-400"), 0.0);
  EXPECT_EQ(dbl_of(R"("1e-400")"), 0.0);
  EXPECT_EQ(dbl_of(R"("1000e-403")"), 0.0);
  EXPECT_TRUE(std::signbit(dbl_of(R"("-1e-400")")));
  EXPECT_EQ(dbl_of(R"("4e-320")"), 4e-320);  // subnormal, kept
}

TEST(Schema, DoubleRefused) {
  auto r = [](const std::string& json, const std::string& format = "") {
    return refusal(one(FieldType::Double, json, format));
  };
  EXPECT_EQ(r("true"), "type_mismatch v");
  EXPECT_EQ(r("[1]"), "type_mismatch v");
  EXPECT_EQ(r(R"({"x":1})"), "type_mismatch v");
  EXPECT_EQ(r(R"("NaN")"), "bad_format v");
  EXPECT_EQ(r(R"("nan")"), "bad_format v");
  EXPECT_EQ(r(R"("Infinity")"), "bad_format v");
  EXPECT_EQ(r(R"("inf")"), "bad_format v");
  EXPECT_EQ(r(R"("-inf")"), "bad_format v");
  EXPECT_EQ(r(R"("0x10")"), "bad_format v");
  EXPECT_EQ(r(R"("1,5")"), "bad_format v");  // a comma needs format decimal_comma
  EXPECT_EQ(r(R"("1e")"), "bad_format v");
  EXPECT_EQ(r(R"(".")"), "bad_format v");
  EXPECT_EQ(r(R"("")"), "bad_format v");
  EXPECT_EQ(r(R"("1.2.3")"), "bad_format v");
  EXPECT_EQ(r(R"("1e400")"), "out_of_range v");
  EXPECT_EQ(r("1e400"), "out_of_range v");
  EXPECT_EQ(r("-1e400"), "out_of_range v");
  EXPECT_EQ(r(R"("0.0001e400")"), "out_of_range v");
  EXPECT_EQ(r("\"1" + std::string(400, '0') + "\""), "out_of_range v");  // 1e400 written out
  EXPECT_EQ(r(R"("1,234.56")", "decimal_comma"), "bad_format v");
  EXPECT_EQ(r(R"("1e3")", "decimal_comma"), "bad_format v");
  EXPECT_EQ(r(R"("1,")", "decimal_comma"), "bad_format v");
  EXPECT_EQ(r(R"(",5")", "decimal_comma"), "bad_format v");
  EXPECT_EQ(r(R"("12.34")", "decimal_comma"), "bad_format v");
  EXPECT_EQ(r(R"("1,2,3")", "decimal_comma"), "bad_format v");
  EXPECT_EQ(r(R"("NaN")", "decimal_comma"), "bad_format v");
}

TEST(Schema, BoolField) {
  auto b = [](const std::string& json) { return value<bool>(one(FieldType::Bool, json)); };
  EXPECT_TRUE(b("true"));
  EXPECT_FALSE(b("false"));
  EXPECT_TRUE(b(R"("true")"));
  EXPECT_TRUE(b(R"("TRUE")"));
  EXPECT_FALSE(b(R"(" False ")"));
  EXPECT_TRUE(b(R"("1")"));
  EXPECT_FALSE(b(R"("0")"));
  EXPECT_TRUE(b("1"));
  EXPECT_FALSE(b("0"));
  auto r = [](const std::string& json) { return refusal(one(FieldType::Bool, json)); };
  EXPECT_EQ(r(R"("yes")"), "bad_format v");
  EXPECT_EQ(r(R"("t")"), "bad_format v");
  EXPECT_EQ(r(R"("")"), "bad_format v");
  EXPECT_EQ(r(R"("2")"), "bad_format v");
  EXPECT_EQ(r("2"), "type_mismatch v");
  EXPECT_EQ(r("-1"), "type_mismatch v");
  EXPECT_EQ(r("1.0"), "type_mismatch v");
  EXPECT_EQ(r("[true]"), "type_mismatch v");
  EXPECT_TRUE(is_null(one(FieldType::Bool, "null")));
}

TEST(Schema, DateAccepted) {
  EXPECT_EQ(days_of(R"("2024-01-02")"), 19724);
  EXPECT_EQ(days_of(R"("1970-01-01")"), 0);
  EXPECT_EQ(days_of(R"("1969-12-31")"), -1);
  EXPECT_EQ(days_of(R"("2000-02-29")"), 11016);  // divisible by 400: leap
  EXPECT_EQ(days_of(R"("2024-02-29")"), 19782);
  EXPECT_EQ(days_of(R"("1600-03-01")"), -135080);
  EXPECT_EQ(days_of(R"("9999-12-31")"), 2932896);
  EXPECT_EQ(days_of(R"("0001-01-01")"), -719162);
  EXPECT_EQ(days_of(R"("0000-03-01")"), -719468);  // year 0 is a leap year (proleptic Gregorian)
  EXPECT_EQ(days_of(R"("0000-02-29")"), -719469);
  EXPECT_EQ(days_of(R"(" 2024-01-02 ")"), 19724);  // surrounding whitespace trimmed
  EXPECT_EQ(days_of(R"("2024-01-02")", "iso8601"), 19724);
  EXPECT_EQ(days_of(R"("29/02/2024")", "dd/MM/yyyy"), 19782);
  EXPECT_EQ(days_of(R"("01/02/2024")", "MM/dd/yyyy"), 19724);
  EXPECT_EQ(days_of(R"("20240102")", "yyyyMMdd"), 19724);
  EXPECT_EQ(days_of(R"("02.01.2024")", "dd.MM.yyyy"), 19724);
}

TEST(Schema, DateRefused) {
  auto r = [](const std::string& json, const std::string& format = "") {
    return refusal(one(FieldType::Date, json, format));
  };
  EXPECT_EQ(r(R"("2023-02-29")"), "bad_format v");  // not a leap year
  EXPECT_EQ(r(R"("1900-02-29")"), "bad_format v");  // century, not divisible by 400
  EXPECT_EQ(r(R"("2100-02-29")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-04-31")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-13-01")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-00-10")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-00")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-1-2")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T00:00:00")"), "bad_format v");
  EXPECT_EQ(r(R"("02/01/2024")"), "bad_format v");  // default is yyyy-MM-dd
  EXPECT_EQ(r(R"("")"), "bad_format v");
  EXPECT_EQ(r(R"("2024/01/02")", "dd/MM/yyyy"), "bad_format v");
  EXPECT_EQ(r(R"("31/02/2024")", "dd/MM/yyyy"), "bad_format v");
  EXPECT_EQ(r(R"("2/1/2024")", "dd/MM/yyyy"), "bad_format v");
  EXPECT_EQ(r("20240102", "yyyyMMdd"), "type_mismatch v");  // a date is a string
  EXPECT_EQ(r("true"), "type_mismatch v");
  EXPECT_EQ(r(R"(["2024-01-02"])"), "type_mismatch v");

  Outcome o = one(FieldType::Date, R"("2023-02-29")");
  EXPECT_EQ(o.reason->detail,
            "expected date (yyyy-MM-dd), got \"2023-02-29\": day 29 does not exist in 2023-02");
  o = one(FieldType::Date, R"("2024-13-01")");
  EXPECT_EQ(o.reason->detail, "expected date (yyyy-MM-dd), got \"2024-13-01\": month 13 does not exist");
}

TEST(Schema, DaysFromCivil) {
  EXPECT_EQ(days_from_civil(1970, 1, 1), 0);
  EXPECT_EQ(days_from_civil(2024, 1, 2), 19724);
  EXPECT_EQ(days_from_civil(1969, 12, 31), -1);
  EXPECT_EQ(days_from_civil(2100, 3, 1), 47541);
  EXPECT_EQ(days_from_civil(1, 1, 1), -719162);
  // consecutive days over leap and non-leap February ends
  EXPECT_EQ(days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28), 2);
  EXPECT_EQ(days_from_civil(2023, 3, 1) - days_from_civil(2023, 2, 28), 1);
}

TEST(Schema, TimestampIso8601Accepted) {
  EXPECT_EQ(us_of(R"("2024-01-02T03:04:05Z")"), 1704164645000000);
  EXPECT_EQ(us_of(R"("2024-01-02T03:04:05")"), 1704164645000000);  // no zone: UTC
  EXPECT_EQ(us_of(R"("2024-01-02 03:04:05")"), 1704164645000000);  // space for T
  EXPECT_EQ(us_of(R"("2024-01-02t03:04:05z")"), 1704164645000000);
  EXPECT_EQ(us_of(R"("2024-01-02T03:04:05+00:00")", "iso8601"), 1704164645000000);
  EXPECT_EQ(us_of(R"("2024-01-02T10:00:00+02:00")"), 1704182400000000);
  EXPECT_EQ(us_of(R"("2024-01-02T10:00:00+0200")"), 1704182400000000);
  EXPECT_EQ(us_of(R"("2024-01-02T10:00:00-03:30")"), 1704202200000000);
  EXPECT_EQ(us_of(R"("2024-01-02T10:00:00-0330")"), 1704202200000000);
  EXPECT_EQ(us_of(R"("2024-01-01T00:30:00+05:45")"), 1704048300000000);  // crosses to the previous year
  EXPECT_EQ(us_of(R"("2024-02-29T23:59:59.123456Z")"), 1709251199123456);
  EXPECT_EQ(us_of(R"("2024-02-29T23:59:59.123456789Z")"), 1709251199123456);  // truncated to micros
  EXPECT_EQ(us_of(R"("2024-02-29T23:59:59.1234569")"), 1709251199123456);
  EXPECT_EQ(us_of(R"("2024-01-02T03:04:05.5Z")"), 1704164645500000);
  EXPECT_EQ(us_of(R"("1969-12-31T23:59:59.5Z")"), -500000);
  EXPECT_EQ(us_of(R"("1970-01-01T00:00:00Z")"), 0);
}

TEST(Schema, TimestampIso8601Refused) {
  auto r = [](const std::string& json) { return refusal(one(FieldType::Timestamp, json)); };
  EXPECT_EQ(r(R"("2024-01-02")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T03:04")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T24:00:00Z")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T10:60:00Z")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T10:00:60Z")"), "bad_format v");  // no leap seconds
  EXPECT_EQ(r(R"("2023-02-29T00:00:00Z")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T10:00:00+02")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T10:00:00+24:00")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T10:00:00+02:60")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T10:00:00.1234567890Z")"), "bad_format v");  // > 9 digits
  EXPECT_EQ(r(R"("2024-01-02T10:00:00.Z")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T10:00:00Zjunk")"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02X10:00:00Z")"), "bad_format v");
  EXPECT_EQ(r(R"("02/01/2024 10:00:00")"), "bad_format v");
  EXPECT_EQ(r("1704164645"), "type_mismatch v");  // a number needs epoch_s / epoch_ms
  EXPECT_EQ(r("false"), "type_mismatch v");
}

TEST(Schema, TimestampEpoch) {
  EXPECT_EQ(us_of("1704164645", "epoch_s"), 1704164645000000);
  EXPECT_EQ(us_of("1704164645.123456", "epoch_s"), 1704164645123456);  // exact, no binary rounding
  EXPECT_EQ(us_of("1704164645.1234569", "epoch_s"), 1704164645123456);
  EXPECT_EQ(us_of(R"("1704164645")", "epoch_s"), 1704164645000000);
  EXPECT_EQ(us_of(R"(" 1704164645.5 ")", "epoch_s"), 1704164645500000);
  EXPECT_EQ(us_of("1.7e9", "epoch_s"), 1700000000000000);
  EXPECT_EQ(us_of("0", "epoch_s"), 0);
  EXPECT_EQ(us_of("-1", "epoch_s"), -1000000);  // before 1970
  EXPECT_EQ(us_of("-1.5", "epoch_s"), -1500000);
  EXPECT_EQ(us_of(R"("-86400")", "epoch_s"), -86400000000);
  EXPECT_EQ(us_of("0.0000001", "epoch_s"), 0);
  EXPECT_EQ(us_of("1704164645123", "epoch_ms"), 1704164645123000);
  EXPECT_EQ(us_of(R"("1704164645123")", "epoch_ms"), 1704164645123000);
  EXPECT_EQ(us_of("1.5", "epoch_ms"), 1500);
  EXPECT_EQ(us_of("-1000", "epoch_ms"), -1000000);
  EXPECT_EQ(us_of("9223372036854", "epoch_s"), 9223372036854000000);

  auto r = [](const std::string& json, const std::string& format) {
    return refusal(one(FieldType::Timestamp, json, format));
  };
  EXPECT_EQ(r("9223372036855", "epoch_s"), "out_of_range v");
  EXPECT_EQ(r("1e20", "epoch_s"), "out_of_range v");
  EXPECT_EQ(r("1e400", "epoch_ms"), "out_of_range v");
  EXPECT_EQ(r(R"("abc")", "epoch_s"), "bad_format v");
  EXPECT_EQ(r(R"("")", "epoch_ms"), "bad_format v");
  EXPECT_EQ(r(R"("2024-01-02T00:00:00Z")", "epoch_s"), "bad_format v");
  EXPECT_EQ(r(R"("NaN")", "epoch_s"), "bad_format v");
  EXPECT_EQ(r("true", "epoch_s"), "type_mismatch v");
  EXPECT_EQ(r(R"({"s":1})", "epoch_ms"), "type_mismatch v");
}

TEST(Schema, TimestampPattern) {
  EXPECT_EQ(us_of(R"("02/01/2024 10:30:15")", "dd/MM/yyyy HH:mm:ss"), 1704191415000000);
  EXPECT_EQ(us_of(R"("20240102103015")", "yyyyMMddHHmmss"), 1704191415000000);
  EXPECT_EQ(us_of(R"("02/01/2024 10:30")", "dd/MM/yyyy HH:mm"), 1704191400000000);
  EXPECT_EQ(us_of(R"("02/01/2024")", "dd/MM/yyyy"), 1704153600000000);
  auto r = [](const std::string& json, const std::string& format) {
    return refusal(one(FieldType::Timestamp, json, format));
  };
  EXPECT_EQ(r(R"("02/01/2024 24:00:00")", "dd/MM/yyyy HH:mm:ss"), "bad_format v");
  EXPECT_EQ(r(R"("30/02/2024 10:00:00")", "dd/MM/yyyy HH:mm:ss"), "bad_format v");
  EXPECT_EQ(r(R"("02/01/2024 10:00")", "dd/MM/yyyy HH:mm:ss"), "bad_format v");
  EXPECT_EQ(r(R"("02/01/2024 10:00:00Z")", "dd/MM/yyyy HH:mm:ss"), "bad_format v");
  EXPECT_EQ(r("1704191415", "dd/MM/yyyy HH:mm:ss"), "type_mismatch v");
}

TEST(Schema, PublicParsers) {
  EXPECT_EQ(parse_date("02/01/2024", "dd/MM/yyyy")->days, 19724);
  EXPECT_EQ(parse_date("2024-01-02", "")->days, 19724);
  EXPECT_FALSE(parse_date("31/02/2024", "dd/MM/yyyy"));
  EXPECT_FALSE(parse_date("02/01/2024", "dd/MM/yy"));  // unknown token: a bad pattern, not a date
  EXPECT_FALSE(parse_date(" 2024-01-02", ""));          // the parsers do not trim; fields do
  EXPECT_EQ(parse_timestamp("2024-01-02T10:00:00+02:00", "iso8601")->micros, 1704182400000000);
  EXPECT_EQ(parse_timestamp("2024-01-02T10:00:00+02:00", "")->micros, 1704182400000000);
  EXPECT_EQ(parse_timestamp("-1.5", "epoch_s")->micros, -1500000);
  EXPECT_EQ(parse_timestamp("1500", "epoch_ms")->micros, 1500000);
  EXPECT_EQ(parse_timestamp("02/01/2024 10:30:15", "dd/MM/yyyy HH:mm:ss")->micros, 1704191415000000);
  EXPECT_FALSE(parse_timestamp("2024-01-02", "iso8601"));
  EXPECT_FALSE(parse_timestamp("x", "epoch_s"));
}

TEST(Schema, NestedPointers) {
  RecordValidator v(schema_of({
      field("c0", FieldType::Int64, "/a/b/0/c"),
      field("c1", FieldType::Int64, "/a/b/1/c"),
      field("missing_key", FieldType::String, "/a/x"),
      field("missing_index", FieldType::Int64, "/a/b/5/c"),
      field("slash", FieldType::String, "/m~1n"),
      field("tilde", FieldType::String, "/t~0"),
      field("through_scalar", FieldType::String, "/s/x"),
      field("leading_zero", FieldType::Int64, "/a/b/01/c"),
      field("c1_text", FieldType::String, "/a/b/1/c"),  // two fields on one pointer
      field("top", FieldType::String, "/s"),
      field("obj_key_0", FieldType::String, "/o/0"),
  }));
  Outcome o = v.apply(R"({"s":5,"a":{"x":null,"b":[{"c":1},{"c":"2"}]},"m/n":"slash","t~":"tilde",
                          "o":{"0":"zero"}})");
  ASSERT_TRUE(o.row) << o.reason->detail;
  EXPECT_EQ(value<int64_t>(o, 0), 1);
  EXPECT_EQ(value<int64_t>(o, 1), 2);
  EXPECT_TRUE(is_null(o, 2));
  EXPECT_TRUE(is_null(o, 3));
  EXPECT_EQ(value<std::string>(o, 4), "slash");
  EXPECT_EQ(value<std::string>(o, 5), "tilde");
  EXPECT_TRUE(is_null(o, 6));
  EXPECT_TRUE(is_null(o, 7));
  EXPECT_EQ(value<std::string>(o, 8), "2");
  EXPECT_EQ(value<std::string>(o, 9), "5");
  EXPECT_EQ(value<std::string>(o, 10), "zero");

  // A pointer at a container is a type mismatch, even when other fields go inside it.
  RecordValidator w(schema_of({field("inner", FieldType::Int64, "/a/b"),
                               field("whole", FieldType::String, "/a")}));
  Outcome m = w.apply(R"({"a":{"b":7}})");
  EXPECT_EQ(refusal(m), "type_mismatch whole");
  EXPECT_EQ(m.reason->detail, "expected string, got an object");
  Outcome leaf = RecordValidator(schema_of({field("whole", FieldType::String, "/a")})).apply(R"({"a":{"b":7}})");
  EXPECT_EQ(leaf.reason->detail, "expected string, got {\"b\":7}");
}

TEST(Schema, KeysAreUnescapedAndDefaultPathEscaped) {
  RecordValidator v(schema_of({field("caf\xC3\xA9", FieldType::Int64), field("a/b", FieldType::Int64)}));
  Outcome o = v.apply(R"({"caf\u00e9": 1, "a/b": 2})");
  EXPECT_EQ(value<int64_t>(o, 0), 1);
  EXPECT_EQ(value<int64_t>(o, 1), 2);
}

TEST(Schema, DuplicateKeysFirstWins) {
  RecordValidator v(schema_of({field("a", FieldType::Int64)}));
  EXPECT_EQ(value<int64_t>(v.apply(R"({"a":1,"a":2})")), 1);
  EXPECT_EQ(refusal(v.apply(R"({"a":"x","a":2})")), "bad_format a");
}

// Keys are matched without decoding when they hold no escape; an escaped key must still match (top
// level and inside a struct read in place), and a declared key with a backslash must match only its
// escaped spelling, never a raw key that happens to have the same bytes.
TEST(Schema, EscapedKeysMatchTheirDecodedKey) {
  FieldSpec user = field("user", FieldType::Struct);
  user.fields = {field("caf\xC3\xA9", FieldType::Int64), field("n", FieldType::String)};
  RecordValidator v(schema_of({field("id", FieldType::Int64), user}));
  Outcome o = v.apply(R"({"i\u0064": 7, "user": {"caf\u00e9": 1, "\u006e": "x"}})");
  EXPECT_EQ(value<int64_t>(o, 0), 7);
  EXPECT_EQ(show_struct(o, 1), "1|x");

  // the declared key is the two characters backslash, n: its JSON spelling is "\\n"
  RecordValidator slash(schema_of({field("k", FieldType::Int64, "/\\n")}));
  EXPECT_EQ(value<int64_t>(slash.apply(R"({"\\n": 3})")), 3);
  EXPECT_TRUE(is_null(slash.apply(R"({"\n": 3})")));   // a newline key: another key
  FieldSpec inner = field("s", FieldType::Struct);
  inner.fields = {field("k", FieldType::Int64, "/\\n")};
  RecordValidator nested(schema_of({inner}));
  EXPECT_EQ(show_struct(nested.apply(R"({"s": {"\n": 1, "\\n": 2}})")), "2");

  // an unknown key is reported decoded
  Schema frozen = schema_of({field("id", FieldType::Int64)});
  frozen.evolution = Evolution::Freeze;
  Outcome u = RecordValidator(frozen).apply(R"({"id": 1, "caf\u00e9": 2})");
  EXPECT_EQ(refusal(u), "unknown_field caf\xC3\xA9");
  // a bad escape in a key is malformed JSON, wherever the key is
  EXPECT_EQ(refusal(v.apply(R"({"i\q": 7})")), "parse_error ");
  EXPECT_EQ(refusal(v.apply(R"({"user": {"caf\q": 1}})")), "parse_error ");
}

TEST(Schema, DuplicateKeysFirstWinsWhateverTheSpelling) {
  RecordValidator v(schema_of({field("a", FieldType::Int64)}));
  EXPECT_EQ(value<int64_t>(v.apply(R"({"a":1,"\u0061":2})")), 1);
  EXPECT_EQ(value<int64_t>(v.apply(R"({"\u0061":1,"a":2})")), 1);
  FieldSpec s = field("s", FieldType::Struct);
  s.fields = {field("a", FieldType::Int64)};
  RecordValidator st(schema_of({s}));
  EXPECT_EQ(show_struct(st.apply(R"({"s":{"\u0061":1,"a":"x"}})")), "1");
  EXPECT_EQ(refusal(st.apply(R"({"s":{"a":"x","\u0061":1}})")), "bad_format s.a");
}

// A record refused by a field after earlier fields (text, struct members, list elements) were
// written into the batch leaves the batch exactly as it was; the next record lands cleanly.
TEST(Schema, RefusedRecordLeavesTheBatchAsItWas) {
  FieldSpec user = field("user", FieldType::Struct);
  user.fields = {field("login", FieldType::String), field("id", FieldType::Int64)};
  FieldSpec tags = field("tags", FieldType::List);
  tags.items = {field("", FieldType::String)};
  std::vector<FieldSpec> fields = {field("title", FieldType::String), user, tags,
                                   field("n", FieldType::Int64, "", true)};
  RecordValidator v(schema_of(fields));
  std::vector<Column> columns;
  for (const FieldSpec& f : fields) columns.push_back({f.name, f.type, f});
  ColumnBatch batch(columns);
  ASSERT_TRUE(v.apply(R"({"title":"one","user":{"login":"a","id":1},"tags":["x"],"n":1})", batch).valid());
  Outcome bad = v.apply(R"({"title":"a long title","user":{"login":"bb","id":2},"tags":["y","z"],"n":"q"})", batch);
  EXPECT_EQ(refusal(bad), "bad_format n");
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch.column(0).arena, "one");
  EXPECT_EQ(batch.column(1).children[0].arena, "a");
  EXPECT_EQ(batch.column(2).children[0].size(), 1u);
  EXPECT_EQ(batch.column(2).children[0].arena, "x");
  // refused by a missing required field, decided only after the whole record was read
  EXPECT_EQ(refusal(v.apply(R"({"title":"t","user":{"login":"c","id":3},"tags":["w"]})", batch)),
            "missing_required n");
  ASSERT_EQ(batch.size(), 1u);
  ASSERT_TRUE(v.apply(R"({"title":"two","user":{"login":"d","id":4},"tags":[],"n":2})", batch).valid());
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch.column(0).arena, "onetwo");
  EXPECT_EQ(std::get<int64_t>(batch.value(1, 3)), 2);
  EXPECT_EQ(batch.column(1).children[0].arena, "ad");
  EXPECT_EQ(batch.column(2).children[0].size(), 1u);
  EXPECT_EQ(batch.column(2).items, (std::vector<uint64_t>{0, 1, 1}));
}

TEST(Schema, RequiredVersusNullable) {
  RecordValidator v(schema_of({field("opt", FieldType::Int64), field("req", FieldType::Int64, "", true)}));
  Outcome ok = v.apply(R"({"req": 1})");
  EXPECT_TRUE(is_null(ok, 0));
  EXPECT_EQ(value<int64_t>(ok, 1), 1);
  ok = v.apply(R"({"opt": null, "req": 2})");
  EXPECT_TRUE(is_null(ok, 0));
  EXPECT_EQ(value<int64_t>(ok, 1), 2);

  Outcome absent = v.apply(R"({"opt": 1})");
  EXPECT_EQ(refusal(absent), "missing_required req");
  EXPECT_EQ(absent.reason->detail, "required field is absent at /req");
  Outcome null = v.apply(R"({"opt": 1, "req": null})");
  EXPECT_EQ(refusal(null), "missing_required req");
  EXPECT_EQ(null.reason->detail, "required field is null at /req");
  // A required field whose pointer runs through a scalar is absent.
  RecordValidator deep(schema_of({field("x", FieldType::String, "/a/b", true)}));
  EXPECT_EQ(refusal(deep.apply(R"({"a": 3})")), "missing_required x");
  EXPECT_EQ(refusal(deep.apply(R"({"a": null})")), "missing_required x");
  EXPECT_EQ(refusal(deep.apply(R"({"a": {"b": ""}})")), "accepted");  // empty string is a value
}

TEST(Schema, FirstFailingFieldInSchemaOrderWins) {
  RecordValidator v(schema_of({field("a", FieldType::Int64), field("b", FieldType::Int64, "", true),
                               field("c", FieldType::Date)}));
  EXPECT_EQ(refusal(v.apply(R"({"c":"bad","b":null,"a":"x"})")), "bad_format a");
  EXPECT_EQ(refusal(v.apply(R"({"c":"bad","a":1})")), "missing_required b");
  EXPECT_EQ(refusal(v.apply(R"({"c":"bad","a":1,"b":2})")), "bad_format c");
  EXPECT_EQ(refusal(v.apply(R"({"c":"2024-01-02","a":1,"b":2,"extra":[1,{"z":true}]})")), "accepted");
}

TEST(Schema, RecordLevelProblems) {
  RecordValidator v(schema_of({field("a", FieldType::Int64)}));
  auto r = [&](std::string_view json) { return v.apply(json); };
  for (std::string_view not_object : {"[1,2]", "42", "\"s\"", "true", "null", "  []  "}) {
    Outcome o = r(not_object);
    EXPECT_EQ(refusal(o), "type_mismatch ") << not_object;
    EXPECT_EQ(o.reason->detail, "record is not an object") << not_object;
  }
  for (std::string_view broken : {"", "   ", "not json", "{\"a\":", "{\"a\":1,}", "{\"a\":1} x",
                                  "{\"a\" 1}", "{\"a\": tru}", "{\"a\": 1.2.3}", "{\"a\":\"\\q\"}",
                                  "{\"a\":1", "nul", "[1,2", "{\"a\":1}}"}) {
    Outcome o = r(broken);
    EXPECT_EQ(refusal(o), "parse_error ") << broken;
  }
  EXPECT_EQ(value<int64_t>(r(" {\"a\":1} \n")), 1);  // surrounding whitespace is fine
  EXPECT_EQ(refusal(r("{}")), "accepted");
  // Values no field points at are skipped, not validated (docs/schema.md, "Record level").
  EXPECT_EQ(value<int64_t>(r(R"({"a":1,"junk":tru})")), 1);
}

TEST(Schema, DetailIsClipped) {
  std::string big(500, 'x');
  Outcome o = one(FieldType::Int64, "\"" + big + "\"");
  ASSERT_EQ(refusal(o), "bad_format v");
  EXPECT_LT(o.reason->detail.size(), 130u);
  EXPECT_EQ(o.reason->detail.substr(o.reason->detail.size() - 3), "...");
  // never cut inside a UTF-8 sequence
  std::string accents;
  for (int i = 0; i < 200; ++i) accents += "\xC3\xA9";
  o = one(FieldType::Int64, "\"" + accents + "\"");
  std::string d = o.reason->detail.substr(0, o.reason->detail.size() - 3);
  EXPECT_NE(static_cast<unsigned char>(d.back()), 0xC3u);
}

TEST(Schema, ReusedValidatorAcrossRecords) {
  RecordValidator v(schema_of({field("n", FieldType::Int64), field("s", FieldType::String)}));
  Outcome big = v.apply(R"({"s":")" + std::string(1000, 'y') + R"(","n":123456789})");
  EXPECT_EQ(value<int64_t>(big, 0), 123456789);
  Outcome small = v.apply(R"({"n":7})");
  EXPECT_EQ(value<int64_t>(small, 0), 7);
  EXPECT_TRUE(is_null(small, 1));  // nothing carried over from the previous record
  EXPECT_EQ(refusal(v.apply(R"({"n":"x"})")), "bad_format n");
  EXPECT_EQ(value<int64_t>(v.apply(R"({"n":8,"s":"z"})"), 0), 8);
}

TEST(Schema, ApplyOnDemandValues) {
  RecordValidator v(schema_of({field("id", FieldType::Int64, "", true), field("when", FieldType::Date)}));
  simdjson::ondemand::parser parser;
  simdjson::padded_string page(std::string_view(
      R"({"data":[{"id":1,"when":"2024-01-02"},{"id":"x"},7,{"when":null,"id":3},{"nested":{"id":9}}]})"));
  simdjson::ondemand::document doc = parser.iterate(page);
  std::vector<std::string> results;
  for (auto item : doc["data"].get_array()) {
    simdjson::ondemand::value record = item.value();
    Outcome o = v.apply(record);
    results.push_back(o.row ? std::to_string(std::get<int64_t>((*o.row)[0])) : refusal(o));
    if (o.row && results.size() == 1) {
      EXPECT_EQ(std::get<DateDays>((*o.row)[1]).days, 19724);
    }
  }
  EXPECT_EQ(results, (std::vector<std::string>{"1", "bad_format id", "type_mismatch ", "3", "missing_required id"}));
}

TEST(Schema, InvalidSchemasAreRefusedUpFront) {
  auto throws = [](FieldSpec f) {
    try {
      RecordValidator v(schema_of({field("ok", FieldType::Int64), std::move(f)}));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no throw");
  };
  EXPECT_NE(throws(field("p", FieldType::Int64, "a/b")).find("JSON pointer"), std::string::npos);
  EXPECT_NE(throws(field("p", FieldType::Int64, "/a~2")).find("escape"), std::string::npos);
  EXPECT_NE(throws(field("p", FieldType::Date, "", false, "yy-MM-dd")).find("'yy'"), std::string::npos);
  EXPECT_NE(throws(field("p", FieldType::Date, "", false, "dd/MM/yyyy HH")).find("cannot hold"), std::string::npos);
  EXPECT_NE(throws(field("p", FieldType::Date, "", false, "dd/MM")).find("needs yyyy"), std::string::npos);
  EXPECT_NE(throws(field("p", FieldType::Timestamp, "", false, "epoch_us")).find("'epoch_us'"), std::string::npos);
  EXPECT_NE(throws(field("p", FieldType::Timestamp, "", false, "dd/dd/yyyy")).find("twice"), std::string::npos);
  EXPECT_NE(throws(field("p", FieldType::Double, "", false, "comma")).find("decimal_comma"), std::string::npos);
  EXPECT_NE(throws(field("p", FieldType::String, "", false, "x")).find("no format"), std::string::npos);
  EXPECT_NE(throws(field("ok", FieldType::String)).find("duplicate"), std::string::npos);
  EXPECT_NE(throws(field("", FieldType::String, "/x")).find("empty name"), std::string::npos);
  EXPECT_TRUE(schema_problems(schema_of({field("a", FieldType::Timestamp, "/x/0", true, "epoch_ms"),
                                         field("b", FieldType::Double, "", false, "decimal_comma")}))
                  .empty());
}

}  // namespace
}  // namespace apilake

// ---------------------------------------------------------------------------------------------
// decimal, enum, struct, list, nullable/default, unknown fields (docs/schema.md)
// ---------------------------------------------------------------------------------------------
namespace apilake {
namespace {

FieldSpec decimal_field(std::string name, int p, int s, std::string format = "") {
  FieldSpec f = field(std::move(name), FieldType::Decimal, "", false, std::move(format));
  f.precision = p;
  f.scale = s;
  return f;
}

Outcome dec(const std::string& json, int p = 10, int s = 2, const std::string& format = "") {
  RecordValidator v(schema_of({decimal_field("v", p, s, format)}));
  return v.apply("{\"v\": " + json + "}");
}

std::string dec_text(const Outcome& o) { return o.row ? to_string(value<Decimal>(o)) : refusal(o); }

TEST(SchemaDecimal, ExactFromNumbersAndStrings) {
  EXPECT_EQ(dec_text(dec("12.34")), "12.34");
  EXPECT_EQ(dec_text(dec("0.1")), "0.10");           // no binary float: 0.1 is exactly 0.10
  EXPECT_EQ(dec_text(dec("-7")), "-7.00");
  EXPECT_EQ(dec_text(dec("1.5e2")), "150.00");
  EXPECT_EQ(dec_text(dec("12.300")), "12.30");       // trailing zeros beyond the scale are fine
  EXPECT_EQ(dec_text(dec("\" 99999999.99 \"")), "99999999.99");
  EXPECT_EQ(dec_text(dec("\"1.234,56\"", 10, 2, "decimal_comma")), "1234.56");
  EXPECT_EQ(dec_text(dec("-0.00")), "0.00");
  // 38 digits: beyond int64, exact through 128 bits
  EXPECT_EQ(dec_text(dec("\"12345678901234567890123456.789012345678\"", 38, 12)),
            "12345678901234567890123456.789012345678");
  EXPECT_EQ(dec_text(dec("-12345678901234567890123456.789012345678", 38, 12)),
            "-12345678901234567890123456.789012345678");
  EXPECT_EQ(value<Decimal>(dec("12.34")).unscaled, 1234);
  EXPECT_EQ(value<Decimal>(dec("12.34")).scale, 2);
}

TEST(SchemaDecimal, Refusals) {
  EXPECT_EQ(refusal(dec("1.555")), "out_of_range v");          // would need rounding
  EXPECT_EQ(refusal(dec("123456789.00")), "out_of_range v");   // 11 digits > precision 10
  EXPECT_EQ(refusal(dec("1e20")), "out_of_range v");
  EXPECT_EQ(refusal(dec("\"12,5\"")), "bad_format v");         // comma without decimal_comma
  EXPECT_EQ(refusal(dec("\"12.5\"", 10, 2, "decimal_comma")), "bad_format v");
  EXPECT_EQ(refusal(dec("\"abc\"")), "bad_format v");
  EXPECT_EQ(refusal(dec("\"NaN\"")), "bad_format v");
  EXPECT_EQ(refusal(dec("true")), "type_mismatch v");
  EXPECT_EQ(refusal(dec("[1]")), "type_mismatch v");
  EXPECT_EQ(refusal(dec("{}")), "type_mismatch v");
}

TEST(SchemaEnum, ValuesInTheListOnly) {
  FieldSpec f = field("v", FieldType::Enum);
  f.values = {"open", "closed", "1"};
  RecordValidator v(schema_of({f}));
  EXPECT_EQ(value<std::string>(v.apply(R"({"v":"open"})")), "open");
  EXPECT_EQ(value<std::string>(v.apply(R"({"v":1})")), "1");  // numbers compare by their JSON text
  EXPECT_EQ(refusal(v.apply(R"({"v":"Open"})")), "out_of_range v");  // case-sensitive
  EXPECT_EQ(refusal(v.apply(R"({"v":"merged"})")), "out_of_range v");
  EXPECT_EQ(refusal(v.apply(R"({"v":["open"]})")), "type_mismatch v");
  EXPECT_TRUE(is_null(v.apply(R"({"v":null})")));
}

Schema nested_schema() {
  FieldSpec login = field("login", FieldType::String, "", true);
  FieldSpec since = field("since", FieldType::Date, "/meta/since", false, "dd/MM/yyyy");
  FieldSpec owner = field("owner", FieldType::Struct, "/data/owner");
  owner.fields = {login, since};
  FieldSpec item = field("item", FieldType::Int64);
  FieldSpec ids = field("ids", FieldType::List);
  ids.items = {item};
  FieldSpec tag_name = field("name", FieldType::String);
  FieldSpec tag_score = decimal_field("score", 5, 1);
  FieldSpec tag = field("item", FieldType::Struct);
  tag.fields = {tag_name, tag_score};
  FieldSpec tags = field("tags", FieldType::List);
  tags.items = {tag};
  return schema_of({owner, ids, tags});
}

TEST(SchemaNested, StructAndListValues) {
  RecordValidator v(nested_schema());
  Outcome o = v.apply(R"({"data":{"owner":{"login":"ana","meta":{"since":"02/01/2024"},"x":1}},
                          "ids":[1,"2",3],"tags":[{"name":"a","score":1.5},{"name":"b"},null]})");
  ASSERT_TRUE(o.row) << o.reason->code << " " << o.reason->field << " " << o.reason->detail;
  const auto& owner = value<StructValue>(o, 0);
  ASSERT_EQ(owner.fields.size(), 2u);
  EXPECT_EQ(std::get<std::string>(owner.fields[0]), "ana");
  EXPECT_EQ(std::get<DateDays>(owner.fields[1]).days, 19724);  // 2024-01-02
  const auto& ids = value<ListValue>(o, 1);
  ASSERT_EQ(ids.items.size(), 3u);
  EXPECT_EQ(std::get<int64_t>(ids.items[1]), 2);  // nested values follow the same coercions
  const auto& tags = value<ListValue>(o, 2);
  ASSERT_EQ(tags.items.size(), 3u);
  const auto& t0 = std::get<StructValue>(tags.items[0]);
  EXPECT_EQ(to_string(std::get<Decimal>(t0.fields[1])), "1.5");
  const auto& t1 = std::get<StructValue>(tags.items[1]);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(t1.fields[1]));  // absent member: NULL
  EXPECT_TRUE(std::holds_alternative<std::monostate>(tags.items[2]));  // null element kept as NULL
  // empty list and absent struct
  Outcome e = v.apply(R"({"ids":[],"tags":[]})");
  ASSERT_TRUE(e.row);
  EXPECT_TRUE(is_null(e, 0));
  EXPECT_TRUE(value<ListValue>(e, 1).items.empty());
}

TEST(SchemaNested, RefusalsNameThePlace) {
  RecordValidator v(nested_schema());
  auto reason = [&](const std::string& json) {
    Outcome o = v.apply(json);
    return o.row ? std::string("accepted") : o.reason->code + " " + o.reason->field;
  };
  EXPECT_EQ(reason(R"({"data":{"owner":{"meta":{}}}})"), "missing_required owner.login");
  EXPECT_EQ(reason(R"({"data":{"owner":{"login":"a","meta":{"since":"2024-01-02"}}}})"), "bad_format owner.since");
  EXPECT_EQ(reason(R"({"data":{"owner":"ana"}})"), "type_mismatch owner");
  EXPECT_EQ(reason(R"({"ids":{"a":1}})"), "type_mismatch ids");
  EXPECT_EQ(reason(R"({"ids":[1,"x"]})"), "bad_format ids[1]");
  EXPECT_EQ(reason(R"({"tags":[{"name":"a"},{"score":1.25}]})"), "out_of_range tags[1].score");
  EXPECT_EQ(reason(R"({"ids":[1,2.5]})"), "type_mismatch ids[1]");
}

TEST(SchemaNested, NonNullableElementsRefuseNull) {
  FieldSpec item = field("item", FieldType::Int64);
  item.nullable = false;
  FieldSpec ids = field("ids", FieldType::List);
  ids.items = {item};
  RecordValidator v(schema_of({ids}));
  EXPECT_EQ(refusal(v.apply(R"({"ids":[1,null]})")), "type_mismatch ids[1]");
  EXPECT_EQ(value<ListValue>(v.apply(R"({"ids":[1,2]})")).items.size(), 2u);
}

TEST(SchemaNested, NoOtherFieldMayReadInsideAStructOrList) {
  Schema s = nested_schema();
  s.fields.push_back(field("login2", FieldType::String, "/data/owner/login"));
  EXPECT_THROW(RecordValidator{s}, std::invalid_argument);
  EXPECT_FALSE(schema_problems(s).empty());
}

TEST(SchemaNullable, DefaultsAndNulls) {
  FieldSpec a = field("a", FieldType::Int64);
  a.default_value = "7";
  FieldSpec b = field("b", FieldType::Bool);
  b.nullable = false;
  b.default_value = "false";
  FieldSpec c = decimal_field("c", 4, 1);
  c.default_value = "0.5";
  RecordValidator v(schema_of({a, b, c}));
  Outcome absent = v.apply("{}");
  EXPECT_EQ(value<int64_t>(absent, 0), 7);   // absent -> default, converted by the field's rules
  EXPECT_EQ(value<bool>(absent, 1), false);
  EXPECT_EQ(to_string(value<Decimal>(absent, 2)), "0.5");
  Outcome nulls = v.apply(R"({"a":null,"b":true,"c":null})");
  EXPECT_TRUE(is_null(nulls, 0));            // null is a value the API sent: kept as NULL
  EXPECT_EQ(value<bool>(nulls, 1), true);
  EXPECT_EQ(refusal(v.apply(R"({"b":null})")), "type_mismatch b");  // nullable: false

  FieldSpec bad = field("d", FieldType::Int64);
  bad.default_value = "seven";
  EXPECT_THROW(RecordValidator{schema_of({bad})}, std::invalid_argument);
  FieldSpec strict = field("e", FieldType::String);
  strict.nullable = false;  // no default, not required: absent cannot be filled
  RecordValidator w(schema_of({strict}));
  EXPECT_EQ(refusal(w.apply("{}")), "missing_required e");
}

Schema evolving(Evolution e) {
  Schema s = schema_of({field("id", FieldType::Int64, "", true), field("name", FieldType::String)});
  s.evolution = e;
  return s;
}

TEST(SchemaUnknownFields, EachPolicy) {
  const std::string rec = R"({"id":1,"name":"a","extra":{"x":[1,2]},"n":2.5})";
  {
    RecordValidator v(evolving(Evolution::Ignore));
    Outcome o = v.apply(rec);
    EXPECT_TRUE(o.row);
    EXPECT_TRUE(o.unknown.empty());
  }
  for (Evolution e : {Evolution::Freeze, Evolution::DiscardRow}) {
    RecordValidator v(evolving(e));
    Outcome o = v.apply(rec);
    EXPECT_EQ(refusal(o), "unknown_field extra") << to_string(e);
    ASSERT_EQ(o.unknown.size(), 2u);
    EXPECT_EQ(o.unknown[0].json, R"({"x":[1,2]})");
    EXPECT_EQ(o.unknown[1].key, "n");
    EXPECT_EQ(o.unknown[1].json, "2.5");
    // a type error wins over the unknown key: it is the first thing to fix
    EXPECT_EQ(refusal(v.apply(R"({"id":"x","extra":1})")), "bad_format id");
    EXPECT_TRUE(v.apply(R"({"id":1})").row);  // no unknown keys: curated
  }
  for (Evolution e : {Evolution::DiscardValue, Evolution::Evolve}) {
    RecordValidator v(evolving(e));
    Outcome o = v.apply(rec);
    ASSERT_TRUE(o.row) << to_string(e);
    EXPECT_EQ(value<int64_t>(o, 0), 1);
    ASSERT_EQ(o.unknown.size(), 2u);
    EXPECT_EQ(o.unknown[0].key, "extra");
  }
  // keys read by a deeper pointer are known; a repeated known key is not "unknown"
  Schema deep = schema_of({field("x", FieldType::Int64, "/a/b")});
  deep.evolution = Evolution::Freeze;
  RecordValidator d(deep);
  EXPECT_TRUE(d.apply(R"({"a":{"b":1,"c":2}})").row);
  EXPECT_TRUE(d.apply(R"({"a":{"b":1},"a":{"b":2}})").row);
  // unknown values are validated JSON: a broken atom is still a parse_error
  EXPECT_EQ(refusal(d.apply(R"({"a":{"b":1},"z":nul})")), "parse_error ");
}

// Every refusal of an ISO 8601 timestamp words what is wrong (the parser returns a code; the text is
// built only for a refused value and must read as it always did: dead letters carry it).
TEST(Schema, TimestampIso8601ReasonTexts) {
  auto detail = [](const std::string& json) {
    Outcome o = one(FieldType::Timestamp, json);
    return o.reason ? o.reason->detail : std::string("accepted");
  };
  const std::string e = "expected timestamp (iso8601), got ";
  EXPECT_EQ(detail(R"("2024-01-02")"), e + R"("2024-01-02": does not match YYYY-MM-DDTHH:MM:SS)");
  EXPECT_EQ(detail(R"("2024-13-02T00:00:00Z")"), e + R"("2024-13-02T00:00:00Z": month 13 does not exist)");
  EXPECT_EQ(detail(R"("2023-02-29T00:00:00Z")"),
            e + R"("2023-02-29T00:00:00Z": day 29 does not exist in 2023-02)");
  EXPECT_EQ(detail(R"("2024-01-02T24:00:00Z")"), e + R"("2024-01-02T24:00:00Z": time 24:00:00 does not exist)");
  EXPECT_EQ(detail(R"("2024-01-02T10:00:00.Z")"), e + R"("2024-01-02T10:00:00.Z": fraction must have 1 to 9 digits)");
  EXPECT_EQ(detail(R"("2024-01-02T10:00:00+02")"),
            e + R"("2024-01-02T10:00:00+02": bad UTC offset (expected Z, +HH:MM or +HHMM))");
  EXPECT_EQ(detail(R"("2024-01-02T10:00:00+24:00")"), e + R"("2024-01-02T10:00:00+24:00": UTC offset out of range)");
  EXPECT_EQ(detail(R"("2024-01-02T10:00:00x")"), e + R"("2024-01-02T10:00:00x": unexpected text after the seconds)");
  EXPECT_EQ(detail(R"("2024-01-02T10:00:00Zjunk")"), e + R"("2024-01-02T10:00:00Zjunk": unexpected text after the zone)");
  Outcome p = one(FieldType::Timestamp, R"("02/01/2024 25:00")", "dd/MM/yyyy HH:mm");
  ASSERT_TRUE(p.reason);
  EXPECT_EQ(p.reason->detail, R"(expected timestamp (dd/MM/yyyy HH:mm), got "02/01/2024 25:00": time 25:00:00 does not exist)");
}

// A Value as text, for comparing whole rows.
std::string show(const Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) return "null";
        else if constexpr (std::is_same_v<T, std::string>) return "'" + x + "'";
        else if constexpr (std::is_same_v<T, DateDays>) return "d" + std::to_string(x.days);
        else if constexpr (std::is_same_v<T, TimestampUs>) return "t" + std::to_string(x.micros);
        else if constexpr (std::is_same_v<T, Decimal>) return to_string(x);
        else if constexpr (std::is_same_v<T, StructValue>) {
          std::string out = "{";
          for (const Value& f : x.fields) out += show(f) + ",";
          return out + "}";
        } else if constexpr (std::is_same_v<T, ListValue>) {
          std::string out = "[";
          for (const Value& f : x.items) out += show(f) + ",";
          return out + "]";
        } else {
          return std::to_string(x);
        }
      },
      static_cast<const ValueVariant&>(v));
}

// Everything an Outcome says, as text.
std::string show(const Outcome& o) {
  std::string out;
  if (o.reason) out = o.reason->code + "|" + o.reason->field + "|" + o.reason->detail;
  if (o.row)
    for (const Value& v : *o.row) out += show(v) + ";";
  for (const UnknownField& u : o.unknown) out += " +" + u.key + "=" + u.json;
  return out;
}

// A validator remembers the previous record's key order (a cache): whatever the next record's order,
// repeats, escapes, unknown or missing keys, it must give exactly what a fresh validator gives.
TEST(Schema, KeyOrderMemoNeverChangesTheOutcome) {
  FieldSpec user = field("user", FieldType::Struct);
  user.fields = {field("login", FieldType::String), field("id", FieldType::Int64, "", true)};
  FieldSpec tag = field("", FieldType::Struct);
  tag.fields = {field("name", FieldType::String), field("n", FieldType::Int64)};
  FieldSpec tags = field("tags", FieldType::List);
  tags.items = {tag};
  const std::vector<std::string> records = {
      R"({"id":1,"name":"a","a":{"b":2,"c":0},"user":{"login":"u","id":3,"x":1},"tags":[{"name":"t","n":1},{"name":"s","n":2}],"ts":"2024-01-02T03:04:05Z","zz":0})",
      R"({"id":2,"name":"b","a":{"b":3,"c":0},"user":{"login":"v","id":4,"x":1},"tags":[{"name":"r","n":5}],"ts":"2024-01-02T03:04:06Z","zz":0})",
      R"({"name":"c","id":3,"zz":0,"ts":"2024-01-02T03:04:07Z","tags":[{"n":1,"name":"q"}],"user":{"id":5,"x":1,"login":"w"},"a":{"c":1,"b":4}})",
      R"({"name":"c","name":"d","id":4,"ts":"2024-01-02T03:04:07Z","tags":[{"n":1,"n":2}],"user":{"id":5,"id":6},"a":{"c":1,"b":4}})",
      R"({"n\u0061me":"e","i\u0064":5,"ts":"2024-01-02T03:04:07Z","tags":[{"\u006e":7,"name":"p"}],"user":{"\u0069d":8},"a":{"c":1,"\u0062":4}})",
      R"({"name":"f","id":6,"ts":"2024-01-02T03:04:07Z","tags":[{"n":7,"name":"p"}],"user":{"id":8},"a":{"c":1,"b":4}})",
      R"({"namx":"g","ix":7,"tx":"2024-01-02T03:04:07Z","tags":[{"x":7,"nx":"p"}],"user":{"ix":8},"a":{"x":1,"bx":4}})",
      R"({"id":8,"ts":"2024-01-02T03:04:07Z","tags":[{"name":"p"}],"user":{"login":"z"},"a":{"b":"x"}})",
      R"({"zz":1,"name":"h","id":9,"tags":[],"user":{"id":1,"login":"y"},"a":{"b":5}})",
      R"({"id":10,"name":"i","a":{"b":6,"c":0},"user":{"login":"u","id":3,"x":1},"tags":[{"name":"t","n":1}],"ts":"2024-01-02T03:04:05Z","zz":0})",
      R"({"id":"11","name":"i","a":{"b":6,"c":0},"user":{"login":"u","id":3,"x":1},"tags":[{"name":"t","n":"x"}],"ts":"2024-01-02T03:04:05Z","zz":0})",
  };
  for (Evolution e : {Evolution::Ignore, Evolution::Freeze, Evolution::DiscardValue}) {
    Schema s = schema_of({field("id", FieldType::Int64, "", true), field("name", FieldType::String),
                          field("b", FieldType::Int64, "/a/b"), user, tags, field("ts", FieldType::Timestamp)});
    s.evolution = e;
    RecordValidator reused(s);
    for (int pass = 0; pass < 2; ++pass)
      for (const std::string& rec : records)
        EXPECT_EQ(show(reused.apply(rec)), show(RecordValidator(s).apply(rec))) << to_string(e) << ": " << rec;
  }
}

}  // namespace
}  // namespace apilake
