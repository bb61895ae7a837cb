// visit_records (definition/records.h), the curator's on-demand form of select_records: for every
// page shape it must yield the same records, in the same order, with the same errors, and each
// record's on-demand value must read as that record.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "definition/definition.h"
#include "definition/records.h"

namespace apilake {
namespace {

using ::testing::HasSubstr;

struct Visited {
  std::vector<std::string> texts;  // PageRecord::text()
  std::vector<std::string> raw;    // the on-demand value's own JSON, minified by reparsing
  std::vector<std::size_t> indexes;
  std::size_t returned = 0;
};

// The value read on demand, as its raw JSON (normalised by `normalised` once the visit is over).
std::string read_value(simdjson::ondemand::value v) {
  std::string_view raw;
  simdjson::ondemand::json_type t = simdjson::ondemand::json_type::null;
  EXPECT_FALSE(v.type().get(t));
  if (t == simdjson::ondemand::json_type::object) {
    simdjson::ondemand::object o;
    EXPECT_FALSE(v.get_object().get(o));
    EXPECT_FALSE(o.raw_json().get(raw));
  } else if (t == simdjson::ondemand::json_type::array) {
    simdjson::ondemand::array a;
    EXPECT_FALSE(v.get_array().get(a));
    EXPECT_FALSE(a.raw_json().get(raw));
  } else {
    raw = v.raw_json_token();
  }
  return std::string(raw);
}

// Raw JSON re-serialised through the DOM so that whitespace does not matter (select_records' DOM: a
// plain simdjson DOM refuses integers beyond 64 bits; not inside visit_records' callback, which
// must not call it).
std::string normalised(const std::string& raw) {
  try {
    return select_records("[" + raw + "]", Endpoint{}).at(0);
  } catch (const RecordError&) {
    return "<unparseable: " + raw + ">";
  }
}

Visited visit(const std::string& body, const Endpoint& e) {
  Visited out;
  out.returned = visit_records(body, e, [&](PageRecord& r) {
    out.texts.push_back(r.text());
    out.raw.push_back(read_value(r.value));
    out.indexes.push_back(r.index);
  });
  for (std::string& raw : out.raw) raw = normalised(raw);
  return out;
}

void expect_same_as_select(const std::string& body, const Endpoint& e) {
  SCOPED_TRACE(body);
  const std::vector<std::string> expected = select_records(body, e);
  const Visited v = visit(body, e);
  EXPECT_EQ(v.texts, expected);
  EXPECT_EQ(v.raw, expected);
  EXPECT_EQ(v.returned, expected.size());
  EXPECT_EQ(count_selected_records(body, e), expected.size());
  for (std::size_t i = 0; i < v.indexes.size(); ++i) EXPECT_EQ(v.indexes[i], i + 1);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const RecordError& e) {
    return e.what();
  }
  return "<no RecordError>";
}

TEST(VisitRecords, SameRecordsAsSelectForEveryShape) {
  Endpoint e;
  expect_same_as_select(R"([{"a":1}, {"a":2, "b":[1, 2]}, 3, "x", null, [4]])", e);
  expect_same_as_select(R"( { "id" : 7 , "s":"\u00e9\n" } )", e);  // a single record, whitespace, escapes
  expect_same_as_select("[]", e);
  e.records_pointer = "/data/items";
  expect_same_as_select(R"({"meta":{"n":3},"data":{"items":[{"id":1},{"id":2.50},{"id":-0}]}})", e);
  e.records_pointer = "/data/0";
  expect_same_as_select(R"({"data":[[{"x":1}],[]]})", e);
  // Synthesised records: parallel arrays and record_context.
  e.records_pointer = "/hourly";
  e.record_shape = RecordShape::ParallelArrays;
  e.record_context = {{"lat", "/latitude"}};
  expect_same_as_select(R"({"latitude":-23.5,"hourly":{"time":["t1","t2"],"temp":[20.5,21]}})", e);
  e.record_shape = RecordShape::Records;
  e.records_pointer = "/items";
  expect_same_as_select(R"({"latitude":1,"items":[{"a":1},{"b":2}]})", e);
}

TEST(VisitRecords, RefusesWhatSelectRefusesBeforeAnyRecord) {
  Endpoint e;
  e.records_pointer = "/items";
  for (const std::string body : {R"({"data":[]})", R"({"items":"x"})", "", R"({"items":[{"a":1},{"a")",
                                 R"({"items":[1, 2, x]})", R"({"items":[{"a":tru}]})", R"({"items":[1]} x)"}) {
    SCOPED_TRACE(body);
    const std::string expected = error_of([&] { select_records(body, e); });
    ASSERT_NE(expected, "<no RecordError>");
    std::size_t calls = 0;
    EXPECT_EQ(error_of([&] { visit_records(body, e, [&](PageRecord&) { ++calls; }); }), expected);
    EXPECT_EQ(calls, 0u);
  }
  e.records_pointer = "";
  e.record_context = {{"k", "/missing"}};
  EXPECT_THAT(error_of([&] { visit_records(R"([{"a":1}])", e, [](PageRecord&) {}); }), HasSubstr("record_context"));
}

TEST(VisitRecords, ReusesBuffersAcrossPagesOfDifferentSizes) {
  // A long page then a short one: the short page's last number must not run into the long page's
  // leftover bytes (the buffer's padding is zeroed).
  Endpoint e;
  expect_same_as_select("[" + std::string(5000, ' ') + R"({"n":123456789}])", e);
  expect_same_as_select("[1]", e);
  expect_same_as_select("[12]", e);
}

// For each body: select_records' error and visit_records' are the same text, and no record was
// handed out; or both succeed with the same records.
void expect_agree(const std::string& body, const Endpoint& e) {
  const std::string select_error = error_of([&] { select_records(body, e); });
  if (select_error == "<no RecordError>") {
    expect_same_as_select(body, e);
    return;
  }
  SCOPED_TRACE(body);
  std::size_t calls = 0;
  EXPECT_EQ(error_of([&] { visit_records(body, e, [&](PageRecord&) { ++calls; }); }), select_error);
  EXPECT_EQ(calls, 0u);
  EXPECT_EQ(error_of([&] { count_selected_records(body, e); }), select_error);
}

TEST(VisitRecords, AgreesWithSelectOnMalformedPages) {
  Endpoint e;
  e.records_pointer = "/items";
  const std::string bad_utf8 = std::string(R"({"items":[{"a":"x)") + "\xff\xfe" + R"("}]})";
  const std::string control = std::string(R"({"items":[{"a":"x)") + "\x01" + R"("}]})";
  for (const std::string& body : std::vector<std::string>{
           // truncated, anywhere
           R"({"items":[{"a":1},{"a":2)", R"({"items":[{"a":1},)", R"({"items":[{"a":1})", R"({"items":[)",
           R"({"items":[{"a":"tru)", R"({"items":[{"a":1}]})" "\n", "{", "[", " ",
           // trailing garbage
           R"({"items":[1]} x)", R"({"items":[1]}})", R"({"items":[1]}])", R"({"items":[1]} {})", R"({"items":[1]},)",
           // invalid UTF-8, raw control characters
           bad_utf8, control,
           // structure
           R"({"items":[1,]})", R"({"items":[,1]})", R"({"items":[1 2]})", R"({"items":[1,,2]})", R"({"items":[1}})",
           R"({"items":{"a":1,}})", R"({"items" [1]})", R"({"items":[1],})", R"({items:[1]})", R"({"items":[{"a"}]})",
           R"({"items":[{"a":}]})", R"({"items":[{1:2}]})", R"({"a":1 "items":[1]})", R"({"items":[1]]})",
           // atoms
           R"({"items":[tru]})", R"({"items":[truex]})", R"({"items":[nul]})", R"({"items":[nulll]})",
           R"({"items":[falsey]})", R"({"items":[True]})", R"({"items":[NaN]})", R"({"items":[Infinity]})",
           R"({"items":[undefined]})", R"({"items":[n]})", R"({"x":nulx,"items":[]})",
           // numbers: grammar and range
           R"({"items":[01]})", R"({"items":[1.]})", R"({"items":[.5]})", R"({"items":[+1]})", R"({"items":[-]})",
           R"({"items":[1e]})", R"({"items":[1e+]})", R"({"items":[0x10]})", R"({"items":[1x]})", R"({"items":[1.5.2]})",
           R"({"items":[1e400]})", R"({"items":[-1e400]})", R"({"items":[18446744073709551616]})",
           R"({"items":[-9223372036854775809]})", R"({"items":[123456789012345678901234567890]})",
           R"({"other":1e999,"items":[1]})",
           // string escapes, in values and in keys, on and off the pointer's path
           R"({"items":["\x"]})", R"({"items":["\u12"]})", R"({"items":["\u12g4"]})", R"({"items":["\ud800"]})",
           R"({"items":["\ud800x"]})", R"({"items":["\ud800\u0041"]})", R"({"items":["\udc00"]})",
           R"({"items":["\ud800\udbff"]})", R"({"items":[{"k\q":1}]})", R"({"meta\a":1,"items":[]})",
           R"({"items":["a\"]})", R"({"items":["\)",
           // pointer trouble
           R"({"data":[]})", R"({"items":"x"})", R"({"items":3})", R"({"items":null})", R"({"items":true})",
           R"([{"items":[]}])", R"("items")", "3", "null", ""}) {
    expect_agree(body, e);
  }
}

// A page read in place (padded_string_view with SIMDJSON_PADDING to spare, no copy) yields what the
// copied page yields, records or error text, whatever the bytes after its end hold: here every
// padding byte is one that would continue the page's last token ('"', a digit, '\', 'u', '}', ...).
TEST(VisitRecords, InPlaceReadAgreesWithTheCopyWhateverThePaddingHolds) {
  Endpoint e;
  e.records_pointer = "/items";
  struct Read {
    std::string error;
    std::vector<std::string> values, raw_texts;
  };
  auto read_all = [&](auto page) {
    Read out;
    out.error = error_of([&] {
      visit_records(page, e, [&](PageRecord& r) {
        out.values.push_back(read_value(r.value));
        out.raw_texts.push_back(r.raw_text());
      });
    });
    return out;
  };
  for (const std::string& body : std::vector<std::string>{
           R"({"items":[{"a":1},{"a":"x\u00e9"}]})", R"({"items":[1,2.5,-3e2,true,null,"s"]})", R"({"items":{"a":12}})",
           R"({"items":[{"a":1},{"a":2)", R"({"items":[1]} x)", R"({"items":[1]}\)", R"({"items":[1]}\u)",
           R"({"items":["a\"]})", R"({"items":["\)", R"({"items":[12)", R"({"items":[tru)", R"({"items":[1]} 1)",
           R"({"items":[{"a":1}]})" "\n", "{", R"([1]\)", "", " "}) {
    const Read copied = read_all(std::string_view(body));
    for (const char fill : {'"', '1', '\\', 'u', '}', ']', 'e', '\0', ' '}) {
      SCOPED_TRACE(body + " + padding of '" + std::string(1, fill) + "'");
      std::string buffer = body + std::string(simdjson::SIMDJSON_PADDING, fill);
      const simdjson::padded_string_view page(buffer.data(), body.size(), buffer.size());
      ASSERT_GE(page.padding(), simdjson::SIMDJSON_PADDING);
      const Read in_place = read_all(page);
      EXPECT_EQ(in_place.error, copied.error);
      EXPECT_EQ(in_place.values, copied.values);
      EXPECT_EQ(in_place.raw_texts, copied.raw_texts);
    }
  }
}

TEST(VisitRecords, AgreesWithSelectOnValidEdgeCases) {
  Endpoint e;
  e.records_pointer = "/items";
  for (const std::string& body : std::vector<std::string>{
           R"({"items":[]})", R"({"items":{}})", R"({"items":{"only":"record"}})", R"({"items":[[],{},[{}]]})",
           // records that are not objects
           R"({"items":[1,"two",null,true,false,[3],-0.0,1E5,2.50]})",
           // huge and tiny numbers the DOM accepts
           R"({"items":[18446744073709551615,-9223372036854775808,1e308,1e-400,-0e-999,123456789012345678901234567890.5]})",
           R"({"items":[0.10000000000000000001,3.141592653589793238462643383279502884197]})",
           // duplicate keys: the first "items" is the pointer's target; records keep theirs
           R"({"items":[{"a":1,"a":2}],"items":[{"b":3}]})",
           // escapes, surrogate pairs, UTF-8, escaped keys (the DOM matches keys unescaped)
           R"({"items":["\"\\\/\b\f\n\r\t","\u00e9\uD83D\uDE00\u0000","é😀 ü"]})",
           R"({"\u0069tems":[1],"items":[2]})", R"({"it\u0065ms":[{"k\"ey":"v\\"}]})",
           // whitespace everywhere
           " \n\t{ \"items\" :\r\n [ 1 , { \"a\" : [ ] } , \"x\" ] } \n ",
           // the target before, between and after other values, nested deep beside it
           R"({"a":{"b":[1,{"c":null}]},"items":[{"x":[[[[1]]]]}],"z":[true,false]})"}) {
    expect_agree(body, e);
  }
  e.records_pointer = "";
  expect_agree(R"([{"a":1},2])", e);
  expect_agree(R"({"a":1})", e);
  expect_agree(R"(  {"a":[1,2]}  )", e);
  expect_agree(R"("a string")", e);
  expect_agree("42", e);
  // Pointers: indexes, ~ escapes, a member named like an index, non-canonical forms the DOM refuses.
  const std::string page = R"({"a/b":{"m~n":[[{"r":1}],[{"r":2},{"r":3}]]},"0":[{"z":0}],"list":[[1],[2,3]]})";
  for (const std::string ptr : {"/a~1b/m~0n/1", "/a~1b/m~0n/0", "/0", "/list/1", "/list/01", "/list/-", "/list/2",
                                "/list/x", "/a~1b/m~0n/1/0", "/a~2b", "/a~", "a/b", "/", "/missing/0"}) {
    SCOPED_TRACE(ptr);
    e.records_pointer = ptr;
    expect_agree(page, e);
  }
}

