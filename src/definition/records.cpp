#include "definition/records.h"

#include <simdjson.h>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace apilake {

// A DOM parse that also takes integers beyond 64 bits. simdjson 3.0.1's DOM refuses them
// (NUMBER_ERROR, "Problem while parsing a number"), yet they are valid JSON and the validator takes
// them for double and decimal fields (docs/schema.md). A page refused with NUMBER_ERROR is parsed
// again with each such integer replaced by a placeholder: a tiny negative double (-(2^52 + k) *
// 2^-1000, k-th integer of the page) that no other number of the page holds (checked; another range
// is tried if one does). render() and ValueHash put each integer's own text back where its
// placeholder shows. A number is a number either way (kind names and structure are unchanged); a page
// without such integers never gets past the first parse, so the hot path pays nothing.
class DomParse {
 public:
  // root: the document's root, valid until the next parse with this object.
  simdjson::error_code parse(std::string_view body, simdjson::dom::element& root) {
    big_.clear();
    const simdjson::error_code first = parser_.parse(body.data(), body.size(), true).get(root);
    if (first != simdjson::NUMBER_ERROR) return first;
    std::vector<std::pair<std::size_t, std::size_t>> spans;  // [begin, end) of each big integer
    for_each_number(body, [&](std::size_t b, std::size_t e) {
      if (is_big_integer(body.substr(b, e - b))) spans.emplace_back(b, e);
    });
    if (spans.empty()) return first;
    for (uint64_t salt = 0; salt < 4; ++salt) {
      base_ = (uint64_t(1) << 52) + salt * (spans.size() + 1) * 1024;
      if (!holds_placeholder(body, spans.size())) break;
      if (salt == 3) return first;  // (never seen: four ranges all held by the page)
    }
    std::string rewritten;
    rewritten.reserve(body.size() + spans.size() * 8);
    std::size_t at = 0;
    for (std::size_t k = 0; k < spans.size(); ++k) {
      rewritten.append(body.substr(at, spans[k].first - at));
      rewritten += fmt::format("{}", placeholder(k));
      big_.emplace_back(body.substr(spans[k].first, spans[k].second - spans[k].first));
      at = spans[k].second;
    }
    rewritten.append(body.substr(at));
    if (parser_.parse(rewritten.data(), rewritten.size(), true).get(root) != simdjson::SUCCESS) {
      big_.clear();
      return first;  // wrong in another way too: the original error, as before
    }
    return simdjson::SUCCESS;
  }

  // simdjson::minify(e), with each big integer as the page wrote it.
  std::string render(simdjson::dom::element e) const {
    std::string text = simdjson::minify(e);
    if (big_.empty()) return text;
    std::string out;
    std::size_t at = 0;
    for_each_number(text, [&](std::size_t b, std::size_t end) {
      if (const std::string* big = integer_of(text.substr(b, end - b))) {
        out.append(text, at, b - at);
        out += *big;
        at = end;
      }
    });
    if (at == 0) return text;
    out.append(text, at);
    return out;
  }

  // The big integer's text if `d` is one's placeholder, else nullptr.
  const std::string* integer_of(double d) const {
    if (big_.empty()) return nullptr;
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    uint64_t low;
    const double p0 = placeholder(0);
    std::memcpy(&low, &p0, sizeof low);
    if (bits < low || bits - low >= big_.size()) return nullptr;
    return &big_[bits - low];
  }

  // Beyond int64 if negative, beyond uint64 if not (what the DOM refuses): JSON's integer grammar.
  static bool is_big_integer(std::string_view t) {
    const bool negative = !t.empty() && t[0] == '-';
    if (negative) t.remove_prefix(1);
    if (t.empty() || (t[0] == '0' && t.size() > 1) || t.find_first_not_of("0123456789") != std::string_view::npos)
      return false;
    if (negative) return t.size() > 19 || (t.size() == 19 && t > "9223372036854775808");
    return t.size() > 20 || (t.size() == 20 && t > "18446744073709551615");
  }

