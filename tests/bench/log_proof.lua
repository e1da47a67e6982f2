-- wrk script: the log's reads for tests/bench/log.sh, over a tenant whose
-- events are pf-1 .. pf-N (BENCH_LOG_EVENTS). BENCH_LOG_MODE: "proof"
-- (GET /v1/events/{id}/proof of a random event, against the latest
-- checkpoint), "consistency" (GET /v1/checkpoints/consistency from a
-- random size to N) or "event" (GET /v1/events/{id} of a random event: the
-- baseline). BENCH_API_KEY: a key with events:read.
local n, mode
local threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("seed", threads)
end
function init(args)
	n = tonumber(os.getenv("BENCH_LOG_EVENTS"))
	mode = os.getenv("BENCH_LOG_MODE") or "proof"
	wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
	math.randomseed(os.time() * 100 + (seed or 0))
end
function request()
	local path
	if mode == "consistency" then
		path = "/v1/checkpoints/consistency?from=" .. math.random(1, n) .. "&to=" .. n
	elseif mode == "event" then
		path = "/v1/events/pf-" .. math.random(1, n)
	else
		path = "/v1/events/pf-" .. math.random(1, n) .. "/proof"
	end
	return wrk.format("GET", path)
end
