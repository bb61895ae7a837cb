// The connector engine's declarative options: record selection (definition/records.h), typed
// params (enum, list, bounds, patterns), and the loader's checks of pagination / rate_limit /
// incremental / record_context / max_page_bytes keys.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "definition/definition.h"
#include "definition/records.h"

namespace apilake {
namespace {
namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string record_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const RecordError& e) {
    return e.what();
  }
  return "<no RecordError>";
}

// --- record selection ----------------------------------------------------------------------------

TEST(Records, ArrayObjectAndPointer) {
  Endpoint e;
  EXPECT_THAT(select_records(R"([{"a":1}, {"a":2}])", e), ElementsAre(R"({"a":1})", R"({"a":2})"));
  EXPECT_THAT(select_records(R"({"id":7})", e), ElementsAre(R"({"id":7})"));
  EXPECT_TRUE(select_records("[]", e).empty());
  e.records_pointer = "/data/items";
  EXPECT_THAT(select_records(R"({"data":{"items":[1,"x",null]}})", e), ElementsAre("1", R"("x")", "null"));
  EXPECT_EQ(count_selected_records(R"({"data":{"items":[1,2,3]}})", e), 3u);
}

// The fetcher's repeat-page check: same records (as values) = same fingerprint, whatever else on
// the page changed; any change in the records = a different one.
TEST(Records, FingerprintIsTheSelectedValues) {
  Endpoint e;
  e.records_pointer = "/items";
  auto fp = [&](const std::string& body) {
    std::size_t f = 0;
    count_selected_records(body, e, &f);
    return f;
  };
  const std::size_t base = fp(R"({"page":1,"items":[{"id":1,"s":"x","v":1.5,"ok":true,"n":null},[2,"y"]]})");
  // Other members, spacing, escapes and number spelling: the same records.
  EXPECT_EQ(base, fp(R"({"page":2,"next":"abc","items":[{"id":1,"s":"x","v":1.5,"ok":true,"n":null},[2,"y"]]})"));
  EXPECT_EQ(base, fp(R"({"items" : [ { "id" : 1 , "s" : "\u0078", "v" : 1.50 , "ok" : true, "n" : null } ,
                                    [ 2 , "y" ] ] })"));
  // Any change in the records.
  for (const char* other : {
           R"({"items":[{"id":2,"s":"x","v":1.5,"ok":true,"n":null},[2,"y"]]})",       // a number
           R"({"items":[{"id":1,"s":"X","v":1.5,"ok":true,"n":null},[2,"y"]]})",       // a string
           R"({"items":[{"id":1,"t":"x","v":1.5,"ok":true,"n":null},[2,"y"]]})",       // a key
           R"({"items":[{"id":1,"s":"x","v":1.5,"ok":false,"n":null},[2,"y"]]})",      // a boolean
           R"({"items":[{"id":1,"s":"x","v":1.0,"ok":true,"n":null},[2,"y"]]})",       // a double
           R"({"items":[{"id":1.0,"s":"x","v":1.5,"ok":true,"n":null},[2,"y"]]})",     // 1 vs 1.0
           R"({"items":[{"s":"x","id":1,"v":1.5,"ok":true,"n":null},[2,"y"]]})",       // member order
           R"({"items":[[2,"y"],{"id":1,"s":"x","v":1.5,"ok":true,"n":null}]})",       // record order
           R"({"items":[{"id":1,"s":"x","v":1.5,"ok":true,"n":null},[[2],"y"]]})",     // nesting
           R"({"items":[{"id":1,"s":"x","v":1.5,"ok":true,"n":null},{"2":"y"}]})",     // array vs object
           R"({"items":[{"id":1,"s":"x","v":1.5,"ok":true,"n":null}]})",               // a record fewer
       })
    EXPECT_NE(base, fp(other)) << other;
  // A string's content is not confused with structure.
  EXPECT_NE(fp(R"({"items":["a","b"]})"), fp(R"({"items":["ab"]})"));
  EXPECT_NE(fp(R"({"items":[["a"],[]]})"), fp(R"({"items":[[],["a"]]})"));
}

