#include "definition/records.h"

#include <simdjson.h>

#include <boost/json.hpp>
#include <fmt/format.h>

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

std::size_t walk(std::string_view body, const Endpoint& endpoint, const Emit* emit, std::size_t* fingerprint) {
  // One parser per thread: fetch workers and the curator each reuse their buffers.
  thread_local simdjson::dom::parser parser;
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