TEST(VisitRecords, EmptyBodyAsAThreadsFirstPage) {
  // The page is read on demand first: a thread whose first page is empty has no buffer yet.
  Endpoint e;
  std::string error;
  std::thread t([&] { error = error_of([&] { visit_records("", e, [](PageRecord&) {}); }); });
  t.join();
  EXPECT_EQ(error, "not JSON: the body is empty");
}

TEST(VisitRecords, DeepNestingGoesByTheDomAndStaysExact) {
  Endpoint e;
  e.records_pointer = "/items";
  for (const std::size_t depth : {10u, 255u, 256u, 300u, 1022u, 1023u, 1024u, 1025u, 5000u}) {
    SCOPED_TRACE(depth);
    const std::string nested = std::string(depth, '[') + "1" + std::string(depth, ']');
    expect_agree(R"({"items":[{"deep":)" + nested + R"(},{"b":2}]})", e);
    expect_agree(R"({"side":)" + nested + R"(,"items":[3]})", e);
  }
}

TEST(VisitRecords, RecordTextIsSelectsElementWhateverTheCallbackRead) {
  // text() after the value was read, and without reading it: the DOM's rendering of the record.
  Endpoint e;
  e.records_pointer = "/items";
  const std::string body = R"({"items":[ {"n":2.50,"s":"\u00e9\t","big":1E5} , 7 , "x" , [ 1 , 2 ] ]})";
  const std::vector<std::string> expected = select_records(body, e);
  std::vector<std::string> before, after;
  visit_records(body, e, [&](PageRecord& r) {
    before.push_back(r.text());
    if (r.index % 2 == 1) {
      simdjson::ondemand::json_type t;
      EXPECT_FALSE(r.value.type().get(t));
      std::string_view raw = r.value.raw_json_token();
      EXPECT_FALSE(raw.empty());
    }
    after.push_back(r.text());
  });
  EXPECT_EQ(before, expected);
  EXPECT_EQ(after, expected);
}

