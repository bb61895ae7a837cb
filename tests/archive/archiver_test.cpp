#include "archive/archiver.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "lake/lake.h"

namespace fs = std::filesystem;
namespace json = boost::json;
using apilake::Message;

namespace {

// Reads an Avro container with the reference Python implementation (not avro-c) and prints the
// records as JSON, bytes base64-encoded, plus the file's codec and writer schema.
constexpr char kReader[] = R"PY(
import sys, json, base64, datetime
import avro.datafile, avro.io
with open(sys.argv[1], 'rb') as f:
    reader = avro.datafile.DataFileReader(f, avro.io.DatumReader())
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    out = {'codec': reader.meta.get('avro.codec', b'null').decode(),
           'schema': json.loads(reader.meta['avro.schema'].decode()), 'records': []}
    for r in reader:
        t = r['publish_time']
        if isinstance(t, datetime.datetime):  # the logical type is honoured
            d = t - epoch
            t = (d.days * 86400 + d.seconds) * 1000000 + d.microseconds
        out['records'].append({'subscription_name': r['subscription_name'], 'message_id': r['message_id'],
                               'publish_time': t, 'attributes': r['attributes'],
                               'data': base64.b64encode(r['data']).decode()})
    reader.close()
print(json.dumps(out))
)PY";

std::string b64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The distro's python3 carries python3-avro; a python3 earlier on PATH (pyenv) may not.
std::string python_with_avro() {
  for (const char* py : {"/usr/bin/python3", "python3"}) {
    if (run(std::string(py) + " -c 'import avro.datafile, avro.io' 2>/dev/null").first == 0) return py;
  }
  return "";
}

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> n{0};
    dir_ = fs::temp_directory_path() /
           ("apilake-archive-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    python_ = python_with_avro();
    ASSERT_FALSE(python_.empty()) << "python3 with the avro module (python3-avro) is required";
    std::ofstream(dir_ / "read_avro.py") << kReader;
  }
  void TearDown() override { fs::remove_all(dir_); }

  json::object read_back(const fs::path& file) {
    auto [rc, out] = run(python_ + " " + (dir_ / "read_avro.py").string() + " '" + file.string() + "'");
    EXPECT_EQ(rc, 0) << out;
    return json::parse(out).as_object();
  }

  static Message msg(std::string id, std::string data, apilake::Attributes attrs, int64_t t) {
    Message m;
    m.id = std::move(id);
    m.ack_id = "ack-" + m.id;
    m.data = std::move(data);
    m.attributes = std::move(attrs);
    m.publish_time_us = t;
    return m;
  }

  fs::path dir_;
  std::string python_;
};

void expect_same(const json::object& rec, const std::string& sub, const Message& m) {
  EXPECT_EQ(rec.at("subscription_name").as_string(), sub);
  EXPECT_EQ(rec.at("message_id").as_string(), m.id);
  EXPECT_EQ(rec.at("publish_time").to_number<int64_t>(), m.publish_time_us);
  EXPECT_EQ(rec.at("data").as_string(), b64(m.data)) << "message " << m.id;
  const auto& attrs = rec.at("attributes").as_object();
  EXPECT_EQ(attrs.size(), m.attributes.size());
  for (const auto& [k, v] : m.attributes) {
    ASSERT_TRUE(attrs.contains(k)) << k;
    EXPECT_EQ(std::string(attrs.at(k).as_string()), v);
  }
}

