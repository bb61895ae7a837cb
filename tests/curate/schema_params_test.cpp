// from_param fields (a request parameter of the extraction as a column) and the check of a field's
// `default` by the schema compiler (docs/schema.md "from_param", "Invalid schemas").
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "curate/schema.h"
#include "definition/definition.h"
#include "support/curate_fixtures.h"

namespace apilake {
namespace {

using test::field;

FieldSpec param_field(std::string name, FieldType type, std::string param) {
  FieldSpec f = field(std::move(name), type);
  f.path.clear();
  f.from_param = std::move(param);
  return f;
}

TEST(FromParam, TakesTheValueFromTheParamsNotTheRecord) {
  Schema s;
  s.fields = {field("value", FieldType::Double), param_field("series", FieldType::Int64, "series")};
  RecordValidator v(s);
  v.set_params({{"series", "433"}, {"start", "2024-01-01"}});
  Outcome o = v.apply(R"({"value":1.5,"series":"999"})");  // a record key of that name is not read
  ASSERT_TRUE(o.row) << o.reason->detail;
  EXPECT_EQ(std::get<int64_t>((*o.row)[1]), 433);
  // params change per message
  v.set_params({{"series", "11"}});
  o = v.apply(R"({"value":2})");
  ASSERT_TRUE(o.row);
  EXPECT_EQ(std::get<int64_t>((*o.row)[1]), 11);
}

TEST(FromParam, AbsentParamFollowsTheAbsentRules) {
  Schema s;
  FieldSpec req = param_field("series", FieldType::Int64, "series");
  req.required = true;
  s.fields = {req};
  RecordValidator v(s);
  Outcome o = v.apply(R"({"a":1})");  // no params at all (e.g. an older message)
  ASSERT_FALSE(o.row);
  EXPECT_EQ(o.reason->code, "missing_required");
  EXPECT_EQ(o.reason->field, "series");

  Schema d;
  FieldSpec def = param_field("region", FieldType::String, "region");
  def.default_value = "all";
  d.fields = {def, param_field("other", FieldType::String, "other")};
  RecordValidator w(d);
  o = w.apply("{}");
  ASSERT_TRUE(o.row);
  EXPECT_EQ(std::get<std::string>((*o.row)[0]), "all");
  EXPECT_TRUE(std::holds_alternative<std::monostate>((*o.row)[1]));
}

TEST(FromParam, CoercedLikeAJsonStringOfTheType) {
  Schema s;
  FieldSpec day = param_field("day", FieldType::Date, "start");
  FieldSpec n = param_field("n", FieldType::Int64, "n");
  s.fields = {day, n};
  RecordValidator v(s);
  v.set_params({{"start", "2024-02-29"}, {"n", "12"}});
  Outcome o = v.apply("{}");
  ASSERT_TRUE(o.row);
  EXPECT_EQ(std::get<DateDays>((*o.row)[0]).days, days_from_civil(2024, 2, 29));
  v.set_params({{"start", "2024-02-29"}, {"n", "abc"}});
  o = v.apply("{}");
  ASSERT_FALSE(o.row);
  EXPECT_EQ(o.reason->code, "bad_format");
  EXPECT_EQ(o.reason->field, "n");
}

TEST(FromParam, IsNotAnUnknownKeyOnlyWhenARealFieldReadsIt) {
  Schema s;
  s.evolution = Evolution::Freeze;
  s.fields = {field("value", FieldType::Double), param_field("series", FieldType::String, "series")};
  RecordValidator v(s);
  v.set_params({{"series", "1"}});
  EXPECT_TRUE(v.apply(R"({"value":1})").row);
  Outcome o = v.apply(R"({"value":1,"series":"x"})");  // the record's own key is unknown under freeze
  ASSERT_FALSE(o.row);
  EXPECT_EQ(o.reason->code, "unknown_field");
}

TEST(FromParam, StructOrListRefused) {
  Schema s;
  FieldSpec st = param_field("p", FieldType::Struct, "p");
  st.fields = {field("a", FieldType::String)};
  s.fields = {st};
  auto problems = schema_problems(s);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("cannot take from_param"), std::string::npos);
  EXPECT_THROW(RecordValidator{s}, std::invalid_argument);
}

TEST(MessageParams, ParsesTheAttribute) {
  auto p = message_params(R"({"series":"433","n":5,"b":true,"z":null})");
  EXPECT_EQ(p.size(), 3u);
  EXPECT_EQ(p["series"], "433");
  EXPECT_EQ(p["n"], "5");
  EXPECT_EQ(p["b"], "true");
  EXPECT_TRUE(message_params("").empty());
  EXPECT_TRUE(message_params("[1]").empty());
  EXPECT_TRUE(message_params("{bad").empty());
}

// The same conversion as records: every kind of bad default is caught, with the field named.
TEST(DefaultProblem, CaughtByTheFieldsOwnConversion) {
  FieldSpec i = field("n", FieldType::Int64);
  i.default_value = "abc";
  EXPECT_NE(default_problem(i).find("field 'n': default expected int64"), std::string::npos) << default_problem(i);
  i.default_value = "12";
  EXPECT_EQ(default_problem(i), "");

  FieldSpec d = field("day", FieldType::Date);
  d.format = "dd/MM/yyyy";
  d.default_value = "31/02/2024";
  EXPECT_NE(default_problem(d).find("field 'day'"), std::string::npos);
  EXPECT_NE(default_problem(d).find("does not exist"), std::string::npos) << default_problem(d);
  d.default_value = "29/02/2024";
  EXPECT_EQ(default_problem(d), "");

  FieldSpec e = field("kind", FieldType::Enum);
  e.values = {"a", "b"};
  e.default_value = "c";
  EXPECT_NE(default_problem(e).find("field 'kind'"), std::string::npos);

  FieldSpec m = field("amount", FieldType::Decimal);
  m.precision = 4;
  m.scale = 2;
  m.default_value = "123.45";
  EXPECT_NE(default_problem(m).find("does not fit decimal(4,2)"), std::string::npos) << default_problem(m);
  m.default_value = "12.34";
  EXPECT_EQ(default_problem(m), "");

  FieldSpec b = field("flag", FieldType::Bool);
  b.default_value = "maybe";
  EXPECT_NE(default_problem(b), "");
  FieldSpec none = field("x", FieldType::Int64);
  EXPECT_EQ(default_problem(none), "");  // no default, nothing to say

  // schema_problems() lists them too, one per field
  Schema s;
  FieldSpec i2 = i;
  i2.default_value = "x";
  s.fields = {i2, e};
  auto problems = schema_problems(s);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("'n'"), std::string::npos);
  EXPECT_NE(problems[1].find("'kind'"), std::string::npos);
}