TEST(VisitRecords, AgreesWithSelectOnNumberRangesAndTokenOddities) {
  // The page check reads numbers and literals from stage 1's token index by its own rules; the DOM
  // decides wherever that check is unsure, so every one of these must come out as select_records.
  Endpoint e;
  e.records_pointer = "/items";
  for (const std::string n : {"9223372036854775807", "-9223372036854775808", "-9223372036854775809",
                              "18446744073709551615", "18446744073709551616", "99999999999999999999",
                              "-0", "-00", "00", "0.0", "-0.0e+0", "1E+2", "1e-0", "1e00000000000000000000001",
                              "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
                              "17976931348623157e292", "0.17976931348623159e309", "1e308", "9.99e307", "10e307",
                              "2e308", "0.1e310", "-1e309", "1e99999999999999999999", "0e99999999999999999999",
                              "0.000e999", "1e-99999999999999999999", "0.0000000000001e320", "100000000000000000000.5",
                              "1e", "1e-", "-e1", "1.e1", "1.5e+-3"}) {
    expect_agree(R"({"items":[)" + n + "]}", e);
    expect_agree(R"({"items":[{"v":)" + n + R"(,"w":1}]})", e);
  }
  // A literal or number run into a string, a string into a literal: one token or two in stage 1's
  // index, lenient in the DOM; the check leaves such pages to the DOM.
  for (const std::string& body : std::vector<std::string>{
           R"({"items":[1"x"]})", R"({"items":[true"x"]})", R"({"items":["a"1]})", R"({"items":["a"true]})",
           R"({"items":[null"",2]})", R"({"items":[{"a":1"b"}]})", R"({"items":[{"a":"b""c"}]})",
           R"({"items":[-"1"]})", R"({"items":[1 ]})", "{\"items\":[1\t,\r2\n]}"}) {
    expect_agree(body, e);
  }
}

