#include "curate/parquet_sink.h"

#include <atomic>
#include <cstring>
#include <type_traits>

#include <fmt/format.h>

#include "lake/lake.h"

namespace apilake {

namespace {

// The SQL type of a column (or of a struct member / list element, given as a FieldSpec).
std::string sql_type(FieldType t, const FieldSpec& spec) {
  switch (t) {
    case FieldType::String: return "VARCHAR";
    case FieldType::Enum: return "VARCHAR";
    case FieldType::Int64: return "BIGINT";
    case FieldType::Double: return "DOUBLE";
    case FieldType::Bool: return "BOOLEAN";
    case FieldType::Date: return "DATE";
    // TIMESTAMPTZ is UTC microseconds in DuckDB and is written to Parquet as
    // TIMESTAMP(isAdjustedToUTC=true, MICROS), which every reader accepts.
    case FieldType::Timestamp: return "TIMESTAMP WITH TIME ZONE";
    // Parquet DECIMAL(p,s); DuckDB stores it as int16/32/64/128 by precision.
    case FieldType::Decimal: return fmt::format("DECIMAL({},{})", spec.precision, spec.scale);
    case FieldType::Struct: {
      if (spec.fields.empty()) throw duck::Error("a struct column needs fields");
      std::string out = "STRUCT(";
      for (std::size_t i = 0; i < spec.fields.size(); ++i) {
        if (i) out += ", ";
        out += duck::quote_ident(spec.fields[i].name) + " " + sql_type(spec.fields[i].type, spec.fields[i]);
      }
      return out + ")";
    }
    case FieldType::List:
      if (spec.items.size() != 1) throw duck::Error("a list column needs one items spec");
      return sql_type(spec.items[0].type, spec.items[0]) + "[]";
  }
  throw duck::Error("unknown field type");
}

// Which entries of a column fill a vector: entry at(i) for vector row offset + i. A run of consecutive
// entries (the common case: a message's rows go to one file) has no index list, so fixed-width
// buffers are one memcpy.
struct Rows {
  const uint32_t* sel = nullptr;  // null: entries first, first + 1, ...
  std::size_t first = 0;
  std::size_t at(std::size_t i) const { return sel ? sel[i] : first + i; }
};

// Copies a fixed-width buffer into a vector at [offset, offset + n). From (batch) and To (DuckDB) may
// differ in width (Decimal Int128 -> int16/32/64).
template <typename To, typename From>
void copy_fixed(void* data, std::size_t offset, const std::vector<From>& from, const Rows& rows, std::size_t n) {
  auto* out = static_cast<To*>(data) + offset;
  if constexpr (sizeof(To) == sizeof(From) && std::is_trivially_copyable_v<To>) {
    if (!rows.sel) {
      std::memcpy(out, from.data() + rows.first, n * sizeof(To));
      return;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    const From v = from[rows.at(i)];
    if constexpr (std::is_same_v<To, duckdb_date>) out[i] = duckdb_date{v};
    else if constexpr (std::is_same_v<To, duckdb_timestamp>) out[i] = duckdb_timestamp{v};
    else if constexpr (std::is_same_v<To, bool>) out[i] = v != 0;
    else out[i] = static_cast<To>(v);
  }
}

// Writes n entries of `d` into vec at rows [offset, offset + n), straight from the batch's buffers.
// Recursive for struct members and list elements (their child vectors), which is how DuckDB's C API
// exposes nested data. The batch's types were fixed when it was filled: nothing to check here.
void fill_data(duckdb_vector vec, const ColumnBatch::Data& d, const Rows& rows, std::size_t n, std::size_t offset,
               const std::string& name) {
  duckdb_vector_ensure_validity_writable(vec);
  uint64_t* validity = duckdb_vector_get_validity(vec);
  void* data = duckdb_vector_get_data(vec);
  // The mask's bits written here (bit r of word r / 64 set = row r valid: duckdb.h's layout, what
  // duckdb_validity_set_row_valid does), not through a library call per cell.
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t row = offset + i;
    const uint64_t bit = uint64_t(1) << (row % 64);
    uint64_t& word = validity[row / 64];
    word = d.valid[rows.at(i)] ? (word | bit) : (word & ~bit);
  }
  switch (d.type) {
    case FieldType::String:
    case FieldType::Enum: {
      auto* cells = static_cast<duckdb_string_t*>(data);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t r = rows.at(i);
        if (!d.valid[r]) continue;
        const std::string_view s = d.str(r);
        if (s.size() <= sizeof(cells->value.inlined.inlined)) {
          // A short string lives in the cell itself (duckdb.h's duckdb_string_t): written here, zero
          // padded as DuckDB's own string_t is (its compares read the whole cell), no library call.
          duckdb_string_t& cell = cells[offset + i];
          std::memset(&cell, 0, sizeof cell);
          cell.value.inlined.length = static_cast<uint32_t>(s.size());
          std::memcpy(cell.value.inlined.inlined, s.data(), s.size());
        } else {
          duckdb_vector_assign_string_element_len(vec, offset + i, s.data(), s.size());
        }
      }
      break;
    }
    // DuckDB's BIGINT, DOUBLE, BOOLEAN, TIMESTAMPTZ (int64 µs) and DATE (int32 days) have the batch's layout.
    case FieldType::Int64: copy_fixed<int64_t>(data, offset, d.i64, rows, n); break;
    case FieldType::Timestamp: copy_fixed<duckdb_timestamp>(data, offset, d.i64, rows, n); break;
    case FieldType::Date: copy_fixed<duckdb_date>(data, offset, d.i32, rows, n); break;
    case FieldType::Double: copy_fixed<double>(data, offset, d.f64, rows, n); break;
    case FieldType::Bool: copy_fixed<bool>(data, offset, d.b, rows, n); break;
    case FieldType::Decimal: {
      // The physical width follows the precision, as DuckDB lays DECIMAL out.
      if (d.precision <= 4) copy_fixed<int16_t>(data, offset, d.dec, rows, n);
      else if (d.precision <= 9) copy_fixed<int32_t>(data, offset, d.dec, rows, n);
      else if (d.precision <= 18) copy_fixed<int64_t>(data, offset, d.dec, rows, n);
      else {
        auto* out = static_cast<duckdb_hugeint*>(data) + offset;
        for (std::size_t i = 0; i < n; ++i) {
          const auto u = static_cast<UInt128>(d.dec[rows.at(i)]);
          out[i] = duckdb_hugeint{static_cast<uint64_t>(u), static_cast<int64_t>(static_cast<uint64_t>(u >> 64))};
        }
      }
      break;
    }
    case FieldType::Struct:
      // Members are 1:1 with the struct's entries (NULL under a NULL struct).
      for (std::size_t k = 0; k < d.children.size(); ++k)
        fill_data(duckdb_struct_vector_get_child(vec, k), d.children[k], rows, n, offset, name);
      break;
    case FieldType::List: {
      auto* entries = static_cast<duckdb_list_entry*>(data);
      const idx_t base = duckdb_list_vector_get_size(vec);
      std::size_t total = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t r = rows.at(i);
        const std::size_t len = d.valid[r] ? d.items[r + 1] - d.items[r] : 0;
        entries[offset + i] = duckdb_list_entry{base + total, len};
        total += len;
      }
      // The elements of consecutive entries are consecutive; otherwise list them.
      Rows elements;
      std::vector<uint32_t> picked;
      if (!rows.sel && n) {
        elements.first = d.items[rows.first];
      } else {
        picked.reserve(total);
        for (std::size_t i = 0; i < n; ++i) {
          const std::size_t r = rows.at(i);
          if (!d.valid[r]) continue;
          for (uint64_t e = d.items[r]; e < d.items[r + 1]; ++e) picked.push_back(static_cast<uint32_t>(e));
        }
        elements.sel = picked.data();
      }
      // A NULL list holds no elements (its entry's range is empty), so the run has `total` elements.
      if (duckdb_list_vector_reserve(vec, base + total) == DuckDBError)
        throw duck::Error(fmt::format("column '{}': cannot reserve list space", name));
      if (total) fill_data(duckdb_list_vector_get_child(vec), d.children[0], elements, total, base, name);
      if (duckdb_list_vector_set_size(vec, base + total) == DuckDBError)
        throw duck::Error(fmt::format("column '{}': cannot set list size", name));
      break;
    }
  }
}

