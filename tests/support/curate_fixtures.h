// Building blocks for curator tests: field specs, the "shop/items" source and bus messages that
// carry one page of records, as the fetcher publishes them (attributes source, endpoint,
// extraction_id, page). Plain values; nothing here touches disk or the bus.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bus/bus.h"
#include "definition/definition.h"
#include "definition/schema_model.h"

namespace apilake::test {

inline constexpr int64_t kT0 = 1764144900000000;  // 2025-11-26 08:15:00 UTC

// A field read from the JSON pointer `path` of each record.
inline FieldSpec field_at(std::string name, FieldType type, std::string path, bool required,
                          std::string format = "") {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  f.path = std::move(path);
  f.required = required;
  f.format = std::move(format);
  return f;
}

// A top-level field: read from "/<name>".
inline FieldSpec field(std::string name, FieldType type, bool required = false) {
  std::string path = "/" + name;
  return field_at(std::move(name), type, std::move(path), required);
}

// The BCB SGS series shape: "date" (dd/MM/yyyy) at /data, required; "value" (a double) at /valor.
inline std::vector<FieldSpec> bcb_series_fields(bool value_required = true) {
  return {field_at("date", FieldType::Date, "/data", true, "dd/MM/yyyy"),
          field_at("value", FieldType::Double, "/valor", value_required)};
}

// Source `name` with one endpoint `endpoint` and nothing else declared (a dataset for the readers).
inline Source source_with(std::string name, std::string endpoint) {
  Endpoint e;
  e.name = std::move(endpoint);
  Source s;
  s.name = std::move(name);
  s.endpoints = {std::move(e)};
  return s;
}

// Source "shop" with one endpoint "items" (records under /items) of these fields and policy.
inline std::vector<Source> shop_items(std::vector<FieldSpec> fields, Evolution evolution) {
  Endpoint e;
  e.name = "items";
  e.records_pointer = "/items";
  e.schema.fields = std::move(fields);
  e.schema.evolution = evolution;
  Source s;
  s.name = "shop";
  s.endpoints = {std::move(e)};
  return {std::move(s)};
}

// Page `page` of extraction `extraction` for source/endpoint, published at `t`; ack id "ack-<id>".
inline Message page_message(const std::string& id, const std::string& source, const std::string& endpoint,
                            const std::string& body, const std::string& extraction = "ex-1",
                            const std::string& page = "1", int64_t t = kT0) {
  Message m;
  m.id = id;
  m.ack_id = "ack-" + id;
  m.data = body;
  m.attributes = {{"source", source}, {"endpoint", endpoint}, {"extraction_id", extraction}, {"page", page}};
  m.publish_time_us = t;
  return m;
}

}  // namespace apilake::test