TEST(Records, Errors) {
  Endpoint e;
  e.records_pointer = "/items";
  EXPECT_THAT(record_error([&] { select_records(R"({"data":[]})", e); }),
              HasSubstr("records pointer '/items' does not reach a value"));
  EXPECT_THAT(record_error([&] { select_records(R"({"items":"x"})", e); }),
              HasSubstr("reaches a string, not an array or object"));
  e.records_pointer = "";
  EXPECT_THAT(record_error([&] { count_selected_records("42", e); }), HasSubstr("(the body) reaches a number"));
  EXPECT_EQ(record_error([&] { select_records("", e); }), "not JSON: the body is empty");
  EXPECT_EQ(record_error([&] { select_records(R"([{"a":1},{"a")", e); }),
            "not JSON: truncated: the document ends early at byte 13 (incomplete JSON)");
  EXPECT_THAT(record_error([&] { select_records("[1, 2, x]", e); }), HasSubstr("at byte 7"));
  EXPECT_THAT(record_error([&] { select_records("<html>", e); }), HasSubstr("at byte 0"));
  EXPECT_EQ(record_error([&] { select_records(R"({"a":1} x)", e); }),
            "not JSON: unexpected content after the document at byte 8");
}

TEST(Records, ParallelArraysWithContext) {
  // Open-Meteo's forecast shape.
  const std::string body = R"({"latitude":52.52,"longitude":13.41,"hourly_units":{"time":"iso8601"},
    "hourly":{"time":["2024-01-01T00:00","2024-01-01T01:00","2024-01-01T02:00"],
              "temperature_2m":[-1.5,null,0.25]}})";
  Endpoint e;
  e.records_pointer = "/hourly";
  e.record_shape = RecordShape::ParallelArrays;
  e.record_context = {{"latitude", "/latitude"}, {"longitude", "/longitude"}};
  EXPECT_THAT(
      select_records(body, e),
      ElementsAre(R"({"time":"2024-01-01T00:00","temperature_2m":-1.5,"latitude":52.52,"longitude":13.41})",
                  R"({"time":"2024-01-01T01:00","temperature_2m":null,"latitude":52.52,"longitude":13.41})",
                  R"({"time":"2024-01-01T02:00","temperature_2m":0.25,"latitude":52.52,"longitude":13.41})"));
  EXPECT_EQ(count_selected_records(body, e), 3u);
}

TEST(Records, ParallelArraysErrors) {
  Endpoint e;
  e.records_pointer = "/h";
  e.record_shape = RecordShape::ParallelArrays;
  EXPECT_EQ(record_error([&] { select_records(R"({"h":{"time":[1,2,3],"t":[1,2]}})", e); }),
            "record_shape parallel_arrays: member 't' has 2 values but 'time' has 3");
  EXPECT_EQ(record_error([&] { count_selected_records(R"({"h":{"time":[1,2,3],"t":[1,2]}})", e); }),
            "record_shape parallel_arrays: member 't' has 2 values but 'time' has 3");
  EXPECT_EQ(record_error([&] { select_records(R"({"h":{"time":[1],"t":5}})", e); }),
            "record_shape parallel_arrays: member 't' is a number, not an array");
  EXPECT_THAT(record_error([&] { select_records(R"({"h":[1,2]})", e); }),
              HasSubstr("needs an object of arrays at '/h', found an array"));
  EXPECT_TRUE(select_records(R"({"h":{}})", e).empty());
}

TEST(Records, ContextOnArraysAndErrors) {
  Endpoint e;
  e.records_pointer = "/items";
  e.record_context = {{"station", "/meta/station"}};
  EXPECT_THAT(select_records(R"({"meta":{"station":"A1"},"items":[{"v":1},{}]})", e),
              ElementsAre(R"({"v":1,"station":"A1"})", R"({"station":"A1"})"));
  EXPECT_THAT(record_error([&] { select_records(R"({"items":[{"v":1}]})", e); }),
              HasSubstr("record_context 'station': pointer '/meta/station' does not reach a value"));
  EXPECT_EQ(record_error([&] { select_records(R"({"meta":{"station":"A1"},"items":[{"v":1},5]})", e); }),
            "record 2 is a number, so record_context cannot be added to it");
  EXPECT_EQ(record_error([&] { count_selected_records(R"({"meta":{"station":"A1"},"items":[{"v":1},5]})", e); }),
            "record 2 is a number, so record_context cannot be added to it");
  EXPECT_EQ(record_error([&] { select_records(R"({"meta":{"station":"A1"},"items":[{"station":"B"}]})", e); }),
            "record 1 already has a field 'station' (record_context would overwrite it)");
}