TEST(VisitRecords, EachRecordReadsRightHoweverLittleOfTheLastWasRead) {
  // Records are handed out at their own place in the page: what the callback leaves unread of one
  // record does not shift the next.
  Endpoint e;
  e.records_pointer = "/data/items";
  const std::string body = R"({"data":{"items":[{"a":{"x":[1,2,{"y":3}]},"b":"s"},[[1],[2]],"t",)"
                           R"({"a":1,"b":{"c":[]}},7,{"a":[{"z":null}],"b":true}],"after":[1]}})";
  const std::vector<std::string> expected = select_records(body, e);
  ASSERT_EQ(expected.size(), 6u);
  std::vector<std::string> read;
  visit_records(body, e, [&](PageRecord& r) {
    if (r.index % 2 == 0) {
      read.push_back(read_value(r.value));
      return;
    }
    // Odd records: only a first step inside (or nothing, for a scalar).
    simdjson::ondemand::json_type t = simdjson::ondemand::json_type::null;
    EXPECT_FALSE(r.value.type().get(t));
    if (t == simdjson::ondemand::json_type::object) {
      simdjson::ondemand::object o;
      EXPECT_FALSE(r.value.get_object().get(o));
      for (auto field : o) {
        std::string_view k;
        EXPECT_FALSE(field.unescaped_key().get(k));
        EXPECT_EQ(k, "a");
        break;
      }
    } else if (t == simdjson::ondemand::json_type::array) {
      simdjson::ondemand::array a;
      EXPECT_FALSE(r.value.get_array().get(a));
      for (auto element : a) {
        simdjson::ondemand::array inner;
        EXPECT_FALSE(element.get_array().get(inner));
        break;
      }
    }
    read.push_back(expected[r.index - 1]);
  });
  for (std::string& x : read) x = normalised(x);  // (expected's texts are normalised already)
  EXPECT_EQ(read, expected);
}

