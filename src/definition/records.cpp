#include "definition/records.h"

#include <simdjson.h>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace apilake {
namespace {

const char* kind_name(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: return "an array";
    case simdjson::dom::element_type::OBJECT: return "an object";
    case simdjson::dom::element_type::STRING: return "a string";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
    case simdjson::dom::element_type::BOOL: return "a boolean";
    default: return "a number";
  }
}

std::string show_pointer(const std::string& p) { return p.empty() ? std::string("\"\" (the body)") : "'" + p + "'"; }

std::string json_key(std::string_view k) { return boost::json::serialize(boost::json::string(k)); }

// emit == nullptr: count only.
using Emit = std::function<void(std::string&&)>;

// One parser per thread: fetch workers and the curator each reuse their buffers.
simdjson::dom::parser& dom_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

// target_out: the records_pointer's target, valid until this thread's parser parses again.
std::size_t walk(std::string_view body, const Endpoint& endpoint, const Emit* emit, std::size_t* fingerprint,
                 simdjson::dom::element* target_out = nullptr) {
  simdjson::dom::parser& parser = dom_parser();
  simdjson::dom::element root;
  if (parser.parse(body.data(), body.size(), true).get(root)) throw RecordError(describe_json_error(body));

  simdjson::dom::element target = root;
  const std::string& ptr = endpoint.records_pointer;
  if (!ptr.empty()) {
    if (auto err = root.at_pointer(ptr).get(target))
      throw RecordError(fmt::format("records pointer {} does not reach a value: {}", show_pointer(ptr),
                                    simdjson::error_message(err)));
  }

  if (fingerprint) *fingerprint = std::hash<std::string>{}(simdjson::minify(target));
  if (target_out) *target_out = target;

  // Page-level values copied into every record, rendered once.
  std::string context;
  for (const auto& [name, cptr] : endpoint.record_context) {
    simdjson::dom::element v;
    if (auto err = root.at_pointer(cptr).get(v))
      throw RecordError(fmt::format("record_context '{}': pointer '{}' does not reach a value: {}", name, cptr,
                                    simdjson::error_message(err)));
    context += "," + json_key(name) + ":" + simdjson::minify(v);
  }
  auto with_context = [&](simdjson::dom::element rec, std::size_t index) {
    std::string text = simdjson::minify(rec);
    if (endpoint.record_context.empty()) return text;
    simdjson::dom::object obj;
    if (rec.get_object().get(obj))
      throw RecordError(fmt::format("record {} is {}, so record_context cannot be added to it", index,
                                    kind_name(rec)));
    for (const auto& [name, cptr] : endpoint.record_context) {
      simdjson::dom::element existing;
      if (obj.at_key(name).get(existing) == simdjson::SUCCESS)
        throw RecordError(fmt::format("record {} already has a field '{}' (record_context would overwrite it)",
                                      index, name));
    }
    text.pop_back();  // the closing '}'
    text += text.size() == 1 ? context.substr(1) : context;
    text += '}';
    return text;
  };

  if (endpoint.record_shape == RecordShape::ParallelArrays) {
    simdjson::dom::object obj;
    if (target.get_object().get(obj))
      throw RecordError(fmt::format("record_shape parallel_arrays needs an object of arrays at {}, found {}",
                                    show_pointer(ptr), kind_name(target)));
    std::vector<std::pair<std::string_view, simdjson::dom::array>> columns;
    std::optional<std::size_t> length;
    std::string first;
    for (auto field : obj) {
      simdjson::dom::array arr;
      if (field.value.get_array().get(arr))
        throw RecordError(fmt::format("record_shape parallel_arrays: member '{}' is {}, not an array", field.key,
                                      kind_name(field.value)));
      if (!length) {
        length = arr.size();
        first = std::string(field.key);
      } else if (arr.size() != *length) {
        throw RecordError(fmt::format("record_shape parallel_arrays: member '{}' has {} values but '{}' has {}",
                                      field.key, arr.size(), first, *length));
      }
      columns.emplace_back(field.key, arr);
    }
    const std::size_t n = length.value_or(0);
    if (!emit) return n;
    std::vector<simdjson::dom::array::iterator> its;
    for (auto& [k, arr] : columns) its.push_back(arr.begin());
    for (std::size_t i = 0; i < n; ++i) {
      std::string text = "{";
      for (std::size_t c = 0; c < columns.size(); ++c) {
        if (c) text += ',';
        text += json_key(columns[c].first) + ":" + simdjson::minify(*its[c]);
        ++its[c];
      }
      if (!context.empty()) text += columns.empty() ? context.substr(1) : context;
      text += '}';
      (*emit)(std::move(text));
    }
    return n;
  }

  simdjson::dom::array arr;
  if (target.get_array().get(arr) == simdjson::SUCCESS) {
    std::size_t i = 0;
    for (simdjson::dom::element rec : arr) {
      ++i;
      if (emit) (*emit)(with_context(rec, i));
      else if (!endpoint.record_context.empty() && !rec.is_object())
        throw RecordError(fmt::format("record {} is {}, so record_context cannot be added to it", i,
                                      kind_name(rec)));
    }
    return arr.size();
  }
  if (target.is_object()) {  // a single-record endpoint (e.g. "get one item")
    if (emit) (*emit)(with_context(target, 1));
    return 1;
  }
  throw RecordError(fmt::format("records pointer {} reaches {}, not an array or object", show_pointer(ptr),
                                kind_name(target)));
}

}  // namespace

