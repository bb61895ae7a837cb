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
using ::testing::StartsWith;

class TempDir {
 public:
  TempDir() {
    std::string tpl = (fs::temp_directory_path() / "apilake-def-XXXXXX").string();
    if (!mkdtemp(tpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& rel, const std::string& text) const {
    fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }

 private:
  fs::path path_;
};

// "FILE:LINE:COL: " for the first occurrence of `needle` in `text` (1-based, as editors count).
std::string where(const fs::path& file, const std::string& text, const std::string& needle) {
  auto pos = text.find(needle);
  EXPECT_NE(pos, std::string::npos) << needle;
  int line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < pos; ++i)
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  return file.string() + ":" + std::to_string(line) + ":" + std::to_string(pos - line_start + 1) + ": ";
}

const std::string kValid = R"(name: bcb_sgs
description: Banco Central do Brasil - SGS time series
base_url: https://api.bcb.gov.br/
auth:
  kind: bearer
  env: BCB_TOKEN
endpoints:
  - name: series
    description: Daily values
    path: /dados/serie/bcdata.sgs.{series}/dados
    query: {formato: json}
    params:
      - name: series
        type: integer
        in: path
        required: true
        description: SGS series code
      - name: start
        type: date
        api_name: dataInicial
        format: dd/MM/yyyy
        required: true
      - name: end
        type: date
        api_name: dataFinal
        format: dd/MM/yyyy
        default: "2024-12-31"
      - {name: ratio, type: number}
      - {name: full, type: boolean, default: "false"}
      - {name: label, type: string}
    example: {series: 11, start: "2024-01-01", end: "2024-01-31"}
    pagination:
      kind: page_number
      page_param: pagina
      size_param: ""
      start_page: 0
      page_size: 50
      max_pages: 7
    records: /items
    schema:
      version: 3
      fields:
        - {name: date,  type: date,   path: /data,  format: dd/MM/yyyy, required: true}
        - {name: value, type: double, path: /valor, required: true, format: decimal_comma}
        - {name: seen_at, type: timestamp, format: epoch_ms}
        - {name: n, type: int64}
        - {name: ok, type: bool}
        - {name: note, type: string}
  - name: latest
    path: /latest
    pagination: {kind: next_url, next_pointer: /links/next}
    schema:
      fields:
        - {name: v, type: string}
)";