// simdjson 3.0.1's DOM alone refuses integers beyond 64 bits; they are valid JSON and must reach the
// validator: every record kept, its text keeping the integer's digits exactly, in every path (the
// token check, the DOM fallback, synthesised records), in the count and in the fingerprint.
TEST(VisitRecords, IntegersBeyond64BitsAreTakenAsWritten) {
  const std::string big = "123456789012345678901234";
  Endpoint e;
  e.records_pointer = "/items";
  const std::string page = R"({"n":-99999999999999999999,"items":[{"id":1,"v":)" + big +
                           R"(},{"id":2,"v":1.5,"s":"123456789012345678901234 in a string"},{"id":3,"v":[)" + big +
                           R"(,-9223372036854775809,18446744073709551616]}]})";
  EXPECT_EQ(describe_json_error(page), "");
  const std::vector<std::string> expected = {
      R"({"id":1,"v":)" + big + "}", R"({"id":2,"v":1.5,"s":"123456789012345678901234 in a string"})",
      R"({"id":3,"v":[)" + big + R"(,-9223372036854775809,18446744073709551616]})"};
  EXPECT_EQ(select_records(page, e), expected);
  expect_same_as_select(page, e);
  // The DOM fallback (an escaped key on the pointer's path) and a record nested deeper than the check goes.
  expect_same_as_select(R"({"it\u0065ms":[{"v":)" + big + "}]}", e);
  const std::string deep = std::string(300, '[') + big + std::string(300, ']');
  expect_same_as_select(R"({"items":[)" + deep + "]}", e);
  EXPECT_EQ(select_records(R"({"items":[)" + deep + "]}", e), std::vector<std::string>{deep});
  // Synthesised records: parallel arrays and record_context.
  Endpoint synth;
  synth.records_pointer = "/hourly";
  synth.record_shape = RecordShape::ParallelArrays;
  synth.record_context = {{"station", "/station"}};
  const std::string arrays = R"({"station":)" + big + R"(,"hourly":{"t":[1,2],"v":[)" + big + ",-" + big + "]}}";
  EXPECT_EQ(select_records(arrays, synth),
            (std::vector<std::string>{R"({"t":1,"v":)" + big + R"(,"station":)" + big + "}",
                                      R"({"t":2,"v":-)" + big + R"(,"station":)" + big + "}"}));
  expect_same_as_select(arrays, synth);
  // The pointer reaching one: named as a number, as any number is.
  Endpoint scalar;
  scalar.records_pointer = "/n";
  EXPECT_EQ(error_of([&] { select_records(page, scalar); }),
            "records pointer '/n' reaches a number, not an array or object");
  // The fingerprint tells pages apart by the integers' digits, and not by spacing.
  std::size_t f1 = 0, f2 = 0, f3 = 0;
  EXPECT_EQ(count_selected_records(R"({"items":[{"v":)" + big + "}]}", e, &f1), 1u);
  EXPECT_EQ(count_selected_records(R"({"items":[{"v":123456789012345678901235}]})", e, &f2), 1u);
  EXPECT_EQ(count_selected_records(R"({"items": [ {"v": )" + big + " } ] }", e, &f3), 1u);
  EXPECT_NE(f1, f2);
  EXPECT_EQ(f1, f3);
  // Still refused: a page that is wrong in another way too (same error as before), and a float too
  // big for a double (simdjson's own rule).
  for (const std::string& bad : {R"({"items":[)" + big + ",]}", R"({"items":[)" + big + "x]}",
                                 R"({"items":[0)" + big + "]}", std::string(R"({"items":[1e400]})")}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(error_of([&] { select_records(bad, e); }), HasSubstr("not JSON"));
    expect_agree(bad, e);
  }
}

