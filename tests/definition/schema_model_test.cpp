// The schema model's YAML (docs/schema.md): every type's keys, evolution, and errors with FILE:LINE:COL.
#include "definition/definition.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace apilake {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

class SchemaYaml : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tpl = (fs::temp_directory_path() / "apilake-schema-XXXXXX").string();
    ASSERT_TRUE(mkdtemp(tpl.data()));
    dir_ = tpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // A source with one endpoint whose `schema:` block is `schema_block` (indented by the caller at 4).
  fs::path write(const std::string& schema_block) {
    text_ = "name: s\nbase_url: https://example.org\nendpoints:\n  - name: e\n    path: /x\n    schema:\n" +
            schema_block;
    fs::path p = dir_ / "s.yaml";
    std::ofstream(p) << text_;
    return p;
  }
  // "FILE:LINE:COL: " of the first occurrence of needle.
  std::string at(const fs::path& file, const std::string& needle) {
    auto pos = text_.find(needle);
    EXPECT_NE(pos, std::string::npos) << needle;
    int line = 1;
    std::size_t start = 0;
    for (std::size_t i = 0; i < pos; ++i)
      if (text_[i] == '\n') {
        ++line;
        start = i + 1;
      }
    return file.string() + ":" + std::to_string(line) + ":" + std::to_string(pos - start + 1) + ": ";
  }
  std::vector<std::string> errors(const std::string& block) { return validate_source_file(write(block)); }

  fs::path dir_;
  std::string text_;
};

TEST_F(SchemaYaml, EveryTypeLoads) {
  auto file = write(R"(      evolution: discard_value
      fields:
        - {name: id, type: int64, required: true}
        - {name: price, type: decimal, precision: 12, scale: 2, format: decimal_comma}
        - {name: status, type: enum, values: [open, closed], default: open}
        - {name: seen, type: bool, nullable: false, default: "false"}
        - name: owner
          type: struct
          path: /data/owner
          fields:
            - {name: login, type: string, required: true}
            - {name: since, type: date, format: dd/MM/yyyy}
        - name: tags
          type: list
          items: {type: struct, fields: [{name: name, type: string}]}
        - {name: ids, type: list, items: {type: int64, nullable: false}}
)");
  Source s = load_source_file(file);
  const Schema& sc = s.endpoints.at(0).schema;
  EXPECT_EQ(sc.evolution, Evolution::DiscardValue);
  ASSERT_EQ(sc.fields.size(), 7u);
  EXPECT_EQ(sc.fields[1].type, FieldType::Decimal);
  EXPECT_EQ(sc.fields[1].precision, 12);
  EXPECT_EQ(sc.fields[1].scale, 2);
  EXPECT_EQ(sc.fields[1].format, "decimal_comma");
  EXPECT_EQ(sc.fields[2].type, FieldType::Enum);
  EXPECT_EQ(sc.fields[2].values, (std::vector<std::string>{"open", "closed"}));
  EXPECT_EQ(sc.fields[2].default_value.value_or("?"), "open");
  EXPECT_FALSE(sc.fields[3].nullable);
  EXPECT_EQ(sc.fields[3].default_value.value_or("?"), "false");
  EXPECT_EQ(sc.fields[4].type, FieldType::Struct);
  EXPECT_EQ(sc.fields[4].path, "/data/owner");
  ASSERT_EQ(sc.fields[4].fields.size(), 2u);
  EXPECT_EQ(sc.fields[4].fields[0].path, "/login");
  EXPECT_TRUE(sc.fields[4].fields[0].required);
  EXPECT_EQ(sc.fields[4].fields[1].format, "dd/MM/yyyy");
  ASSERT_EQ(sc.fields[5].items.size(), 1u);
  EXPECT_EQ(sc.fields[5].items[0].type, FieldType::Struct);
  EXPECT_EQ(sc.fields[5].items[0].fields.at(0).name, "name");
  EXPECT_FALSE(sc.fields[6].items.at(0).nullable);
}

TEST_F(SchemaYaml, EvolutionDefaultsToIgnoreAndKnowsEveryPolicy) {
  auto file = write("      fields: [{name: a, type: string}]\n");
  EXPECT_EQ(load_source_file(file).endpoints[0].schema.evolution, Evolution::Ignore);
  for (auto [name, e] : {std::pair{"evolve", Evolution::Evolve}, std::pair{"freeze", Evolution::Freeze},
                         std::pair{"discard_value", Evolution::DiscardValue},
                         std::pair{"discard_row", Evolution::DiscardRow}, std::pair{"ignore", Evolution::Ignore}}) {
    auto f = write(std::string("      evolution: ") + name + "\n      fields: [{name: a, type: string}]\n");
    EXPECT_EQ(load_source_file(f).endpoints[0].schema.evolution, e) << name;
    EXPECT_STREQ(to_string(e), name);
  }
  auto bad = write("      evolution: loose\n      fields: [{name: a, type: string}]\n");
  auto errs = validate_source_file(bad);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(bad, "loose") +
                         "unknown evolution 'loose' (expected ignore | evolve | freeze | discard_value | discard_row)");
}

