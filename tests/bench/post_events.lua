-- wrk script: POST /v1/events to the data plane, one event or a batch of
-- copies of it. The event carries no id, so each is a new event (the data
-- plane makes its id). Environment: BENCH_API_KEY (a key with events:write),
-- BENCH_EVENT (the event, JSON), BENCH_BATCH (events per request: 1 sends
-- the event object, N > 1 sends {"events":[N copies]}).
function init(args)
	local event = os.getenv("BENCH_EVENT")
	local n = tonumber(os.getenv("BENCH_BATCH") or "1")
	local body = event
	if n > 1 then
		local events = {}
		for i = 1, n do events[i] = event end
		body = '{"events":[' .. table.concat(events, ",") .. ']}'
	end
	wrk.method = "POST"
	wrk.path = "/v1/events"
	wrk.body = body
	wrk.headers["Content-Type"] = "application/json"
	wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
end
