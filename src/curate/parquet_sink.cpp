#include "curate/parquet_sink.h"

#include <atomic>
#include <cstring>

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

const char* value_kind(const Value& v) {
  switch (v.index()) {
    case 0: return "null";
    case 1: return "string";
    case 2: return "int64";
    case 3: return "double";
    case 4: return "bool";
    case 5: return "date";
    case 6: return "timestamp";
    case 7: return "decimal";
    case 8: return "struct";
    case 9: return "list";
  }
  return "?";
}

// `where` is a callable giving the location: the text is built only for the error (building it for
// every cell was a string allocation per value on the hot path).
template <typename T, typename Where>
const T& expect(const Value& v, const Where& where, FieldType t, const FieldSpec& spec) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw duck::Error(fmt::format("{} is {} but holds a {} value", where(), sql_type(t, spec), value_kind(v)));
}

// Writes values[0, n) into vec at rows [offset, offset + n). Recursive for struct members and list
// elements (their child vectors), which is how DuckDB's C API exposes nested data.
constexpr std::size_t kElement = static_cast<std::size_t>(-1);

void fill_vector(duckdb_vector vec, FieldType type, const FieldSpec& spec, const Value* const* values,
                 std::size_t n, std::size_t offset, const std::string& where, std::size_t row_base) {
  duckdb_vector_ensure_validity_writable(vec);
  uint64_t* validity = duckdb_vector_get_validity(vec);
  void* data = duckdb_vector_get_data(vec);
  // Top level: "row R: column 'c'"; inside a list: "column 'c'[] element E".
  auto where_at = [&](std::size_t i) {
    return row_base == kElement ? fmt::format("{} element {}", where, offset + i)
                                : fmt::format("row {}: {}", row_base + i, where);
  };
  for (std::size_t i = 0; i < n; ++i) {
    const Value& v = *values[i];
    const std::size_t at = offset + i;
    const auto here = [&] { return where_at(i); };
    if (std::holds_alternative<std::monostate>(v)) {
      duckdb_validity_set_row_invalid(validity, at);
      continue;
    }
    duckdb_validity_set_row_valid(validity, at);
    switch (type) {
      case FieldType::String:
      case FieldType::Enum: {
        const std::string& s = expect<std::string>(v, here, type, spec);
        duckdb_vector_assign_string_element_len(vec, at, s.data(), s.size());
        break;
      }
      case FieldType::Int64: static_cast<int64_t*>(data)[at] = expect<int64_t>(v, here, type, spec); break;
      case FieldType::Double: static_cast<double*>(data)[at] = expect<double>(v, here, type, spec); break;
      case FieldType::Bool: static_cast<bool*>(data)[at] = expect<bool>(v, here, type, spec); break;
      case FieldType::Date:
        static_cast<duckdb_date*>(data)[at] = duckdb_date{expect<DateDays>(v, here, type, spec).days};
        break;
      case FieldType::Timestamp:
        static_cast<duckdb_timestamp*>(data)[at] = duckdb_timestamp{expect<TimestampUs>(v, here, type, spec).micros};
        break;
      case FieldType::Decimal: {
        const Decimal& d = expect<Decimal>(v, here, type, spec);
        if (d.scale != spec.scale)
          throw duck::Error(fmt::format("{}: decimal of scale {} in a DECIMAL({},{}) column", where_at(i), d.scale,
                                        spec.precision, spec.scale));
        // The physical width follows the precision, as DuckDB lays DECIMAL out.
        if (spec.precision <= 4) static_cast<int16_t*>(data)[at] = static_cast<int16_t>(d.unscaled);
        else if (spec.precision <= 9) static_cast<int32_t*>(data)[at] = static_cast<int32_t>(d.unscaled);
        else if (spec.precision <= 18) static_cast<int64_t*>(data)[at] = static_cast<int64_t>(d.unscaled);
        else {
          const auto u = static_cast<UInt128>(d.unscaled);
          static_cast<duckdb_hugeint*>(data)[at] =
              duckdb_hugeint{static_cast<uint64_t>(u), static_cast<int64_t>(static_cast<uint64_t>(u >> 64))};
        }
        break;
      }
      case FieldType::Struct:
      case FieldType::List:
        break;  // below, column-wise
    }
  }
  if (type == FieldType::Struct) {
    static const Value kNull{};
    for (std::size_t k = 0; k < spec.fields.size(); ++k) {
      std::vector<const Value*> member(n, &kNull);  // a NULL struct has NULL members
      for (std::size_t i = 0; i < n; ++i) {
        if (std::holds_alternative<std::monostate>(*values[i])) continue;
        const StructValue& sv = expect<StructValue>(*values[i], [&] { return where_at(i); }, type, spec);
        if (sv.fields.size() != spec.fields.size())
          throw duck::Error(fmt::format("{}: struct value has {} members for {} fields", where_at(i), sv.fields.size(),
                                        spec.fields.size()));
        member[i] = &sv.fields[k];
      }
      fill_vector(duckdb_struct_vector_get_child(vec, k), spec.fields[k].type, spec.fields[k], member.data(), n,
                  offset, where + "." + spec.fields[k].name, row_base);
    }
  } else if (type == FieldType::List) {
    const FieldSpec& item = spec.items.at(0);
    auto* entries = static_cast<duckdb_list_entry*>(data);
    std::vector<const Value*> elements;
    const idx_t base = duckdb_list_vector_get_size(vec);
    for (std::size_t i = 0; i < n; ++i) {
      if (std::holds_alternative<std::monostate>(*values[i])) {
        entries[offset + i] = duckdb_list_entry{base + elements.size(), 0};
        continue;
      }
      const ListValue& lv = expect<ListValue>(*values[i], [&] { return where_at(i); }, type, spec);
      entries[offset + i] = duckdb_list_entry{base + elements.size(), lv.items.size()};
      for (const Value& x : lv.items) elements.push_back(&x);
    }
    if (duckdb_list_vector_reserve(vec, base + elements.size()) == DuckDBError)
      throw duck::Error(where + ": cannot reserve list space");
    fill_vector(duckdb_list_vector_get_child(vec), item.type, item, elements.data(), elements.size(), base,
                where + "[]", kElement);
    if (duckdb_list_vector_set_size(vec, base + elements.size()) == DuckDBError)
      throw duck::Error(where + ": cannot set list size");
  }
}

