// The source stage: from a definition + validated params, a sequence of pages fetched over HTTP
// (pagination, auth, retries). Knows nothing of the bus: each page goes to a callback.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

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
  std::size_t records = 0;         // records selected by the endpoint's records_pointer
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
// `records` is the count of records on this page, `body` the page (for next-URL pointers).
// PageNumber/OffsetLimit: a page with fewer than page_size records is the last. NextUrl: a null,
// absent or empty value is the last; a relative URL is resolved against current_url; a non-string
// value or a body that is not JSON throws FetchError. The page cap is the caller's check.
std::optional<std::string> next_page_url(const Endpoint& endpoint, const std::string& current_url,
                                         int page_number, std::size_t records, const std::string& body);

// Counts records at records_pointer in a JSON body: an array counts its elements, an object is one
// record. Throws FetchError when the body is not JSON, truncated, or the pointer reaches nothing or
// a scalar (Fetcher prefixes "page N: ").
std::size_t count_records(const std::string& body, const std::string& records_pointer);

class Fetcher {
 public:
  Fetcher(HttpOptions http, RetryPolicy retry) : http_(std::move(http)), retry_(retry) {}
  // Fetches every page, calling on_page in order; returns the number of pages. Throws FetchError.
  // The HttpClient used is restricted to the source's host.
  int run(const Source& source, const Endpoint& endpoint, const Params& params,
          const std::function<void(Page&&)>& on_page, const Sleeper& sleep = {});

 private:
  HttpOptions http_;
  RetryPolicy retry_;
};

}  // namespace apilake
