#include "lake/s3_lake.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace apilake {

namespace fs = std::filesystem;

namespace {

using Query = std::vector<std::pair<std::string, std::string>>;

std::string env_or(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string trim_slashes(std::string s) {
  while (!s.empty() && s.front() == '/') s.erase(s.begin());
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// Appends the UTF-8 encoding of a code point (numeric character references in XML).
void append_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp <= 0x10FFFF) {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    throw std::runtime_error("XML character reference out of range");
  }
}

}  // namespace

// Minimal XML reading for S3's small, flat responses (no XML library on these machines): the text of
// elements by name, with the five predefined entities and numeric references decoded. S3 never
// uses CDATA, attributes on these elements, or nesting of same-named elements.
namespace s3xml {

std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const std::size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) throw std::runtime_error("malformed XML entity");
    const std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (ent.size() > 1 && ent[0] == '#') {
      const bool hexa = ent[1] == 'x' || ent[1] == 'X';
      const std::string digits(ent.substr(hexa ? 2 : 1));
      if (digits.empty() || digits.find_first_not_of(hexa ? "0123456789abcdefABCDEF" : "0123456789") != std::string::npos)
        throw std::runtime_error(fmt::format("malformed XML character reference '&{};'", ent));
      append_utf8(out, std::stoul(digits, nullptr, hexa ? 16 : 10));
    } else {
      throw std::runtime_error(fmt::format("unknown XML entity '&{};'", ent));
    }
    i = semi;
  }
  return out;
}

// Raw (still escaped) inner text of every <tag>…</tag> in xml, in order. <tag/> yields "".
std::vector<std::string_view> raw_all(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> out;
  const std::string open = "<" + std::string(tag);
  const std::string close = "</" + std::string(tag) + ">";
  std::size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    const std::size_t after = pos + open.size();
    if (after >= xml.size()) break;
    const char c = xml[after];
    if (c == '/' && after + 1 < xml.size() && xml[after + 1] == '>') {  // <tag/>
      out.emplace_back();
      pos = after + 2;
      continue;
    }
    if (c != '>' && c != ' ' && c != '\t' && c != '\r' && c != '\n') {  // <tagLonger…>
      pos = after;
      continue;
    }
    const std::size_t gt = xml.find('>', after);
    if (gt == std::string_view::npos) throw std::runtime_error(fmt::format("malformed XML near <{}>", tag));
    const std::size_t end = xml.find(close, gt + 1);
    if (end == std::string_view::npos) throw std::runtime_error(fmt::format("XML element <{}> is not closed", tag));
    out.push_back(xml.substr(gt + 1, end - gt - 1));
    pos = end + close.size();
  }
  return out;
}

std::vector<std::string> all(std::string_view xml, std::string_view tag) {
  std::vector<std::string> out;
  for (auto raw : raw_all(xml, tag)) out.push_back(unescape(raw));
  return out;
}

std::optional<std::string> first(std::string_view xml, std::string_view tag) {
  auto raw = raw_all(xml, tag);
  if (raw.empty()) return std::nullopt;
  return unescape(raw.front());
}

}  // namespace s3xml