std::string describe_json_error(std::string_view body) {
  if (body.empty()) return "not JSON: the body is empty";
  // simdjson says what is wrong but not where; Boost.JSON's incremental parser reports how far it
  // got, which is the byte a user needs to look at.
  boost::json::stream_parser p;
  boost::system::error_code ec;
  const std::size_t used = p.write_some(body.data(), body.size(), ec);
  if (!ec && p.done() && used < body.size())
    return fmt::format("not JSON: unexpected content after the document at byte {}", used);
  if (!ec) p.finish(ec);
  if (!ec) {
    // Boost accepted what simdjson refused (e.g. nesting depth); name simdjson's reason.
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element root;
    auto err = parser.parse(body.data(), body.size(), true).get(root);
    if (!err) return "";
    return fmt::format("not JSON: {}", simdjson::error_message(err));
  }
  if (used >= body.size())
    return fmt::format("not JSON: truncated: the document ends early at byte {} ({})", body.size(), ec.message());
  return fmt::format("not JSON: {} at byte {}", ec.message(), used);
}

std::vector<std::string> select_records(std::string_view body, const Endpoint& endpoint) {
  std::vector<std::string> out;
  const Emit emit = [&](std::string&& r) { out.push_back(std::move(r)); };
  walk(body, endpoint, &emit, nullptr);
  return out;
}

std::size_t count_selected_records(std::string_view body, const Endpoint& endpoint, std::size_t* fingerprint) {
  return walk(body, endpoint, nullptr, fingerprint);
}

}  // namespace apilake

