-- name: openbrewerydb_by_state
-- description: Breweries per country and state/province, with how many cities they are in
-- datasets: openbrewerydb_breweries
-- refresh: after_batch
--
-- One row per brewery id (the latest extraction wins): re-extracting a state must not double it.
WITH b AS (
  SELECT * FROM openbrewerydb_breweries
  QUALIFY row_number() OVER (PARTITION BY id ORDER BY _ingested_at DESC) = 1
)
SELECT country, state_province, count(*) AS breweries, count(DISTINCT city) AS cities
FROM b
GROUP BY ALL
ORDER BY breweries DESC, country, state_province
