-- POST /v1/extractions, then stop this wrk thread after POST_LIMIT responses: a fixed batch of
-- extractions whose fetch + publish apilake runs in the background (bench/api_bench.py, full flow).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"source":"benchpage","endpoint":"issues","params":{"repo":"widgets","state":"all","per_page":10}}'
local limit = tonumber(os.getenv("POST_LIMIT") or "1000")
local n = 0
response = function(status, headers, body)
  n = n + 1
  if n >= limit then wrk.thread:stop() end
end
