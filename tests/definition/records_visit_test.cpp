// visit_records (definition/records.h), the curator's on-demand form of select_records: for every
// page shape it must yield the same records, in the same order, with the same errors, and each
// record's on-demand value must read as that record.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
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

// The value read on demand, re-serialised through the DOM so that whitespace does not matter.
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
  simdjson::dom::parser p;
  simdjson::dom::element e;
  const std::string copy(raw);
  if (p.parse(copy).get(e)) return "<unparseable: " + copy + ">";
  return simdjson::minify(e);
}

Visited visit(const std::string& body, const Endpoint& e) {
  Visited out;
  out.returned = visit_records(body, e, [&](PageRecord& r) {
    out.texts.push_back(r.text());
    out.raw.push_back(read_value(r.value));
    out.indexes.push_back(r.index);
  });
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

}  // namespace
}  // namespace apilake