namespace apilake {
namespace {

namespace od = simdjson::ondemand;

// A DOM parser of its own for PageRecord::text(), which runs inside visit_records' callback while
// walk()'s parser may still hold the page (the DOM-checked path).
simdjson::dom::parser& text_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

// records_pointer split for the on-demand reader. `usable` is false for a pointer whose DOM meaning
// this reader does not reproduce token for token (not starting with '/', a bad '~' escape): such
// pages go the DOM-checked way, which also gives the DOM's exact error.
struct PointerPath {
  struct Token {
    std::string key;                   // an object member's (unescaped) name
    std::optional<std::size_t> index;  // an array index, only in canonical form ("0", "17"; not "01", "-")
  };
  std::vector<Token> tokens;
  bool usable = true;
};

PointerPath split_pointer(const std::string& ptr) {
  PointerPath path;
  if (ptr.empty()) return path;
  if (ptr[0] != '/') {
    path.usable = false;
    return path;
  }
  std::size_t at = 1;
  while (true) {
    const std::size_t slash = std::min(ptr.find('/', at), ptr.size());
    PointerPath::Token t;
    for (std::size_t i = at; i < slash; ++i) {
      if (ptr[i] != '~') {
        t.key += ptr[i];
      } else if (i + 1 < slash && (ptr[i + 1] == '0' || ptr[i + 1] == '1')) {
        t.key += ptr[++i] == '0' ? '~' : '/';
      } else {
        path.usable = false;
        return path;
      }
    }
    const std::string_view raw(ptr.data() + at, slash - at);
    if (!raw.empty() && raw.size() <= 9 && (raw == "0" || raw[0] != '0') &&
        raw.find_first_not_of("0123456789") == std::string_view::npos)
      t.index = std::stoul(std::string(raw));
    path.tokens.push_back(std::move(t));
    if (slash == ptr.size()) break;
    at = slash + 1;
  }
  return path;
}

// The string escapes of the whole page, by the rules of simdjson's string parser (which the DOM
// applies to every string and key): \" \\ \/ \b \f \n \r \t, and \uXXXX (hex) where a high
// surrogate must be followed by \u + a low surrogate and a lone low surrogate is an error. Stage 1
// has already checked UTF-8, unclosed strings and raw control characters, so with this the on-demand
// check never needs to unescape a string. A backslash outside a string makes the page invalid
// anyway (no scalar token may hold one), so scanning the whole page is exact. `p` must be padded
// (an escape at the very end reads past it).
bool escapes_valid(const char* p, const char* end) {
  auto hex4 = [](const char* h) -> int32_t {
    int32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = h[i];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else return -1;
      v = v * 16 + d;
    }
    return v;
  };
  while ((p = static_cast<const char*>(std::memchr(p, '\\', static_cast<std::size_t>(end - p)))) != nullptr) {
    switch (p[1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        p += 2;
        break;
      case 'u': {
        const int32_t cp = hex4(p + 2);
        if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff)) return false;
        if (cp >= 0xd800 && cp < 0xdc00) {
          if (p[6] != '\\' || p[7] != 'u') return false;
          const int32_t low = hex4(p + 8);
          if (low < 0xdc00 || low > 0xdfff) return false;
          p += 12;
        } else {
          p += 6;
        }
        break;
      }
      default:
        return false;
    }
    if (p >= end) break;
  }
  return true;
}

// Deeper pages are left to the DOM (its own limit is 1024); this bounds the check's recursion.
constexpr std::size_t kMaxCheckedDepth = 256;

// The first on-demand pass over a page: everything the DOM parse checks (structure, every number,
// true/false/null, string escapes, nothing after the document), without building anything, plus the
// records_pointer's target and the bytes of each of its records. True only for a page the DOM
// accepts whose pointer reaches an array or object; false for anything else, including pages this
// reader is unsure of (the caller then asks the DOM, which has the last word and the error text).
class PageCheck {
 public:
  PageCheck(od::document& doc, const PointerPath& path, const char* end, std::vector<std::string_view>& spans)
      : doc_(doc), path_(path), end_(end), spans_(spans) {}

  bool run() {
    od::value root;
    if (doc_.get_value().get(root)) return false;  // a scalar document has no records either way
    if (!on_path(root, 1, 0)) return false;
    const char* at = nullptr;
    return doc_.current_location().get(at) == simdjson::OUT_OF_BOUNDS;  // nothing after the document
  }
  bool target_is_array() const { return target_is_array_; }

