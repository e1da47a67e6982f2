-- wrk script: GET /v1/events filtered by one of BENCH_ACTORS actors
-- (user_0 .. user_<N-1>), newest 100 first. Environment: BENCH_API_KEY (a key
-- with events:read), BENCH_ACTORS (100).
local threads = 0

function setup(thread)
	thread:set("tid", threads)
	threads = threads + 1
end

function init(args)
	math.randomseed(os.time() * 100 + tid)
	actors = tonumber(os.getenv("BENCH_ACTORS") or "100")
	wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
end

function request()
	return wrk.format("GET", "/v1/events?actor=user_" .. math.random(0, actors - 1) .. "&limit=100")
end
