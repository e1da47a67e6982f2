-- wrk script: POST /v1/tenants with a unique slug per request.
-- The admin token comes from the environment (BENCH_ADMIN_TOKEN).
local counter = 0
local threads = 0

function setup(thread)
	thread:set("tid", threads)
	threads = threads + 1
end

function init(args)
	-- Each run of wrk starts its counters again: the time makes its slugs new.
	started = os.time()
	math.randomseed(started * 100 + tid)
	wrk.method = "POST"
	wrk.headers["Content-Type"] = "application/json"
	wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_ADMIN_TOKEN")
end

function request()
	counter = counter + 1
	local body = string.format(
		'{"name":"Bench %d-%d","slug":"b-%d-%d-%d-%d","region":"in","plan":"pro"}',
		tid, counter, started, tid, counter, math.random(1, 1000000000))
	return wrk.format(nil, "/v1/tenants", nil, body)
end