 private:
  // Any value off the pointer's path: checked, not kept.
  bool value(od::value v, std::size_t depth) {
    od::json_type t;
    if (v.type().get(t)) return false;
    switch (t) {
      case od::json_type::array: {
        od::array a;
        if (depth >= kMaxCheckedDepth || v.get_array().get(a)) return false;
        for (auto element : a) {
          od::value e;
          if (element.get(e) || !value(e, depth + 1)) return false;
        }
        return true;
      }
      case od::json_type::object: {
        od::object o;
        if (depth >= kMaxCheckedDepth || v.get_object().get(o)) return false;
        for (auto member : o) {
          od::field f;
          if (std::move(member).get(f) || !value(f.value(), depth + 1)) return false;
        }
        return true;
      }
      case od::json_type::number: {
        od::number n;  // the DOM's number parser: grammar, and range (no infinity, no integer beyond 64 bits)
        return v.get_number().get(n) == simdjson::SUCCESS;
      }
      case od::json_type::string: {
        od::raw_json_string s;  // its escapes were checked with the whole page
        return v.get_raw_json_string().get(s) == simdjson::SUCCESS;
      }
      case od::json_type::boolean: {
        bool b;
        return v.get_bool().get(b) == simdjson::SUCCESS;
      }
      case od::json_type::null: {
        bool is_null = false;
        return v.is_null().get(is_null) == simdjson::SUCCESS && is_null;
      }
    }
    return false;
  }

  // A value on the pointer's path, `k` tokens down.
  bool on_path(od::value v, std::size_t depth, std::size_t k) {
    if (k == path_.tokens.size()) return target(v, depth);
    const PointerPath::Token& token = path_.tokens[k];
    od::json_type t;
    if (v.type().get(t) || depth >= kMaxCheckedDepth) return false;
    bool found = false;
    if (t == od::json_type::object) {
      od::object o;
      if (v.get_object().get(o)) return false;
      for (auto member : o) {
        od::field f;
        if (std::move(member).get(f)) return false;
        bool here = false;
        if (!found) {  // the first member of that name, as the DOM's at_pointer finds it
          std::string_view key;
          if (f.unescaped_key().get(key)) return false;
          here = found = key == token.key;
        }
        if (!(here ? on_path(f.value(), depth + 1, k + 1) : value(f.value(), depth + 1))) return false;
      }
      return found;
    }
    if (t == od::json_type::array) {
      od::array a;
      if (v.get_array().get(a)) return false;
      std::size_t i = 0;
      for (auto element : a) {
        od::value e;
        if (element.get(e)) return false;
        const bool here = token.index && i++ == *token.index;
        found = found || here;
        if (!(here ? on_path(e, depth + 1, k + 1) : value(e, depth + 1))) return false;
      }
      return found;
    }
    return false;  // a scalar before the pointer's end
  }

  // The pointer's target: an array (its elements are the records) or an object (one record).
  bool target(od::value v, std::size_t depth) {
    od::json_type t;
    if (v.type().get(t)) return false;
    if (t == od::json_type::object) {
      const char* begin = v.raw_json_token().data();
      if (!value(v, depth)) return false;
      spans_.emplace_back(begin, static_cast<std::size_t>(here() - begin));
      return true;
    }
    od::array a;
    if (t != od::json_type::array || depth >= kMaxCheckedDepth || v.get_array().get(a)) return false;
    target_is_array_ = true;
    for (auto element : a) {
      od::value e;
      if (element.get(e)) return false;
      const std::string_view token = e.raw_json_token();
      const bool container = token[0] == '{' || token[0] == '[';
      if (!value(e, depth + 1)) return false;
      // A container ends where the iterator now stands; a scalar is one token (the on-demand number
      // getter does not move the iterator).
      const char* end = container ? here() : token.data() + token.size();
      spans_.emplace_back(token.data(), static_cast<std::size_t>(end - token.data()));
    }
    return true;
  }

  const char* here() {
    const char* at = nullptr;
    return doc_.current_location().get(at) ? end_ : at;
  }

  od::document& doc_;
  const PointerPath& path_;
  const char* end_;
  std::vector<std::string_view>& spans_;
  bool target_is_array_ = false;
};

