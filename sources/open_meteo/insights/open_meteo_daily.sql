-- name: open_meteo_daily
-- description: Daily min/max/mean temperature and total precipitation per place (grid cell)
-- datasets: open_meteo_forecast
-- refresh: after_batch
--
-- One value per place and hour (re-extracting a range must not count it twice).
WITH h AS (
  SELECT DISTINCT ON (latitude, longitude, time) latitude, longitude, time, temperature_2m, precipitation
  FROM open_meteo_forecast
  ORDER BY latitude, longitude, time, _ingested_at DESC
)
SELECT latitude, longitude, CAST(time AS DATE) AS day,
       min(temperature_2m) AS temperature_min, max(temperature_2m) AS temperature_max,
       avg(temperature_2m) AS temperature_mean, sum(precipitation) AS precipitation_total
FROM h
GROUP BY ALL
ORDER BY latitude, longitude, day
