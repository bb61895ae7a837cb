#include "curate/deadletter_json.h"

#include <boost/json.hpp>
#include <simdjson.h>

namespace apilake {

std::string record_json(std::string_view text) {
  // Validity is decided by a full parse (Boost.JSON accepts any number length; the parsed value is
  // only a check and is thrown away); the text written is simdjson's minify of the original bytes.
  boost::system::error_code ec;
  boost::json::parse(text, ec);
  if (ec) return boost::json::serialize(boost::json::string_view(text.data(), text.size()));
  std::string out(text.size(), '\0');
  std::size_t len = 0;
  if (simdjson::minify(text.data(), text.size(), out.data(), len) != simdjson::SUCCESS)
    return boost::json::serialize(boost::json::string_view(text.data(), text.size()));
  out.resize(len);
  return out;
}

std::string valid_record_json(std::string_view text) {
  std::string out(text.size(), '\0');
  std::size_t len = 0;
  // (simdjson's minify only drops whitespace outside strings; it checks nothing, hence the contract.)
  if (simdjson::minify(text.data(), text.size(), out.data(), len) != simdjson::SUCCESS) return record_json(text);
  out.resize(len);
  return out;
}

std::string line_with_record(std::string_view record_json, const boost::json::object& rest) {
  std::string tail = boost::json::serialize(rest);  // "{...}"
  std::string line;
  line.reserve(record_json.size() + tail.size() + 12);
  line += "{\"record\":";
  line += record_json;
  if (tail.size() > 2) line += ',';
  line.append(tail, 1, std::string::npos);  // the members and the closing brace
  return line;
}

std::optional<std::string> raw_record(std::string_view line) {
  simdjson::padded_string padded(line);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return std::nullopt;
  simdjson::ondemand::object object;
  if (doc.get_object().get(object)) return std::nullopt;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return std::nullopt;
    if (key != "record") continue;  // on-demand skips an unread value by itself
    simdjson::ondemand::value value = field.value();
    simdjson::ondemand::json_type type;
    if (value.type().get(type)) return std::nullopt;
    std::string_view raw;
    if (type == simdjson::ondemand::json_type::object) {
      simdjson::ondemand::object o;
      if (value.get_object().get(o) || o.raw_json().get(raw)) return std::nullopt;
    } else if (type == simdjson::ondemand::json_type::array) {
      simdjson::ondemand::array a;
      if (value.get_array().get(a) || a.raw_json().get(raw)) return std::nullopt;
    } else {
      raw = value.raw_json_token();  // a scalar's text, possibly followed by whitespace
      while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\r' || raw.back() == '\t'))
        raw.remove_suffix(1);
    }
    return record_json(raw);  // minified: a line written by hand may hold whitespace
  }
  return std::nullopt;
}

}  // namespace apilake