// --- params ----------------------------------------------------------------------------------------

ParamSpec spec(std::string name, ParamType type) {
  ParamSpec p;
  p.name = name;
  p.api_name = name;
  p.type = type;
  return p;
}

std::string param_error(const Endpoint& e, const Params& given) {
  try {
    validate_params(e, given);
  } catch (const ParamError& ex) {
    return ex.what();
  }
  return "<no ParamError>";
}

TEST(Params, EnumListBoundsPattern) {
  Endpoint e;
  auto state = spec("state", ParamType::Enum);
  state.values = {"open", "closed", "all"};
  auto labels = spec("labels", ParamType::List);
  labels.pattern = "[a-z-]+";
  auto ids = spec("ids", ParamType::List);
  ids.item_type = ParamType::Integer;
  ids.minimum = "1";
  auto lat = spec("lat", ParamType::Number);
  lat.minimum = "-90";
  lat.maximum = "90";
  auto day = spec("day", ParamType::Date);
  day.minimum = "2000-01-01";
  auto code = spec("code", ParamType::String);
  code.pattern = "[A-Z]{3}";
  e.params = {state, labels, ids, lat, day, code};

  auto ok = validate_params(e, {{"state", "closed"}, {"labels", "bug,good-first"}, {"ids", "+3,40"}, {"lat", "-33.5"},
                                {"day", "2024-02-29"}, {"code", "BRL"}});
  EXPECT_EQ(ok.at("state"), "closed");
  EXPECT_EQ(ok.at("labels"), "bug,good-first");
  EXPECT_EQ(ok.at("ids"), "3,40");
  EXPECT_EQ(ok.at("lat"), "-33.5");

  EXPECT_EQ(param_error(e, {{"state", "opened"}}), "parameter 'state': expected one of open, closed, all, got 'opened'");
  EXPECT_EQ(param_error(e, {{"labels", "bug,,x"}}), "parameter 'labels': item 2 of the list is empty, got 'bug,,x'");
  EXPECT_EQ(param_error(e, {{"labels", "bug,Nope"}}),
            "parameter 'labels': item 2 ('Nope'): does not match the pattern [a-z-]+, got 'bug,Nope'");
  EXPECT_EQ(param_error(e, {{"ids", "1,0"}}), "parameter 'ids': item 2 ('0'): must be at least 1, got '1,0'");
  EXPECT_EQ(param_error(e, {{"ids", "1,x"}}), "parameter 'ids': item 2 ('x'): expected an integer, got '1,x'");
  EXPECT_EQ(param_error(e, {{"lat", "90.5"}}), "parameter 'lat': must be at most 90, got '90.5'");
  EXPECT_EQ(param_error(e, {{"lat", "1e999"}}), "parameter 'lat': number out of range, got '1e999'");
  EXPECT_EQ(param_error(e, {{"day", "1999-12-31"}}), "parameter 'day': must be at least 2000-01-01, got '1999-12-31'");
  EXPECT_EQ(param_error(e, {{"day", "2023-02-29"}}), "parameter 'day': not a calendar date, got '2023-02-29'");
  // Anchored: a match inside the value is not enough.
  EXPECT_EQ(param_error(e, {{"code", "xBRLx"}}), "parameter 'code': does not match the pattern [A-Z]{3}, got 'xBRLx'");
  EXPECT_EQ(param_error(e, {{"nope", "1"}}), "unknown parameter 'nope'");
}

