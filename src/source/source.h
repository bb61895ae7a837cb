// The source stage: from a definition + validated params, a sequence of pages fetched over HTTP
// (pagination, auth, retries). Knows nothing of the bus: each page goes to a callback.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "definition/definition.h"
#include "net/http_client.h"
#include "net/retry.h"

namespace apilake {

struct Page {
  int number = 1;                  // 1-based
  std::string url;                 // as requested (secrets redacted)
  std::string body;                // exactly as received (after content decoding)
  std::string content_type;
  int64_t fetched_at_us = 0;       // UTC microseconds
  std::size_t records = 0;         // records selected by the endpoint (definition/records.h)
  std::optional<int64_t> total_records;  // pagination.total_pointer's value, when declared and present
  std::optional<std::string> max_cursor; // incremental endpoints: highest cursor_field value on the page
};

// What the paginator knows after a page.
struct PageInfo {
  std::string url;                 // where the page came from (after redirects: relative links resolve here)
  int number = 1;                  // 1-based
  std::size_t records = 0;         // on this page
  std::size_t records_so_far = 0;  // on this page and every earlier one (total_pointer compares this)
  std::string_view body;
  std::optional<std::string> link_header;  // the response's Link header, if any
};

// The extraction failed: upstream error after retries, bad body, page cap, host not allowed, ...
struct FetchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The URL of the first page: base_url + path template with path params substituted (URL-encoded),
// fixed query + query params (dates rendered in the param's format) + pagination params + API-key.
// Never changes the host. Throws FetchError on an unusable template.
std::string first_page_url(const Source& source, const Endpoint& endpoint, const Params& params);

// Renders an ISO date (yyyy-mm-dd) in a pattern of dd, MM, yyyy (e.g. "dd/MM/yyyy").
std::string render_date(const std::string& iso, const std::string& pattern);

// Pagination decision after a page: the next URL or nothing (done). Pure; unit-tested.
// Stop conditions first, in order: kind none; stop_on_empty and no records; stop_on_short and fewer
// than page_size records; has_more_pointer false/null/absent; total_pointer reached by
// records_so_far. Then the kind: PageNumber/OffsetLimit compute the next page; Cursor reads
// cursor_pointer (string or number; null/absent/"" = last) into cursor_param; NextUrl reads
// next_pointer (null/absent/"" = last); LinkHeader follows rel="next" (none = last). Relative URLs
// resolve against info.url. Values of the wrong type or a body that is not JSON throw FetchError.
// The page cap, repeat detection and the host check are the Fetcher's.
std::optional<std::string> next_page_url(const Endpoint& endpoint, const PageInfo& info);
// Shorthand for tests: records_so_far = records, no Link header.
std::optional<std::string> next_page_url(const Endpoint& endpoint, const std::string& current_url,
                                         int page_number, std::size_t records, const std::string& body);

// The rel="next" target of a Link header value (RFC 8288), or nullopt.
std::optional<std::string> link_next(std::string_view link_header);

// Counts records at records_pointer in a JSON body: an array counts its elements, an object is one
// record. Throws FetchError when the body is not JSON, truncated, or the pointer reaches nothing or
// a scalar (Fetcher prefixes "page N: "). The endpoint form applies record_shape/record_context too.
std::size_t count_records(const std::string& body, const std::string& records_pointer);
std::size_t count_records(const std::string& body, const Endpoint& endpoint);

// --- incremental extraction ---------------------------------------------------------------------
// The state key: the endpoint's params except the incremental param, as canonical JSON.
std::string incremental_key(const Endpoint& endpoint, const Params& params);
// Orders cursor values: numerically when both are numbers, else as text (ISO dates/times sort so).
bool cursor_less(const std::string& a, const std::string& b);
// The value to send in the incremental param for a stored cursor: the value itself (inclusive, so
// the boundary is fetched again), cut to its yyyy-mm-dd prefix for a date param. nullopt when the
// stored value does not fit the param (e.g. not a date), so the caller can refuse clearly.
std::optional<std::string> incremental_param_value(const Endpoint& endpoint, const std::string& stored);
// The highest cursor_field value among records (JSON texts); absent and null values are skipped.
std::optional<std::string> max_cursor(const std::vector<std::string>& records, const std::string& cursor_field);

// One Fetcher per thread (not thread-safe): it keeps one HttpClient between runs, so connections to
// an upstream stay open (keep-alive) from one extraction to the next instead of a new TCP (and TLS)
// connection each; every run re-restricts that client to its own source's host.
class Fetcher {
 public:
  Fetcher(HttpOptions http, RetryPolicy retry) : http_(std::move(http)), retry_(retry) {}
  // Fetches every page, calling on_page in order; returns the number of pages. Throws FetchError.
  // The HttpClient used is restricted to the source's host (redirects and next links elsewhere are
  // refused). Requests are paced by the source's shared RateLimiter; X-RateLimit-* waits longer
  // than retry.max_retry_after fail. A page larger than source.max_page_bytes, not JSON, or
  // repeating the previous one (same URL, cursor, or identical body) fails the extraction.
  int run(const Source& source, const Endpoint& endpoint, const Params& params,
          const std::function<void(Page&&)>& on_page, const Sleeper& sleep = {});

 private:
  HttpOptions http_;
  RetryPolicy retry_;
  std::unique_ptr<HttpClient> client_;  // made on the first run, kept for the next ones
};

}  // namespace apilake
