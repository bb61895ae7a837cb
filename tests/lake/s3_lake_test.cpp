// S3Lake against a real s3rver (tests/lake/s3_server.h). Each test works under its own key prefix.
#include "lake/s3_lake.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>

#include "lake/open_lake.h"
#include "lake/s3_server.h"

namespace apilake {
namespace {

namespace fs = std::filesystem;
using test::S3Server;

class S3LakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> n{0};
    tag_ = "t" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    staging_ = fs::temp_directory_path() / ("apilake-s3stage-" + tag_);
    try {
      server_ = &S3Server::shared();
    } catch (const std::exception& e) {
      FAIL() << "cannot run the S3 lake tests: " << e.what();
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
  S3Config config(const std::string& sub = "lake") { return server_->config(tag_ + "/" + sub, staging_); }

  static void write_file(const fs::path& p, const std::string& bytes) {
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out << bytes;
  }
  static std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  }

  std::string tag_;
  fs::path staging_;
  S3Server* server_ = nullptr;
};

TEST_F(S3LakeTest, PutGetExistsRemove) {
  S3Lake lake(config());
  EXPECT_EQ(lake.local_root(), "");
  EXPECT_TRUE(fs::is_directory(lake.staging_dir()));
  const std::string bytes("a\0b\xff\xfe\n", 6);
  EXPECT_FALSE(lake.exists("raw/x/y/file.bin"));
  EXPECT_FALSE(lake.get("raw/x/y/file.bin").has_value());
  lake.put("raw/x/y/file.bin", bytes);
  EXPECT_TRUE(lake.exists("raw/x/y/file.bin"));
  ASSERT_TRUE(lake.get("raw/x/y/file.bin").has_value());
  EXPECT_EQ(*lake.get("raw/x/y/file.bin"), bytes);
  EXPECT_FALSE(lake.exists("raw/x/y"));  // a "folder" is not an object

  lake.put("raw/x/y/file.bin", "second");
  EXPECT_EQ(*lake.get("raw/x/y/file.bin"), "second");
  lake.put("empty", "");
  ASSERT_TRUE(lake.get("empty").has_value());
  EXPECT_EQ(*lake.get("empty"), "");

  lake.remove("raw/x/y/file.bin");
  EXPECT_FALSE(lake.exists("raw/x/y/file.bin"));
  EXPECT_FALSE(lake.get("raw/x/y/file.bin").has_value());
  EXPECT_NO_THROW(lake.remove("raw/x/y/file.bin"));  // twice is fine
}

TEST_F(S3LakeTest, RejectsBadPaths) {
  S3Lake lake(config());
  EXPECT_THROW(lake.put("../escape", "x"), std::invalid_argument);
  EXPECT_THROW(lake.put("/abs", "x"), std::invalid_argument);
  EXPECT_THROW(lake.put("a//b", "x"), std::invalid_argument);
  EXPECT_THROW(lake.put("_staging/x", "x"), std::invalid_argument);
  EXPECT_THROW(lake.get(""), std::invalid_argument);
  EXPECT_THROW(lake.list("a/../b"), std::invalid_argument);
}

TEST_F(S3LakeTest, ListPagesThroughContinuationTokens) {
  S3Lake lake(config());
  lake.set_list_page_size(3);  // 11 files -> 4 pages
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) {
    std::string p = "curated/s/e/2026/11/26/" + std::to_string(10 + i) + "/f.parquet";
    lake.put(p, std::to_string(i));
    expected.push_back(p);
  }
  lake.put("curated/s/e2/other.parquet", "x");  // sibling folder sharing the name's beginning
  EXPECT_EQ(lake.list("curated/s/e"), expected);
  EXPECT_EQ(lake.list("curated/s/e/"), expected);
  auto all = lake.list("");
  EXPECT_EQ(all.size(), 11u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_EQ(lake.list("curated/s/e2"), std::vector<std::string>{"curated/s/e2/other.parquet"});
  // A prefix naming an object lists that object, as LocalLake does for a file.
  EXPECT_EQ(lake.list("curated/s/e2/other.parquet"), std::vector<std::string>{"curated/s/e2/other.parquet"});
  EXPECT_TRUE(lake.list("curated/none").empty());
}

TEST_F(S3LakeTest, KeysWithSpacesUnicodeAndReservedCharactersRoundTrip) {
  S3Lake lake(config());
  const std::vector<std::string> names = {
      "curated/a b/c+d=e.parquet", "curated/ñandú/日本語.parquet", "curated/x/&<>\"'.parquet",
      "curated/x/100%25 ~$@,;:!*().bin"};
  for (std::size_t i = 0; i < names.size(); ++i) lake.put(names[i], "v" + std::to_string(i));
  for (std::size_t i = 0; i < names.size(); ++i) {
    ASSERT_TRUE(lake.exists(names[i])) << names[i];
    EXPECT_EQ(lake.get(names[i]).value_or("?"), "v" + std::to_string(i)) << names[i];
  }
  auto sorted = names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(lake.list("curated"), sorted);  // XML entities in keys decoded
  // "+" is a plus in a key, not an encoded space.
  EXPECT_FALSE(lake.exists("curated/a b/c d=e.parquet"));
}

TEST_F(S3LakeTest, PrefixesIsolateLakes) {
  S3Lake a(config("a")), b(config("b"));
  a.put("raw/f", "A");
  EXPECT_FALSE(b.exists("raw/f"));
  EXPECT_TRUE(b.list("").empty());
  EXPECT_EQ(a.list(""), std::vector<std::string>{"raw/f"});
}

TEST_F(S3LakeTest, CommitStagedUploadsThenRemovesStagedAndIsIdempotent) {
  S3Lake lake(config());
  const fs::path staged = lake.staging_dir() / "batch-1.parquet";
  write_file(staged, "parquet bytes");
  lake.commit_staged(staged, "curated/s/e/2026/11/26/08/1-4.parquet");
  EXPECT_FALSE(fs::exists(staged));
  EXPECT_EQ(lake.get("curated/s/e/2026/11/26/08/1-4.parquet").value_or(""), "parquet bytes");
  // Recovery replays the commit: staged gone, object present -> nothing to do.
  EXPECT_NO_THROW(lake.commit_staged(staged, "curated/s/e/2026/11/26/08/1-4.parquet"));
  // Staged gone and no object: nothing to roll forward, an error (the batch must be redone).
  EXPECT_THROW(lake.commit_staged(staged, "curated/s/e/2026/11/26/08/5-9.parquet"), std::runtime_error);
  // A crash after the upload but before the staged file went: committing again uploads the same bytes.
  write_file(staged, "parquet bytes");
  lake.commit_staged(staged, "curated/s/e/2026/11/26/08/1-4.parquet");
  EXPECT_EQ(lake.get("curated/s/e/2026/11/26/08/1-4.parquet").value_or(""), "parquet bytes");
}

TEST_F(S3LakeTest, LargeFileGoesUpInPartsAndArrivesWhole) {
  S3Config c = config();
  c.multipart_threshold = 5u << 20;
  c.part_size = 5u << 20;  // S3's minimum part size
  std::vector<std::size_t> progress;
  c.on_part = [&](int, std::size_t done) { progress.push_back(done); };
  S3Lake lake(c);
  const std::string bytes = random_bytes((10u << 20) + 1000, 7);
  const fs::path staged = lake.staging_dir() / "big.parquet";
  write_file(staged, bytes);
  lake.commit_staged(staged, "curated/s/e/big.parquet");
  EXPECT_EQ(progress, (std::vector<std::size_t>{5u << 20, 10u << 20, (10u << 20) + 1000}));
  EXPECT_FALSE(fs::exists(staged));
  auto got = lake.get("curated/s/e/big.parquet");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->size(), bytes.size());
  EXPECT_TRUE(*got == bytes);
  // At or below the threshold: one PUT, no parts.
  progress.clear();
  write_file(staged, bytes.substr(0, 5u << 20));
  lake.commit_staged(staged, "curated/s/e/small.parquet");
  EXPECT_TRUE(progress.empty());
  EXPECT_EQ(lake.get("curated/s/e/small.parquet")->size(), 5u << 20);
}

