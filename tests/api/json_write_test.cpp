// json_write: the text written without a DOM must be the bytes boost::json::serialize and fmt's
// chrono formatting made before (GET /v1/extractions/{id} and the stored params keep their shape).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <string>

#include <fmt/chrono.h>

#include "api/json_write.h"

namespace apilake {
namespace {

TEST(JsonWrite, StringsEscapeLikeBoostJson) {
  const std::string cases[] = {
      "",
      "plain",
      "quote \" and backslash \\ and slash /",
      std::string("controls \x01\x08\x0c\n\r\t\x1f end"),
      std::string("nul \0 inside", 12),
      "utf-8 \xc3\xa9\xe2\x82\xac passes through",
      "\x7f del",
  };
  for (const auto& s : cases) {
    std::string out;
    json_write::string(out, s);
    EXPECT_EQ(out, boost::json::serialize(boost::json::string(s))) << s;
  }
}

TEST(JsonWrite, ObjectTextMatchesTheDom) {
  std::string out;
  json_write::Object o(out);
  o.string("id", "a\"b");
  o.integer("n", -42);
  o.string("k\"ey", "v");
  o.close();
  EXPECT_EQ(out, boost::json::serialize(boost::json::object{{"id", "a\"b"}, {"n", -42}, {"k\"ey", "v"}}));
  EXPECT_NO_THROW(boost::json::parse(out));
}

TEST(JsonWrite, IsoTimeMatchesFmtChrono) {
  using namespace std::chrono;
  const int64_t cases[] = {0,
                           1,
                           999999,
                           1000000,
                           1795077227123456,   // 2026-11-18, with a fraction
                           1709164800000000,   // 2024-02-29T00:00:00 (leap day)
                           4102444799999999};  // 2099-12-31T23:59:59.999999
  for (int64_t us : cases) {
    std::string out;
    json_write::iso_time(out, us);
    const std::string want = fmt::format("\"{:%FT%T}Z\"", sys_time<microseconds>(microseconds(us)));
    EXPECT_EQ(out, want) << us;
  }
}

}  // namespace
}  // namespace apilake
