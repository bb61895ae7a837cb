// BigQuery external tables over the curated zone (docs/bigquery.md). ddl() turns one endpoint's
// declared schema + layout into a `CREATE EXTERNAL TABLE` over its Parquet files in a GCS bucket
// holding a copy of the lake (same relative paths):
//   hive layout -> WITH PARTITION COLUMNS (year, month, day, hour STRING) + hive_partition_uri_prefix
//   seed layout -> a URI wildcard over every file of the dataset (no partition pruning)
// The column list is the schema's fields in order, then the lineage columns the curator appends
// (curate/layout.h), each typed as BigQuery reads the Parquet type the curator writes for it.
// bigquery_type() is total over FieldType (a switch without default: a new type fails to compile
// until it is mapped). Bad input (bucket not gs://, names BigQuery cannot take, list of list) throws
// std::invalid_argument with the reason.
#pragma once
#include <string>
#include <vector>

#include "definition/definition.h"

namespace apilake {

// BigQuery type of a curated column, e.g. "INT64", "NUMERIC", "STRUCT<a INT64, b STRING>".
std::string bigquery_type(const FieldSpec& field);

struct BigQueryColumn {
  std::string name;
  std::string type;
};
// Every column of the curated Parquet files of `endpoint`, in file order, lineage columns last.
std::vector<BigQueryColumn> bigquery_columns(const Endpoint& endpoint);

struct BigQueryTarget {
  std::string bucket;   // "gs://bucket" or "gs://bucket/prefix" (the lake root in GCS)
  std::string project;  // optional
  std::string dataset;  // BigQuery dataset; defaults to "apilake"
  std::string table;    // defaults to "<source>_<endpoint>", the name of the SQL view
};

// The full statement (with a leading comment saying how it partitions), ending in ";\n".
std::string bigquery_ddl(const Source& source, const Endpoint& endpoint, const BigQueryTarget& target);

class Lake;
// Same over the schema in force: the declared one plus the columns schema.evolution: evolve added, read
// from the latest version in the lake's schema registry (curate/schema_registry.h).
std::string bigquery_ddl(const Source& source, const Endpoint& endpoint, const BigQueryTarget& target, Lake& lake);

}  // namespace apilake