TEST_F(S3LakeTest, FailedMultipartUploadLeavesNoObjectAndKeepsTheStagedFile) {
  S3Config c = config();
  c.multipart_threshold = 5u << 20;
  c.part_size = 5u << 20;
  int parts = 0;
  c.on_part = [&](int part, std::size_t) {
    parts = part;
    if (part == 2) throw std::runtime_error("connection lost (test)");
  };
  S3Lake lake(c);
  const std::string bytes = random_bytes((10u << 20) + 1000, 11);
  const fs::path staged = lake.staging_dir() / "big.parquet";
  write_file(staged, bytes);
  EXPECT_THROW(lake.commit_staged(staged, "curated/s/e/big.parquet"), std::runtime_error);
  EXPECT_EQ(parts, 2);
  EXPECT_FALSE(lake.exists("curated/s/e/big.parquet"));
  EXPECT_TRUE(lake.list("curated").empty());
  ASSERT_TRUE(fs::exists(staged));  // nothing lost: the commit can be retried
  EXPECT_EQ(fs::file_size(staged), bytes.size());

  S3Config retry = config();
  retry.multipart_threshold = 5u << 20;
  retry.part_size = 5u << 20;
  S3Lake again(retry);
  again.commit_staged(staged, "curated/s/e/big.parquet");
  EXPECT_TRUE(*again.get("curated/s/e/big.parquet") == bytes);
}