TEST(Definition, ValidFileLoadsEveryField) {
  TempDir d;
  auto file = d.write("bcb_sgs/source.yaml", kValid);
  EXPECT_TRUE(validate_source_file(file).empty()) << testing::PrintToString(validate_source_file(file));
  Source s = load_source_file(file);
  EXPECT_EQ(s.name, "bcb_sgs");
  EXPECT_EQ(s.description, "Banco Central do Brasil - SGS time series");
  EXPECT_EQ(s.base_url, "https://api.bcb.gov.br");  // trailing '/' dropped: paths start with '/'
  EXPECT_EQ(s.auth.kind, AuthKind::Bearer);
  EXPECT_EQ(s.auth.env, "BCB_TOKEN");
  EXPECT_EQ(s.file, file);
  EXPECT_EQ(s.dir, file.parent_path());
  ASSERT_EQ(s.endpoints.size(), 2u);
  const Endpoint* e = s.endpoint("series");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(s.endpoint("nope"), nullptr);
  EXPECT_EQ(e->description, "Daily values");
  EXPECT_EQ(e->path, "/dados/serie/bcdata.sgs.{series}/dados");
  EXPECT_EQ(e->fixed_query, (std::map<std::string, std::string>{{"formato", "json"}}));
  ASSERT_EQ(e->params.size(), 6u);
  const ParamSpec* series = e->param("series");
  ASSERT_NE(series, nullptr);
  EXPECT_EQ(series->type, ParamType::Integer);
  EXPECT_EQ(series->in, ParamLocation::Path);
  EXPECT_EQ(series->api_name, "series");
  EXPECT_TRUE(series->required);
  EXPECT_EQ(series->description, "SGS series code");
  const ParamSpec* end = e->param("end");
  ASSERT_NE(end, nullptr);
  EXPECT_EQ(end->type, ParamType::Date);
  EXPECT_EQ(end->in, ParamLocation::Query);
  EXPECT_EQ(end->api_name, "dataFinal");
  EXPECT_EQ(end->format, "dd/MM/yyyy");
  EXPECT_FALSE(end->required);
  EXPECT_EQ(end->default_value, std::optional<std::string>("2024-12-31"));
  EXPECT_EQ(e->param("ratio")->type, ParamType::Number);
  EXPECT_EQ(e->param("full")->type, ParamType::Boolean);
  EXPECT_EQ(e->param("label")->type, ParamType::String);
  EXPECT_EQ(e->param("missing"), nullptr);
  EXPECT_EQ(e->example.at("series"), "11");
  EXPECT_EQ(e->example.at("end"), "2024-01-31");
  EXPECT_EQ(e->pagination.kind, Pagination::Kind::PageNumber);
  EXPECT_EQ(e->pagination.page_param, "pagina");
  EXPECT_EQ(e->pagination.size_param, "");
  EXPECT_EQ(e->pagination.start_page, 0);
  EXPECT_EQ(e->pagination.page_size, 50);
  EXPECT_EQ(e->pagination.max_pages, 7);
  EXPECT_EQ(e->records_pointer, "/items");
  EXPECT_EQ(e->schema.version, 3);
  ASSERT_EQ(e->schema.fields.size(), 6u);
  EXPECT_EQ(e->schema.fields[0].name, "date");
  EXPECT_EQ(e->schema.fields[0].type, FieldType::Date);
  EXPECT_EQ(e->schema.fields[0].path, "/data");
  EXPECT_EQ(e->schema.fields[0].format, "dd/MM/yyyy");
  EXPECT_TRUE(e->schema.fields[0].required);
  EXPECT_EQ(e->schema.fields[1].type, FieldType::Double);
  EXPECT_EQ(e->schema.fields[1].format, "decimal_comma");
  EXPECT_EQ(e->schema.fields[2].type, FieldType::Timestamp);
  EXPECT_EQ(e->schema.fields[2].path, "/seen_at");  // default: "/" + name
  EXPECT_FALSE(e->schema.fields[2].required);
  EXPECT_EQ(e->schema.fields[3].type, FieldType::Int64);
  EXPECT_EQ(e->schema.fields[4].type, FieldType::Bool);
  EXPECT_EQ(e->schema.fields[5].type, FieldType::String);

  const Endpoint* latest = s.endpoint("latest");
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(latest->pagination.kind, Pagination::Kind::NextUrl);
  EXPECT_EQ(latest->pagination.next_pointer, "/links/next");
  EXPECT_EQ(latest->pagination.max_pages, 1000);
  EXPECT_EQ(latest->records_pointer, "");
  EXPECT_EQ(latest->schema.version, 1);
}

// Each case: replace `from` in the valid file by `to`; the first error must point at `at` (a
// substring of the edited text) and mention `says`.
struct BadCase {
  const char* label;
  std::string from, to, at, says;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.label; }

class DefinitionErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(DefinitionErrors, ReportLineAndColumn) {
  const BadCase& c = GetParam();
  std::string text = kValid;
  auto pos = text.find(c.from);
  ASSERT_NE(pos, std::string::npos) << c.from;
  text.replace(pos, c.from.size(), c.to);
  TempDir d;
  auto file = d.write("source.yaml", text);
  auto errors = validate_source_file(file);
  ASSERT_FALSE(errors.empty()) << c.label;
  EXPECT_THAT(errors.front(), StartsWith(where(file, text, c.at))) << c.label << "\n" << errors.front();
  EXPECT_THAT(errors.front(), HasSubstr(c.says)) << c.label;
  try {
    load_source_file(file);
    ADD_FAILURE() << c.label << ": loaded";
  } catch (const DefinitionError& e) {
    EXPECT_THAT(e.what(), StartsWith(errors.front())) << c.label;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DefinitionErrors,
    ::testing::Values(
        BadCase{"param type", "type: integer", "type: integr", "integr", "unknown type 'integr'"},
        BadCase{"param location", "in: path", "in: body", "body", "unknown in 'body'"},
        BadCase{"field type", "type: double", "type: float", "float", "unknown type 'float'"},
        BadCase{"source name", "name: bcb_sgs", "name: Bcb-Sgs", "Bcb-Sgs", "[a-z][a-z0-9_]*"},
        BadCase{"endpoint name", "name: latest", "name: 2latest", "2latest", "endpoint name"},
        BadCase{"duplicate endpoint", "name: latest", "name: series", "series\n    path: /latest",
                "duplicate endpoint name 'series'"},
        BadCase{"relative base_url", "https://api.bcb.gov.br/", "api.bcb.gov.br", "api.bcb.gov.br", "base_url"},
        BadCase{"ftp base_url", "https://api.bcb.gov.br/", "ftp://api.bcb.gov.br", "ftp://", "base_url"},
        BadCase{"credentials in base_url", "https://api.bcb.gov.br/", "https://u:p@api.bcb.gov.br", "https://u:p",
                "credentials"},
        BadCase{"path without slash", "path: /latest", "path: latest", "latest\n    pagination", "must start with '/'"},
        BadCase{"placeholder without param", "path: /latest", "path: /latest/{id}", "/latest/{id}",
                "'{id}' has no parameter"},
        BadCase{"path param without placeholder", "bcdata.sgs.{series}/dados", "bcdata.sgs.11/dados",
                "/dados/serie", "path parameter 'series' has no {series}"},
        BadCase{"auth kind", "kind: bearer", "kind: oauth", "oauth", "unknown kind 'oauth'"},
        BadCase{"auth without env", "  env: BCB_TOKEN\n", "", "kind: bearer", "missing required key 'env'"},
        BadCase{"secret in auth", "  env: BCB_TOKEN\n", "  env: BCB_TOKEN\n  token: abc123\n", "token:",
                "looks like a secret"},
        BadCase{"secret in fixed query", "{formato: json}", "{formato: json, api_key: abc}", "api_key",
                "looks like a secret"},
        BadCase{"pagination kind", "kind: page_number", "kind: scroll", "scroll", "unknown kind 'scroll'"},
        BadCase{"page_size zero", "page_size: 50", "page_size: 0", "0\n      max_pages", "at least 1"},
        BadCase{"max_pages zero", "max_pages: 7", "max_pages: 0", "0\n    records", "at least 1"},
        BadCase{"key for another kind", "start_page: 0", "next_pointer: /next", "/next\n",
                "applies only to pagination kind next_url"},
        BadCase{"records pointer", "records: /items", "records: items", "items\n", "JSON pointer"},
        BadCase{"duplicate field", "{name: n, type: int64}", "{name: note, type: int64}", "{name: note, type: string}",
                "duplicate field name 'note'"},
        BadCase{"field identifier", "{name: n, type: int64}", "{name: 9n, type: int64}", "9n", "identifier"},
        BadCase{"param date format", "format: dd/MM/yyyy\n        required", "format: dd/MMM/yyyy\n        required",
                "dd/MMM/yyyy", "unknown token 'MMM'"},
        BadCase{"field format", "format: epoch_ms", "format: epoch_ns", "epoch_ns", "timestamp format"},
        BadCase{"bad default", "default: \"2024-12-31\"", "default: \"2024-13-01\"", "\"2024-13-01\"",
                "not a calendar date"},
        BadCase{"example fails params", "start: \"2024-01-01\"", "start: \"2024-02-30\"", "start: \"2024-02-30\"",
                "example: parameter 'start'"},
        BadCase{"example unknown param", "end: \"2024-01-31\"}", "end: \"2024-01-31\", zzz: 1}", "zzz",
                "unknown parameter 'zzz'"},
        BadCase{"unknown key", "    records: /items", "    record: /items", "record:", "unknown key 'record'"},
        BadCase{"bad required", "required: true\n        description", "required: yes\n        description",
                "yes", "true or false"},
        BadCase{"yaml syntax", "query: {formato: json}", "query: {formato: json",
                ":\n      - name: series", "end of map flow"}),
    [](const auto& info) {
      std::string s = info.param.label;
      for (auto& ch : s)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return s;
    });

TEST(Definition, ValidateCollectsEveryError) {
  const std::string text = R"(name: ok_name
base_url: https://example.org
endpoints:
  - name: one
    path: /x/{id}
    params:
      - {name: q, type: texto}
    pagination: {kind: page_number, page_size: -1}
    schema:
      fields:
        - {name: a, type: int32}
        - {name: a, type: string}
)";
  TempDir d;
  auto file = d.write("s.yaml", text);
  auto errors = validate_source_file(file);
  ASSERT_EQ(errors.size(), 5u) << testing::PrintToString(errors);
  // Sorted by where they were found.
  EXPECT_THAT(errors[0], StartsWith(where(file, text, "texto")));
  EXPECT_THAT(errors[1], StartsWith(where(file, text, "/x/{id}")));
  EXPECT_THAT(errors[1], HasSubstr("{id}"));
  EXPECT_THAT(errors[2], StartsWith(where(file, text, "-1")));
  EXPECT_THAT(errors[3], StartsWith(where(file, text, "int32")));
  EXPECT_THAT(errors[4], StartsWith(where(file, text, "{name: a, type: string}")));
  try {
    load_source_file(file);
    FAIL() << "loaded";
  } catch (const DefinitionError& e) {
    EXPECT_THAT(e.what(), StartsWith(errors[0]));
    EXPECT_THAT(e.what(), HasSubstr("4 more"));
  }
}