TEST_F(SchemaYaml, DecimalErrorsPointAtTheKey) {
  auto file = write("      fields:\n        - {name: p, type: decimal, precision: 40, scale: 2}\n");
  auto errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "40") + "decimal precision must be at most 38, got 40");

  file = write("      fields:\n        - {name: p, type: decimal, precision: 4, scale: 5}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "5}") + "decimal scale 5 exceeds precision 4");

  file = write("      fields:\n        - {name: p, type: decimal}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "{name: p") + "a decimal field needs 'precision' (1..38)");

  file = write("      fields:\n        - {name: p, type: int64, precision: 4}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "4}") + "'precision' applies only to decimal fields, not int64");
}

TEST_F(SchemaYaml, EnumStructListErrors) {
  auto file = write("      fields:\n        - {name: s, type: enum}\n");
  auto errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "{name: s") + "an enum field needs 'values', a non-empty list of strings");

  file = write("      fields:\n        - {name: s, type: enum, values: [a, b, a]}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "a]") + "duplicate enum value 'a'");

  file = write("      fields:\n        - {name: s, type: enum, values: [a], default: z}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "z}") + "default 'z' is not one of the enum values");

  file = write("      fields:\n        - {name: o, type: struct}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "{name: o") + "missing required key 'fields'");

  // errors inside a struct's fields and a list's items carry their own positions
  file = write("      fields:\n        - name: o\n          type: struct\n          fields:\n"
               "            - {name: x, type: strin}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0], ::testing::StartsWith(at(file, "strin")));
  EXPECT_THAT(errs[0], HasSubstr("unknown type 'strin'"));

  file = write("      fields:\n        - {name: l, type: list, items: {type: int64, name: n}}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0], ::testing::StartsWith(at(file, "name: n")));
  EXPECT_THAT(errs[0], HasSubstr("unknown key 'name' in list items"));

  file = write("      fields:\n        - {name: l, type: list}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "{name: l") + "missing required key 'items'");
}

TEST_F(SchemaYaml, NullableAndDefaultRules) {
  auto file = write("      fields:\n        - {name: a, type: string, nullable: false}\n");
  auto errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0], ::testing::StartsWith(at(file, "{name: a")));
  EXPECT_THAT(errs[0], HasSubstr("nullable: false but neither required nor given a default"));

  file = write("      fields:\n        - {name: a, type: string, required: true, default: x}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "x}") + "a required field cannot have a default (it is never absent)");

  file = write("      fields:\n        - {name: a, type: list, items: {type: int64}, default: x}\n");
  errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], at(file, "x}") + "a list field cannot have a default");

  // fine: nullable false with required, or with a default
  EXPECT_TRUE(errors("      fields:\n        - {name: a, type: string, nullable: false, required: true}\n").empty());
  EXPECT_TRUE(errors("      fields:\n        - {name: a, type: int64, nullable: false, default: '0'}\n").empty());
}

}  // namespace
}  // namespace apilake

namespace apilake {
namespace {

// The loader's pattern rule matches the curator's: only y M d H m s form tokens.
TEST_F(SchemaYaml, PatternLettersOtherThanTokensAreLiterals) {
  EXPECT_TRUE(errors("      fields:\n        - {name: t, type: timestamp, format: \"yyyy-MM-ddTHH:mm\"}\n").empty());
  auto file = write("      fields:\n        - {name: t, type: timestamp, format: \"yy-MM-dd\"}\n");
  auto errs = validate_source_file(file);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0], HasSubstr("unknown token 'yy'"));
}

// from_param: a top-level field whose value is a request parameter of the endpoint.
TEST(FromParamYaml, LoadsAndChecksTheParam) {
  std::string tpl = (fs::temp_directory_path() / "apilake-fromparam-XXXXXX").string();
  ASSERT_TRUE(mkdtemp(tpl.data()));
  const fs::path dir = tpl;
  auto write = [&](const std::string& fields) {
    const std::string text =
        "name: s\nbase_url: https://example.org\nendpoints:\n  - name: e\n    path: /x/{series}\n"
        "    params:\n      - {name: series, type: integer, in: path, required: true}\n"
        "    schema:\n      fields:\n" + fields;
    std::ofstream(dir / "s.yaml") << text;
    return dir / "s.yaml";
  };
  Source s = load_source_file(write("        - {name: value, type: double}\n"
                                    "        - {name: series, type: int64, from_param: series}\n"));
  ASSERT_EQ(s.endpoints[0].schema.fields.size(), 2u);
  EXPECT_EQ(s.endpoints[0].schema.fields[1].from_param, "series");
  EXPECT_EQ(s.endpoints[0].schema.fields[1].path, "");  // not read from the record

  auto errs = validate_source_file(write("        - {name: series, type: int64, from_param: serie}\n"));
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0], HasSubstr("s.yaml:10:"));
  EXPECT_THAT(errs[0], HasSubstr("from_param 'serie' is not a parameter of this endpoint"));
  errs = validate_source_file(write("        - {name: series, type: int64, path: /s, from_param: series}\n"));
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0], HasSubstr("either path or from_param"));
  errs = validate_source_file(
      write("        - {name: o, type: struct, fields: [{name: a, type: string, from_param: series}]}\n"));
  ASSERT_GE(errs.size(), 1u);
  EXPECT_THAT(errs[0], HasSubstr("only to top-level fields"));
  errs = validate_source_file(
      write("        - {name: o, type: list, items: {type: string}, from_param: series}\n"));
  ASSERT_GE(errs.size(), 1u);
  EXPECT_THAT(errs[0], HasSubstr("cannot take from_param"));
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace apilake
