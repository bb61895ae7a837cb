#include "source/source.h"

#include "definition/records.h"
#include "source/rate_limit.h"

#include <openssl/evp.h>
#include <simdjson.h>

#include <boost/json.hpp>
#include <boost/url.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <set>
#include <thread>

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

std::string json_error_or(const std::string& body, const std::string& fallback) {
  std::string d = describe_json_error(body);
  return d.empty() ? fallback : d;
}

// PageDom: takes whatever the page's records were taken from (e.g. integers beyond 64 bits).
simdjson::dom::element parse_json(PageDom& dom, const std::string& body) {
  simdjson::dom::element root;
  if (auto err = dom.parse(body, root))
    throw FetchError(json_error_or(body, fmt::format("not JSON: {}", simdjson::error_message(err))));
  return root;
}

// A validated list value is comma-joined (definition.h); items never hold a comma.
std::vector<std::string> list_items(const std::string& v) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto comma = v.find(',', start);
    out.push_back(v.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// One value (a param or a list item) as the API wants it: dates in the param's format.
std::string render_value(const ParamSpec& spec, const std::string& v);

// A whole param value; lists joined by their separator (then URL-encoded with everything else).
std::string render_param(const ParamSpec& spec, const std::string& v) {
  if (spec.type != ParamType::List) return render_value(spec, v);
  std::string out;
  for (const auto& item : list_items(v)) out += (out.empty() ? "" : spec.separator) + render_value(spec, item);
  return out;
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

namespace {
std::string render_value(const ParamSpec& spec, const std::string& v) {
  const ParamType t = spec.type == ParamType::List ? spec.item_type : spec.type;
  return t == ParamType::Date ? render_date(v, spec.format.empty() ? "yyyy-MM-dd" : spec.format) : v;
}
}  // namespace

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
    path += url_encode(render_param(*spec, v->second));
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
    if (spec.type == ParamType::List && spec.explode) {
      for (const auto& item : list_items(v->second)) query.emplace_back(spec.api_name, render_value(spec, item));
    } else {
      query.emplace_back(spec.api_name, render_param(spec, v->second));
    }
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

namespace {

// The value at `ptr`, or nullopt when the pointer reaches nothing.
std::optional<simdjson::dom::element> at(simdjson::dom::element root, const std::string& ptr, const char* what) {
  simdjson::dom::element v;
  auto err = root.at_pointer(ptr).get(v);
  if (err == simdjson::NO_SUCH_FIELD || err == simdjson::INDEX_OUT_OF_BOUNDS) return std::nullopt;
  if (err) throw FetchError(fmt::format("{} '{}': {}", what, ptr, simdjson::error_message(err)));
  return v;
}

std::string resolve(const std::string& current_url, std::string_view ref_text) {
  auto ref = boost::urls::parse_uri_reference(ref_text);
  if (!ref) throw FetchError(fmt::format("next URL '{}' is not a valid URL", ref_text));
  auto base = boost::urls::parse_uri(current_url);
  if (!base) throw FetchError(fmt::format("current URL '{}' is not absolute", current_url));
  boost::urls::url out;
  if (auto r = boost::urls::resolve(*base, *ref, out); !r)
    throw FetchError(fmt::format("cannot resolve next URL '{}' against '{}'", ref_text, current_url));
  return std::string(out.buffer());
}

const char* kind_of(simdjson::dom::element e) {
  return e.is_object() ? "an object" : e.is_array() ? "an array" : e.is_bool() ? "a boolean"
         : e.is_number() ? "a number" : e.is_string() ? "a string" : "null";
}

}  // namespace

std::optional<std::string> link_next(std::string_view h) {
  std::size_t i = 0;
  while (i < h.size()) {
    const auto lt = h.find('<', i);
    if (lt == std::string_view::npos) return std::nullopt;
    const auto gt = h.find('>', lt);
    if (gt == std::string_view::npos) return std::nullopt;
    const std::string_view target = h.substr(lt + 1, gt - lt - 1);
    // Parameters run to the next ',' outside quotes.
    std::size_t j = gt + 1;
    bool quoted = false;
    for (; j < h.size(); ++j) {
      if (h[j] == '"') quoted = !quoted;
      else if (h[j] == ',' && !quoted) break;
    }
    std::string params(h.substr(gt + 1, j - gt - 1));
    std::transform(params.begin(), params.end(), params.begin(), [](unsigned char c) { return std::tolower(c); });
    for (std::size_t p = params.find("rel"); p != std::string::npos; p = params.find("rel", p + 3)) {
      std::size_t k = p + 3;
      while (k < params.size() && params[k] == ' ') ++k;
      if (k >= params.size() || params[k] != '=') continue;
      ++k;
      while (k < params.size() && params[k] == ' ') ++k;
      std::string value;
      if (k < params.size() && params[k] == '"') {
        const auto end = params.find('"', k + 1);
        value = params.substr(k + 1, end == std::string::npos ? std::string::npos : end - k - 1);
      } else {
        const auto end = params.find_first_of("; ", k);
        value = params.substr(k, end == std::string::npos ? std::string::npos : end - k);
      }
      // rel may hold several space-separated relation types ("next last").
      std::size_t w = 0;
      while (w < value.size()) {
        const auto sp = value.find(' ', w);
        if (value.substr(w, sp == std::string::npos ? std::string::npos : sp - w) == "next")
          return std::string(target);
        if (sp == std::string::npos) break;
        w = sp + 1;
      }
    }
    i = j + 1;
  }
  return std::nullopt;
}

std::optional<std::string> next_page_url(const Endpoint& endpoint, const PageInfo& info) {
  const auto& pg = endpoint.pagination;
  using K = Pagination::Kind;
  if (pg.kind == K::None) return std::nullopt;
  if (pg.stop_on_empty && info.records == 0) return std::nullopt;
  // A short page is the last one: page/offset APIs rarely say so any other way.
  if (pg.stops_on_short() && pg.page_size > 0 && info.records < static_cast<std::size_t>(pg.page_size))
    return std::nullopt;

  const bool needs_body = !pg.has_more_pointer.empty() || !pg.total_pointer.empty() || pg.kind == K::Cursor ||
                          pg.kind == K::NextUrl;
  PageDom dom;
  simdjson::dom::element root;
  if (needs_body) {
    const std::string body(info.body);
    root = parse_json(dom, body);
  }
  if (!pg.has_more_pointer.empty()) {
    auto v = at(root, pg.has_more_pointer, "has_more_pointer");
    if (!v || v->is_null()) return std::nullopt;
    bool more = false;
    if (v->get_bool().get(more))
      throw FetchError(fmt::format("has_more_pointer '{}' holds {}, not true/false", pg.has_more_pointer,
                                   kind_of(*v)));
    if (!more) return std::nullopt;
  }
  if (!pg.total_pointer.empty()) {
    if (auto v = at(root, pg.total_pointer, "total_pointer"); v && !v->is_null()) {
      const std::optional<double> total = dom.number(*v);
      if (!total)
        throw FetchError(fmt::format("total_pointer '{}' holds {}, not a number", pg.total_pointer, kind_of(*v)));
      if (static_cast<double>(info.records_so_far) >= *total) return std::nullopt;
    }
  }

  switch (pg.kind) {
    case K::None:
      return std::nullopt;
    case K::PageNumber:
      return set_query_param(info.url, pg.page_param, std::to_string(pg.start_page + info.number));
    case K::OffsetLimit:
      // The next offset is what we have seen so far, which is also right when an API caps limit
      // below page_size with stop_on_short off.
      return set_query_param(info.url, pg.offset_param,
                             std::to_string(info.records_so_far > 0
                                                ? static_cast<long long>(info.records_so_far)
                                                : static_cast<long long>(info.number) * pg.page_size));
    case K::Cursor: {
      auto v = at(root, pg.cursor_pointer, "cursor_pointer");
      if (!v || v->is_null()) return std::nullopt;
      std::string cursor;
      std::string_view sv;
      if (v->get_string().get(sv) == simdjson::SUCCESS) cursor = std::string(sv);
      else if (v->is_number()) cursor = dom.text(*v);
      else
        throw FetchError(fmt::format("cursor_pointer '{}' holds {}, not a string or number", pg.cursor_pointer,
                                     kind_of(*v)));
      if (cursor.empty()) return std::nullopt;
      return set_query_param(info.url, pg.cursor_param, cursor);
    }
    case K::NextUrl: {
      auto v = at(root, pg.next_pointer, "next_pointer");
      if (!v || v->is_null()) return std::nullopt;
      std::string_view sv;
      if (v->get_string().get(sv))
        throw FetchError(fmt::format("next_pointer '{}' holds {}, not a URL string", pg.next_pointer, kind_of(*v)));
      if (sv.empty()) return std::nullopt;
      return resolve(info.url, sv);
    }
    case K::LinkHeader: {
      if (!info.link_header) return std::nullopt;
      auto next = link_next(*info.link_header);
      if (!next || next->empty()) return std::nullopt;
      return resolve(info.url, *next);
    }
  }
  return std::nullopt;
}

std::optional<std::string> next_page_url(const Endpoint& endpoint, const std::string& current_url, int page_number,
                                         std::size_t records, const std::string& body) {
  PageInfo info;
  info.url = current_url;
  info.number = page_number;
  info.records = records;
  // Earlier pages were full (or pagination would have stopped), so this is what was seen.
  info.records_so_far = static_cast<std::size_t>(std::max(0, page_number - 1)) *
                            static_cast<std::size_t>(std::max(0, endpoint.pagination.page_size)) +
                        records;
  info.body = body;
  return next_page_url(endpoint, info);
}

std::size_t count_records(const std::string& body, const Endpoint& endpoint) {
  try {
    return count_selected_records(body, endpoint);
  } catch (const RecordError& e) {
    throw FetchError(e.what());
  }
}

std::size_t count_records(const std::string& body, const std::string& records_pointer) {
  Endpoint e;
  e.records_pointer = records_pointer;
  return count_records(body, e);
}

// --- incremental ----------------------------------------------------------------------------------

std::string incremental_key(const Endpoint& endpoint, const Params& params) {
  boost::json::object o;
  for (const auto& [k, v] : params)  // std::map: sorted, so the key is canonical
    if (!endpoint.incremental || k != endpoint.incremental->param) o[k] = v;
  return boost::json::serialize(o);
}

bool cursor_less(const std::string& a, const std::string& b) {
  auto number = [](const std::string& s, double& out) {
    if (s.empty()) return false;
    char* end = nullptr;
    out = std::strtod(s.c_str(), &end);
    return end == s.c_str() + s.size() && std::isfinite(out);
  };
  double x = 0, y = 0;
  if (number(a, x) && number(b, y)) return x < y;
  return a < b;
}

std::optional<std::string> incremental_param_value(const Endpoint& endpoint, const std::string& stored) {
  if (!endpoint.incremental) return std::nullopt;
  const ParamSpec* spec = endpoint.param(endpoint.incremental->param);
  if (!spec) return std::nullopt;
  std::string v = stored;
  if (spec->type == ParamType::Date) v = v.substr(0, 10);  // "2024-03-05T10:00:00Z" -> "2024-03-05"
  Params one{{spec->name, v}};
  Endpoint probe;  // validate just this value with the real rules (type, bounds, pattern)
  probe.params = {*spec};
  probe.params.front().required = false;
  try {
    return validate_params(probe, one).at(spec->name);
  } catch (const ParamError&) {
    return std::nullopt;
  }
}

std::optional<std::string> max_cursor(const std::vector<std::string>& records, const std::string& cursor_field) {
  PageDom dom;
  std::optional<std::string> best;
  for (const auto& r : records) {
    simdjson::dom::element root, v;
    if (dom.parse(r, root) || root.at_pointer(cursor_field).get(v) || v.is_null()) continue;
    std::string text;
    std::string_view sv;
    if (v.get_string().get(sv) == simdjson::SUCCESS) text = std::string(sv);
    else if (v.is_number()) text = dom.text(v);
    else continue;  // objects, arrays, booleans cannot order a cursor
    if (!best || cursor_less(*best, text)) best = std::move(text);
  }
  return best;
}

int Fetcher::run(const Source& source, const Endpoint& endpoint, const Params& params,
                 const std::function<void(Page&&)>& on_page, const Sleeper& sleep) {
  auto host = url_host(source.base_url);
  if (!host) throw FetchError(fmt::format("base_url '{}' is not an absolute http(s) URL", source.base_url));
  // The kept client goes only to this source's host for this run (redirects and next links included).
  if (!client_) client_ = std::make_unique<HttpClient>(http_);
  client_->set_allowed_hosts({*host});
  HttpClient& client = *client_;

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

  const auto limiter = rate_limiter_for(source.name, source.rate_limit);
  const Sleeper real_sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  const Sleeper& do_sleep = sleep ? sleep : real_sleep;
  const auto& pg = endpoint.pagination;

  std::string url = first_page_url(source, endpoint, params);
  std::set<std::string> seen_urls, seen_cursors;
  std::optional<std::pair<std::size_t, std::size_t>> previous_body;  // (size, hash) of the last page
  std::optional<std::size_t> previous_records;                     // hash of its selected records
  std::size_t records_so_far = 0;
  for (int number = 1;; ++number) {
    if (!seen_urls.insert(url).second)
      throw FetchError(with_page(number, fmt::format("pagination returned an already fetched URL ({}); stopping "
                                                     "instead of looping",
                                                     redact(url))));
    HttpRequest req;
    req.url = url;
    req.headers = headers;
    HttpResponse res;
    try {
      auto permit = limiter->acquire(do_sleep);
      res = perform_with_retry(client, req, retry_, do_sleep);
    } catch (const NetError& e) {
      throw FetchError(with_page(number, scrub(e.what(), secrets)));
    }
    const auto fetched = std::chrono::system_clock::now();
    if (res.status < 200 || res.status > 299)
      throw FetchError(with_page(number, fmt::format("HTTP {} from {}: {}", res.status, redact(url),
                                                     scrub(res.body.substr(0, 200), secrets))));
    // The raw zone keeps pages byte-exact and the bus carries one page per message, so a page
    // that cannot travel in one message is refused rather than split (see docs/sources.md).
    if (res.body.size() > source.max_page_bytes)
      throw FetchError(with_page(number, fmt::format("the page is {} bytes, larger than the limit of {} bytes "
                                                     "(max_page_bytes: one page must fit one bus message); "
                                                     "ask for smaller pages (page_size)",
                                                     res.body.size(), source.max_page_bytes)));
    // An identical body twice in a row means the API ignores our paging parameter: stop now.
    const std::pair<std::size_t, std::size_t> fingerprint{res.body.size(), std::hash<std::string>{}(res.body)};
    if (previous_body && *previous_body == fingerprint)
      throw FetchError(with_page(number, "the page is identical to the previous one: the API ignores the "
                                         "pagination parameters; stopping instead of looping"));
    previous_body = fingerprint;

    Page page;
    page.number = number;
    page.url = redact(url);
    page.content_type = res.header("content-type").value_or("");
    page.fetched_at_us =
        std::chrono::duration_cast<std::chrono::microseconds>(fetched.time_since_epoch()).count();
    std::optional<std::string> next;
    try {
      if (endpoint.incremental) {
        auto records = select_records(res.body, endpoint);
        page.records = records.size();
        page.max_cursor = max_cursor(records, endpoint.incremental->cursor_field);
      }
      // Same records as the previous page (even with a fresh next link): the API is not paging.
      std::size_t fingerprint = 0;
      page.records = count_selected_records(res.body, endpoint, &fingerprint);
      if (page.records > 0 && previous_records == fingerprint)
        throw FetchError("the records are identical to the previous page's: the API ignores the pagination "
                         "parameters; stopping instead of looping");
      previous_records = fingerprint;
      records_so_far += page.records;
      if (!pg.total_pointer.empty()) {
        PageDom dom;
        simdjson::dom::element root, v;
        int64_t total = 0;
        if (!dom.parse(res.body, root) && !root.at_pointer(pg.total_pointer).get(v) &&
            !v.get_int64().get(total))
          page.total_records = total;
      }
      PageInfo info;
      // A relative next link is relative to the document, i.e. where redirects ended.
      info.url = (pg.kind == Pagination::Kind::NextUrl || pg.kind == Pagination::Kind::LinkHeader) &&
                         !res.effective_url.empty()
                     ? res.effective_url
                     : url;
      info.number = number;
      info.records = page.records;
      info.records_so_far = records_so_far;
      info.body = res.body;
      info.link_header = res.header("link");
      next = next_page_url(endpoint, info);
    } catch (const RecordError& e) {
      throw FetchError(with_page(number, scrub(e.what(), secrets)));
    } catch (const FetchError& e) {
      throw FetchError(with_page(number, scrub(e.what(), secrets)));
    }
    if (next) {
      // Next links come from the upstream's body or headers: they may never move us to another host.
      auto next_host = url_host(*next);
      if (!next_host || *next_host != *host)
        throw FetchError(with_page(number, fmt::format("the next page URL points to {} instead of {}; refused",
                                                       next_host ? *next_host : std::string("a non-http(s) URL"),
                                                       *host)));
      if (pg.kind == Pagination::Kind::Cursor) {
        const std::string cursor = [&] {
          auto u = parse_url(*next);
          auto it = u.params().find(pg.cursor_param);
          return it == u.params().end() ? std::string() : std::string((*it).value);
        }();
        if (!seen_cursors.insert(cursor).second)
          throw FetchError(with_page(number, fmt::format("the API returned cursor '{}' again; stopping instead of "
                                                         "looping",
                                                         scrub(cursor, secrets))));
      }
    }
    // Next links built by the API rarely repeat the key it was given as a query parameter.
    if (next && source.auth.kind == AuthKind::ApiKeyQuery)
      next = set_query_param(*next, source.auth.name, secret_from_env(source));
    // The upstream's own quota headers: wait before the next request (every extraction of this
    // source waits too), or fail when the wait is beyond what we accept to block a worker for.
    std::optional<std::chrono::milliseconds> quota_wait;
    if (next) quota_wait = rate_limit_wait(res, std::chrono::system_clock::now());
    page.body = std::move(res.body);
    on_page(std::move(page));
    if (!next) return number;
    if (number >= pg.max_pages)
      throw FetchError(with_page(number, fmt::format("page cap of {} reached with more pages to fetch",
                                                     pg.max_pages)));
    if (quota_wait && quota_wait->count() > 0) {
      if (*quota_wait > retry_.max_retry_after)
        throw FetchError(with_page(number, fmt::format("the API's rate limit is exhausted and resets in {} s, "
                                                       "longer than the {} s we wait; run the extraction again "
                                                       "later",
                                                       (quota_wait->count() + 999) / 1000,
                                                       retry_.max_retry_after.count() / 1000)));
      limiter->pause_until(std::chrono::steady_clock::now() + *quota_wait);
    }
    url = std::move(*next);
  }
}

}  // namespace apilake