// The second pass: from the rewound document to the pointer's target, by the same rules as the check.
simdjson::error_code navigate(od::document& doc, const PointerPath& path, od::value& out) {
  if (auto e = doc.get_value().get(out)) return e;
  for (const PointerPath::Token& token : path.tokens) {
    od::json_type t;
    if (auto e = out.type().get(t)) return e;
    bool found = false;
    if (t == od::json_type::object) {
      od::object o;
      if (auto e = out.get_object().get(o)) return e;
      for (auto member : o) {
        od::field f;
        std::string_view key;
        if (auto e = std::move(member).get(f)) return e;
        if (auto e = f.unescaped_key().get(key)) return e;
        if (key == token.key) {
          out = f.value();
          found = true;
          break;
        }
      }
    } else if (t == od::json_type::array && token.index) {
      od::array a;
      if (auto e = out.get_array().get(a)) return e;
      std::size_t i = 0;
      for (auto element : a) {
        if (i++ == *token.index) {
          if (auto e = element.get(out)) return e;
          found = true;
          break;
        }
      }
    }
    if (!found) return simdjson::NO_SUCH_FIELD;
  }
  return simdjson::SUCCESS;
}

// A reused padded copy of `text` (simdjson reads past the end), iterated on demand. The padding is
// zeroed so that bytes of an earlier, longer page are never read as part of this one.
simdjson::simdjson_result<od::document> iterate_padded(std::string_view text, od::parser& parser,
                                                       simdjson::padded_string& buffer) {
  // (A default padded_string has no storage at all, not even padding: an empty first page needs one.)
  if (buffer.data() == nullptr || buffer.size() < text.size())
    buffer = simdjson::padded_string(text.size() + text.size() / 2);
  std::memcpy(buffer.data(), text.data(), text.size());
  std::memset(buffer.data() + text.size(), 0, simdjson::SIMDJSON_PADDING);
  return parser.iterate(buffer.data(), text.size(), buffer.size() + simdjson::SIMDJSON_PADDING);
}

}  // namespace

std::string PageRecord::text() const {
  if (synthesised_) return *synthesised_;
  if (raw_.data() == nullptr) return simdjson::minify(dom_);
  // The record's own bytes, re-rendered as the DOM renders the page's element (the same parser on
  // the same bytes gives the same values). The page was checked, so this parse succeeds; if it ever
  // did not, the record's bytes as sent are still the record.
  simdjson::dom::element e;
  if (text_parser().parse(raw_.data(), raw_.size()).get(e)) {
    const std::size_t last = raw_.find_last_not_of(" \t\r\n");
    return std::string(raw_.substr(0, last == std::string_view::npos ? 0 : last + 1));
  }
  return simdjson::minify(e);
}