void fill(duckdb_data_chunk chunk, const ColumnBatch& batch, const Rows& rows, std::size_t n) {
  for (std::size_t k = 0; k < batch.width(); ++k)
    fill_data(duckdb_data_chunk_get_vector(chunk, k), batch.column(k), rows, n, 0, batch.columns()[k].name);
  duckdb_data_chunk_set_size(chunk, n);
}

// The DuckDB type of a column (or struct member / list element), matching sql_type() above.
struct Type {
  duckdb_logical_type t = nullptr;
  Type() = default;
  explicit Type(duckdb_logical_type x) : t(x) {}
  Type(Type&& o) noexcept : t(o.t) { o.t = nullptr; }
  Type& operator=(Type&&) = delete;
  ~Type() {
    if (t) duckdb_destroy_logical_type(&t);
  }
};

Type logical_type(FieldType t, const FieldSpec& spec) {
  switch (t) {
    case FieldType::String:
    case FieldType::Enum: return Type(duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR));
    case FieldType::Int64: return Type(duckdb_create_logical_type(DUCKDB_TYPE_BIGINT));
    case FieldType::Double: return Type(duckdb_create_logical_type(DUCKDB_TYPE_DOUBLE));
    case FieldType::Bool: return Type(duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN));
    case FieldType::Date: return Type(duckdb_create_logical_type(DUCKDB_TYPE_DATE));
    case FieldType::Timestamp: return Type(duckdb_create_logical_type(DUCKDB_TYPE_TIMESTAMP_TZ));
    case FieldType::Decimal:
      if (spec.precision < 1 || spec.precision > 38 || spec.scale < 0 || spec.scale > spec.precision)
        throw duck::Error(fmt::format("DECIMAL({},{}) is not a valid decimal type", spec.precision, spec.scale));
      return Type(duckdb_create_decimal_type(static_cast<uint8_t>(spec.precision), static_cast<uint8_t>(spec.scale)));
    case FieldType::Struct: {
      if (spec.fields.empty()) throw duck::Error("a struct column needs fields");
      std::vector<Type> members;
      std::vector<duckdb_logical_type> raw;
      std::vector<const char*> names;
      for (const FieldSpec& f : spec.fields) {
        members.push_back(logical_type(f.type, f));
        raw.push_back(members.back().t);
        names.push_back(f.name.c_str());
      }
      return Type(duckdb_create_struct_type(raw.data(), names.data(), raw.size()));
    }
    case FieldType::List: {
      if (spec.items.size() != 1) throw duck::Error("a list column needs one items spec");
      const Type item = logical_type(spec.items[0].type, spec.items[0]);
      return Type(duckdb_create_list_type(item.t));
    }
  }
  throw duck::Error("unknown field type");
}