TEST_F(S3LakeTest, ErrorsNameTheOperationButNoSecret) {
  S3Config c = config();
  c.bucket = "no-such-bucket-apilake";
  c.credentials.secret_access_key = "TOP-SECRET-VALUE";
  S3Lake lake(c);
  try {
    lake.put("raw/f", "x");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("PUT"), std::string::npos) << msg;
    EXPECT_NE(msg.find("NoSuchBucket"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("TOP-SECRET"), std::string::npos) << msg;
  }
}

TEST(S3Config, ParsesUrisAndTheAwsEnvironment) {
  ::setenv("AWS_ACCESS_KEY_ID", "AK", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
  ::unsetenv("AWS_ENDPOINT_URL");
  ::unsetenv("AWS_REGION");
  ::unsetenv("AWS_DEFAULT_REGION");
  S3Config s3 = s3_config_from_uri("s3://bucket/some/prefix/");
  EXPECT_EQ(s3.bucket, "bucket");
  EXPECT_EQ(s3.prefix, "some/prefix");
  EXPECT_EQ(s3.endpoint, "");
  EXPECT_FALSE(s3.path_style);
  EXPECT_EQ(s3.region, "us-east-1");
  EXPECT_EQ(s3.credentials.access_key_id, "AK");
  S3Config gs = s3_config_from_uri("gs://b");
  EXPECT_EQ(gs.endpoint, "https://storage.googleapis.com");
  EXPECT_TRUE(gs.path_style);
  EXPECT_EQ(gs.region, "auto");
  EXPECT_EQ(gs.prefix, "");
  ::setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9", 1);
  ::setenv("AWS_REGION", "eu-west-1", 1);
  S3Config custom = s3_config_from_uri("s3://b/p");
  EXPECT_EQ(custom.endpoint, "http://127.0.0.1:9");
  EXPECT_TRUE(custom.path_style);
  EXPECT_EQ(custom.region, "eu-west-1");
  ::unsetenv("AWS_ENDPOINT_URL");
  ::unsetenv("AWS_REGION");
  EXPECT_THROW(s3_config_from_uri("s3://"), std::invalid_argument);
  EXPECT_THROW(s3_config_from_uri("http://b/p"), std::invalid_argument);
  S3Config bad = s3_config_from_uri("s3://b/p");
  bad.endpoint = "ftp://host";
  EXPECT_THROW(S3Lake{bad}, std::invalid_argument);
  bad.endpoint = "http://host/path";
  EXPECT_THROW(S3Lake{bad}, std::invalid_argument);
  bad.endpoint = "";
  bad.credentials = {};
  EXPECT_THROW(S3Lake{bad}, std::invalid_argument);
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
}

TEST(OpenLake, LocalDirectoryOrObjectStore) {
  const fs::path dir = fs::temp_directory_path() / ("apilake-openlake-" + std::to_string(::getpid()));
  auto local = open_lake(dir.string());
  EXPECT_EQ(local->local_root(), fs::weakly_canonical(dir).string());
  EXPECT_FALSE(is_object_store_uri(dir.string()));
  EXPECT_TRUE(is_object_store_uri("gs://b/p"));
  ::setenv("AWS_ACCESS_KEY_ID", "AK", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
  LakeOptions o;
  o.endpoint = "http://127.0.0.1:9";
  o.staging_dir = dir / "stage";
  auto s3 = open_lake("s3://b/p", o);
  EXPECT_EQ(s3->local_root(), "");
  EXPECT_EQ(s3->staging_dir(), dir / "stage");
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  fs::remove_all(dir);
}

TEST(S3Xml, ExtractsAndUnescapes) {
  const std::string xml =
      "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>"
      "<Contents><Key>a&amp;b&lt;c&gt;&quot;&apos;</Key></Contents>"
      "<Contents><Key>&#241;&#xE9;&#x1F600;</Key></Contents><KeyCount>2</KeyCount>"
      "<NextContinuationToken>t/+=</NextContinuationToken><Empty/></ListBucketResult>";
  EXPECT_EQ(s3xml::all(xml, "Key"), (std::vector<std::string>{"a&b<c>\"'", "ñé\xF0\x9F\x98\x80"}));
  EXPECT_EQ(s3xml::first(xml, "IsTruncated"), "true");
  EXPECT_EQ(s3xml::first(xml, "KeyCount"), "2");  // not confused with <Key>
  EXPECT_EQ(s3xml::first(xml, "NextContinuationToken"), "t/+=");
  EXPECT_EQ(s3xml::first(xml, "Empty"), "");
  EXPECT_FALSE(s3xml::first(xml, "Missing").has_value());
  EXPECT_THROW(s3xml::unescape("a&b"), std::runtime_error);
  EXPECT_THROW(s3xml::unescape("&bogus;"), std::runtime_error);
  EXPECT_THROW(s3xml::unescape("&#xZZ;"), std::runtime_error);
  EXPECT_THROW(s3xml::all("<Key>open", "Key"), std::runtime_error);
}

}  // namespace
}  // namespace apilake