 private:
  double placeholder(std::size_t k) const { return std::ldexp(-static_cast<double>(base_ + k), -1000); }

  const std::string* integer_of(std::string_view number) const {
    if (number.find_first_of(".eE") == std::string_view::npos) return nullptr;
    double d = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), d);
    if (ec != std::errc() || end != number.data() + number.size()) return nullptr;
    return integer_of(d);
  }

  // Whether a number of the page (not a big integer) has the value of one of n placeholders.
  bool holds_placeholder(std::string_view body, std::size_t n) {
    big_.assign(n, std::string());  // integer_of's range
    bool held = false;
    for_each_number(body, [&](std::size_t b, std::size_t e) {
      held = held || integer_of(body.substr(b, e - b)) != nullptr;
    });
    big_.clear();
    return held;
  }

  // Calls f(begin, end) for each run of number characters outside strings that starts like a number.
  template <class F>
  static void for_each_number(std::string_view s, F&& f) {
    auto number_char = [](char c) {
      return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
    };
    for (std::size_t i = 0; i < s.size();) {
      const char c = s[i];
      if (c == '"') {
        for (++i; i < s.size() && s[i] != '"'; ++i)
          if (s[i] == '\\') ++i;
        ++i;
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        const std::size_t b = i;
        while (i < s.size() && number_char(s[i])) ++i;
        f(b, i);
      } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        while (i < s.size() && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || number_char(s[i]))) ++i;
      } else {
        ++i;
      }
    }
  }

  simdjson::dom::parser parser_;
  uint64_t base_ = uint64_t(1) << 52;
  std::vector<std::string> big_;  // k-th big integer's text
};

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

// One per thread: fetch workers and the curator each reuse their buffers.
DomParse& dom_parse() {
  thread_local DomParse parse;
  return parse;
}

// A hash of a DOM value by what it holds, as minify(e) would print it (the fingerprint compared
// minify's text before; that re-printed the whole 21 KB array char by char, ~10 % of a fetch's CPU).
// Equal values hash equally whatever the page's spacing, escapes or number spelling (1.50 and 1.5,
// "\u0041" and "A" are the same value); object members in page order, as minify keeps them.
// Each step mixes a tag with the content, so [1],[2] and [[1,2]] or {"a":"b"} and ["a","b"] differ.
class ValueHash {
 public:
  // `dom`: the parse `e` comes from (its big integers hash by their text).
  explicit ValueHash(const DomParse& dom) : dom_(dom) {}
  std::size_t of(simdjson::dom::element e) {
    value(e);
    return static_cast<std::size_t>(h_);
  }

 private:
  void mix(uint64_t x) {  // boost::hash_combine's 64-bit step
    h_ ^= x + 0x9e3779b97f4a7c15ULL + (h_ << 6) + (h_ >> 2);
  }
  void str(uint64_t tag, std::string_view s) {
    mix(tag);
    mix(std::hash<std::string_view>{}(s));
  }
  void value(simdjson::dom::element e) {
    using T = simdjson::dom::element_type;
    switch (e.type()) {
      case T::ARRAY: {
        mix('[');
        for (simdjson::dom::element v : simdjson::dom::array(e)) value(v);
        mix(']');
        return;
      }
      case T::OBJECT: {
        mix('{');
        for (simdjson::dom::key_value_pair kv : simdjson::dom::object(e)) {
          str(':', kv.key);
          value(kv.value);
        }
        mix('}');
        return;
      }
      case T::STRING: str('"', std::string_view(e)); return;
      // The number as parsed (the value minify prints); a double's bits: -0.0 and 0.0 differ, as
      // their minified texts do.
      case T::INT64: mix('i'); mix(static_cast<uint64_t>(int64_t(e))); return;
      case T::UINT64: mix('u'); mix(uint64_t(e)); return;
      case T::DOUBLE: {
        const double d = double(e);
        if (const std::string* big = dom_.integer_of(d)) {
          str('b', *big);
          return;
        }
        uint64_t bits;
        std::memcpy(&bits, &d, sizeof bits);
        mix('d');
        mix(bits);
        return;
      }
      case T::BOOL: mix(bool(e) ? 't' : 'f'); return;
      case T::NULL_VALUE: mix('n'); return;
    }
  }
  const DomParse& dom_;
  uint64_t h_ = 0;
};

