-- POST /v1/extractions with one valid body (bench/api_bench.py). Same body for apilake and the anchor.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"source":"benchpage","endpoint":"issues","params":{"repo":"widgets","state":"all","per_page":10}}'
