#include "definition/records.h"

#include <simdjson.h>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <cstring>
#include <functional>
#include <optional>

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

std::string PageRecord::text() const { return synthesised_ ? *synthesised_ : simdjson::minify(dom_); }

std::size_t visit_records(std::string_view body, const Endpoint& endpoint,
                          const std::function<void(PageRecord&)>& on_record) {
  thread_local simdjson::ondemand::parser parser;
  thread_local simdjson::padded_string buffer;
  PageRecord record;
  auto iterate = [&](std::string_view text) {
    // A reused padded copy (simdjson reads past the end); the padding is zeroed so that bytes of an
    // earlier, longer page are never read as part of this one.
    if (buffer.size() < text.size()) buffer = simdjson::padded_string(text.size() + text.size() / 2);
    std::memcpy(buffer.data(), text.data(), text.size());
    std::memset(buffer.data() + text.size(), 0, simdjson::SIMDJSON_PADDING);
    return parser.iterate(buffer.data(), text.size(), buffer.size() + simdjson::SIMDJSON_PADDING);
  };
  // The DOM said yes, so the on-demand reader cannot disagree; if it ever did, say so rather than
  // drop records silently.
  auto disagree = [](simdjson::error_code e) {
    return RecordError(fmt::format("not JSON: {} (on-demand reader)", simdjson::error_message(e)));
  };

  if (endpoint.record_shape != RecordShape::Records || !endpoint.record_context.empty()) {
    // Synthesised records exist only as text: each is parsed on its own.
    const std::vector<std::string> texts = select_records(body, endpoint);
    for (std::size_t i = 0; i < texts.size(); ++i) {
      simdjson::ondemand::document doc;
      if (auto e = iterate(texts[i]).get(doc)) throw disagree(e);
      if (auto e = doc.get_value().get(record.value)) throw disagree(e);
      record.index = i + 1;
      record.synthesised_ = &texts[i];
      on_record(record);
    }
    return texts.size();
  }

  // The checks, errors and count of select_records, by the same code.
  simdjson::dom::element target;
  const std::size_t count = walk(body, endpoint, nullptr, nullptr, &target);
  simdjson::dom::array dom_array;
  const bool is_array = target.get_array().get(dom_array) == simdjson::SUCCESS;
  auto dom_it = is_array ? dom_array.begin() : simdjson::dom::array::iterator{};
  std::size_t done = 0;

  // The page read once, on demand. The DOM accepted it, so this cannot fail; if it ever did, the
  // records not yet handed out go the slow way below (never lost, never twice).
  auto fast = [&]() -> simdjson::error_code {
    simdjson::ondemand::document doc;
    if (auto e = iterate(body).get(doc)) return e;
    simdjson::ondemand::value value;
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
    simdjson::ondemand::array array;
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
  // The slow way: each remaining record's compact text, parsed on its own.
  // (Wrapped in [ ]: simdjson cannot hand out a scalar document as a value.)
  while (done < count) {
    const std::string text = simdjson::minify(is_array ? *dom_it : target);
    if (is_array) ++dom_it;
    const std::string wrapped = "[" + text + "]";
    simdjson::ondemand::document doc;
    simdjson::ondemand::array array;
    if (auto e = iterate(wrapped).get(doc)) throw disagree(e);
    if (auto e = doc.get_array().get(array)) throw disagree(e);
    for (auto element : array) {
      if (auto e = element.get(record.value)) throw disagree(e);
      break;
    }
    record.index = ++done;
    record.synthesised_ = &text;
    on_record(record);
  }
  return count;
}

}  // namespace apilake