TEST(Definition, MissingAndNonMappingFiles) {
  TempDir d;
  auto missing = d.path() / "nope.yaml";
  auto errors = validate_source_file(missing);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], StartsWith(missing.string() + ":1:1: "));
  auto list = d.write("list.yaml", "- a\n- b\n");
  EXPECT_THROW(load_source_file(list), DefinitionError);
  auto empty = d.write("empty.yaml", "");
  EXPECT_THROW(load_source_file(empty), DefinitionError);
  auto nokeys = d.write("nokeys.yaml", "description: x\n");
  errors = validate_source_file(nokeys);
  EXPECT_EQ(errors.size(), 3u) << testing::PrintToString(errors);  // name, base_url, endpoints
}

TEST(Definition, LoadSourcesSortedFromSubdirsAndFiles) {
  TempDir d;
  auto replace_name = [](std::string text, const std::string& name) {
    return text.replace(text.find("bcb_sgs"), 7, name);
  };
  d.write("zeta/source.yaml", replace_name(kValid, "zeta"));
  d.write("alpha.yaml", replace_name(kValid, "alpha"));
  d.write("mid/source.yaml", replace_name(kValid, "mid"));
  d.write("mid/fixtures/replay.yaml", "responses: []\n");  // not a definition: never loaded
  d.write("notes.txt", "ignored");
  auto sources = load_sources(d.path());
  ASSERT_EQ(sources.size(), 3u);
  EXPECT_EQ(sources[0].name, "alpha");
  EXPECT_EQ(sources[1].name, "mid");
  EXPECT_EQ(sources[2].name, "zeta");
  EXPECT_EQ(sources[1].dir, d.path() / "mid");
}

TEST(Definition, LoadSourcesRejectsDuplicateNamesAndBadFiles) {
  TempDir d;
  d.write("a/source.yaml", kValid);
  auto second = d.write("b/source.yaml", kValid);
  try {
    load_sources(d.path());
    FAIL() << "duplicate accepted";
  } catch (const DefinitionError& e) {
    EXPECT_THAT(e.what(), StartsWith(where(second, kValid, "bcb_sgs")));
    EXPECT_THAT(e.what(), HasSubstr("already defined"));
  }
  TempDir d2;
  std::string bad = kValid;
  bad.replace(bad.find("type: integer"), 13, "type: int");
  auto f = d2.write("x/source.yaml", bad);
  try {
    load_sources(d2.path());
    FAIL() << "bad file accepted";
  } catch (const DefinitionError& e) {
    EXPECT_THAT(e.what(), StartsWith(where(f, bad, "int\n")));
  }
  EXPECT_THROW(load_sources(d.path() / "missing"), DefinitionError);
}

// --- validate_params --------------------------------------------------------------------------

Endpoint params_endpoint() {
  Endpoint e;
  e.name = "e";
  auto add = [&](std::string name, ParamType t, bool required, std::optional<std::string> def = std::nullopt) {
    ParamSpec p;
    p.name = name;
    p.api_name = name;
    p.type = t;
    p.required = required;
    p.default_value = std::move(def);
    e.params.push_back(p);
  };
  add("n", ParamType::Integer, true);
  add("x", ParamType::Number, false);
  add("b", ParamType::Boolean, false, "false");
  add("d", ParamType::Date, false, "2024-12-31");
  add("s", ParamType::String, false);
  return e;
}

std::string param_error(const Endpoint& e, const Params& p, std::string* which = nullptr) {
  try {
    validate_params(e, p);
  } catch (const ParamError& err) {
    if (which) *which = err.param;
    return err.what();
  }
  return "";
}

