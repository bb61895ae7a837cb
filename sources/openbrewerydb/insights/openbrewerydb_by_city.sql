-- name: openbrewerydb_by_city
-- description: Breweries per city (within its state/province), most first
-- datasets: openbrewerydb_breweries
-- refresh: after_batch
WITH b AS (
  SELECT * FROM openbrewerydb_breweries
  QUALIFY row_number() OVER (PARTITION BY id ORDER BY _ingested_at DESC) = 1
)
SELECT state_province, city, count(*) AS breweries
FROM b
GROUP BY ALL
ORDER BY breweries DESC, state_province, city
