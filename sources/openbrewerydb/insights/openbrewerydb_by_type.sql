-- name: openbrewerydb_by_type
-- description: Breweries per type (micro, brewpub, planning, ...) and state/province
-- datasets: openbrewerydb_breweries
-- refresh: after_batch
WITH b AS (
  SELECT * FROM openbrewerydb_breweries
  QUALIFY row_number() OVER (PARTITION BY id ORDER BY _ingested_at DESC) = 1
)
SELECT brewery_type, state_province, count(*) AS breweries
FROM b
GROUP BY ALL
ORDER BY brewery_type, breweries DESC, state_province