// --- loader ------------------------------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    std::string tpl = (fs::temp_directory_path() / "apilake-eng-XXXXXX").string();
    if (!mkdtemp(tpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path write(const std::string& text) const {
    fs::path p = path_ / "source.yaml";
    std::ofstream(p) << text;
    return p;
  }

 private:
  fs::path path_;
};

const std::string kFull = R"(name: weather
base_url: https://api.example.org
rate_limit:
  requests_per_second: 2.5
  max_concurrent: 2
max_page_bytes: 1048576
endpoints:
  - name: hourly
    path: /v1/forecast
    params:
      - {name: latitude, type: number, minimum: -90, maximum: 90, required: true}
      - {name: vars, type: list, item_type: enum, values: [temperature_2m, rain], default: [temperature_2m, rain], explode: true}
      - {name: ids, type: list, item_type: integer, separator: "|", default: "1,2"}
      - {name: since, type: date, format: dd/MM/yyyy, minimum: "2000-01-01"}
      - {name: code, type: string, pattern: "[A-Z]{3}"}
    pagination:
      kind: cursor
      cursor_pointer: /meta/next
      cursor_param: after
      stop_on_empty: false
      total_pointer: /meta/total
      has_more_pointer: /meta/more
      max_pages: 50
    records: /hourly
    record_shape: parallel_arrays
    record_context: {lat: /latitude, lon: /longitude}
    incremental: {cursor_field: time, param: since}
    schema:
      fields:
        - {name: time, type: string}
  - name: pages
    path: /v1/list
    pagination: {kind: link_header}
    schema:
      fields:
        - {name: id, type: int64}
)";

// The loader compiles a param's pattern once (requests never compile a regex) and validate_params
// applies that compiled pattern: a whole-value match, so a value merely containing a match fails.
TEST(Loader, LoadedPatternIsCompiledAndApplied) {
  TempDir d;
  Source s = load_source_file(d.write(kFull));
  const Endpoint& e = s.endpoints[0];
  ASSERT_NE(e.param("code"), nullptr);
  EXPECT_NE(e.param("code")->compiled_pattern, nullptr);
  EXPECT_EQ(e.param("latitude")->compiled_pattern, nullptr);  // no pattern, nothing compiled
  const Params ok = validate_params(e, {{"latitude", "1"}, {"code", "BRL"}});
  EXPECT_EQ(ok.at("code"), "BRL");
  for (const char* bad : {"brl", "xBRLx", "BR", ""}) {
    try {
      validate_params(e, {{"latitude", "1"}, {"code", bad}});
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ParamError& err) {
      EXPECT_EQ(err.param, "code");
      EXPECT_THAT(err.what(), ::testing::HasSubstr("does not match the pattern [A-Z]{3}")) << bad;
    }
  }
}

TEST(Loader, EveryEngineOptionLoads) {
  TempDir d;
  auto f = d.write(kFull);
  EXPECT_TRUE(validate_source_file(f).empty()) << ::testing::PrintToString(validate_source_file(f));
  Source s = load_source_file(f);
  EXPECT_EQ(s.rate_limit.requests_per_second, 2.5);
  EXPECT_EQ(s.rate_limit.max_concurrent, 2);
  EXPECT_EQ(s.max_page_bytes, 1048576u);
  const Endpoint& e = s.endpoints[0];
  EXPECT_EQ(e.param("latitude")->minimum, "-90");
  EXPECT_EQ(e.param("vars")->type, ParamType::List);
  EXPECT_EQ(e.param("vars")->item_type, ParamType::Enum);
  EXPECT_EQ(e.param("vars")->default_value, "temperature_2m,rain");
  EXPECT_TRUE(e.param("vars")->explode);
  EXPECT_EQ(e.param("ids")->separator, "|");
  EXPECT_EQ(e.param("code")->pattern, "[A-Z]{3}");
  EXPECT_EQ(e.pagination.kind, Pagination::Kind::Cursor);
  EXPECT_EQ(e.pagination.cursor_pointer, "/meta/next");
  EXPECT_EQ(e.pagination.cursor_param, "after");
  EXPECT_FALSE(e.pagination.stop_on_empty);
  EXPECT_FALSE(e.pagination.stops_on_short());
  EXPECT_EQ(e.pagination.total_pointer, "/meta/total");
  EXPECT_EQ(e.pagination.has_more_pointer, "/meta/more");
  EXPECT_EQ(e.record_shape, RecordShape::ParallelArrays);
  ASSERT_EQ(e.record_context.size(), 2u);
  EXPECT_EQ(e.record_context[1].first, "lon");
  ASSERT_TRUE(e.incremental);
  EXPECT_EQ(e.incremental->cursor_field, "/time");
  EXPECT_EQ(e.incremental->param, "since");
  EXPECT_EQ(s.endpoints[1].pagination.kind, Pagination::Kind::LinkHeader);
  Pagination pn;
  pn.kind = Pagination::Kind::PageNumber;
  EXPECT_TRUE(pn.stops_on_short());
}

