-- wrk script: GET one query of the events listing, again and again, with
-- "{n}" in it replaced each time by a random number below BENCH_N (so that
-- `actor=user_{n}` spreads over the actors). Environment: BENCH_API_KEY (a
-- key with events:read), BENCH_PATH (the path and query), BENCH_N (100).
local threads = 0

function setup(thread)
	thread:set("tid", threads)
	threads = threads + 1
end

function init(args)
	math.randomseed(os.time() * 100 + tid)
	n = tonumber(os.getenv("BENCH_N") or "100")
	path = os.getenv("BENCH_PATH")
	wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
end

function request()
	return wrk.format("GET", (path:gsub("{n}", tostring(math.random(0, n - 1)))))
end