TEST(ValidateParams, UnknownAndMissing) {
  auto e = params_endpoint();
  std::string which;
  EXPECT_EQ(param_error(e, {{"n", "1"}, {"x_typo", "2"}}, &which), "unknown parameter 'x_typo'");
  EXPECT_EQ(which, "x_typo");
  EXPECT_THAT(param_error(e, {{"s", "hello"}}, &which), HasSubstr("missing required parameter 'n'"));
  EXPECT_EQ(which, "n");
}

TEST(ValidateParams, DefaultsFilledAndOptionalOmitted) {
  auto e = params_endpoint();
  Params out = validate_params(e, {{"n", "5"}});
  EXPECT_EQ(out, (Params{{"n", "5"}, {"b", "false"}, {"d", "2024-12-31"}}));
  out = validate_params(e, {{"n", "5"}, {"d", "2024-02-29"}, {"s", "a b/c"}});
  EXPECT_EQ(out.at("d"), "2024-02-29");
  EXPECT_EQ(out.at("s"), "a b/c");
}

TEST(ValidateParams, Integers) {
  auto e = params_endpoint();
  EXPECT_EQ(validate_params(e, {{"n", "+12"}}).at("n"), "12");
  EXPECT_EQ(validate_params(e, {{"n", "-7"}}).at("n"), "-7");
  EXPECT_EQ(validate_params(e, {{"n", "007"}}).at("n"), "7");
  std::string which;
  for (const char* bad : {"12a", "", "1.5", " 1", "-", "+-1", "99999999999999999999"}) {
    EXPECT_THAT(param_error(e, {{"n", bad}}, &which), HasSubstr("parameter 'n'")) << bad;
    EXPECT_EQ(which, "n");
  }
}

TEST(ValidateParams, NumbersBooleansDates) {
  auto e = params_endpoint();
  EXPECT_EQ(validate_params(e, {{"n", "1"}, {"x", "+1.5e3"}}).at("x"), "1.5e3");
  EXPECT_EQ(validate_params(e, {{"n", "1"}, {"x", "-.25"}}).at("x"), "-.25");
  for (const char* bad : {"nan", "inf", "0x10", "1,5", "1e999", ""})
    EXPECT_THAT(param_error(e, {{"n", "1"}, {"x", bad}}), HasSubstr("parameter 'x'")) << bad;

  EXPECT_EQ(validate_params(e, {{"n", "1"}, {"b", "TRUE"}}).at("b"), "true");
  EXPECT_EQ(validate_params(e, {{"n", "1"}, {"b", "False"}}).at("b"), "false");
  for (const char* bad : {"yes", "1", "", "truee"})
    EXPECT_THAT(param_error(e, {{"n", "1"}, {"b", bad}}), HasSubstr("parameter 'b'")) << bad;

  EXPECT_THAT(param_error(e, {{"n", "1"}, {"d", "2024-02-30"}}), HasSubstr("not a calendar date"));
  EXPECT_THAT(param_error(e, {{"n", "1"}, {"d", "2023-02-29"}}), HasSubstr("not a calendar date"));
  EXPECT_EQ(validate_params(e, {{"n", "1"}, {"d", "2000-02-29"}}).at("d"), "2000-02-29");
  for (const char* bad : {"2024-1-05", "01/01/2024", "2024-04-31", "2024-00-10", "2024-13-01", "0000-01-01", "abcd-ef-gh"})
    EXPECT_THAT(param_error(e, {{"n", "1"}, {"d", bad}}), HasSubstr("parameter 'd'")) << bad;
}

TEST(Definition, ToString) {
  EXPECT_STREQ(to_string(ParamType::Integer), "integer");
  EXPECT_STREQ(to_string(ParamType::Date), "date");
  EXPECT_STREQ(to_string(FieldType::Int64), "int64");
  EXPECT_STREQ(to_string(FieldType::Timestamp), "timestamp");
}

}  // namespace
}  // namespace apilake

namespace apilake {
namespace {

// The definitions shipped in sources/ must load, and each example must be accepted as given.
TEST(Definition, BundledSourcesLoad) {
  const auto dir = std::filesystem::path(APILAKE_SOURCE_DIR) / "sources";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "no " << dir;
  auto sources = load_sources(dir);
  ASSERT_FALSE(sources.empty());
  for (const auto& s : sources)
    for (const auto& e : s.endpoints)
      if (!e.example.empty()) {
        EXPECT_NO_THROW(validate_params(e, e.example)) << s.name << "." << e.name;
      }
}

}  // namespace
}  // namespace apilake
