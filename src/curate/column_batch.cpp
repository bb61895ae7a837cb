#include "curate/column_batch.h"

#include <fmt/format.h>

namespace apilake {

namespace {

bool is_text(FieldType t) { return t == FieldType::String || t == FieldType::Enum; }

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

}  // namespace

ColumnBatch::Data::Data(FieldType t, const FieldSpec& spec) : type(t), precision(spec.precision), scale(spec.scale) {
  if (is_text(t)) offsets.push_back(0);
  if (t == FieldType::Struct)
    for (const FieldSpec& f : spec.fields) children.emplace_back(f.type, f);
  if (t == FieldType::List) {
    items.push_back(0);
    // A list spec always has one items spec (the schema checks it); an empty one holds strings.
    if (spec.items.empty()) children.emplace_back(FieldType::String, FieldSpec{});
    else children.emplace_back(spec.items[0].type, spec.items[0]);
  }
}

void ColumnBatch::Data::push_null_members() {
  for (Data& c : children) c.push_null();
}

void ColumnBatch::Data::truncate(std::size_t n) {
  if (n >= size()) return;
  valid.resize(n);
  switch (type) {
    case FieldType::String:
    case FieldType::Enum:
      offsets.resize(n + 1);
      arena.resize(offsets[n]);
      break;
    case FieldType::Int64:
    case FieldType::Timestamp: i64.resize(n); break;
    case FieldType::Date: i32.resize(n); break;
    case FieldType::Double: f64.resize(n); break;
    case FieldType::Bool: b.resize(n); break;
    case FieldType::Decimal: dec.resize(n); break;
    case FieldType::Struct:
      for (Data& c : children) c.truncate(n);
      break;
    case FieldType::List:
      items.resize(n + 1);
      children[0].truncate(items[n]);
      break;
  }
}

void ColumnBatch::Data::put_string(std::string_view s) {
  valid.back() = 1;
  // The last entry's text ends the arena: drop what an earlier put wrote, then append.
  arena.resize(offsets[offsets.size() - 2]);
  arena.append(s);
  offsets.back() = arena.size();
}

void ColumnBatch::Data::put_null() {
  if (valid.empty()) return;
  truncate(size() - 1);
  push_null();
}

std::string ColumnBatch::Data::put_value(const Value& v) {
  put_null();
  if (std::holds_alternative<std::monostate>(v)) return "";
  auto wrong = [&] { return fmt::format("holds a {} value", value_kind(v)); };
  switch (type) {
    case FieldType::String:
    case FieldType::Enum:
      if (const auto* s = std::get_if<std::string>(&v)) {
        put_string(*s);
        return "";
      }
      return wrong();
    case FieldType::Int64:
      if (const auto* x = std::get_if<int64_t>(&v)) {
        put_int64(*x);
        return "";
      }
      return wrong();
    case FieldType::Double:
      if (const auto* x = std::get_if<double>(&v)) {
        put_double(*x);
        return "";
      }
      return wrong();
    case FieldType::Bool:
      if (const auto* x = std::get_if<bool>(&v)) {
        put_bool(*x);
        return "";
      }
      return wrong();
    case FieldType::Date:
      if (const auto* x = std::get_if<DateDays>(&v)) {
        put_date(*x);
        return "";
      }
      return wrong();
    case FieldType::Timestamp:
      if (const auto* x = std::get_if<TimestampUs>(&v)) {
        put_timestamp(*x);
        return "";
      }
      return wrong();
    case FieldType::Decimal:
      if (const auto* x = std::get_if<Decimal>(&v)) {
        if (x->scale != scale)
          return fmt::format("decimal of scale {} in a DECIMAL({},{}) column", x->scale, precision, scale);
        put_decimal(x->unscaled);
        return "";
      }
      return wrong();
    case FieldType::Struct: {
      const auto* sv = std::get_if<StructValue>(&v);
      if (!sv) return wrong();
      if (sv->fields.size() != children.size())
        return fmt::format("struct value has {} members for {} fields", sv->fields.size(), children.size());
      begin_nested();
      for (std::size_t i = 0; i < children.size(); ++i)
        if (std::string bad = children[i].put_value(sv->fields[i]); !bad.empty()) {
          put_null();
          return "member " + std::to_string(i) + " " + bad;
        }
      return "";
    }
    case FieldType::List: {
      const auto* lv = std::get_if<ListValue>(&v);
      if (!lv) return wrong();
      begin_nested();
      Data& element = children[0];
      for (std::size_t i = 0; i < lv->items.size(); ++i) {
        element.push_null();
        if (std::string bad = element.put_value(lv->items[i]); !bad.empty()) {
          put_null();
          return "element " + std::to_string(i) + " " + bad;
        }
      }
      end_list();
      return "";
    }
  }
  return wrong();
}

Value ColumnBatch::Data::value(std::size_t i) const {
  if (!valid[i]) return Value{};
  switch (type) {
    case FieldType::String:
    case FieldType::Enum: return Value{std::string(str(i))};
    case FieldType::Int64: return Value{i64[i]};
    case FieldType::Timestamp: return Value{TimestampUs{i64[i]}};
    case FieldType::Date: return Value{DateDays{i32[i]}};
    case FieldType::Double: return Value{f64[i]};
    case FieldType::Bool: return Value{b[i] != 0};
    case FieldType::Decimal: return Value{Decimal{dec[i], scale}};
    case FieldType::Struct: {
      StructValue sv;
      for (const Data& c : children) sv.fields.push_back(c.value(i));
      return Value{std::move(sv)};
    }
    case FieldType::List: {
      ListValue lv;
      for (std::size_t e = items[i]; e < items[i + 1]; ++e) lv.items.push_back(children[0].value(e));
      return Value{std::move(lv)};
    }
  }
  return Value{};
}

void ColumnBatch::reset(std::vector<Column> columns) {
  columns_ = std::move(columns);
  data_.clear();
  for (const Column& c : columns_) data_.emplace_back(c.type, c.spec);
  rows_ = 0;
}

void ColumnBatch::clear() {
  for (Data& d : data_) d.truncate(0);
  rows_ = 0;
}

void ColumnBatch::insert_column(std::size_t at, Column column) {
  Data d(column.type, column.spec);
  for (std::size_t r = 0; r < rows_; ++r) d.push_null();
  data_.insert(data_.begin() + static_cast<std::ptrdiff_t>(at), std::move(d));
  columns_.insert(columns_.begin() + static_cast<std::ptrdiff_t>(at), std::move(column));
}

void ColumnBatch::begin_row() {
  for (Data& d : data_) d.push_null();
  ++rows_;
}

void ColumnBatch::rollback_row() {
  if (rows_ == 0) return;
  --rows_;
  for (Data& d : data_) d.truncate(rows_);
}

Row ColumnBatch::row(std::size_t r) const {
  Row out;
  out.reserve(data_.size());
  for (const Data& d : data_) out.push_back(d.value(r));
  return out;
}

std::size_t ColumnBatch::estimated_bytes(std::size_t r) const {
  std::size_t n = 8;
  for (const Data& d : data_) n += is_text(d.type) && d.valid[r] ? d.offsets[r + 1] - d.offsets[r] + 4 : 8;
  return n;
}

}  // namespace apilake