TEST_F(ArchiveTest, WriteAvroRoundTripsBinaryDataThroughAnIndependentReader) {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));  // NULs, invalid UTF-8
  std::string big(3 << 20, '\0');  // larger than avro-c's default block: one record must still fit
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) ^ (i >> 7));
  const std::vector<Message> msgs = {
      msg("1", binary, {{"source", "bcb"}, {"endpoint", "series"}, {"extraction_id", "ex-1"}}, 1795680930500000),
      msg("2", std::string("\0\0\0", 3), {}, -1),
      msg("3", "", {{"content_type", "application/json"}, {"note", std::string("a\0b é", 7)}}, 0),
      msg("4", big, {{"page", "7"}}, 1709251199999999),
      msg("5", "\xc3\x28\xa0\xa1{\"k\":1}", {{"fetched_at", "2026-11-26T08:15:30Z"}}, 42),
  };
  const fs::path file = dir_ / "out.avro";
  apilake::write_avro(file, "projects/p/subscriptions/archive", msgs);

  const auto doc = read_back(file);
  EXPECT_EQ(doc.at("codec").as_string(), "deflate");
  const auto& records = doc.at("records").as_array();
  ASSERT_EQ(records.size(), msgs.size());
  for (std::size_t i = 0; i < msgs.size(); ++i) expect_same(records[i].as_object(), "projects/p/subscriptions/archive", msgs[i]);

  // Field names and types as a Pub/Sub Cloud Storage subscription writes them.
  const auto& fields = doc.at("schema").as_object().at("fields").as_array();
  ASSERT_EQ(fields.size(), 5u);
  const std::vector<std::string> names = {"subscription_name", "message_id", "publish_time", "attributes", "data"};
  for (std::size_t i = 0; i < names.size(); ++i) EXPECT_EQ(fields[i].as_object().at("name").as_string(), names[i]);
}

TEST_F(ArchiveTest, AvrocatReadsTheFile) {
  if (run("command -v avrocat >/dev/null 2>&1").first != 0) GTEST_SKIP() << "avrocat (avro-bin) not installed";
  const std::vector<Message> msgs = {msg("10", "{\"a\":1}", {{"source", "s"}}, 5), msg("11", "[2]", {}, 6)};
  const fs::path file = dir_ / "cat.avro";
  apilake::write_avro(file, "archive", msgs);
  auto [rc, out] = run("avrocat '" + file.string() + "' 2>&1");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"message_id\": \"10\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"message_id\": \"11\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"subscription_name\": \"archive\""), std::string::npos) << out;
}

TEST_F(ArchiveTest, EmptyFileAndReplacesLeftovers) {
  const fs::path file = dir_ / "empty.avro";
  std::ofstream(file) << "garbage from a crashed attempt";
  apilake::write_avro(file, "archive", {});
  const auto doc = read_back(file);
  EXPECT_TRUE(doc.at("records").as_array().empty());
}

TEST_F(ArchiveTest, WriteAvroFailsClearlyOnBadInput) {
  EXPECT_THROW(apilake::write_avro(dir_ / "no" / "such" / "dir.avro", "archive", {msg("1", "x", {}, 0)}),
               std::runtime_error);
  const fs::path file = dir_ / "nul.avro";
  EXPECT_THROW(apilake::write_avro(file, "archive", {msg("1", "x", {{std::string("k\0x", 3), "v"}}, 0)}),
               std::invalid_argument);
  EXPECT_FALSE(fs::exists(file));  // no half-written file left behind
}

