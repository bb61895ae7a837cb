-- name: bcb_sgs_monthly
-- description: Per SGS series, monthly mean, min and max of the values, with the month-over-month change of the mean
-- datasets: bcb_sgs_series
-- refresh: after_batch
--
-- `series` is the SGS code the extraction asked for (a from_param field, docs/schema.md), so several
-- series share the dataset and each gets its own months; the change is against the same series.
-- DISTINCT (series, date, value): extracting the same range twice must not count its days twice.
WITH days AS (
  SELECT DISTINCT series, date, value FROM bcb_sgs_series
), months AS (
  SELECT series,
         CAST(date_trunc('month', date) AS DATE) AS month,
         avg(value) AS mean,
         min(value) AS min,
         max(value) AS max,
         count(*) AS observations
  FROM days
  GROUP BY 1, 2
)
SELECT series, month, mean, min, max, observations,
       mean - lag(mean) OVER (PARTITION BY series ORDER BY month) AS mom_change,
       100 * (mean / NULLIF(lag(mean) OVER (PARTITION BY series ORDER BY month), 0) - 1) AS mom_change_pct
FROM months
ORDER BY series, month
