#include "source/source.h"

#include <openssl/evp.h>
#include <simdjson.h>

#include <boost/url.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

namespace apilake {
namespace {

std::string with_page(int page, const std::string& msg) { return fmt::format("page {}: {}", page, msg); }

// A secret taken from the environment; the message names the variable, never shows a value.
std::string secret_from_env(const Source& source) {
  const char* v = std::getenv(source.auth.env.c_str());
  if (!v || !*v)
    throw FetchError(fmt::format("environment variable {} (auth of source '{}') is not set", source.auth.env,
                                 source.name));
  return v;
}

// Values that must never appear in a URL we report or an error message.
std::vector<std::string> secret_variants(const Source& source) {
  std::vector<std::string> out;
  if (source.auth.kind == AuthKind::None || source.auth.env.empty()) return out;
  const char* v = std::getenv(source.auth.env.c_str());
  if (!v || !*v) return out;
  std::string s = v;
  out.push_back(s);
  out.push_back(url_encode(s));
  if (source.auth.kind == AuthKind::Basic) {
    auto colon = s.find(':');
    if (colon != std::string::npos && colon + 1 < s.size()) {
      out.push_back(s.substr(colon + 1));
      out.push_back(url_encode(s.substr(colon + 1)));
    }
  }
  // Longest first, so a shorter variant never leaves part of a longer one behind.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  return out;
}

std::string scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) {
    if (s.empty()) continue;
    for (auto pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos + 8))
      text.replace(pos, s.size(), "REDACTED");
  }
  return text;
}

boost::urls::url parse_url(const std::string& s) {
  auto r = boost::urls::parse_uri_reference(s);
  if (!r) throw FetchError(fmt::format("not a valid URL: '{}' ({})", s, r.error().message()));
  return boost::urls::url(*r);
}

// Sets (or appends) one query parameter, keeping the position and every other parameter.
std::string set_query_param(const std::string& url, const std::string& key, const std::string& value) {
  auto u = parse_url(url);
  const std::string k = url_encode(key), v = url_encode(value);
  u.encoded_params().set(k, v);
  return std::string(u.buffer());
}

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

simdjson::dom::element parse_json(simdjson::dom::parser& parser, const std::string& body) {
  simdjson::dom::element root;
  if (auto err = parser.parse(body).get(root))
    throw FetchError(fmt::format("body is not valid JSON: {}", simdjson::error_message(err)));
  return root;
}

}  // namespace

