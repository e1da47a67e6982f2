#!/usr/bin/python3
"""The log streams benchmark's webhook receiver, probe and lag reader
(tests/bench/streams.sh). tests/streams/webhook_receiver.py is the
tests' consumer; this one records each delivery's arrival time, which the
lag needs, and does as little else as it can so as not to be the bottleneck.

  stream_rx.py serve webhook --port P --out FILE --secret S [--cert C --key K]
      HTTPS when --cert is given; a request whose Standard Webhooks
      signature (HMAC-SHA256 with the whsec_ secret S) does not verify, or
      whose timestamp is more than 5 minutes off, is answered 401 and not
      recorded. Each accepted one is a JSON line of FILE: {"id": webhook-id,
      "sha": SHA-256 of its data member, "stream": stream id, "events":
      [event ids], "at": arrival (unix s)}. Exits on SIGTERM.
  stream_rx.py count FILE STREAM
      the number of distinct events of STREAM received.
  stream_rx.py probe URL KEY N INTERVAL_MS PREFIX SENT
      posts N single events (ids PREFIX-1..N) to URL/v1/events, one every
      INTERVAL_MS, and appends "id unix-s" of each 201 to SENT.
  streams_rx.py lag FILE SENT
      SENT: lines "event-id unix-s" (the 201 of each probe event); prints
      "p50_ms p99_ms max_ms n" of arrival - 201.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import ssl
import sys
import threading
import time

LOCK = threading.Lock()


def record(out, rec):
    line = json.dumps(rec, separators=(",", ":")) + "\n"
    with LOCK:
        with open(out, "a") as f:
            f.write(line)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kind = out = secret = None

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    def do_POST(self):
        b = self.body()
        now = time.time()
        if self.kind == "webhook":
            wid = self.headers.get("webhook-id") or ""
            ts = self.headers.get("webhook-timestamp") or ""
            sig = self.headers.get("webhook-signature") or ""
            key = base64.b64decode(self.secret[len("whsec_"):])
            want = base64.b64encode(hmac.new(key, f"{wid}.{ts}.".encode() + b, hashlib.sha256).digest()).decode()
            good = any(hmac.compare_digest(s.split(",", 1)[-1], want) for s in sig.split() if s.startswith("v1,"))
            try:
                fresh = abs(now - int(ts)) <= 300
            except ValueError:
                fresh = False
            if not (good and fresh and wid):
                return self.reply(401, b'{"error":"bad signature"}')
            d = json.loads(b)["data"]
            # The data member: the same on every attempt (the envelope's
            # timestamp is the batch's, too).
            sha = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()
            record(self.out, {"id": wid, "sha": sha, "stream": d["stream_id"], "no": d.get("batch_no"),
                              "events": [e["id"] for e in d["events"]], "at": now})
            return self.reply(204)
        self.reply(405)


def serve(argv):
    kind = argv[0]
    opt = dict(zip(argv[1::2], argv[2::2]))
    Handler.kind, Handler.out, Handler.secret = kind, opt["--out"], opt.get("--secret")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(opt["--port"])), Handler)
    srv.daemon_threads = True
    if "--cert" in opt:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opt["--cert"], opt["--key"])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


def batches(path, stream, after=0):
    """[(id, sha, events, first line no)] of STREAM in first-arrival order,
    and the problems found (a batch id re-sent with another body)."""
    seen, order, problems, before = {}, [], [], set()
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        lines = []
    for n, line in enumerate(lines, 1):
        r = json.loads(line)
        if r["stream"] != stream:
            continue
        if n <= after:
            before.add(r["id"])
            continue
        if r["id"] in seen:
            if seen[r["id"]][1] != r["sha"]:
                problems.append(f"batch {r['id']} re-sent with another body")
            continue
        seen[r["id"]] = (r["id"], r["sha"], r["events"], n)
        order.append(r["id"])
    return [seen[i] for i in order], problems, before


def count(argv):
    path, stream = argv[:2]
    after = int(argv[3]) if len(argv) > 3 and argv[2] == "--after" else 0
    bs, _, _ = batches(path, stream, after)
    print(len({e for _, _, evs, _ in bs for e in evs}))
    return 0


def lag(argv):
    path, sent = argv[:2]
    t201 = {}
    for line in open(sent):
        p = line.split()
        if len(p) == 2:
            t201[p[0]] = float(p[1])
    arr = {}
    for line in open(path):
        r = json.loads(line)
        for e in r["events"]:
            if e in t201 and e not in arr:
                arr[e] = r["at"]
    v = sorted((arr[e] - t201[e]) * 1000 for e in arr)
    if not v:
        print("- - - 0")
        return 0
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    print(f"{q(0.5):.0f} {q(0.99):.0f} {v[-1]:.0f} {len(v)}")
    return 0


def probe(argv):
    import http.client
    import urllib.parse
    url, key, n, every, prefix, sent = argv[:6]
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":  # the local stack: its CA, as curl takes it (CURL_CA_BUNDLE)
        ctx = ssl.create_default_context(cafile=os.environ.get("CURL_CA_BUNDLE"))
        c = http.client.HTTPSConnection(u.hostname, u.port, timeout=10, context=ctx)
    else:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    with open(sent, "a") as out:
        for i in range(1, int(n) + 1):
            t0 = time.time()
            body = json.dumps({"id": f"{prefix}-{i}", "action": "stream.probe",
                               "actor": {"id": "probe", "type": "user"}})
            c.request("POST", "/v1/events", body, {"Authorization": "Bearer " + key,
                                                   "Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status == 201:
                out.write(f"{prefix}-{i} {time.time():.6f}\n")
            time.sleep(max(0, int(every) / 1000 - (time.time() - t0)))
    return 0


def main():
    a = sys.argv[1:]
    if not a or a[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if a[0] == "serve":
        serve(a[1:])
        return 0
    if a[0] == "count":
        return count(a[1:])
    if a[0] == "probe":
        return probe(a[1:])
    if a[0] == "lag":
        return lag(a[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