std::size_t visit_records(std::string_view body, const Endpoint& endpoint,
                          const std::function<void(PageRecord&)>& on_record) {
  thread_local od::parser parser;
  thread_local simdjson::padded_string buffer;
  thread_local simdjson::padded_string alone_buffer;  // not `buffer`: records' bytes point into it
  thread_local std::vector<std::string_view> spans;
  PageRecord record;
  auto iterate = [&](std::string_view text) { return iterate_padded(text, parser, buffer); };
  // The page was accepted, so the on-demand reader cannot disagree; if it ever did, say so rather
  // than drop records silently.
  auto disagree = [](simdjson::error_code e) {
    return RecordError(fmt::format("not JSON: {} (on-demand reader)", simdjson::error_message(e)));
  };
  // One record from its own bytes, parsed on its own (wrapped in [ ]: simdjson cannot hand out a
  // scalar document as a value).
  auto hand_out_alone = [&](std::string_view text, const std::string* synthesised, std::string_view raw,
                            simdjson::dom::element dom) {
    const std::string wrapped = "[" + std::string(text) + "]";
    od::document doc;
    od::array array;
    if (auto e = iterate_padded(wrapped, parser, alone_buffer).get(doc)) throw disagree(e);
    if (auto e = doc.get_array().get(array)) throw disagree(e);
    for (auto element : array) {
      if (auto e = element.get(record.value)) throw disagree(e);
      break;
    }
    record.synthesised_ = synthesised;
    record.raw_ = raw;
    record.dom_ = dom;
    on_record(record);
  };

  if (endpoint.record_shape != RecordShape::Records || !endpoint.record_context.empty()) {
    // Synthesised records exist only as text: each is parsed on its own.
    const std::vector<std::string> texts = select_records(body, endpoint);
    for (std::size_t i = 0; i < texts.size(); ++i) {
      record.index = i + 1;
      hand_out_alone(texts[i], &texts[i], {}, {});
    }
    return texts.size();
  }

  // Pass 1: the whole page checked on demand (stage 1 once, for both passes), the records located.
  const PointerPath path = split_pointer(endpoint.records_pointer);
  spans.clear();
  od::document doc;
  bool checked = false;
  bool is_array = false;
  if (path.usable && !iterate(body).get(doc) && escapes_valid(buffer.data(), buffer.data() + body.size())) {
    PageCheck check(doc, path, buffer.data() + body.size(), spans);
    checked = check.run();
    is_array = check.target_is_array();
  }

  if (checked) {
    // Pass 2: the same document rewound, each record handed out in place. The check passed, so this
    // cannot fail; if it ever did, the records not yet handed out go the slow way (never lost, never
    // twice).
    const std::size_t count = spans.size();
    std::size_t done = 0;
    auto fast = [&]() -> simdjson::error_code {
      doc.rewind();
      od::value value;
      if (auto e = navigate(doc, path, value)) return e;
      if (!is_array) {
        record.value = value;
        record.index = 1;
        record.raw_ = spans[0];
        ++done;
        on_record(record);
        return simdjson::SUCCESS;
      }
      od::array array;
      if (auto e = value.get_array().get(array)) return e;
      for (auto element : array) {
        if (done == count) return simdjson::TAPE_ERROR;
        if (auto e = element.get(record.value)) return e;
        record.raw_ = spans[done];
        record.index = ++done;
        on_record(record);
      }
      return simdjson::SUCCESS;
    };
    fast();
    while (done < count) {
      record.index = done + 1;
      const std::string_view raw = spans[done];
      ++done;
      hand_out_alone(raw, nullptr, raw, {});
    }
    return count;
  }

  // The on-demand check refused the page or was unsure: the DOM decides, with select_records' own
  // code (its error, or its records when the page is valid after all, e.g. nested deeper than the
  // check goes).
  simdjson::dom::element target;
  const std::size_t count = walk(body, endpoint, nullptr, nullptr, &target);
  simdjson::dom::array dom_array;
  is_array = target.get_array().get(dom_array) == simdjson::SUCCESS;
  auto dom_it = is_array ? dom_array.begin() : simdjson::dom::array::iterator{};
  std::size_t done = 0;
  auto fast = [&]() -> simdjson::error_code {
    if (auto e = iterate(body).get(doc)) return e;
    od::value value;
    const std::string& ptr = endpoint.records_pointer;
    if (auto e = (ptr.empty() ? doc.get_value() : doc.at_pointer(ptr)).get(value)) return e;
    if (!is_array) {  // a single-record endpoint
      record.value = value;
      record.index = 1;
      record.dom_ = target;
      ++done;
      on_record(record);
      return simdjson::SUCCESS;
    }
    od::array array;
    if (auto e = value.get_array().get(array)) return e;
    for (auto element : array) {
      if (done == count) return simdjson::TAPE_ERROR;
      if (auto e = element.get(record.value)) return e;
      record.index = ++done;
      record.dom_ = *dom_it;
      ++dom_it;
      on_record(record);
    }
    return simdjson::SUCCESS;
  };
  fast();
  while (done < count) {
    const simdjson::dom::element element = is_array ? *dom_it : target;
    if (is_array) ++dom_it;
    record.index = ++done;
    hand_out_alone(simdjson::minify(element), nullptr, {}, element);
  }
  return count;
}

}  // namespace apilake