// target_out: the records_pointer's target, valid until this thread's parser parses again.
std::size_t walk(std::string_view body, const Endpoint& endpoint, const Emit* emit, std::size_t* fingerprint,
                 simdjson::dom::element* target_out = nullptr) {
  DomParse& dom = dom_parse();
  simdjson::dom::element root;
  if (dom.parse(body, root)) throw RecordError(describe_json_error(body));

  simdjson::dom::element target = root;
  const std::string& ptr = endpoint.records_pointer;
  if (!ptr.empty()) {
    if (auto err = root.at_pointer(ptr).get(target))
      throw RecordError(fmt::format("records pointer {} does not reach a value: {}", show_pointer(ptr),
                                    simdjson::error_message(err)));
  }

  if (fingerprint) *fingerprint = ValueHash(dom).of(target);
  if (target_out) *target_out = target;

  // Page-level values copied into every record, rendered once.
  std::string context;
  for (const auto& [name, cptr] : endpoint.record_context) {
    simdjson::dom::element v;
    if (auto err = root.at_pointer(cptr).get(v))
      throw RecordError(fmt::format("record_context '{}': pointer '{}' does not reach a value: {}", name, cptr,
                                    simdjson::error_message(err)));
    context += "," + json_key(name) + ":" + dom.render(v);
  }
  auto with_context = [&](simdjson::dom::element rec, std::size_t index) {
    std::string text = dom.render(rec);
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
        text += json_key(columns[c].first) + ":" + dom.render(*its[c]);
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
    thread_local DomParse parser;
    simdjson::dom::element root;
    auto err = parser.parse(body, root);
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
DomParse& text_parse() {
  thread_local DomParse parse;
  return parse;
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
    // An escape running past the page's end (a backslash among its last bytes) is never valid, and
    // says nothing of the padding's bytes, whatever they hold (a page read in place has any).
    if (p > end) return false;
    if (p == end) break;
  }
  return true;
}

// Deeper pages are left to the DOM (its own limit is 1024); this bounds the check's stack.
constexpr std::size_t kMaxCheckedDepth = 256;

// A plain record located by the check: its first and last token in stage 1's index.
struct RecordTokens {
  std::size_t first = 0;
  std::size_t last = 0;
};

// The first pass over a page, on stage 1's structural index alone (no on-demand iteration, no value
// built): everything the DOM parse checks beyond stage 1 (structure, every number, true/false/null,
// nothing after the document; string escapes are checked with the whole page, see escapes_valid),
// plus the records_pointer's target and the tokens of each of its records. True only for a page the
// DOM accepts whose pointer reaches an array or object; false for anything else, including pages this
// checker is unsure of (a float within a rounding of the largest double, an escaped key on the
// pointer's path, a number glued to a string, deep nesting): the caller then asks the DOM, which has
// the last word and the error text. Strict where the DOM is lenient, never the other way round.
class TokenCheck {
 public:
  // `idx`: stage 1's token offsets into `buf` (`len` bytes), `n` of them.
  TokenCheck(const char* buf, std::size_t len, const uint32_t* idx, std::size_t n, const PointerPath& path,
             std::vector<RecordTokens>& records)
      : buf_(buf), len_(len), idx_(idx), n_(n), path_(path), records_(records) {}

  bool run() {
    const char c = tok();
    if (c != '{' && c != '[') return false;  // a scalar document has no records either way
    return on_path(0) && i_ == n_;          // ... and nothing after the document
  }
  bool target_is_array() const { return target_is_array_; }

  // The byte range of a token: a bracket is one byte, a scalar runs to the next token less the
  // whitespace before it (for a string, that is its closing quote: anything else after a closing quote
  // is a token of its own).
  const char* begin(std::size_t k) const { return buf_ + idx_[k]; }
  const char* end(std::size_t k) const {
    const char c = buf_[idx_[k]];
    if (c == '{' || c == '}' || c == '[' || c == ']' || c == ',' || c == ':') return buf_ + idx_[k] + 1;
    const char* e = buf_ + (k + 1 < n_ ? idx_[k + 1] : len_);
    while (e > buf_ + idx_[k] + 1 && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) --e;
    return e;
  }

 private:
  char tok() const { return i_ < n_ ? buf_[idx_[i_]] : '\0'; }

  // A string token then ':' (an object's member name), stepped over.
  bool key() {
    if (tok() != '"') return false;
    ++i_;
    if (tok() != ':') return false;
    ++i_;
    return true;
  }

  // One value off the pointer's path, starting at token i_: checked, i_ left after it. The open
  // containers on a local stack, not recursion; everything in locals (a char store into a member
  // would make the compiler reload every member after it: this loop is the check's whole cost).
  bool value() {
    const char* const buf = buf_;
    const uint32_t* const idx = idx_;
    const std::size_t n = n_;
    const std::size_t max_depth = kMaxCheckedDepth - std::min(path_.tokens.size(), kMaxCheckedDepth);
    char stack[kMaxCheckedDepth];
    std::size_t depth = 0;
    std::size_t i = i_;
    auto at = [&](std::size_t k) { return k < n ? buf[idx[k]] : '\0'; };
    // A string token then ':' (an object's member name), stepped over.
    auto member_name = [&] {
      if (at(i) != '"' || at(i + 1) != ':') return false;
      i += 2;
      return true;
    };
    bool ok = false;
    while (true) {
      // At a value.
      const char c = at(i);
      if (c == '"') {  // the commonest token: closed and free of control characters (stage 1)
        ++i;
      } else if (c == '{' || c == '[') {
        ++i;
        if (at(i) == (c == '{' ? '}' : ']')) {
          ++i;
        } else {
          if (depth >= max_depth) break;
          stack[depth++] = c;
          if (c == '{' && !member_name()) break;
          continue;
        }
      } else {
        if (i >= n || !scalar(i)) break;
        ++i;
      }
      // After a value: close containers until one continues with ','.
      bool next = false;
      while (depth > 0) {
        const char open = stack[depth - 1];
        const char t = at(i++);
        if (t == ',') {
          next = open != '{' || member_name();
          break;
        }
        if (t != (open == '{' ? '}' : ']')) break;
        --depth;
      }
      if (depth == 0) {
        ok = true;
        break;
      }
      if (!next) break;
    }
    i_ = i;
    return ok;
  }

  // A scalar token, as the DOM's stage 2 would read it (but strict: exactly the literal or number,
  // only whitespace up to the next token).
  bool scalar(std::size_t k) const {
    const char* b = begin(k);
    const char* e = end(k);
    switch (*b) {
      case '"': return true;  // closed and free of control characters (stage 1); escapes: escapes_valid
      case 't': return std::string_view(b, static_cast<std::size_t>(e - b)) == "true";
      case 'f': return std::string_view(b, static_cast<std::size_t>(e - b)) == "false";
      case 'n': return std::string_view(b, static_cast<std::size_t>(e - b)) == "null";
      default: return number(b, e);
    }
  }

  // JSON's number grammar, and simdjson's range for floats: refused only when it rounds to infinity
  // (underflow reads as 0). Integers of any size are accepted (DomParse).
  static bool number(const char* p, const char* e) {
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    const bool negative = p < e && *p == '-';
    if (negative) ++p;
    if (p == e || !digit(*p)) return false;
    const char* int_begin = p;
    if (*p == '0') ++p;
    else while (p < e && digit(*p)) ++p;
    const char* int_end = p;
    const char* frac_begin = p;
    const char* frac_end = p;
    bool is_float = false;
    if (p < e && *p == '.') {
      frac_begin = ++p;
      while (p < e && digit(*p)) ++p;
      if (p == frac_begin) return false;
      frac_end = p;
      is_float = true;
    }
    int64_t exponent = 0;
    if (p < e && (*p == 'e' || *p == 'E')) {
      ++p;
      const bool exp_negative = p < e && *p == '-';
      if (p < e && (*p == '-' || *p == '+')) ++p;
      const char* exp_begin = p;
      for (; p < e && digit(*p); ++p)
        if (exponent < 1000000000) exponent = exponent * 10 + (*p - '0');  // saturates: only its size matters
      if (p == exp_begin) return false;
      if (exp_negative) exponent = -exponent;
      is_float = true;
    }
    if (p != e) return false;
    // An integer of any size: beyond 64 bits too (the DOM takes those through DomParse; the
    // validator decides per field: a double or decimal holds it, an int64 refuses that record).
    if (!is_float) return true;
    // The decimal magnitude m of the leading non-zero digit: the value is in [10^m, 10^(m+1)).
    int64_t m = 0;
    const char* lead = int_begin;
    while (lead < int_end && *lead == '0') ++lead;
    if (lead < int_end) {
      m = (int_end - lead - 1) + exponent;
    } else {
      lead = frac_begin;
      while (lead < frac_end && *lead == '0') ++lead;
      if (lead == frac_end) return true;  // zero, whatever the exponent
      m = -(lead - frac_begin + 1) + exponent;
    }
    return m <= 307;  // below 10^308 < DBL_MAX; 10^308 .. 10^309 is left to the DOM (false), above is infinite
  }

  // Whether the member name at token k is `want`: 1 yes, 0 no, -1 unsure (an escaped name, which the
  // DOM compares unescaped).
  int key_is(std::size_t k, const std::string& want) const {
    const char* p = begin(k) + 1;
    const char* e = end(k);  // just after the closing quote
    for (const char* q = p; q < e; ++q) {
      if (*q == '\\') return -1;
      if (*q == '"') return std::string_view(p, static_cast<std::size_t>(q - p)) == want ? 1 : 0;
    }
    return -1;
  }

  // A value on the pointer's path, `k` tokens down; the first member of the token's name (as the DOM's
  // at_pointer finds it) or the element at its index leads on, every other value is checked.
  bool on_path(std::size_t k) {
    if (k == path_.tokens.size()) return target();
    const PointerPath::Token& token = path_.tokens[k];
    const char c = tok();
    if (c != '{' && c != '[') return false;  // a scalar before the pointer's end
    const char close = c == '{' ? '}' : ']';
    ++i_;
    if (tok() == close) return false;  // nothing there to reach
    bool found = false;
    for (std::size_t index = 0;; ++index) {
      bool here = false;
      if (c == '{') {
        if (tok() != '"') return false;
        if (!found) {
          const int is = key_is(i_, token.key);
          if (is < 0) return false;
          here = found = is == 1;
        }
        if (!key()) return false;
      } else {
        here = token.index && index == *token.index;
        found = found || here;
      }
      if (!(here ? on_path(k + 1) : value())) return false;
      const char t = tok();
      ++i_;
      if (t == close) return found;
      if (t != ',') return false;
    }
  }

  // The pointer's target: an array (its elements are the records) or an object (one record).
  bool target() {
    const std::size_t first = i_;
    if (tok() == '{') {
      if (!value()) return false;
      records_.push_back({first, i_ - 1});
      return true;
    }
    if (tok() != '[') return false;
    target_is_array_ = true;
    ++i_;
    if (tok() == ']') {
      ++i_;
      return true;
    }
    while (true) {
      const std::size_t start = i_;
      if (!value()) return false;
      records_.push_back({start, i_ - 1});
      const char t = tok();
      ++i_;
      if (t == ']') return true;
      if (t != ',') return false;
    }
  }

  const char* buf_;
  std::size_t len_;
  const uint32_t* idx_;
  std::size_t n_;
  const PointerPath& path_;
  std::vector<RecordTokens>& records_;
  std::size_t i_ = 0;
  bool target_is_array_ = false;
};

// simdjson 3.0.1 has no public way to iterate a document on demand from token positions another
// reader found in the same stage 1 index; these derived types reach the protected members that
// document/value use to do exactly that. The hand-out pass thus jumps to each record instead of
// skipping what the callback left unread of the one before.
class PageIterator : public od::json_iterator {
 public:
  explicit PageIterator(od::json_iterator&& it) : od::json_iterator(std::move(it)) {}
  // Stage 1's index: its first token, and how many there are.
  const uint32_t* tokens() const { return _root; }
  std::size_t token_count() const { return static_cast<std::size_t>(end_position() - _root); }
  // Token `k` of the index, as the iterator sees it.
  od::token_position position_of(std::size_t k) const { return _root + k; }
  // The iterator put at `position` with `depth` (1 = the document's root value), as if it had just
  // arrived there; its string buffer and any error it met carry on.
  void reenter(od::token_position position, od::depth_t depth) {
    token.set_position(position);
    _depth = depth;
  }
};
class ValueAt : public od::value {
 public:
  // A value reading the token at `position` at `depth` through `it` (which must stand there).
  static od::value make(od::json_iterator& it, od::depth_t depth, od::token_position position) {
    return od::value::start(Start(&it, depth, position));
  }

 private:
  struct Start : od::value_iterator {
    Start(od::json_iterator* it, od::depth_t depth, od::token_position position)
        : od::value_iterator(it, depth, position) {}
  };
};

// From the document's start to the pointer's target by the DOM's rules (the first member of a name,
// compared unescaped; canonical indexes), which on-demand at_pointer does not follow.
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

// A reused padded copy of `text` (simdjson reads past the end). The padding is zeroed so that bytes of
// an earlier, longer page are never read as part of this one.
simdjson::padded_string_view pad(std::string_view text, simdjson::padded_string& buffer) {
  // (A default padded_string has no storage at all, not even padding: an empty first page needs one.)
  if (buffer.data() == nullptr || buffer.size() < text.size())
    buffer = simdjson::padded_string(text.size() + text.size() / 2);
  std::memcpy(buffer.data(), text.data(), text.size());
  std::memset(buffer.data() + text.size(), 0, simdjson::SIMDJSON_PADDING);
  return simdjson::padded_string_view(buffer.data(), text.size(), buffer.size() + simdjson::SIMDJSON_PADDING);
}

// `text` padded and iterated on demand.
simdjson::simdjson_result<od::document> iterate_padded(std::string_view text, od::parser& parser,
                                                       simdjson::padded_string& buffer) {
  return parser.iterate(pad(text, buffer));
}

}  // namespace

