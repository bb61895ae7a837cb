-- GET /v1/extractions/{id}, cycling over the ids in the file named by IDS_FILE (one per line).
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local i = 0
request = function()
  i = i % #ids + 1
  return wrk.format("GET", "/v1/extractions/" .. ids[i])
end
