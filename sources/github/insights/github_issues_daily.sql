-- name: github_issues_daily
-- description: Issues opened and closed per day, by first label (pull requests excluded)
-- datasets: github_issues
-- refresh: after_batch
--
-- One row per issue id (the latest extraction wins), then opened counts by created_at's day and
-- closed counts by closed_at's day.
WITH i AS (
  SELECT * FROM github_issues
  WHERE pull_request_url IS NULL
  QUALIFY row_number() OVER (PARTITION BY id ORDER BY _ingested_at DESC) = 1
), events AS (
  SELECT CAST(created_at AS DATE) AS day, coalesce(first_label, '(none)') AS label, 1 AS opened, 0 AS closed FROM i
  UNION ALL
  SELECT CAST(closed_at AS DATE), coalesce(first_label, '(none)'), 0, 1 FROM i WHERE closed_at IS NOT NULL
)
SELECT day, label, CAST(sum(opened) AS BIGINT) AS opened, CAST(sum(closed) AS BIGINT) AS closed
FROM events
GROUP BY ALL
ORDER BY day, label