// The DOM's stand-in for each big integer is a double no other number of the page holds: a page
// that does hold the first stand-ins keeps its own numbers as they were.
TEST(VisitRecords, BigIntegerStandInsNeverReplaceThePagesOwnNumbers) {
  Endpoint e;
  std::string page = "[";
  for (uint64_t k = 0; k < 8; ++k) {
    char text[64];
    std::snprintf(text, sizeof text, "%.17g", std::ldexp(-static_cast<double>((uint64_t(1) << 52) + k), -1000));
    page += std::string(text) + ",";
  }
  page += "123456789012345678901234]";
  const std::vector<std::string> records = select_records(page, e);
  ASSERT_EQ(records.size(), 9u);
  EXPECT_EQ(records.back(), "123456789012345678901234");
  for (std::size_t k = 0; k < 8; ++k) {
    EXPECT_NE(records[k], "123456789012345678901234") << k;
    EXPECT_EQ(records[k].find("e-"), records[k].find('e')) << records[k];  // still a tiny double
  }
  expect_same_as_select(page, e);
}

// Random damage to valid pages (a byte deleted, inserted or replaced, from the characters JSON cares
// about): visit_records and select_records must agree on every result.
TEST(VisitRecords, AgreesWithSelectOnRandomlyDamagedPages) {
  const std::vector<std::string> pages = {
      R"({"total":3,"items":[{"id":1,"s":"a\"b\\c\u00e9","f":-1.5e3,"t":true,"n":null},{"id":2,"l":[1,[2],{}]},"x"]})",
      R"({"meta":{"next":"p2"},"items":[{"k":"\ud83d\ude00","v":[0,-0,1e-5,12345678901234567890]}],"z":false})",
      R"([{"a":{"b":{"c":[true,false,null]}}},{"d":"\/\b\f\n\r\t"},18446744073709551615])",
      // numbers at the edges of their ranges, deeper nesting; an escaped key on the pointer's path
      R"({"x":[[[{"i":9223372036854775807}]]],"items":[-9223372036854775808,1.7976931348623157e308,)"
      R"(9.9e307,0.5e-400,{"k":[[[]],{}],"e":1E+2},"",null]})",
      R"({"it\u0065m":0,"items":[{"u":18446744073709551615,"v":-0.0e-0}],"it\u0065ms":1})"};
  const std::string alphabet = "{}[],:\"\\ 0123456789.eE+-tfnrulax/\x01\x7f\xc3\xa9\xff";
  std::uint64_t s = 0x2545F4914F6CDD1DULL;
  auto next = [&s] {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  };
  std::size_t refused = 0, accepted = 0;
  for (int round = 0; round < 12000; ++round) {
    std::string body = pages[next() % pages.size()];
    Endpoint e;
    e.records_pointer = body[0] == '[' ? "" : "/items";
    const int edits = 1 + static_cast<int>(next() % 3);
    for (int k = 0; k < edits && !body.empty(); ++k) {
      const std::size_t at = next() % body.size();
      const char c = alphabet[next() % alphabet.size()];
      switch (next() % 3) {
        case 0: body.erase(at, 1); break;
        case 1: body.insert(at, 1, c); break;
        default: body[at] = c; break;
      }
    }
    const bool valid = error_of([&] { select_records(body, e); }) == "<no RecordError>";
    (valid ? accepted : refused) += 1;
    expect_agree(body, e);
    if (::testing::Test::HasFailure()) break;  // one body is enough to debug
  }
  // Both outcomes were exercised (the damage is not always fatal).
  EXPECT_GT(refused, 1000u);
  EXPECT_GT(accepted, 100u);
}

}  // namespace
}  // namespace apilake