struct TableFunction {
  duckdb_table_function f = duckdb_create_table_function();
  ~TableFunction() { duckdb_destroy_table_function(&f); }
};

}  // namespace

// What the sink's table function reads: the rows of the write() in progress (none between writes).
// Owned by DuckDB (the function's extra info outlives the sink: a catalog entry cannot be dropped).
struct SinkFeed {
  const ColumnBatch* batch = nullptr;
  const uint32_t* sel = nullptr;  // null: batch rows [first, first + n)
  std::size_t first = 0;
  std::size_t n = 0;
  std::vector<Type> types;  // of the batch's columns, built once per write
};

namespace {

struct Cursor {
  std::size_t next = 0;
};

void feed_bind(duckdb_bind_info info) {
  auto* feed = static_cast<SinkFeed*>(duckdb_bind_get_extra_info(info));
  if (!feed->batch) {
    duckdb_bind_set_error(info, "the apilake sink function is only read by ParquetSink::write");
    return;
  }
  for (std::size_t c = 0; c < feed->batch->width(); ++c)
    duckdb_bind_add_result_column(info, feed->batch->columns()[c].name.c_str(), feed->types[c].t);
  duckdb_bind_set_cardinality(info, feed->n, true);
}

void feed_init(duckdb_init_info info) {
  duckdb_init_set_init_data(info, new Cursor, [](void* p) { delete static_cast<Cursor*>(p); });
  duckdb_init_set_max_threads(info, 1);  // one reader, so the file keeps the rows' order
}

// Fills DuckDB's output chunk straight from the batch: the values are copied once, into the vectors
// the Parquet writer reads (no table in between, so no second compression of the data).
void feed_next(duckdb_function_info info, duckdb_data_chunk out) {
  auto* feed = static_cast<SinkFeed*>(duckdb_function_get_extra_info(info));
  auto* cursor = static_cast<Cursor*>(duckdb_function_get_init_data(info));
  const std::size_t n = std::min<std::size_t>(duckdb_vector_size(), feed->n - cursor->next);
  try {
    if (n) fill(out, *feed->batch,
                  feed->sel ? Rows{feed->sel + cursor->next, 0} : Rows{nullptr, feed->first + cursor->next}, n);
    else duckdb_data_chunk_set_size(out, 0);
    cursor->next += n;
  } catch (const std::exception& e) {  // no C++ exception may cross DuckDB's C boundary
    duckdb_function_set_error(info, e.what());
  }
}

}  // namespace

