#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace apilake {
namespace {

std::string write_temp(const std::string& text) {
  auto p = std::filesystem::temp_directory_path() / ("apilake-config-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(p) << text;
  return p.string();
}

TEST(Config, FileThenEnvironmentOverride) {
  auto path = write_temp(
      "data_dir: s3://bucket/lake\n"
      "port: 9090\n"
      "api_keys: [a, b]\n"
      "bus:\n"
      "  kind: pubsub\n"
      "pubsub:\n"
      "  project: demo-project\n"
      "  ordering: false\n");
  Config c;
  apply_file(c, path);
  EXPECT_EQ(c.data_dir, "s3://bucket/lake");
  EXPECT_EQ(c.port, 9090);
  EXPECT_EQ(c.api_keys, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.bus_kind, "pubsub");
  EXPECT_EQ(c.pubsub_project, "demo-project");
  EXPECT_FALSE(c.pubsub_ordering);
  EXPECT_EQ(c.batch_max_messages, 500u);  // untouched default

  ::setenv("APILAKE_PUBSUB_PROJECT", "from-env", 1);
  ::setenv("APILAKE_PORT", "7070", 1);
  ::setenv("APILAKE_API_KEYS", "k1,k2,k3", 1);
  apply_env(c);
  ::unsetenv("APILAKE_PUBSUB_PROJECT");
  ::unsetenv("APILAKE_PORT");
  ::unsetenv("APILAKE_API_KEYS");
  EXPECT_EQ(c.pubsub_project, "from-env");
  EXPECT_EQ(c.port, 7070);
  EXPECT_EQ(c.api_keys.size(), 3u);
  std::filesystem::remove(path);
}

TEST(Config, ErrorsNameTheFileLineAndKey) {
  auto path = write_temp("port: 80\nbus:\n  kynd: pubsub\n");
  Config c;
  try {
    apply_file(c, path);
    FAIL() << "unknown key accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(":3:3: unknown key 'bus.kynd'"), std::string::npos) << e.what();
  }
  std::ofstream(path) << "port: eighty\n";
  try {
    apply_file(c, path);
    FAIL() << "bad number accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(":1:7: port: not a number"), std::string::npos) << e.what();
  }
  ::setenv("APILAKE_DEMO", "maybe", 1);
  EXPECT_THROW(apply_env(c), std::invalid_argument);
  ::unsetenv("APILAKE_DEMO");
  std::filesystem::remove(path);
}

TEST(Config, Loopback) {
  EXPECT_TRUE(is_loopback("127.0.0.1"));
  EXPECT_TRUE(is_loopback("localhost"));
  EXPECT_TRUE(is_loopback("::1"));
  EXPECT_FALSE(is_loopback("0.0.0.0"));
  EXPECT_FALSE(is_loopback("10.1.2.3"));
}

}  // namespace
}  // namespace apilake
