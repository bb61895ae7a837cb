#include "archive/archiver.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <stdexcept>

#include "lake/lake.h"

namespace fs = std::filesystem;
using apilake::Message;

namespace {

// Reads an Avro container with the reference Python implementation (not avro-c) and prints it as
// lines of tab-separated fields, every string base64-encoded so any byte survives the trip:
//   codec <name> / logical <publish_time logicalType or "-"> / field <name> /
//   rec <subscription> <message_id> <publish_time> <data> [<attr key> <attr value>]...
constexpr char kReader[] = R"PY(
import sys, json, base64, datetime
import avro.datafile, avro.io
e = lambda b: base64.b64encode(b if isinstance(b, bytes) else b.encode()).decode()
epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
with open(sys.argv[1], 'rb') as f:
    reader = avro.datafile.DataFileReader(f, avro.io.DatumReader())
    print('codec', reader.meta.get('avro.codec', b'null').decode(), sep='\t')
    schema = json.loads(reader.meta['avro.schema'].decode())
    for fld in schema['fields']:
        print('field', fld['name'], sep='\t')
        if fld['name'] == 'publish_time':
            t = fld['type']
            print('logical', t.get('logicalType', '-') if isinstance(t, dict) else '-', sep='\t')
    for r in reader:
        t = r['publish_time']
        if isinstance(t, datetime.datetime):  # the reader honoured the logical type
            d = t - epoch
            t = (d.days * 86400 + d.seconds) * 1000000 + d.microseconds
        cols = ['rec', e(r['subscription_name']), e(r['message_id']), str(t), e(r['data'])]
        for k, v in sorted(r['attributes'].items()):
            cols += [e(k), e(v)]
        print(*cols, sep='\t')
    reader.close()
)PY";

struct Record {
  std::string subscription, id, data;
  int64_t publish_time = 0;
  std::map<std::string, std::string> attributes;
};
struct AvroDoc {
  std::string codec, logical;
  std::vector<std::string> fields;
  std::vector<Record> records;
};

