"""Checkpoint lag probe for tests/bench/log.sh: how long after its commit an
event is covered by a signed checkpoint of its tenant's log.

  log_lag.py URL KEY SAMPLES EVENT_JSON

Each sample reads the tree size of GET /v1/checkpoints/latest (the probe is
its tenant's only writer), POSTs one event, and from the 201 (the commit
happened before it) polls the latest checkpoint every 5 ms until it covers
one more leaf; then waits 50 ms to 1.05 s at random (a fixed pause would
fall at the same point of the appender's round every time). Prints "p50_ms p99_ms max_ms samples" of
the time from the 201 to the first answer that covers it (so at most 5 ms
plus one request late)."""
import json
import random
import sys
import time
import urllib.error
import urllib.request

url, key, samples, event = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
auth = {"Authorization": "Bearer " + key}


def size():
    req = urllib.request.Request(url + "/v1/checkpoints/latest", headers=dict(auth, Accept="application/json"))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)["tree_size"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return 0
        raise


lags = []
for _ in range(samples):
    n = size()
    req = urllib.request.Request(url + "/v1/events", data=event,
                                 headers=dict(auth, **{"Content-Type": "application/json"}))
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201
    t = time.monotonic()
    deadline = t + 30
    while size() <= n:
        if time.monotonic() > deadline:
            sys.exit("log_lag: no checkpoint covered the event within 30 s")
        time.sleep(0.005)
    lags.append((time.monotonic() - t) * 1000)
    time.sleep(random.uniform(0.05, 1.05))  # not in step with the appender's rounds
lags.sort()
pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
print("%.0f %.0f %.0f %d" % (pick(0.5), pick(0.99), lags[-1], len(lags)))