// Replaces `from` with `to` in kFull and returns every error of the result.
std::vector<std::string> errors_with(const std::string& from, const std::string& to) {
  std::string text = kFull;
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  text.replace(pos, from.size(), to);
  TempDir d;
  return validate_source_file(d.write(text));
}

MATCHER_P(AnyHas, needle, "") {
  for (const auto& e : arg)
    if (e.find(needle) != std::string::npos) return true;
  *result_listener << ::testing::PrintToString(arg);
  return false;
}

TEST(Loader, BadEngineOptionsAreReportedWithPositions) {
  EXPECT_THAT(errors_with("kind: cursor", "kind: cursors"), AnyHas("unknown kind 'cursors'"));
  EXPECT_THAT(errors_with("      cursor_param: after\n", ""), AnyHas("missing required key 'cursor_param'"));
  EXPECT_THAT(errors_with("cursor_pointer: /meta/next", "cursor_pointer: meta"),
              AnyHas("cursor_pointer must be a JSON pointer"));
  EXPECT_THAT(errors_with("      stop_on_empty: false", "      stop_on_short: true"),
              AnyHas("'stop_on_short' applies only to pagination kind page_number or offset_limit"));
  EXPECT_THAT(errors_with("requests_per_second: 2.5", "requests_per_second: fast"),
              AnyHas("requests_per_second must be a positive number, got 'fast'"));
  EXPECT_THAT(errors_with("max_concurrent: 2", "max_concurrent: 0"), AnyHas("'max_concurrent' must be at least 1"));
  EXPECT_THAT(errors_with("max_page_bytes: 1048576", "max_page_bytes: 99999999"),
              AnyHas("max_page_bytes can be at most 10485760"));
  EXPECT_THAT(errors_with("record_shape: parallel_arrays", "record_shape: columns"),
              AnyHas("unknown record_shape 'columns'"));
  EXPECT_THAT(errors_with("lon: /longitude", "lon: longitude"), AnyHas("record_context 'lon' must be a JSON pointer"));
  EXPECT_THAT(errors_with("param: since}", "param: until}"),
              AnyHas("incremental param 'until' is not a parameter of this endpoint"));
  EXPECT_THAT(errors_with("values: [temperature_2m, rain], default: [temperature_2m, rain]",
                          "values: [temperature_2m, rain], default: [snow]"),
              AnyHas("default of 'vars': item 1 ('snow'): expected one of temperature_2m, rain"));
  EXPECT_THAT(errors_with("item_type: enum, values: [temperature_2m, rain]", "item_type: enum"),
              AnyHas("enum parameter 'vars' needs values"));
  EXPECT_THAT(errors_with("minimum: -90, maximum: 90", "minimum: 90, maximum: -90"),
              AnyHas("maximum -90 is below minimum 90"));
  EXPECT_THAT(errors_with("pattern: \"[A-Z]{3}\"", "pattern: \"[A-Z\""), AnyHas("is not a valid regular expression"));
  EXPECT_THAT(errors_with("type: string, pattern", "type: integer, pattern"),
              AnyHas("pattern applies only to string parameters"));
  EXPECT_THAT(errors_with("separator: \"|\"", "explode: maybe"), AnyHas("'explode' must be true or false"));
  auto errs = errors_with("kind: cursor", "kind: cursors");
  ASSERT_FALSE(errs.empty());
  EXPECT_THAT(errs[0], HasSubstr("source.yaml:"));
}

}  // namespace
}  // namespace apilake