std::string unb64(const std::string& in) {
  static const std::string t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned v = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const auto pos = t.find(c);
    if (pos == std::string::npos) throw std::runtime_error("bad base64 from reader");
    v = (v << 6) | static_cast<unsigned>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((v >> bits) & 0xff));
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> cols;
  std::size_t start = 0;
  for (;;) {
    const auto tab = line.find('\t', start);
    cols.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return cols;
    start = tab + 1;
  }
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

  AvroDoc read_back(const fs::path& file) {
    auto [rc, out] = run(python_ + " " + (dir_ / "read_avro.py").string() + " '" + file.string() + "' 2>&1");
    if (rc != 0) throw std::runtime_error("python avro reader failed: " + out);
    AvroDoc doc;
    std::size_t start = 0;
    while (start < out.size()) {
      const auto nl = out.find('\n', start);
      const auto cols = split(out.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
      start = nl == std::string::npos ? out.size() : nl + 1;
      if (cols[0] == "codec") doc.codec = cols.at(1);
      else if (cols[0] == "logical") doc.logical = cols.at(1);
      else if (cols[0] == "field") doc.fields.push_back(cols.at(1));
      else if (cols[0] == "rec") {
        Record r{unb64(cols.at(1)), unb64(cols.at(2)), unb64(cols.at(4)), std::stoll(cols.at(3)), {}};
        for (std::size_t i = 5; i + 1 < cols.size(); i += 2) r.attributes[unb64(cols[i])] = unb64(cols[i + 1]);
        doc.records.push_back(std::move(r));
      } else throw std::runtime_error("unexpected reader output: " + out);
    }
    return doc;
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

void expect_same(const Record& rec, const std::string& sub, const Message& m) {
  EXPECT_EQ(rec.subscription, sub);
  EXPECT_EQ(rec.id, m.id);
  EXPECT_EQ(rec.publish_time, m.publish_time_us);
  EXPECT_TRUE(rec.data == m.data) << "message " << m.id << ": data differs (" << rec.data.size() << " vs "
                                  << m.data.size() << " bytes)";
  EXPECT_EQ(rec.attributes, m.attributes);
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
  EXPECT_EQ(doc.codec, "deflate");
  ASSERT_EQ(doc.records.size(), msgs.size());
  for (std::size_t i = 0; i < msgs.size(); ++i) expect_same(doc.records[i], "projects/p/subscriptions/archive", msgs[i]);

  // Field names as a Pub/Sub Cloud Storage subscription writes them.
  EXPECT_EQ(doc.fields, (std::vector<std::string>{"subscription_name", "message_id", "publish_time", "attributes", "data"}));
  EXPECT_EQ(doc.logical, "timestamp-micros");
  // Only the file itself is left (and the reader script): no side file from the header rewrite.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 2u);
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
  EXPECT_EQ(doc.codec, "deflate");
  EXPECT_TRUE(doc.records.empty());
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
  const auto bcb = read_back(staged_by_final.at(expected[1])).records;
  ASSERT_EQ(bcb.size(), 3u);
  expect_same(bcb[0], "archive", batch[0]);
  expect_same(bcb[1], "archive", batch[2]);
  expect_same(bcb[2], "archive", batch[4]);
  const auto ibge8 = read_back(staged_by_final.at(expected[2])).records;
  ASSERT_EQ(ibge8.size(), 2u);
  expect_same(ibge8[0], "archive", batch[1]);
  expect_same(ibge8[1], "archive", batch[3]);
  const auto unknown = read_back(staged_by_final.at(expected[0])).records;
  ASSERT_EQ(unknown.size(), 1u);
  expect_same(unknown[0], "archive", batch[6]);

  // The staged files commit into the lake under their final names.
  for (const auto& f : prepared.files) lake.commit_staged(f.staged, f.final);
  EXPECT_EQ(lake.list("raw"), expected);
  EXPECT_TRUE(fs::is_empty(lake.staging_dir()));

  // Restaging the same messages (redelivery) names the same final files, in fresh staged files.
  const auto again = archiver.stage(batch);
  ASSERT_EQ(again.files.size(), prepared.files.size());
  for (const auto& f : again.files) {
    EXPECT_TRUE(staged_by_final.count(f.final)) << f.final;
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

TEST_F(ArchiveTest, StageRejectsAnImpossiblePublishTimeWithoutLeavingFiles) {
  apilake::LocalLake lake(dir_ / "lake");
  apilake::Archiver archiver("archive", lake.staging_dir());
  EXPECT_THROW(archiver.stage({msg("1", "x", {}, 0), msg("2", "y", {}, INT64_MAX)}), std::out_of_range);
  EXPECT_TRUE(fs::is_empty(lake.staging_dir()));
}

TEST_F(ArchiveTest, StageFailingOnALaterGroupRemovesTheFilesItAlreadyStaged) {
  apilake::LocalLake lake(dir_ / "lake");
  apilake::Archiver archiver("archive", lake.staging_dir());
  // Groups are written in (source, endpoint, hour) order: "a" succeeds, then "b" fails.
  const std::vector<Message> batch = {msg("1", "x", {{"source", "a"}}, 0),
                                      msg("2", "y", {{"source", "b"}, {std::string("k\0", 2), "v"}}, 0)};
  EXPECT_THROW(archiver.stage(batch), std::invalid_argument);
  EXPECT_TRUE(fs::is_empty(lake.staging_dir()));
}

TEST_F(ArchiveTest, StageOfAnEmptyBatchStagesNothing) {
  apilake::Archiver archiver("archive", dir_);
  const auto prepared = archiver.stage({});
  EXPECT_TRUE(prepared.files.empty());
  EXPECT_TRUE(prepared.counts.empty());
}

}  // namespace
