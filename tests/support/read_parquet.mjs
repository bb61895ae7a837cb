// Independent Parquet reader for the tests: reads FILE with hyparquet (+ hyparquet-compressors for
// ZSTD) and prints {"columns": [...], "rows": [[...], ...]} as JSON on stdout.
// Values are kept raw so the C++ side can compare them exactly with DuckDB's:
//   INT64 -> decimal string, DATE -> days since 1970-01-01 (number),
//   TIMESTAMP -> microseconds (or millis/nanos, as stored) since the epoch as a decimal string.
// Usage: node tests/support/read_parquet.mjs FILE
import { readFileSync } from 'node:fs'
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet'
import { compressors } from 'hyparquet-compressors'

const file = process.argv[2]
if (!file) {
  console.error('usage: read_parquet.mjs FILE')
  process.exit(2)
}
const bytes = readFileSync(file)
const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
const metadata = parquetMetadata(buffer)
const columns = parquetSchema(metadata).children.map((c) => c.element.name)
const raw = (v) => String(v)
const rows = await parquetReadObjects({
  file: buffer,
  compressors,
  parsers: {
    timestampFromMilliseconds: raw,
    timestampFromMicroseconds: raw,
    timestampFromNanoseconds: raw,
    dateFromDays: (d) => d,
  },
})
const plain = (v) => {
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8')
  if (Array.isArray(v)) return v.map(plain)
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
  }
  return v
}
process.stdout.write(JSON.stringify({ columns, rows: rows.map((r) => columns.map((c) => plain(r[c]))) }))