std::string PageRecord::text() const {
  if (synthesised_) return *synthesised_;
  if (raw_.data() == nullptr) return dom_parse().render(dom_);
  // The record's own bytes, re-rendered as the DOM renders the page's element (the same parser on
  // the same bytes gives the same values). The page was checked, so this parse succeeds; if it ever
  // did not, the record's bytes as sent are still the record.
  simdjson::dom::element e;
  DomParse& parse = text_parse();
  if (parse.parse(raw_, e)) {
    const std::size_t last = raw_.find_last_not_of(" \t\r\n");
    return std::string(raw_.substr(0, last == std::string_view::npos ? 0 : last + 1));
  }
  return parse.render(e);
}

std::string PageRecord::raw_text() const {
  if (synthesised_ || raw_.data() == nullptr) return text();
  const std::size_t first = raw_.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return text();
  const std::size_t last = raw_.find_last_not_of(" \t\r\n");
  return std::string(raw_.substr(first, last - first + 1));
}

std::size_t visit_records(std::string_view body, const Endpoint& endpoint,
                          const std::function<void(PageRecord&)>& on_record) {
  // No padding promised: the page is copied.
  return visit_records(simdjson::padded_string_view(body.data(), body.size(), body.size()), endpoint, on_record);
}

std::size_t visit_records(simdjson::padded_string_view body, const Endpoint& endpoint,
                          const std::function<void(PageRecord&)>& on_record) {
  thread_local od::parser parser;
  thread_local simdjson::padded_string buffer;
  thread_local simdjson::padded_string alone_buffer;  // not `buffer`: records' bytes point into it
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

  // Pass 1: stage 1 once, then the whole page checked on its token index and the records located.
  const PointerPath path = split_pointer(endpoint.records_pointer);
  thread_local std::vector<RecordTokens> records;
  records.clear();
  od::json_iterator raw;
  // (iterate_raw, unlike iterate, allocates nothing for an empty body: a fresh parser would crash.)
  // The page itself when it comes with simdjson's padding, else the reused padded copy (round 5:
  // the copy was ~5 % of parse + validate). Nothing reads past body.size() but simdjson, which only
  // needs the bytes to be there: stage 1 reads the last partial block through a copy, and the
  // on-demand reads that run past a string's closing quote discard what they read.
  simdjson::padded_string_view page;
  auto padded = [&] {
    page = body.padding() >= simdjson::SIMDJSON_PADDING ? body : pad(body, buffer);
    return page;
  };
  if (path.usable && !body.empty() && !parser.iterate_raw(padded()).get(raw) &&
      escapes_valid(page.data(), page.data() + body.size())) {
    PageIterator it(std::move(raw));
    TokenCheck check(page.data(), body.size(), it.tokens(), it.token_count(), path, records);
    if (check.run()) {
      const bool is_array = check.target_is_array();
      // Pass 2: each record handed out in place, the iterator put at its first token (nothing to
      // skip between records, however little of each the callback read).
      const auto depth = static_cast<od::depth_t>(path.tokens.size() + (is_array ? 2 : 1));
      for (std::size_t i = 0; i < records.size(); ++i) {
        const RecordTokens& r = records[i];
        const od::token_position at = it.position_of(r.first);
        it.reenter(at, depth);
        record.value = ValueAt::make(it, depth, at);
        record.index = i + 1;
        record.raw_ = std::string_view(check.begin(r.first),
                                       static_cast<std::size_t>(check.end(r.last) - check.begin(r.first)));
        on_record(record);
      }
      return records.size();
    }
  }

  // The token check refused the page or was unsure: the DOM decides, with select_records' own
  // code (its error, or its records when the page is valid after all, e.g. nested deeper than the
  // check goes).
  simdjson::dom::element target;
  const std::size_t count = walk(body, endpoint, nullptr, nullptr, &target);
  simdjson::dom::array dom_array;
  od::document doc;
  const bool is_array = target.get_array().get(dom_array) == simdjson::SUCCESS;
  auto dom_it = is_array ? dom_array.begin() : simdjson::dom::array::iterator{};
  std::size_t done = 0;
  auto fast = [&]() -> simdjson::error_code {
    if (auto e = iterate(body).get(doc)) return e;
    od::value value;
    const std::string& ptr = endpoint.records_pointer;
    if (auto e = path.usable ? navigate(doc, path, value) : (ptr.empty() ? doc.get_value() : doc.at_pointer(ptr)).get(value))
      return e;
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
    hand_out_alone(dom_parse().render(element), nullptr, {}, element);
  }
  return count;
}

PageDom::PageDom() : impl_(std::make_unique<DomParse>()) {}
PageDom::~PageDom() = default;
simdjson::error_code PageDom::parse(std::string_view text, simdjson::dom::element& root) {
  return impl_->parse(text, root);
}
std::string PageDom::text(simdjson::dom::element value) const { return impl_->render(value); }
std::optional<double> PageDom::number(simdjson::dom::element value) const {
  double d = 0;
  if (value.get_double().get(d) != simdjson::SUCCESS) return std::nullopt;
  if (const std::string* big = impl_->integer_of(d)) return std::strtod(big->c_str(), nullptr);
  return d;
}

}  // namespace apilake