namespace {

std::string escape_xml(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

// "S3 GET curated/x.parquet: 403 AccessDenied: Access Denied" — the code and message S3 sent, no
// headers (they carry the signature).
[[noreturn]] void fail(const std::string& op, const std::string& key, const HttpResponse& r) {
  std::string code, message;
  try {
    code = s3xml::first(r.body, "Code").value_or("");
    message = s3xml::first(r.body, "Message").value_or("");
  } catch (const std::exception&) {
    // An unparseable error body still leaves the status to report.
  }
  throw std::runtime_error(fmt::format("S3 {} '{}': HTTP {}{}{}", op, key, r.status, code.empty() ? "" : " " + code,
                                       message.empty() ? "" : ": " + message));
}

bool ok(long status) { return status >= 200 && status < 300; }

std::string read_range(std::ifstream& in, const fs::path& file, std::size_t n) {
  std::string buf(n, '\0');
  in.read(buf.data(), static_cast<std::streamsize>(n));
  if (static_cast<std::size_t>(in.gcount()) != n)
    throw std::runtime_error(fmt::format("short read of staged file {} (changed while uploading?)", file.string()));
  return buf;
}

}  // namespace

S3Config s3_config_from_uri(const std::string& uri) {
  S3Config c;
  std::string rest;
  bool gcs = false;
  if (uri.rfind("s3://", 0) == 0) {
    rest = uri.substr(5);
  } else if (uri.rfind("gs://", 0) == 0) {
    rest = uri.substr(5);
    gcs = true;
  } else {
    throw std::invalid_argument(fmt::format("not an object-store URI (s3:// or gs://): '{}'", uri));
  }
  const std::size_t slash = rest.find('/');
  c.bucket = rest.substr(0, slash);
  c.prefix = slash == std::string::npos ? "" : trim_slashes(rest.substr(slash + 1));
  if (c.bucket.empty()) throw std::invalid_argument(fmt::format("object-store URI without a bucket: '{}'", uri));
  c.endpoint = env_or("AWS_ENDPOINT_URL", gcs ? "https://storage.googleapis.com" : "");
  c.region = env_or("AWS_REGION", env_or("AWS_DEFAULT_REGION", gcs ? "auto" : "us-east-1"));
  c.credentials.access_key_id = env_or("AWS_ACCESS_KEY_ID");
  c.credentials.secret_access_key = env_or("AWS_SECRET_ACCESS_KEY");
  c.credentials.session_token = env_or("AWS_SESSION_TOKEN");
  // AWS itself prefers virtual-hosted URLs; every other endpoint (GCS, MinIO, s3rver) takes paths.
  c.path_style = !c.endpoint.empty();
  return c;
}

S3Lake::S3Lake(S3Config config) : config_(std::move(config)) {
  config_.prefix = trim_slashes(config_.prefix);
  if (!config_.prefix.empty()) checked_lake_path(config_.prefix, false);
  if (config_.bucket.empty() || config_.bucket.find('/') != std::string::npos)
    throw std::invalid_argument(fmt::format("S3 lake: invalid bucket name '{}'", config_.bucket));
  if (config_.credentials.access_key_id.empty() || config_.credentials.secret_access_key.empty())
    throw std::invalid_argument(
        "S3 lake: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the lake's config)");
  if (config_.region.empty()) throw std::invalid_argument("S3 lake: empty region");
  if (config_.part_size == 0) throw std::invalid_argument("S3 lake: part size must be positive");
  std::string endpoint = config_.endpoint.empty() ? fmt::format("https://s3.{}.amazonaws.com", config_.region)
                                                  : config_.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  const std::size_t scheme_end = endpoint.find("://");
  if (scheme_end == std::string::npos ||
      (endpoint.substr(0, scheme_end) != "http" && endpoint.substr(0, scheme_end) != "https") ||
      endpoint.find('/', scheme_end + 3) != std::string::npos || endpoint.size() == scheme_end + 3)
    throw std::invalid_argument(fmt::format("S3 lake: endpoint must be http(s)://host[:port]: '{}'", endpoint));
  std::string scheme = endpoint.substr(0, scheme_end);
  std::string authority = endpoint.substr(scheme_end + 3);
  // Drop a default port: clients sign the Host header they send, and curl omits default ports.
  if (scheme == "https" && authority.size() > 4 && authority.ends_with(":443")) authority.resize(authority.size() - 4);
  if (scheme == "http" && authority.size() > 3 && authority.ends_with(":80")) authority.resize(authority.size() - 3);
  host_ = config_.path_style ? authority : config_.bucket + "." + authority;
  base_url_ = scheme + "://" + host_;
  if (config_.staging_dir.empty())
    config_.staging_dir = fs::temp_directory_path() / "apilake-staging" /
                          sigv4::sha256_hex(base_url_ + "/" + config_.bucket + "/" + config_.prefix).substr(0, 16);
  fs::create_directories(config_.staging_dir);
}

S3Lake::~S3Lake() = default;

fs::path S3Lake::staging_dir() const { return config_.staging_dir; }

std::string S3Lake::key_of(const std::string& checked_path) const {
  return config_.prefix.empty() ? checked_path : config_.prefix + "/" + checked_path;
}

std::unique_ptr<HttpClient> S3Lake::borrow() {
  {
    std::lock_guard lk(pool_mu_);
    if (!pool_.empty()) {
      auto c = std::move(pool_.back());
      pool_.pop_back();
      return c;
    }
  }
  return std::make_unique<HttpClient>(config_.http);
}

void S3Lake::give_back(std::unique_ptr<HttpClient> client) {
  std::lock_guard lk(pool_mu_);
  if (pool_.size() < 8) pool_.push_back(std::move(client));
}

HttpResponse S3Lake::call(const std::string& method, const std::string& key, Query query, const std::string& body,
                          bool sign_payload) {
  sigv4::Request r;
  r.method = method;
  const std::string path = config_.path_style ? "/" + config_.bucket : "";
  // A bucket-level request (listing) addresses "/bucket" (path-style) or "/" (virtual-hosted).
  r.canonical_uri = key.empty() ? (path.empty() ? "/" : path) : path + "/" + sigv4::uri_encode(key, false);
  r.query = std::move(query);
  r.headers = {{"host", host_}};
  r.payload_hash = sign_payload ? sigv4::sha256_hex(body) : std::string(sigv4::kEmptySha256);
  HttpRequest req;
  req.method = method;
  req.url = base_url_ + r.canonical_uri;
  if (!r.query.empty()) req.url += "?" + sigv4::canonical_query(r.query);
  req.body = body;
  req.headers = sigv4::sign(std::move(r), config_.credentials, config_.region, "s3",
                            sigv4::amz_date(std::chrono::system_clock::now()));
  // Unsigned on purpose (proxies may rewrite it). Without it curl labels every upload as a form post,
  // and the stored object would carry that content type.
  if (method == "PUT" || method == "POST")
    req.headers.emplace_back("Content-Type", body.starts_with("<CompleteMultipartUpload>") ? "application/xml"
                                                                                           : "application/octet-stream");
  auto client = borrow();
  HttpResponse res = perform_with_retry(*client, req, config_.retry);
  give_back(std::move(client));
  return res;
}

bool S3Lake::exists(const std::string& path) {
  const std::string key = key_of(checked_lake_path(path, false));
  HttpResponse r = call("HEAD", key, {}, "", false);
  if (r.status == 404) return false;
  if (!ok(r.status)) fail("HEAD", key, r);
  return true;
}

void S3Lake::put(const std::string& path, const std::string& bytes) {
  const std::string key = key_of(checked_lake_path(path, false));
  HttpResponse r = call("PUT", key, {}, bytes, true);
  if (!ok(r.status)) fail("PUT", key, r);
}

std::optional<std::string> S3Lake::get(const std::string& path) {
  const std::string key = key_of(checked_lake_path(path, false));
  HttpResponse r = call("GET", key, {}, "", false);
  if (r.status == 404) return std::nullopt;
  if (!ok(r.status)) fail("GET", key, r);
  return std::move(r.body);
}

void S3Lake::remove(const std::string& path) {
  const std::string key = key_of(checked_lake_path(path, false));
  HttpResponse r = call("DELETE", key, {}, "", false);
  if (r.status != 404 && !ok(r.status)) fail("DELETE", key, r);  // removing twice is not an error
}

std::vector<std::string> S3Lake::list(const std::string& prefix) {
  const std::string rel = checked_lake_path(prefix, true);
  const std::string root = config_.prefix.empty() ? "" : config_.prefix + "/";
  // "curated/a" lists what is under the folder curated/a/, not curated/ab…: a '/' ends the prefix.
  const std::string key_prefix = rel.empty() ? root : root + rel + "/";
  std::vector<std::string> out;
  std::string token;
  for (int page = 0;; ++page) {
    Query q = {{"list-type", "2"}, {"max-keys", std::to_string(page_size_)}};
    if (!key_prefix.empty()) q.emplace_back("prefix", key_prefix);
    if (!token.empty()) q.emplace_back("continuation-token", token);
    HttpResponse r = call("GET", "", q, "", false);
    if (!ok(r.status)) fail("LIST", key_prefix, r);
    try {
      for (auto contents : s3xml::raw_all(r.body, "Contents")) {
        for (const auto& key : s3xml::all(contents, "Key")) {
          if (key.size() <= root.size() || key.compare(0, root.size(), root) != 0) continue;
          std::string path = key.substr(root.size());
          try {
            out.push_back(checked_lake_path(path, false));
          } catch (const std::invalid_argument&) {
            // Foreign objects ("folder/" markers, "a//b") cannot be lake files: not listed.
          }
        }
      }
      const bool truncated = s3xml::first(r.body, "IsTruncated").value_or("false") == "true";
      if (!truncated) break;
      token = s3xml::first(r.body, "NextContinuationToken").value_or("");
      if (token.empty()) throw std::runtime_error("truncated listing without a continuation token");
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(fmt::format("S3 LIST '{}': bad response: {}", key_prefix, e.what()));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.empty() && !rel.empty() && exists(rel)) out.push_back(rel);  // the prefix names a file
  return out;
}

void S3Lake::commit_staged(const fs::path& staged, const std::string& final_path) {
  const std::string rel = checked_lake_path(final_path, false);
  const std::string key = key_of(rel);
  std::error_code ec;
  if (!fs::exists(staged, ec)) {
    // Roll-forward after a crash between the upload and the ledger's commit: already in place.
    if (exists(rel)) return;
    throw std::runtime_error(fmt::format(
        "cannot commit {} to {}: staged file is missing and the object does not exist", staged.string(), key));
  }
  const std::size_t size = fs::file_size(staged);
  if (size > config_.multipart_threshold) {
    upload_multipart(staged, size, key);
  } else {
    std::ifstream in(staged, std::ios::binary);
    if (!in) throw std::runtime_error(fmt::format("cannot open staged file {}", staged.string()));
    const std::string bytes = read_range(in, staged, size);
    HttpResponse r = call("PUT", key, {}, bytes, true);
    if (!ok(r.status)) fail("PUT", key, r);
  }
  // The object is in place: the staged copy has done its job. A crash before this line leaves both,
  // and the next commit uploads the same bytes again (same name, same content).
  fs::remove(staged, ec);
  if (ec) spdlog::warn("S3 lake: cannot remove staged file {}: {}", staged.string(), ec.message());
}

void S3Lake::upload_multipart(const fs::path& file, std::size_t size, const std::string& key) {
  HttpResponse init = call("POST", key, {{"uploads", ""}}, "", true);
  if (!ok(init.status)) fail("CreateMultipartUpload", key, init);
  const std::string upload_id = s3xml::first(init.body, "UploadId").value_or("");
  if (upload_id.empty()) throw std::runtime_error(fmt::format("S3 CreateMultipartUpload '{}': no UploadId", key));
  try {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error(fmt::format("cannot open staged file {}", file.string()));
    std::string complete = "<CompleteMultipartUpload>";
    std::size_t done = 0;
    for (int part = 1; done < size; ++part) {
      const std::size_t n = std::min(config_.part_size, size - done);
      const std::string bytes = read_range(in, file, n);
      HttpResponse r = call("PUT", key, {{"partNumber", std::to_string(part)}, {"uploadId", upload_id}}, bytes, true);
      if (!ok(r.status)) fail(fmt::format("UploadPart {}", part), key, r);
      const auto etag = r.header("etag");
      if (!etag || etag->empty()) throw std::runtime_error(fmt::format("S3 UploadPart {} '{}': no ETag", part, key));
      complete += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", part, escape_xml(*etag));
      done += n;
      if (config_.on_part) config_.on_part(part, done);
    }
    complete += "</CompleteMultipartUpload>";
    HttpResponse r = call("POST", key, {{"uploadId", upload_id}}, complete, true);
    // S3 may answer 200 and still report an error in the body (the response streams while it works).
    if (!ok(r.status) || r.body.find("<Error>") != std::string::npos) fail("CompleteMultipartUpload", key, r);
  } catch (...) {
    // Abort so no parts linger (they cost storage); the object itself never appeared.
    try {
      HttpResponse a = call("DELETE", key, {{"uploadId", upload_id}}, "", false);
      if (!ok(a.status) && a.status != 404)
        spdlog::warn("S3 lake: abort of multipart upload for '{}' answered HTTP {} (its parts stay until a "
                     "lifecycle rule removes incomplete uploads; the object itself does not exist)",
                     key, a.status);
    } catch (const std::exception& e) {
      spdlog::warn("S3 lake: abort of multipart upload for '{}' failed: {}", key, e.what());
    }
    throw;
  }
}

}  // namespace apilake