ParquetSink::ParquetSink(duck::Database& db) : con_(db) {
  // Function names are per database; the counter keeps them unique across sinks.
  static std::atomic<std::uint64_t> counter{0};
  function_ = fmt::format("apilake_sink_rows_{}", counter.fetch_add(1));
  auto* feed = new SinkFeed;
  TableFunction tf;
  duckdb_table_function_set_name(tf.f, function_.c_str());
  duckdb_table_function_set_extra_info(tf.f, feed, [](void* p) { delete static_cast<SinkFeed*>(p); });
  duckdb_table_function_set_bind(tf.f, feed_bind);
  duckdb_table_function_set_init(tf.f, feed_init);
  duckdb_table_function_set_function(tf.f, feed_next);
  if (duckdb_register_table_function(con_.raw(), tf.f) == DuckDBError) {
    // Not registered: `tf`'s destructor frees the extra info with the function object.
    throw duck::Error("ParquetSink: cannot register the sink's table function");
  }
  feed_ = feed;
}

ParquetSink::~ParquetSink() = default;

void ParquetSink::write(const std::filesystem::path& path, const std::vector<Column>& columns,
                        const std::vector<Row>& rows, std::size_t row_group_rows,
                        const std::map<std::string, std::string>& kv_metadata) {
  if (columns.empty()) throw duck::Error("ParquetSink: no columns");
  ColumnBatch batch(columns);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != columns.size()) {
      throw duck::Error(fmt::format("ParquetSink: row {} has {} values for {} columns", r, rows[r].size(),
                                    columns.size()));
    }
    batch.begin_row();
    for (std::size_t c = 0; c < columns.size(); ++c) {
      if (std::string bad = batch.set_value(c, rows[r][c]); !bad.empty()) {
        const Column& col = columns[c];
        // The types of a bad column: its SQL type (a bad spec throws its own error here).
        throw duck::Error(bad.rfind("holds", 0) == 0
                              ? fmt::format("row {}: column '{}' is {} but {}", r, col.name, sql_type(col.type, col.spec), bad)
                              : fmt::format("row {}: column '{}': {}", r, col.name, bad));
      }
    }
  }
  write(path, batch, nullptr, batch.size(), row_group_rows, kv_metadata);
}

void ParquetSink::write(const std::filesystem::path& path, const ColumnBatch& batch, const uint32_t* rows,
                        std::size_t n, std::size_t row_group_rows,
                        const std::map<std::string, std::string>& kv_metadata) {
  const std::vector<Column>& columns = batch.columns();
  if (columns.empty()) throw duck::Error("ParquetSink: no columns");
  if (!rows && n > batch.size()) throw duck::Error("ParquetSink: more rows asked than the batch holds");
  // A run of consecutive rows (a message's rows nearly always go to one file) is read as a range, so
  // fixed-width columns are one memcpy per chunk.
  std::size_t first = 0;
  if (rows && n) {
    bool run = true;
    for (std::size_t i = 1; i < n && run; ++i) run = rows[i] == rows[0] + i;
    if (run) {
      first = rows[0];
      rows = nullptr;
    }
  }
  for (std::size_t i = 0; rows && i < n; ++i)
    if (rows[i] >= batch.size()) throw duck::Error("ParquetSink: a row index beyond the batch");
  if (!rows && first + n > batch.size()) throw duck::Error("ParquetSink: more rows asked than the batch holds");

  std::vector<Type> types;
  types.reserve(columns.size());
  for (const Column& c : columns) types.push_back(logical_type(c.type, c.spec));

  std::string options = row_group_rows ? fmt::format(", ROW_GROUP_SIZE {}", row_group_rows) : "";
  if (!kv_metadata.empty()) {
    std::string kv;
    for (const auto& [k, v] : kv_metadata) kv += (kv.empty() ? "" : ", ") + duck::quote_literal(k) + ": " + duck::quote_literal(v);
    options += ", KV_METADATA {" + kv + "}";
  }

  // The rows are streamed through the sink's table function into COPY (before: appended to a TEMP
  // table, then COPYed — every value copied and compressed twice).
  feed_->batch = &batch;
  feed_->sel = rows;
  feed_->first = first;
  feed_->n = n;
  feed_->types = std::move(types);
  struct Unbind {
    SinkFeed* f;
    ~Unbind() {
      f->batch = nullptr;
      f->sel = nullptr;
      f->first = 0;
      f->n = 0;
      f->types.clear();
    }
  } unbind{feed_};
  try {
    con_.execute(fmt::format("COPY (FROM {}()) TO {} (FORMAT parquet, COMPRESSION zstd{})", function_,
                             duck::quote_literal(path.string()), options));
  } catch (...) {
    // A value failing half-way leaves a partial file: remove it (it is ours, a staging path).
    std::error_code ec;
    std::filesystem::remove(path, ec);
    throw;
  }
  fsync_file(path);
}

}  // namespace apilake
