-- name: bcb_sgs_monthly
-- description: Monthly mean, min and max of the SGS series values, with the month-over-month change of the mean
-- datasets: bcb_sgs_series
-- refresh: after_batch
--
-- Rows do not carry the SGS series code (it is a request parameter, not a field of the response), so
-- this aggregates the whole dataset: extract one series per data directory, or see docs/insights.md.
-- DISTINCT (date, value): extracting the same range twice must not count its days twice.
WITH days AS (
  SELECT DISTINCT date, value FROM bcb_sgs_series
), months AS (
  SELECT CAST(date_trunc('month', date) AS DATE) AS month,
         avg(value) AS mean,
         min(value) AS min,
         max(value) AS max,
         count(*) AS observations
  FROM days
  GROUP BY 1
)
SELECT month, mean, min, max, observations,
       mean - lag(mean) OVER (ORDER BY month) AS mom_change,
       100 * (mean / NULLIF(lag(mean) OVER (ORDER BY month), 0) - 1) AS mom_change_pct
FROM months
ORDER BY month
