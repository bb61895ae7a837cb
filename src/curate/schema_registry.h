// The schema registry: every version of a dataset's schema, stored with the data in the lake as
//   _schemas/<source>/<endpoint>/v<N>.json   (schema_json(); N = Schema::version)
// A version is written once and never overwritten (docs/schema.md "Evolution"). The curator reads the
// latest version when it first meets a dataset, so columns added by schema.evolution: evolve and the
// version numbering survive a restart; `apilake bigquery ddl` reads it to name evolved columns.
#pragma once
#include <optional>
#include <string>

#include "definition/schema_model.h"

namespace apilake {

class Lake;

std::string schema_registry_path(const std::string& source, const std::string& endpoint, int version);

struct RegisteredSchema {
  int latest_version = 0;  // highest v<N> present (0 = none), even when that file cannot be read
  std::optional<Schema> schema;  // the highest version that parses (a broken file is logged and skipped)
};
// Throws only what the lake throws (e.g. an unreachable object store).
RegisteredSchema latest_registered_schema(Lake& lake, const std::string& source, const std::string& endpoint);

// The schema in force: the declared one (its evolution policy and fields win), plus every field of the
// registered one that the declaration lacks (by name, case-insensitively, in registered order), at
// version max(declared, latest registered).
Schema current_schema(const Schema& declared, const RegisteredSchema& registered);

// Reads the registry and applies current_schema(); the declared schema unchanged when there is none.
Schema current_schema(Lake& lake, const std::string& source, const std::string& endpoint, const Schema& declared);

// The version under which `schema` is registered, starting at schema.version: an existing v<N> with the
// same fields is reused (nothing to write), one with other content is skipped (N+1, ...). Sets
// schema.version; returns true when v<schema.version> still has to be written.
bool claim_schema_version(Lake& lake, const std::string& source, const std::string& endpoint, Schema& schema);

}  // namespace apilake