// With the curator's check installed (as app/ does at start-up), loading and `sources validate` name
// the file, line, column and field of a bad default.
TEST(DefaultProblem, DefinitionLoadingUsesIt) {
  namespace fs = std::filesystem;
  std::string tpl = (fs::temp_directory_path() / "apilake-default-XXXXXX").string();
  ASSERT_TRUE(mkdtemp(tpl.data()));
  const fs::path file = fs::path(tpl) / "s.yaml";
  std::ofstream(file) << "name: s\nbase_url: https://example.org\nendpoints:\n  - name: e\n    path: /x\n"
                         "    schema:\n      fields:\n"
                         "        - {name: ok, type: int64, default: \"7\"}\n"
                         "        - {name: n, type: int64, default: abc}\n"
                         "        - {name: day, type: date, format: dd/MM/yyyy, default: 31/02/2024}\n"
                         "        - {name: amount, type: decimal, precision: 4, scale: 2, default: \"123.45\"}\n";
  set_default_check(&default_problem);
  auto errors = validate_source_file(file);
  EXPECT_THROW(load_source_file(file), DefinitionError);
  set_default_check(nullptr);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].rfind(file.string() + ":9:", 0), 0u) << errors[0];
  EXPECT_NE(errors[0].find("field 'n': invalid default 'abc'"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1].rfind(file.string() + ":10:", 0), 0u) << errors[1];
  EXPECT_NE(errors[1].find("field 'day'"), std::string::npos);
  EXPECT_EQ(errors[2].rfind(file.string() + ":11:", 0), 0u) << errors[2];
  EXPECT_NE(errors[2].find("field 'amount'"), std::string::npos);
  // without the check only the model's own rules run (the curator still refuses the schema)
  EXPECT_TRUE(validate_source_file(file).empty());
  fs::remove_all(tpl);
}

}  // namespace
}  // namespace apilake
