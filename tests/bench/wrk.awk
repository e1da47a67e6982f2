# The one reader of wrk's --latency report for the benchmarks: prints
# "req/s p50_ms p99_ms" (the latencies with `digits` decimals, 2 unless
# given), or fails, naming `url`, when any answer was not 2xx or 3xx.
#   awk -v url=URL [-v digits=3] -f tests/bench/wrk.awk WRK_OUTPUT
function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
/Requests\/sec/ { rps = $2 }
/^ +50%/ { p50 = ms($2) }
/^ +99%/ { p99 = ms($2) }
/Non-2xx/ { bad = $NF }
END {
	if (bad) { print "bench: " bad " non-2xx answers from " url > "/dev/stderr"; exit 1 }
	d = digits == "" ? 2 : digits
	printf "%.0f %." d "f %." d "f\n", rps, p50, p99
}