std::string render_date(const std::string& iso, const std::string& pattern) {
  if (iso.size() != 10 || iso[4] != '-' || iso[7] != '-')
    throw FetchError(fmt::format("date '{}' is not yyyy-mm-dd", iso));
  const std::string year = iso.substr(0, 4), month = iso.substr(5, 2), day = iso.substr(8, 2);
  std::string out;
  for (std::size_t i = 0; i < pattern.size();) {
    if (pattern.compare(i, 4, "yyyy") == 0) {
      out += year;
      i += 4;
    } else if (pattern.compare(i, 2, "MM") == 0) {
      out += month;
      i += 2;
    } else if (pattern.compare(i, 2, "dd") == 0) {
      out += day;
      i += 2;
    } else if (std::isalpha(static_cast<unsigned char>(pattern[i]))) {
      // The loader rejects other tokens; a hand-built definition must not send a half-rendered date.
      throw FetchError(fmt::format("unknown token in date format '{}' (known: dd, MM, yyyy)", pattern));
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

std::string first_page_url(const Source& source, const Endpoint& endpoint, const Params& params) {
  std::string base = source.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (!url_host(base)) throw FetchError(fmt::format("base_url '{}' is not an absolute http(s) URL", base));
  if (base.find_first_of("?#") != std::string::npos)
    throw FetchError(fmt::format("base_url '{}' must not have a query or fragment", base));

  // Path: literal text from the definition, placeholders URL-encoded with every reserved character
  // escaped, so a value holding "/", "?", "#" or "@" stays inside its segment and never reaches the
  // authority or the query.
  std::string path;
  const std::string& tpl = endpoint.path;
  if (tpl.empty() || tpl.front() != '/') throw FetchError(fmt::format("path '{}' must start with '/'", tpl));
  for (std::size_t i = 0; i < tpl.size(); ++i) {
    if (tpl[i] != '{') {
      if (tpl[i] == '}' || tpl[i] == '?' || tpl[i] == '#')
        throw FetchError(fmt::format("unusable path template '{}'", tpl));
      path += tpl[i];
      continue;
    }
    const auto close = tpl.find('}', i);
    if (close == std::string::npos) throw FetchError(fmt::format("unclosed '{{' in path template '{}'", tpl));
    const std::string name = tpl.substr(i + 1, close - i - 1);
    const ParamSpec* spec = nullptr;
    for (const auto& p : endpoint.params)
      if (p.in == ParamLocation::Path && p.api_name == name) spec = &p;
    if (!spec) throw FetchError(fmt::format("path placeholder '{{{}}}' has no path parameter", name));
    auto v = params.find(spec->name);
    if (v == params.end() || v->second.empty())
      throw FetchError(fmt::format("path parameter '{}' has no value", spec->name));
    // "." and ".." are unreserved characters, yet as a whole segment clients and servers collapse
    // them (RFC 3986 dot-segments), and WHATWG parsers treat "%2e%2e" the same: no encoding keeps
    // them data, so they are refused. No API has an id spelled "..".
    if (v->second == "." || v->second == "..")
      throw FetchError(fmt::format("path parameter '{}' cannot be '{}'", spec->name, v->second));
    path += url_encode(v->second);
    i = close;
  }

  // Query: every key and value through url_encode, so "/" in dd/MM/yyyy goes out as %2F. BCB (and
  // any RFC 3986 server) decodes both forms the same; one encoding everywhere keeps URLs comparable
  // for the repeated-URL check and the replay fixtures' matching (which compares decoded values).
  std::vector<std::pair<std::string, std::string>> query(endpoint.fixed_query.begin(), endpoint.fixed_query.end());
  for (const auto& spec : endpoint.params) {
    if (spec.in != ParamLocation::Query) continue;
    auto v = params.find(spec.name);
    if (v == params.end()) continue;
    query.emplace_back(spec.api_name, spec.type == ParamType::Date
                                          ? render_date(v->second, spec.format.empty() ? "yyyy-MM-dd" : spec.format)
                                          : v->second);
  }
  const auto& pg = endpoint.pagination;
  if (pg.kind == Pagination::Kind::PageNumber) {
    query.emplace_back(pg.page_param, std::to_string(pg.start_page));
    if (!pg.size_param.empty()) query.emplace_back(pg.size_param, std::to_string(pg.page_size));
  } else if (pg.kind == Pagination::Kind::OffsetLimit) {
    query.emplace_back(pg.offset_param, "0");
    query.emplace_back(pg.limit_param, std::to_string(pg.page_size));
  }
  if (source.auth.kind == AuthKind::ApiKeyQuery) query.emplace_back(source.auth.name, secret_from_env(source));

  std::string url = base + path;
  for (std::size_t i = 0; i < query.size(); ++i)
    url += (i ? "&" : "?") + url_encode(query[i].first) + "=" + url_encode(query[i].second);
  return url;
}

std::optional<std::string> next_page_url(const Endpoint& endpoint, const std::string& current_url, int page_number,
                                         std::size_t records, const std::string& body) {
  const auto& pg = endpoint.pagination;
  switch (pg.kind) {
    case Pagination::Kind::None:
      return std::nullopt;
    case Pagination::Kind::PageNumber:
      // A short (or empty) page is the last one: APIs of this kind rarely say so any other way.
      if (pg.page_size <= 0 || records < static_cast<std::size_t>(pg.page_size)) return std::nullopt;
      return set_query_param(current_url, pg.page_param, std::to_string(pg.start_page + page_number));
    case Pagination::Kind::OffsetLimit:
      if (pg.page_size <= 0 || records < static_cast<std::size_t>(pg.page_size)) return std::nullopt;
      return set_query_param(current_url, pg.offset_param,
                             std::to_string(static_cast<long long>(page_number) * pg.page_size));
    case Pagination::Kind::NextUrl: {
      simdjson::dom::parser parser;
      auto root = parse_json(parser, body);
      simdjson::dom::element next;
      auto err = root.at_pointer(pg.next_pointer).get(next);
      if (err == simdjson::NO_SUCH_FIELD || err == simdjson::INDEX_OUT_OF_BOUNDS) return std::nullopt;
      if (err)
        throw FetchError(fmt::format("next_pointer '{}': {}", pg.next_pointer, simdjson::error_message(err)));
      if (next.is_null()) return std::nullopt;
      std::string_view s;
      if (next.get_string().get(s))
        throw FetchError(fmt::format("next_pointer '{}' holds a {}, not a URL string", pg.next_pointer,
                                     next.is_object() ? "object" : next.is_array() ? "array" : "non-string"));
      if (s.empty()) return std::nullopt;
      auto ref = boost::urls::parse_uri_reference(s);
      if (!ref) throw FetchError(fmt::format("next URL '{}' is not a valid URL", s));
      auto base = boost::urls::parse_uri(current_url);
      if (!base) throw FetchError(fmt::format("current URL '{}' is not absolute", current_url));
      boost::urls::url out;
      if (auto r = boost::urls::resolve(*base, *ref, out); !r)
        throw FetchError(fmt::format("cannot resolve next URL '{}' against '{}'", s, current_url));
      return std::string(out.buffer());
    }
  }
  return std::nullopt;
}

std::size_t count_records(const std::string& body, const std::string& records_pointer) {
  simdjson::dom::parser parser;
  auto root = parse_json(parser, body);
  simdjson::dom::element at;
  if (auto err = root.at_pointer(records_pointer).get(at))
    throw FetchError(fmt::format("records pointer '{}' does not reach a value: {}", records_pointer,
                                 simdjson::error_message(err)));
  if (at.is_array()) return simdjson::dom::array(at).size();
  if (at.is_object()) return 1;  // a single-record endpoint (e.g. "get one item")
  throw FetchError(fmt::format("records pointer '{}' reaches a {}, not an array or object",
                               records_pointer.empty() ? "\"\"" : records_pointer,
                               at.is_string() ? "string" : at.is_null() ? "null" : at.is_bool() ? "boolean" : "number"));
}

int Fetcher::run(const Source& source, const Endpoint& endpoint, const Params& params,
                 const std::function<void(Page&&)>& on_page, const Sleeper& sleep) {
  auto host = url_host(source.base_url);
  if (!host) throw FetchError(fmt::format("base_url '{}' is not an absolute http(s) URL", source.base_url));
  HttpOptions options = http_;
  options.allowed_hosts = {*host};

  Headers headers = {{"Accept", "application/json"}};
  switch (source.auth.kind) {
    case AuthKind::None:
    case AuthKind::ApiKeyQuery:  // added to the URL by first_page_url
      break;
    case AuthKind::ApiKeyHeader:
      headers.emplace_back(source.auth.name, secret_from_env(source));
      break;
    case AuthKind::Bearer:
      headers.emplace_back("Authorization", "Bearer " + secret_from_env(source));
      break;
    case AuthKind::Basic: {
      const std::string up = secret_from_env(source);
      if (up.find(':') == std::string::npos)
        throw FetchError(fmt::format("environment variable {} must hold user:password", source.auth.env));
      headers.emplace_back("Authorization", "Basic " + base64(up));
      break;
    }
  }
  const auto secrets = secret_variants(source);
  // Page URLs leave this process (bus attributes, API): the key parameter is replaced by name, and
  // any other appearance of the secret by value.
  auto redact = [&](const std::string& url) {
    std::string out = url;
    if (source.auth.kind == AuthKind::ApiKeyQuery) {
      try {
        auto u = parse_url(url);
        const std::string k = url_encode(source.auth.name);
        for (auto it = u.encoded_params().find(k); it != u.encoded_params().end();
             it = u.encoded_params().find(std::next(it), k))
          it = u.encoded_params().replace(it, boost::urls::param_pct_view(k, "REDACTED"));
        out = std::string(u.buffer());
      } catch (const std::exception&) {
        // Not parseable: the value scrub below still applies.
      }
    }
    return scrub(out, secrets);
  };

  HttpClient client(options);
  std::string url = first_page_url(source, endpoint, params);
  std::set<std::string> seen;
  for (int number = 1;; ++number) {
    if (!seen.insert(url).second)
      throw FetchError(with_page(number, fmt::format("pagination returned an already fetched URL ({}); stopping "
                                                     "instead of looping",
                                                     redact(url))));
    HttpRequest req;
    req.url = url;
    req.headers = headers;
    HttpResponse res;
    try {
      res = perform_with_retry(client, req, retry_, sleep);
    } catch (const NetError& e) {
      throw FetchError(with_page(number, scrub(e.what(), secrets)));
    }
    const auto fetched = std::chrono::system_clock::now();
    if (res.status < 200 || res.status > 299)
      throw FetchError(with_page(number, fmt::format("HTTP {} from {}: {}", res.status, redact(url),
                                                     scrub(res.body.substr(0, 200), secrets))));
    Page page;
    page.number = number;
    page.url = redact(url);
    page.content_type = res.header("content-type").value_or("");
    page.fetched_at_us =
        std::chrono::duration_cast<std::chrono::microseconds>(fetched.time_since_epoch()).count();
    std::optional<std::string> next;
    try {
      page.records = count_records(res.body, endpoint.records_pointer);
      // A relative next link is relative to the document, i.e. where redirects ended.
      const std::string& current =
          endpoint.pagination.kind == Pagination::Kind::NextUrl && !res.effective_url.empty() ? res.effective_url
                                                                                              : url;
      next = next_page_url(endpoint, current, number, page.records, res.body);
    } catch (const FetchError& e) {
      throw FetchError(with_page(number, scrub(e.what(), secrets)));
    }
    // Next links built by the API rarely repeat the key it was given as a query parameter.
    if (next && source.auth.kind == AuthKind::ApiKeyQuery && url_host(*next) == host)
      next = set_query_param(*next, source.auth.name, secret_from_env(source));
    page.body = std::move(res.body);
    on_page(std::move(page));
    if (!next) return number;
    if (number >= endpoint.pagination.max_pages)
      throw FetchError(with_page(number, fmt::format("page cap of {} reached with more pages to fetch",
                                                     endpoint.pagination.max_pages)));
    url = std::move(*next);
  }
}

}  // namespace apilake
