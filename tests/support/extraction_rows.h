// A queued extraction row for store tests: source "gh", endpoint "issues", params {"repo":"a"},
// created at a fixed instant. Tests change what they need on the returned value.
#pragma once
#include <string>

#include "api/extraction_store.h"

namespace apilake::test {

inline Extraction queued_row(const std::string& id) {
  Extraction e;
  e.id = id;
  e.source = "gh";
  e.endpoint = "issues";
  e.params_json = R"({"repo":"a"})";
  e.status = "queued";
  e.created_us = 1'700'000'000'000'000;
  return e;
}

}  // namespace apilake::test