// Writes rows [begin, begin + n) into the chunk's vectors directly (the fast path of the appender).
void fill(duckdb_data_chunk chunk, const std::vector<Column>& columns, const std::vector<Row>& rows,
          std::size_t begin, std::size_t n) {
  std::vector<const Value*> values(n);
  for (std::size_t c = 0; c < columns.size(); ++c) {
    for (std::size_t i = 0; i < n; ++i) values[i] = &rows[begin + i][c];
    const std::string where = fmt::format("column '{}'", columns[c].name);
    fill_vector(duckdb_data_chunk_get_vector(chunk, c), columns[c].type, columns[c].spec, values.data(), n, 0, where,
                begin);
  }
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
  const std::vector<Column>* columns = nullptr;
  const std::vector<Row>* rows = nullptr;
  std::vector<Type> types;  // of columns, built once per write
};

namespace {

struct Cursor {
  std::size_t next = 0;
};

void feed_bind(duckdb_bind_info info) {
  auto* feed = static_cast<SinkFeed*>(duckdb_bind_get_extra_info(info));
  if (!feed->columns) {
    duckdb_bind_set_error(info, "the apilake sink function is only read by ParquetSink::write");
    return;
  }
  for (std::size_t c = 0; c < feed->columns->size(); ++c)
    duckdb_bind_add_result_column(info, (*feed->columns)[c].name.c_str(), feed->types[c].t);
  duckdb_bind_set_cardinality(info, feed->rows->size(), true);
}

void feed_init(duckdb_init_info info) {
  duckdb_init_set_init_data(info, new Cursor, [](void* p) { delete static_cast<Cursor*>(p); });
  duckdb_init_set_max_threads(info, 1);  // one reader, so the file keeps the rows' order
}

// Fills DuckDB's output chunk straight from the rows: the values are copied once, into the vectors
// the Parquet writer reads (no table in between, so no second compression of the data).
void feed_next(duckdb_function_info info, duckdb_data_chunk out) {
  auto* feed = static_cast<SinkFeed*>(duckdb_function_get_extra_info(info));
  auto* cursor = static_cast<Cursor*>(duckdb_function_get_init_data(info));
  const std::size_t n = std::min<std::size_t>(duckdb_vector_size(), feed->rows->size() - cursor->next);
  try {
    if (n) fill(out, *feed->columns, *feed->rows, cursor->next, n);
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
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != columns.size()) {
      throw duck::Error(fmt::format("ParquetSink: row {} has {} values for {} columns", r, rows[r].size(),
                                    columns.size()));
    }
  }

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
  feed_->columns = &columns;
  feed_->rows = &rows;
  feed_->types = std::move(types);
  struct Unbind {
    SinkFeed* f;
    ~Unbind() {
      f->columns = nullptr;
      f->rows = nullptr;
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
