#include "curate/layout.h"

#include <chrono>

#include <fmt/format.h>

namespace apilake {

std::string hour_dir(Endpoint::Layout layout, int64_t time_us) {
  using namespace std::chrono;
  const sys_time<microseconds> t{microseconds(time_us)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const auto hour = duration_cast<hours>(t - day).count();
  const int y = static_cast<int>(ymd.year());
  const unsigned m = static_cast<unsigned>(ymd.month()), d = static_cast<unsigned>(ymd.day());
  if (layout == Endpoint::Layout::Hive) return fmt::format("year={:04}/month={:02}/day={:02}/hour={:02}", y, m, d, hour);
  return fmt::format("{:04}/{:02}/{:02}/{:02}", y, m, d, hour);
}

int partition_column(const Endpoint& endpoint) {
  if (endpoint.partition_by.empty()) return -1;
  for (std::size_t i = 0; i < endpoint.schema.fields.size(); ++i) {
    if (endpoint.schema.fields[i].name == endpoint.partition_by) return static_cast<int>(i);
  }
  return -1;  // the loader refuses this; be lenient here rather than crash the batch
}

int64_t partition_time(int column, const Row& row, int64_t ingested_us) {
  if (column < 0 || static_cast<std::size_t>(column) >= row.size()) return ingested_us;
  const Value& v = row[static_cast<std::size_t>(column)];
  if (const auto* d = std::get_if<DateDays>(&v)) return int64_t{d->days} * 86'400'000'000LL;
  if (const auto* t = std::get_if<TimestampUs>(&v)) return t->micros;
  return ingested_us;  // NULL (or not a time): the row still has a home, its ingestion hour
}

namespace {
std::size_t estimated_bytes(const Row& row) {
  std::size_t n = 8;
  for (const Value& v : row) {
    if (const auto* s = std::get_if<std::string>(&v))
      n += s->size() + 4;
    else
      n += 8;
  }
  return n;
}
}  // namespace

std::vector<std::pair<std::size_t, std::size_t>> file_slices(std::size_t count, const Endpoint::Files& files,
                                                             const std::function<std::size_t(std::size_t)>& bytes) {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  const std::size_t max_rows = files.max_rows > 0 ? static_cast<std::size_t>(files.max_rows) : count;
  const std::size_t max_bytes = (files.max_mb > 0 ? static_cast<std::size_t>(files.max_mb) : 1u << 20) << 20;
  std::size_t begin = 0, total = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t b = bytes(i);
    if (i > begin && (i - begin >= max_rows || total + b > max_bytes)) {
      out.emplace_back(begin, i);
      begin = i;
      total = 0;
    }
    total += b;
  }
  if (begin < count) out.emplace_back(begin, count);
  return out;
}

std::vector<std::pair<std::size_t, std::size_t>> file_slices(const std::vector<Row>& rows,
                                                             const Endpoint::Files& files) {
  return file_slices(rows.size(), files, [&](std::size_t i) { return estimated_bytes(rows[i]); });
}

void append_lineage_columns(std::vector<Column>& columns) {
  columns.push_back({"_extraction_id", FieldType::String});
  columns.push_back({"_message_id", FieldType::String});
  columns.push_back({"_ingested_at", FieldType::Timestamp});
  columns.push_back({"_replayed_at", FieldType::Timestamp});
}

}  // namespace apilake