TEST_F(ArchiveTest, StageGroupsBySourceEndpointAndHour) {
  apilake::LocalLake lake(dir_ / "lake");
  apilake::Archiver archiver("archive", lake.staging_dir());
  const int64_t h8 = 1795680930500000;           // 2026-11-26T08:15:30.5Z
  const int64_t h9 = h8 + 3600LL * 1000000;       // 09:15:30.5
  const apilake::Attributes a = {{"source", "bcb"}, {"endpoint", "series"}, {"extraction_id", "ex-a"}};
  const apilake::Attributes b = {{"source", "ibge"}, {"endpoint", "agg"}, {"extraction_id", "ex-b"}};
  const std::vector<Message> batch = {
      msg("7", "a7", a, h8), msg("9", "b9", b, h8), msg("8", "a8", a, h8), msg("12", "b12", b, h8),
      msg("10", "a10", a, h8), msg("13", "b13", b, h9), msg("14", "u", {{"extraction_id", "ex-b"}}, h8),
  };
  const auto prepared = archiver.stage(batch);
  EXPECT_EQ(prepared.consumer, "archive");
  EXPECT_EQ(prepared.batch_id, "archive-000000000007-000000000014");
  ASSERT_EQ(prepared.counts.size(), 2u);
  EXPECT_EQ(prepared.counts.at("ex-a").rows, 3);
  EXPECT_EQ(prepared.counts.at("ex-b").rows, 4);

  std::map<std::string, std::string> staged_by_final;
  for (const auto& f : prepared.files) {
    EXPECT_TRUE(fs::path(f.staged).parent_path() == lake.staging_dir()) << f.staged;
    EXPECT_TRUE(fs::exists(f.staged)) << f.staged;
    staged_by_final[f.final] = f.staged;
  }
  const std::vector<std::string> expected = {
      "raw/_unknown/_unknown/2026/11/26/08/000000000014-000000000014.avro",
      "raw/bcb/series/2026/11/26/08/000000000007-000000000010.avro",
      "raw/ibge/agg/2026/11/26/08/000000000009-000000000012.avro",
      "raw/ibge/agg/2026/11/26/09/000000000013-000000000013.avro",
  };
  ASSERT_EQ(staged_by_final.size(), expected.size());
  for (const auto& e : expected) ASSERT_TRUE(staged_by_final.count(e)) << e;

  // Each file holds exactly its group, in id order.
  const auto bcb = read_back(staged_by_final.at(expected[1])).at("records").as_array();
  ASSERT_EQ(bcb.size(), 3u);
  EXPECT_EQ(bcb[0].at("message_id").as_string(), "7");
  EXPECT_EQ(bcb[1].at("message_id").as_string(), "8");
  EXPECT_EQ(bcb[2].at("message_id").as_string(), "10");
  EXPECT_EQ(bcb[2].at("data").as_string(), b64("a10"));
  const auto ibge8 = read_back(staged_by_final.at(expected[2])).at("records").as_array();
  ASSERT_EQ(ibge8.size(), 2u);
  EXPECT_EQ(ibge8[0].at("data").as_string(), b64("b9"));
  EXPECT_EQ(ibge8[1].at("data").as_string(), b64("b12"));

  // The staged files commit into the lake under their final names.
  for (const auto& f : prepared.files) lake.commit_staged(f.staged, f.final);
  EXPECT_EQ(lake.list("raw"), expected);
  EXPECT_TRUE(fs::is_empty(lake.staging_dir()));

  // Restaging the same messages (redelivery) names the same final files, in fresh staged files.
  const auto again = archiver.stage(batch);
  ASSERT_EQ(again.files.size(), prepared.files.size());
  for (const auto& f : again.files) {
    EXPECT_TRUE(staged_by_final.count(f.final));
    EXPECT_EQ(staged_by_final.count(f.final) ? 0u : 1u, 0u);
    lake.commit_staged(f.staged, f.final);
  }
  EXPECT_EQ(lake.list("raw"), expected);
}

TEST_F(ArchiveTest, StageKeepsHostileAttributesInsideTheRawZone) {
  apilake::LocalLake lake(dir_ / "lake");
  apilake::Archiver archiver("archive", lake.staging_dir());
  const auto prepared = archiver.stage({msg("1", "x", {{"source", ".."}, {"endpoint", "../../etc"}}, 0)});
  ASSERT_EQ(prepared.files.size(), 1u);
  EXPECT_EQ(prepared.files[0].final, "raw/_../.._.._etc/1970/01/01/00/000000000001-000000000001.avro");
  EXPECT_NO_THROW(lake.commit_staged(prepared.files[0].staged, prepared.files[0].final));
  EXPECT_TRUE(prepared.counts.empty());  // no extraction id, nothing to count
}

TEST_F(ArchiveTest, StageOfAnEmptyBatchStagesNothing) {
  apilake::Archiver archiver("archive", dir_);
  const auto prepared = archiver.stage({});
  EXPECT_TRUE(prepared.files.empty());
  EXPECT_TRUE(prepared.counts.empty());
}

}  // namespace
